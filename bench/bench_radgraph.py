"""RadGraph F1 through the service against ``radgraph.F1RadGraph`` in-process, on a GRPO-shaped workload.

Model: a random-weight DyGIE of the real architecture (bert-base-size encoder by default, the
MiniLM uncased vocabulary; ``unirg_testing.dygie``), loaded by both sides from the
same directory. Workload per round, from the real IU X-ray reports (ReXrank layout): 32 references x
8 candidates (other studies' reports) = 256 pairs, sent to the service as 16 concurrent requests of
16 items (two GRPO groups each). Each round's references are studies not used as references before
(identical report texts still recur, as in the real data, where many normal reports are identical).

Peer: ``radgraph.F1RadGraph(reward_level="all")`` called in-process the way a trainer's reward
function calls it, once per 16-item chunk, on the same pairs (it annotates both reports of every
pair, one report per forward pass).

The service's numbers are compared with the peer's (simple / partial / complete per pair) and the
number of differing pairs is printed with the timings. Run ``python bench/bench_radgraph.py --help``; it prints a Markdown section for
bench/RESULTS.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import platform
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))  # unirg_testing: the test-only model builders

from report_set import bench_parser, load_reports, parse_with_reports  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from live_service import launch_service  # noqa: E402

from reward_service.scorers import ScoreItem  # noqa: E402
from unirg_testing.encoders import SIZES  # noqa: E402

REFERENCES, CANDIDATES, REQUESTS = 32, 8, 16


def workload(reports: list[str], rounds: int, seed: int = 0) -> list[list[ScoreItem]]:
    """``rounds`` rounds of 32 fresh references x 8 candidates, in GRPO order (a group's items together)."""
    rng = random.Random(seed)
    order = rng.sample(range(len(reports)), len(reports))
    if rounds * REFERENCES > len(reports):
        raise SystemExit(f"{len(reports)} reports allow at most {len(reports) // REFERENCES} rounds")
    result = []
    for r in range(rounds):
        references = order[r * REFERENCES : (r + 1) * REFERENCES]
        items = []
        for g, ref in enumerate(references):
            others = rng.sample([i for i in range(len(reports)) if i != ref], CANDIDATES)
            items += [ScoreItem(f"r{r}-g{g}-c{c}", reports[ref], reports[o]) for c, o in enumerate(others)]
        result.append(items)
    return result


def load_peer(model_dir: Path) -> Any:
    import radgraph
    import transformers

    from reward_service.models.radgraph_compat import current_tokenizer_api

    # On transformers 5 the package builds a model only with its tokenizer calls answered (radgraph_compat).
    major = int(transformers.__version__.split(".")[0])
    adapted = current_tokenizer_api() if major >= 5 else contextlib.nullcontext()
    with contextlib.redirect_stdout(io.StringIO()), adapted:
        peer = radgraph.F1RadGraph(
            reward_level="all", model_type="radgraph", model_cache_dir=str(model_dir), cuda=-1
        )
        peer(refs=["No acute process."], hyps=["Heart size normal."])  # warm-up on texts outside the workload
    return peer


def peer_round(peer: Any, items: list[ScoreItem]) -> tuple[float, list[tuple]]:
    """The peer on one round, once per 16-item chunk: (seconds, (simple, partial, complete) per pair)."""
    chunk = len(items) // REQUESTS
    levels: list[tuple] = []
    started = time.perf_counter()
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        _, (simple, partial, complete), _, _ = peer(
            refs=[i.reference for i in part], hyps=[i.candidate for i in part]
        )
        levels += list(zip(simple, partial, complete, strict=True))
    return time.perf_counter() - started, levels


async def post_round(client: httpx.AsyncClient, items: list[ScoreItem]) -> list[dict]:
    chunk = len(items) // REQUESTS

    async def post(part: list[ScoreItem]) -> list[dict]:
        body = {"items": [{"id": i.id, "reference": i.reference, "candidate": i.candidate} for i in part]}
        response = await client.post("/v1/score", json={**body, "return_details": True})
        response.raise_for_status()
        return response.json()["items"]

    parts = await asyncio.gather(*(post(items[s : s + chunk]) for s in range(0, len(items), chunk)))
    return [entry for part in parts for entry in part]


async def service_round(client: httpx.AsyncClient, items: list[ScoreItem]) -> tuple[float, list[tuple]]:
    """The service on one round (16 concurrent requests): (seconds, levels per pair)."""
    started = time.perf_counter()
    entries = await post_round(client, items)
    seconds = time.perf_counter() - started
    details = [entry["components"]["radgraph"]["details"] for entry in entries]
    return seconds, [(d["simple"], d["partial"], d["complete"]) for d in details]


def run(model_dir: Path, rounds: list[list[ScoreItem]], workdir: Path) -> dict[str, object]:
    """Service and peer (``radgraph.F1RadGraph``) round by round, alternating, so load from other processes hits both alike."""
    profile = workdir / "radgraph-bench.yaml"
    component = {"name": "radgraph", "weight": 1.0, "options": {"model_dir": str(model_dir)}}
    profile.write_text(yaml.safe_dump({"name": "radgraph-bench", "components": [component]}))
    service = launch_service(workdir, str(profile), env={"UNIRG_DEVICE": "cpu"}, ready_timeout=600)
    peer = load_peer(model_dir)
    ours: list[float] = []
    theirs: list[float] = []
    mismatches = 0
    try:

        async def drive() -> int:
            differ = 0
            async with httpx.AsyncClient(base_url=service.base_url, timeout=600) as client:
                await post_round(
                    client, [ScoreItem("w", "No acute process.", "Heart size normal.")] * REQUESTS
                )
                for items in rounds:
                    seconds, our_levels = await service_round(client, items)
                    ours.append(seconds)
                    seconds, peer_levels = peer_round(peer, items)
                    theirs.append(seconds)
                    print(f"round {len(ours)}: service {ours[-1]:.1f}s, peer {seconds:.1f}s", file=sys.stderr)
                    differ += sum(a != b for a, b in zip(our_levels, peer_levels, strict=True))
            return differ

        mismatches = asyncio.run(drive())
        status = Path(f"/proc/{service.process.pid}/status").read_text().splitlines()
        service_peak_kb = int(next(line.split()[1] for line in status if line.startswith("VmHWM")))
    finally:
        service.stop()
    return {"ours": ours, "peer": theirs, "mismatches": mismatches, "service_peak_kb": service_peak_kb}


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--size", choices=sorted(SIZES), default="bert-base", help="Encoder size of the random DyGIE."
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="Timed rounds (256 pairs each, fresh references)."
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        help="Use this directory holding radgraph/ instead of building a random model.",
    )
    args = parse_with_reports(parser)
    reports = load_reports(args.reports)
    rounds = workload(reports, args.rounds)
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        model_dir = args.model_dir
        if model_dir is None:
            from unirg_testing.dygie import build_random_dygie

            model_dir = workdir / "models"
            started = time.perf_counter()
            build_random_dygie(model_dir, **SIZES[args.size])
            print(
                f"built a {args.size} random DyGIE in {time.perf_counter() - started:.0f}s", file=sys.stderr
            )
        measured = run(model_dir, rounds, workdir)
    ours, peer = measured["ours"], measured["peer"]
    service_peak_kb, mismatches = measured["service_peak_kb"], measured["mismatches"]
    peer_peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    pairs = sum(len(items) for items in rounds)
    ours_s, peer_s = sum(ours), sum(peer)
    import transformers

    print(f"## RadGraph F1: service vs radgraph.F1RadGraph ({datetime.now(UTC):%Y-%m-%d})\n")
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared with other work "
        f"while measuring), Python {platform.python_version()}, transformers {transformers.__version__}, CPU. "
        f"`python bench/bench_radgraph.py --size "
        f"{args.size} --rounds {args.rounds}`: random {args.size} DyGIE; per round 32 fresh IU X-ray references "
        f"x 8 candidates = 256 pairs, sent as 16 concurrent requests of 16 items; the peer called in-process "
        f"once per 16-item chunk; service and peer rounds alternate.\n"
    )
    print("| what | pairs/s | seconds per round | ratio |")
    print("| --- | ---: | --- | ---: |")
    print(
        f"| service (`radgraph` scorer) | {pairs / ours_s:.1f} | {', '.join(f'{s:.1f}' for s in ours)} | "
        f"{peer_s / ours_s:.2f}x |"
    )
    print(
        f"| peer: `radgraph.F1RadGraph` | {pairs / peer_s:.1f} | {', '.join(f'{s:.1f}' for s in peer)} | 1.00x |"
    )
    print(
        f"\nPeak resident memory: service process {service_peak_kb / 1024:.0f} MiB; benchmark process with the "
        f"peer model {peer_peak_kb / 1024:.0f} MiB. Pairs whose (simple, partial, complete) differ between the "
        f"service and the peer: {mismatches} of {pairs}."
    )


if __name__ == "__main__":
    main()

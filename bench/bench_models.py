"""BERTScore and CheXbert through the service against the peers in-process, on a GRPO-shaped workload.

Models (random weights, real sizes, built offline by ``unirg_testing.encoders``):

* BERTScore: a distilbert-size BERT encoder (6 layers, 768 wide) with the MiniLM uncased vocabulary,
  layer 5 (the ReXrank layer), no rescaling;
* CheXbert: a bert-base-size ``chexbert.pth`` in the original layout.

Workload per round (the same as bench/bench_radgraph.py): 32 fresh IU X-ray references x 8
candidates = 256 pairs, sent to the service as 16 concurrent requests of 16 items. The service runs
one profile per model, so each ratio is about one scorer.

Peers, called in-process the way a trainer's reward function calls them, once per 16-item chunk:
``bert_score.BERTScorer.score`` (which already deduplicates and length-sorts the texts of a call),
and CheXbert one report per forward pass, as the f1chexbert package does (reference and candidate
of every pair labelled on their own; same model class and tokenisation as the service).

Numbers are checked against the peers' before timings are printed. Run
``python bench/bench_models.py --help``; it prints a Markdown section for bench/RESULTS.md.
"""

from __future__ import annotations

import asyncio
import os
import platform
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))  # unirg_testing: the test-only model builders
sys.path.insert(0, str(REPO / "bench"))

from report_set import bench_parser, load_reports, parse_with_reports  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from bench_radgraph import REQUESTS, post_round, workload  # noqa: E402
from live_service import launch_service  # noqa: E402

from reward_service.scorers import ScoreItem  # noqa: E402
from unirg_testing.encoders import (  # noqa: E402
    SIZES,
    build_bert_encoder,
    build_chexbert_checkpoint,
    minilm_vocab_file,
)

BERTSCORE_LAYER = 5


def build_models(workdir: Path, encoder_size: str, chexbert_size: str) -> dict[str, Path]:
    vocab = minilm_vocab_file()
    encoder = build_bert_encoder(workdir / "encoder", vocab_file=vocab, **SIZES[encoder_size])
    chexbert_encoder = build_bert_encoder(
        workdir / "chexbert-encoder", vocab_file=vocab, **SIZES[chexbert_size]
    )
    checkpoint = build_chexbert_checkpoint(workdir / "chexbert.pth", chexbert_encoder)
    return {"encoder": encoder, "chexbert_encoder": chexbert_encoder, "checkpoint": checkpoint}


def peer_bertscore(models: dict[str, Path], rounds: list[list[ScoreItem]]) -> tuple[list[float], list[float]]:
    from bert_score import BERTScorer

    peer = BERTScorer(model_type=str(models["encoder"]), num_layers=BERTSCORE_LAYER, device="cpu")
    peer.score(["Heart size normal."], ["No acute process."])  # warm-up outside the workload
    chunk = len(rounds[0]) // REQUESTS
    seconds, scores = [], []
    for items in rounds:
        started = time.perf_counter()
        for start in range(0, len(items), chunk):
            part = items[start : start + chunk]
            _, _, f1 = peer.score([i.candidate for i in part], [i.reference for i in part])
            scores += [float(v) for v in f1]
        seconds.append(time.perf_counter() - started)
    return seconds, scores


def peer_chexbert(models: dict[str, Path], rounds: list[list[ScoreItem]]) -> tuple[list[float], list[tuple]]:
    from reward_service.models.chexbert import load_chexbert, run_chexbert, tokenize_report

    model, tokenizer = load_chexbert(models["checkpoint"], models["chexbert_encoder"], "cpu")

    def label(report: str) -> tuple[int, ...]:  # f1chexbert's get_label: one report, one forward
        return run_chexbert(model, [tokenize_report(report, tokenizer)], "cpu")[0].classes

    label("No acute process.")
    seconds, labels = [], []
    for items in rounds:
        started = time.perf_counter()
        for item in items:
            labels.append((label(item.reference), label(item.candidate)))
        seconds.append(time.perf_counter() - started)
    return seconds, labels


def run_service(
    component: dict, rounds: list[list[ScoreItem]], workdir: Path
) -> tuple[list[float], list, int]:
    name = component["name"]
    profile = workdir / f"{name}-bench.yaml"
    profile.write_text(yaml.safe_dump({"name": f"{name}-bench", "components": [component]}))
    service = launch_service(workdir, str(profile), env={"UNIRG_DEVICE": "cpu"}, ready_timeout=600)
    try:

        async def drive() -> tuple[list[float], list]:
            async with httpx.AsyncClient(base_url=service.base_url, timeout=600) as client:
                await post_round(
                    client, [ScoreItem("w", "No acute process.", "Heart size normal.")] * REQUESTS
                )
                seconds, details = [], []
                for items in rounds:
                    started = time.perf_counter()
                    entries = await post_round(client, items)
                    seconds.append(time.perf_counter() - started)
                    details += [entry["components"][name] for entry in entries]
                return seconds, details

        seconds, details = asyncio.run(drive())
        status = Path(f"/proc/{service.process.pid}/status").read_text().splitlines()
        peak_kb = int(next(line.split()[1] for line in status if line.startswith("VmHWM")))
    finally:
        service.stop()
    return seconds, details, peak_kb


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--rounds", type=int, default=1, help="Timed rounds (256 pairs each, fresh references)."
    )
    parser.add_argument(
        "--encoder-size", choices=sorted(SIZES), default="distilbert-base", help="BERTScore encoder size."
    )
    parser.add_argument("--chexbert-size", choices=sorted(SIZES), default="bert-base", help="CheXbert size.")
    parser.add_argument(
        "--only", choices=("bertscore", "chexbert"), help="Measure one model only (default: both)."
    )
    args = parse_with_reports(parser)
    reports = load_reports(args.reports)
    rounds = workload(reports, args.rounds)
    pairs = sum(len(items) for items in rounds)
    rows, notes = [], []
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        started = time.perf_counter()
        models = build_models(workdir, args.encoder_size, args.chexbert_size)
        print(f"built the random models in {time.perf_counter() - started:.0f}s", file=sys.stderr)
        if args.only in (None, "bertscore"):
            options = {"model": str(models["encoder"]), "layer": BERTSCORE_LAYER}
            ours, details, peak = run_service(
                {"name": "bertscore", "weight": 1.0, "options": options}, rounds, workdir
            )
            print(f"bertscore service: {ours}", file=sys.stderr)
            peer, peer_scores = peer_bertscore(models, rounds)
            print(f"bertscore peer: {peer}", file=sys.stderr)
            worst = max(abs(d["score"] - p) for d, p in zip(details, peer_scores, strict=True))
            rows.append(("BERTScore", "`bert_score.BERTScorer.score` per 16-item chunk", ours, peer, peak))
            notes.append(f"BERTScore: largest |service - peer| F1 difference {worst:.2e}")
        if args.only in (None, "chexbert"):
            options = {"checkpoint": str(models["checkpoint"]), "encoder": str(models["chexbert_encoder"])}
            ours, details, peak = run_service(
                {"name": "chexbert", "weight": 1.0, "options": options}, rounds, workdir
            )
            print(f"chexbert service: {ours}", file=sys.stderr)
            peer, peer_labels = peer_chexbert(models, rounds)
            print(f"chexbert peer: {peer}", file=sys.stderr)
            from reward_service.models.chexbert import CHEXBERT_LABELS

            def present(classes: tuple[int, ...]) -> list[str]:
                return sorted(n for n, c in zip(CHEXBERT_LABELS, classes, strict=True) if c in (1, 3))

            differ = sum(
                d["details"]["reference_labels"] != present(ref)
                or d["details"]["candidate_labels"] != present(cand)
                for d, (ref, cand) in zip(details, peer_labels, strict=True)
            )
            rows.append(("CheXbert labels", "one report per forward (f1chexbert's way)", ours, peer, peak))
            notes.append(f"CheXbert: pairs whose labels differ from the peer's: {differ} of {pairs}")
    bench_peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    import transformers

    print(f"## Model scorers: BERTScore and CheXbert vs peers in-process ({datetime.now(UTC):%Y-%m-%d})\n")
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at the end, Python {platform.python_version()}, transformers "
        f"{transformers.__version__}, CPU. `python bench/bench_models.py --rounds "
        f"{args.rounds}`: random {args.encoder_size} BERTScore encoder (layer {BERTSCORE_LAYER}), random "
        f"{args.chexbert_size} CheXbert; per round 32 fresh IU X-ray references x 8 candidates = 256 pairs, "
        f"sent as 16 concurrent requests of 16 items; peers in-process once per 16-item chunk.\n"
    )
    print(
        "| model | service pairs/s | peer | peer pairs/s | seconds per round (service / peer) | ratio | "
        "service peak RSS |"
    )
    print("| --- | ---: | --- | ---: | --- | ---: | ---: |")
    for model, peer_name, ours, peer, peak in rows:
        print(
            f"| {model} | {pairs / sum(ours):.1f} | {peer_name} | {pairs / sum(peer):.1f} | "
            f"{', '.join(f'{s:.1f}' for s in ours)} / {', '.join(f'{s:.1f}' for s in peer)} | "
            f"{sum(peer) / sum(ours):.2f}x | {peak / 1024:.0f} MiB |"
        )
    print(
        f"\nPeak RSS of the benchmark process holding the peer models: {bench_peak_kb / 1024:.0f} MiB. "
        + "; ".join(notes)
        + "."
    )


if __name__ == "__main__":
    main()

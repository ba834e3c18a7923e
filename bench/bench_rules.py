"""Throughput of the rule-based scorers and HTTP latency of the service, against the peer packages.

Workload: the real IU X-ray reports in ../shared/data (ReXrank layout); each study's report is the
reference and another study's report the candidate. Measured in one process, one after the other:

* every registered rule scorer on all pairs (pairs/s of the whole set, and of each scorer);
* the peers on the same pairs: ``fast-bleu`` (BLEU-2) plus ``rouge-score`` (ROUGE-L), called the way
  ReXrank-style evaluation scripts call them, once per pair;
* a 64-item ``POST /v1/score`` on the default profile against a real server on loopback (p50, p99).

Run: ``python bench/bench_rules.py [--reports PATH] [--rounds N]``; it prints a Markdown section to
paste into bench/RESULTS.md.
"""

from __future__ import annotations

import itertools
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from live_service import launch_service  # noqa: E402
from report_set import bench_parser, load_reports, parse_with_reports  # noqa: E402

from reward_service.heap import freeze_startup_heap  # noqa: E402
from reward_service.scorers import REGISTRY, RuleScorer, ScoreItem, scorer_class  # noqa: E402
from reward_service.settings import Settings  # noqa: E402
from reward_service.text import clear_report_caches  # noqa: E402
from reward_service.text.tokens import rexrank_tokens  # noqa: E402


def load_pairs(path: Path) -> list[ScoreItem]:
    """Each study's report against another study's report."""
    reports = load_reports(path)
    shuffled = reports[:]
    random.Random(0).shuffle(shuffled)
    pairs = zip(reports, shuffled, strict=True)
    return [ScoreItem(str(i), reference, candidate) for i, (reference, candidate) in enumerate(pairs)]


def all_new(pairs: list[ScoreItem]) -> list[ScoreItem]:
    """The pairs with every text made unique (a numbered last sentence), so no report's analysis is
    reused; their other sentences repeat, as real reports' do."""
    return [
        ScoreItem(p.id, f"{p.reference} Study {2 * i}.", f"{p.candidate} Study {2 * i + 1}.")
        for i, p in enumerate(pairs)
    ]


def every_sentence_new(pairs: list[ScoreItem]) -> list[ScoreItem]:
    """The pairs with every sentence made unique (a number before it), so no sentence's analysis is
    reused either: the worst case for the findings analysis, which remembers sentences."""
    numbers = itertools.count()

    def numbered(text: str) -> str:
        return _SENTENCE_START.sub(lambda _: f"{next(numbers)} ", text)

    return [ScoreItem(p.id, numbered(p.reference), numbered(p.candidate)) for p in pairs]


# Where a sentence starts: the text's start, or after a sentence end and one space.
_SENTENCE_START = re.compile(r"^|(?<=[.!?] )")


def grpo_groups(pairs: list[ScoreItem], group: int = 16) -> list[ScoreItem]:
    """The same number of pairs shaped like GRPO: each reference with ``group`` different candidates."""
    references = [pair.reference for pair in pairs[: len(pairs) // group]]
    return [
        ScoreItem(f"{r}-{c}", reference, pairs[(r * group + c) % len(pairs)].candidate)
        for r, reference in enumerate(references)
        for c in range(group)
    ]


def time_call(function: Callable[[], object], rounds: int) -> float:
    """Best wall time of ``rounds`` calls (the least disturbed by other processes), each from cold caches."""
    best = float("inf")
    for _ in range(rounds):
        clear_report_caches()
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def rule_scorers() -> list[RuleScorer]:
    settings = Settings()
    classes = {name: scorer_class(name) for name in sorted(REGISTRY)}
    return [
        cls(name, cls.Options(), settings) for name, cls in classes.items() if issubclass(cls, RuleScorer)
    ]


def bench_scorers(pairs: list[ScoreItem], rounds: int) -> dict[str, float]:
    """Seconds of each rule scorer alone, and of the whole set scoring the pairs together."""
    scorers = rule_scorers()
    seconds = {s.name: time_call(lambda s=s: s.score_items(pairs), rounds) for s in scorers}
    seconds["whole set"] = time_call(lambda: [s.score_items(pairs) for s in scorers], rounds)
    return seconds


def peer_runs(pairs: list[ScoreItem]) -> dict[str, Callable[[], None]]:
    """The peers scoring every pair: ``fast-bleu`` (BLEU-2) and ``rouge-score`` (ROUGE-L), called the way
    ReXrank-style evaluation scripts call them, once per pair."""
    from fast_bleu import BLEU
    from rouge_score import rouge_scorer

    rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)

    def fast_bleu_all() -> None:
        for item in pairs:
            BLEU([rexrank_tokens(item.reference)], {"bleu2": (0.5, 0.5)}).get_score(
                [rexrank_tokens(item.candidate)]
            )

    def rouge_all() -> None:
        for item in pairs:
            rouge.score(item.reference, item.candidate)

    return {"fast-bleu (BLEU-2)": fast_bleu_all, "rouge-score (ROUGE-L)": rouge_all}


def bench_peers(pairs: list[ScoreItem], rounds: int) -> dict[str, float]:
    return {name: time_call(run, rounds) for name, run in peer_runs(pairs).items()}


def bench_http(pairs: list[ScoreItem], requests: int) -> tuple[float, float, list[str]]:
    body = {
        "items": [{"id": p.id, "reference": p.reference, "candidate": p.candidate} for p in pairs[:64]],
        "return_details": True,
    }
    with tempfile.TemporaryDirectory() as folder:
        service = launch_service(Path(folder))
        try:
            with httpx.Client(base_url=service.base_url, timeout=30) as client:
                components = list(client.get("/v1/profiles/default").json()["components"])
                for _ in range(10):  # warm-up: connections, first-call caches
                    client.post("/v1/score", json=body).raise_for_status()
                latencies = []
                for _ in range(requests):
                    started = time.perf_counter()
                    client.post("/v1/score", json=body).raise_for_status()
                    latencies.append((time.perf_counter() - started) * 1000)
        finally:
            service.stop()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    return statistics.median(latencies), p99, [c["key"] or c["name"] for c in components]


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="Repetitions per measurement (best is kept).")
    parser.add_argument("--requests", type=int, default=200, help="Timed 64-item HTTP requests.")
    args = parse_with_reports(parser)
    pairs = load_pairs(args.reports)
    n = len(pairs)
    rule_scorers()  # imports every scorer module; then, as the service does once its profiles are loaded:
    freeze_startup_heap()
    ours = bench_scorers(pairs, args.rounds)
    grouped = bench_scorers(grpo_groups(pairs), args.rounds)["whole set"]
    unique = bench_scorers(all_new(pairs), args.rounds)["whole set"]
    unique_sentences = bench_scorers(every_sentence_new(pairs), args.rounds)["whole set"]
    peers = bench_peers(pairs, args.rounds)
    p50, p99, components = bench_http(pairs, args.requests)
    whole_set = ours.pop("whole set")
    peer_total = sum(peers.values())
    print(
        f"## Rule-based scorers and HTTP latency (bench/bench_rules.py, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n"
    )
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, "
        f"Python {platform.python_version()}, one process. {n} real IU X-ray pairs (reference vs another "
        f"study's report: IU X-ray repeats many normal reports, so some analyses are reused within a round); wall time, best of {args.rounds} rounds, every round from cold caches (no report "
        "analysed before); the start-up heap frozen as the service freezes it. Command: `python bench/bench_rules.py`.\n"
    )
    print("| what | pairs/s | vs fast-bleu + rouge-score |")
    print("| --- | ---: | ---: |")
    print(
        f"| whole rule-based set ({', '.join(ours)}) | {n / whole_set:,.0f} | {peer_total / whole_set:.2f}x |"
    )
    print(
        f"| whole set, every text new (numbered last sentence; no report's analysis reused) | {n / unique:,.0f} | {peer_total / unique:.2f}x |"
    )
    print(
        f"| whole set, every sentence new (numbered; not even a sentence's analysis reused) | "
        f"{n / unique_sentences:,.0f} | {peer_total / unique_sentences:.2f}x |"
    )
    print(f"| whole set, GRPO-shaped: 16 candidates per reference | {n // 16 * 16 / grouped:,.0f} | |")
    for name, seconds in ours.items():
        print(f"| `{name}` alone | {n / seconds:,.0f} | |")
    for name, seconds in peers.items():
        print(f"| peer: {name} | {n / seconds:,.0f} | |")
    print(f"| peer: fast-bleu + rouge-score together | {n / peer_total:,.0f} | 1.00x |")
    print(
        "\n`chexpert_labels` and `clinical_errors` share one analysis of each report "
        "(`reward_service.text.findings.extract_findings`), so the whole set costs less than its parts."
    )
    print(
        f"\nHTTP, default profile ({', '.join(components)}), 64-item request on loopback, "
        f"{args.requests} sequential requests: p50 {p50:.1f} ms, p99 {p99:.1f} ms."
    )


if __name__ == "__main__":
    main()

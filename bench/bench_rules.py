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

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from live_service import launch_service  # noqa: E402

from reward_service.scorers import REGISTRY, RuleScorer, ScoreItem, scorer_class  # noqa: E402
from reward_service.settings import Settings  # noqa: E402
from reward_service.text.tokens import rexrank_tokens  # noqa: E402

DEFAULT_REPORTS = REPO.parent / "shared" / "data" / "rexrank_iuxray_test.json"


def load_pairs(path: Path) -> list[ScoreItem]:
    reports = [study["report"] for study in json.loads(path.read_text(encoding="utf-8")).values()]
    rng = random.Random(0)
    shuffled = reports[:]
    rng.shuffle(shuffled)
    return [ScoreItem(str(i), reference, candidate) for i, (reference, candidate) in enumerate(zip(reports, shuffled))]


def time_call(function, rounds: int) -> float:  # type: ignore[no-untyped-def]
    """Best wall time of ``rounds`` calls (the least disturbed by other processes)."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def bench_scorers(pairs: list[ScoreItem], rounds: int) -> dict[str, float]:
    settings = Settings()
    seconds = {}
    for name in sorted(REGISTRY):
        cls = scorer_class(name)
        if not issubclass(cls, RuleScorer):
            continue
        scorer = cls(name, cls.Options(), settings)
        seconds[name] = time_call(lambda scorer=scorer: scorer.score_items(pairs), rounds)
    return seconds


def bench_peers(pairs: list[ScoreItem], rounds: int) -> dict[str, float]:
    from fast_bleu import BLEU
    from rouge_score import rouge_scorer

    rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)

    def fast_bleu_all() -> None:
        for item in pairs:
            BLEU([rexrank_tokens(item.reference)], {"bleu2": (0.5, 0.5)}).get_score([rexrank_tokens(item.candidate)])

    def rouge_all() -> None:
        for item in pairs:
            rouge.score(item.reference, item.candidate)

    return {"fast-bleu (BLEU-2)": time_call(fast_bleu_all, rounds), "rouge-score (ROUGE-L)": time_call(rouge_all, rounds)}


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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=Path, default=DEFAULT_REPORTS, help="ReXrank-layout JSON of reports.")
    parser.add_argument("--rounds", type=int, default=3, help="Repetitions per measurement (best is kept).")
    parser.add_argument("--requests", type=int, default=200, help="Timed 64-item HTTP requests.")
    args = parser.parse_args()
    if not args.reports.is_file():
        sys.exit(f"{args.reports} not found: pass --reports with a ReXrank-layout JSON file")
    pairs = load_pairs(args.reports)
    n = len(pairs)
    ours = bench_scorers(pairs, args.rounds)
    peers = bench_peers(pairs, args.rounds)
    p50, p99, components = bench_http(pairs, args.requests)
    whole_set = sum(ours.values())
    peer_total = sum(peers.values())
    print(f"## Rule-based scorers and HTTP latency ({datetime.now(UTC):%Y-%m-%d})\n")
    print(f"Machine: {platform.processor() or platform.machine()}, {platform.python_version()}, "
          f"`python bench/bench_rules.py` on {n} real IU X-ray pairs (reference vs another study's report), "
          f"best of {args.rounds}.\n")
    print("| what | pairs/s | vs fast-bleu + rouge-score |")
    print("| --- | ---: | ---: |")
    print(f"| whole rule-based set ({', '.join(ours)}) | {n / whole_set:,.0f} | {peer_total / whole_set:.2f}x |")
    for name, seconds in ours.items():
        print(f"| `{name}` alone | {n / seconds:,.0f} | |")
    for name, seconds in peers.items():
        print(f"| peer: {name} | {n / seconds:,.0f} | |")
    print(f"| peer: fast-bleu + rouge-score together | {n / peer_total:,.0f} | 1.00x |")
    print(f"\nHTTP, default profile ({', '.join(components)}), 64-item request on loopback, "
          f"{args.requests} sequential requests: p50 {p50:.1f} ms, p99 {p99:.1f} ms.")


if __name__ == "__main__":
    main()

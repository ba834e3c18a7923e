"""Throughput of the rule-based clinical scorers (``clinical_errors``, ``chexpert_labels``) on one core.

Workload: the real IU X-ray reports in ../shared/data (ReXrank layout); each study's report is the
reference and another study's report the candidate. Three regimes, each timed in one process:

* **cold**: every pair scored with empty caches (both reports labelled from scratch: the worst case);
* **GRPO groups**: 16 candidates per reference, the reference cached after its first candidate (how
  a GRPO trainer calls the reward; candidates are all cold);
* **warm**: every report already labelled (repeat evaluation of the same texts).

The peer, timed on the same pairs in the same run, is ``rouge-score`` ROUGE-L (the cheapest
standard report metric; no package computes CheXprompt-style clinical errors), called once per pair.

Run: ``python bench/bench_clinical.py [--reports PATH] [--rounds N]``; it prints a Markdown section
for bench/RESULTS.md. Throughput is measured in CPU time of this process (best of N rounds), which a
busy shared machine inflates far less than wall time; wall-time figures are printed next to it.
"""

from __future__ import annotations

import os
import platform
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from bench_rules import load_pairs  # noqa: E402
from report_set import bench_parser, load_reports, parse_with_reports  # noqa: E402

from reward_service.heap import freeze_startup_heap  # noqa: E402
from reward_service.scorers import RuleScorer, ScoreItem, scorer_class  # noqa: E402
from reward_service.settings import Settings  # noqa: E402
from reward_service.text import clear_report_caches  # noqa: E402

GROUP_SIZE = 16


def best_seconds(function: Callable[[], None], rounds: int) -> tuple[float, float]:
    """Best CPU seconds and best wall seconds of ``rounds`` calls."""
    cpu = wall = float("inf")
    for _ in range(rounds):
        cpu_started, wall_started = time.process_time(), time.perf_counter()
        function()
        cpu = min(cpu, time.process_time() - cpu_started)
        wall = min(wall, time.perf_counter() - wall_started)
    return cpu, wall


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="Repetitions per measurement (best is kept).")
    args = parse_with_reports(parser)
    reports = load_reports(args.reports)
    pairs = load_pairs(args.reports)
    rng = random.Random(1)
    groups = [
        ScoreItem(f"{i}-{j}", reports[i], reports[rng.randrange(len(reports))])
        for i in range(0, len(reports), 4)
        for j in range(GROUP_SIZE)
    ]
    settings = Settings()
    rows = []
    for name in ("clinical_errors", "chexpert_labels"):
        cls = scorer_class(name)
        scorer = cls(name, cls.Options(), settings)
        assert isinstance(scorer, RuleScorer)
        freeze_startup_heap()  # as the service does once its profiles are loaded

        def cold(scorer: RuleScorer = scorer) -> None:
            for item in pairs:
                clear_report_caches()
                scorer.score_one(item)

        def grouped(scorer: RuleScorer = scorer) -> None:
            for start in range(0, len(groups), GROUP_SIZE):
                clear_report_caches()  # candidates from scratch; the group's reference is labelled once
                for item in groups[start : start + GROUP_SIZE]:
                    scorer.score_one(item)

        def warm(scorer: RuleScorer = scorer) -> None:
            for item in pairs:
                scorer.score_one(item)

        cold_cpu, cold_wall = best_seconds(cold, args.rounds)
        grouped_cpu, _ = best_seconds(grouped, args.rounds)
        warm(scorer)
        warm_cpu, _ = best_seconds(warm, args.rounds)
        rows.append(
            (
                name,
                len(pairs) / cold_cpu,
                len(pairs) / cold_wall,
                len(groups) / grouped_cpu,
                len(pairs) / warm_cpu,
            )
        )

    from rouge_score import rouge_scorer

    rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)

    def peer() -> None:
        for item in pairs:
            rouge.score(item.reference, item.candidate)

    peer_cpu, peer_wall = best_seconds(peer, args.rounds)
    peer_rate = len(pairs) / peer_cpu
    print(
        f"## Rule-based clinical scorers (bench/bench_clinical.py, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n"
    )
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
        f"(load average {os.getloadavg()[0]:.1f}), Python {platform.python_version()}, one process. "
        f"{len(pairs)} real IU X-ray pairs (reference vs another study's report), best of {args.rounds} rounds, "
        f"pairs per CPU-second. Peer on the same pairs: `rouge-score` ROUGE-L, {peer_rate:,.0f} pairs/s "
        f"({len(pairs) / peer_wall:,.0f} wall).\n"
    )
    print("| scorer | cold | cold (wall) | GRPO groups of 16 | warm | cold vs rouge-score |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, cold_rate, cold_wall_rate, grouped_rate, warm_rate in rows:
        print(
            f"| `{name}` | {cold_rate:,.0f} | {cold_wall_rate:,.0f} | {grouped_rate:,.0f} | {warm_rate:,.0f} "
            f"| {cold_rate / peer_rate:.2f}x |"
        )
    print(
        "\ncold: both reports labelled from scratch for every pair; GRPO groups: 16 candidates per reference, "
        "reference labelled once; warm: every report already labelled (cache hits)."
    )


if __name__ == "__main__":
    main()

"""CPU instructions per pair of the rule-based scorers, counted by valgrind's callgrind.

bench_rules.py measures pairs per second, which on a shared machine moves by tens of percent from one
minute to the next (bench/RESULTS.md). Instruction counts stay put, so this is the measure to compare
two trees or two versions of a scorer with. Each measurement runs the scorers in a child process under
callgrind twice, once with one pass over the pairs and once with three, every pass from cold report
caches and the start-up heap frozen as the service freezes it; half the difference is one pass, free
of start-up and imports.

The peers, ``fast-bleu`` (BLEU-2) and ``rouge-score`` (ROUGE-L) as bench_rules.py calls them, are
counted the same way, for the ratio.

Run ``python bench/rule_cost.py [--pairs N] [--shape every-text-new|real|every-sentence-new] [--each]``;
``--each`` adds every scorer alone. Needs valgrind (Debian's ``valgrind`` package); about two
minutes per measurement, two at a time.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from bench_rules import (  # noqa: E402
    all_new,
    every_sentence_new,
    load_pairs,
    peer_runs,
    rule_scorers,
)
from callgrind import require_valgrind, total_instructions  # noqa: E402
from report_set import bench_parser, parse_with_reports  # noqa: E402

from reward_service.heap import freeze_startup_heap  # noqa: E402
from reward_service.scorers import ScoreItem  # noqa: E402
from reward_service.text import clear_report_caches  # noqa: E402

PEERS = "peers"  # fast-bleu + rouge-score, as bench_rules.py runs them
SHAPES = {
    "every-text-new": all_new,
    "real": lambda pairs: pairs,
    "every-sentence-new": every_sentence_new,
}


def chosen_pairs(reports: Path, shape: str, count: int) -> list[ScoreItem]:
    return SHAPES[shape](load_pairs(reports))[:count]


def run_passes(reports: Path, shape: str, count: int, names: list[str], passes: int) -> None:
    """The child's work: the named scorers (or the peers) over the pairs, ``passes`` times from cold caches."""
    pairs = chosen_pairs(reports, shape, count)
    scorers = [scorer for scorer in rule_scorers() if scorer.name in names]
    runs = [partial(scorer.score_items, pairs) for scorer in scorers]
    if names == [PEERS]:
        runs = list(peer_runs(pairs).values())
    freeze_startup_heap()
    for _ in range(passes):
        clear_report_caches()
        for run in runs:
            run()


def counted(args: argparse.Namespace, names: list[str], passes: int, workdir: Path) -> int:
    """Instructions of a child process scoring ``passes`` passes."""
    output = workdir / f"callgrind.{'-'.join(names)}.{passes}.out"
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={output}",
        sys.executable,
        __file__,
        "--child",
        "--reports",
        str(args.reports),
        "--shape",
        args.shape,
        "--pairs",
        str(args.pairs),
        "--passes",
        str(passes),
        "--scorers",
        ",".join(names),
    ]
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    return total_instructions(output)


def per_pass(args: argparse.Namespace, names: list[str], workdir: Path) -> float:
    with ThreadPoolExecutor(max_workers=2) as pool:
        one, three = pool.map(lambda passes: counted(args, names, passes, workdir), (1, 3))
    return (three - one) / 2


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--shape", choices=sorted(SHAPES), default="every-text-new", help="Which pairs (bench_rules' rows)."
    )
    parser.add_argument("--pairs", type=int, default=200, help="Pairs per pass (default 200).")
    parser.add_argument("--each", action="store_true", help="Also count every scorer alone.")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--passes", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--scorers", default="", help=argparse.SUPPRESS)
    args = parse_with_reports(parser)
    if args.child:
        run_passes(args.reports, args.shape, args.pairs, args.scorers.split(","), args.passes)
        return
    require_valgrind()
    names = [scorer.name for scorer in rule_scorers()]
    sets = [("whole rule-based set", names), ("peer: fast-bleu + rouge-score together", [PEERS])]
    if args.each:
        sets += [(f"`{name}` alone", [name]) for name in names]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for label, chosen in sets:
            instructions = per_pass(args, chosen, Path(folder))
            rows.append((label, instructions))
            print(f"{label}: {instructions / args.pairs / 1e6:.3f} M per pair", file=sys.stderr)
    print(
        f"## Rule-based scorers, instructions per pair (bench/rule_cost.py, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n"
    )
    print(
        f"Machine: {platform.machine()}, Python {platform.python_version()}, valgrind callgrind. {args.pairs} IU X-ray "
        f"pairs, shape `{args.shape}`, one pass from cold report caches (half of three passes minus one); the last column is the peers' instructions over the row's (above 1: fewer than the peers). "
        f"Command: `python bench/rule_cost.py --pairs {args.pairs} --shape {args.shape}{' --each' if args.each else ''}`.\n"
    )
    peers = rows[1][1]
    print("| what | instructions per pair | per pass | vs fast-bleu + rouge-score |")
    print("| --- | ---: | ---: | ---: |")
    for label, instructions in rows:
        print(
            f"| {label} | {instructions / args.pairs / 1e6:.3f} M | {instructions / 1e9:.3f} G | "
            f"{peers / instructions:.2f}x |"
        )


if __name__ == "__main__":
    main()

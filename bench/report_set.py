"""The report set the benches read (ReXrank layout, ../shared/data), and the option that chooses it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' helpers

from live_service import SHARED_REPORTS


def bench_parser(description: str | None) -> argparse.ArgumentParser:
    """A bench's argument parser (its docstring as the help) with ``--reports``."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--reports", type=Path, default=SHARED_REPORTS, help="ReXrank-layout JSON of reports."
    )
    return parser


def parse_with_reports(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The parsed arguments; exits saying what to pass when the report file is missing."""
    args = parser.parse_args()
    if not args.reports.is_file():
        parser.error(f"{args.reports} not found: pass --reports with a ReXrank-layout JSON file")
    return args


def load_reports(path: Path) -> list[str]:
    """Every study's report, in the file's order."""
    return [study["report"] for study in json.loads(path.read_text(encoding="utf-8")).values()]

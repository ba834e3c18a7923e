"""What the instruction-counting benches (request_cost.py, rule_cost.py) share: valgrind's callgrind."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def require_valgrind() -> None:
    """Exit saying how to install valgrind when its callgrind tools are missing."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")


def total_instructions(dump: Path) -> int:
    """The instruction total of a callgrind output file."""
    for line in dump.read_text().splitlines():
        if line.startswith("totals:"):  # "summary:" is wrong once counting was switched off and on
            return int(line.split()[1])
    raise SystemExit(f"no instruction total in {dump}")

"""What the service does per scored item, one-item requests against 64-item requests, in CPU instructions.

Wall-time benches on a shared machine move by tens of percent from one minute to the next
(bench/RESULTS.md); instruction counts do not. This bench runs one ``unirg serve`` under valgrind's
callgrind with instrumentation off, warms it up, then switches counting on for each phase alone:

* **one-item**: ``--items`` requests of one item each, one after another (no two requests in flight,
  so nothing is merged: the worst case of the per-sample shape);
* **64-item**: the same number of items in 64-item requests (the batched peer).

Every item is a fresh IU X-ray pair (each text made unique), so no phase reuses another's analyses.
It prints the server's instructions per item of each phase and their ratio (one-item / 64-item): what
a request costs beyond its items, free of the machine's noise. Client work is not counted; with many
requests in flight the service merges them, so the wall-time ratio of bench_per_sample.py lies
between 1.0 and this one.

Run ``python bench/request_cost.py [--profile default|tiny] [--items N] [--rounds N]``; needs valgrind
(Debian's ``valgrind`` package). About two minutes for ``default``.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from bench_per_sample import BATCH, fresh_items, tiny_profile  # noqa: E402
from callgrind import require_valgrind, total_instructions  # noqa: E402
from live_service import launch_service  # noqa: E402
from report_set import bench_parser, load_reports, parse_with_reports  # noqa: E402

from clients import RewardItem  # noqa: E402


class CountedService:
    """``unirg serve`` under callgrind, counting only while a phase runs."""

    def __init__(self, profile: str, workdir: Path) -> None:
        self.output = workdir / "callgrind.out"
        counting = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={self.output}",
        ]
        self.service = launch_service(
            workdir,
            profile,
            env={"UNIRG_DEVICE": "cpu", "PYTHONHASHSEED": "0"},
            ready_timeout=900,
            wrapper=counting,
        )
        self.client = httpx.Client(base_url=self.service.base_url, timeout=600)
        self.dumps = 0

    def score(self, items: list[RewardItem], per_request: int) -> None:
        for start in range(0, len(items), per_request):
            body = {"items": [item.to_json() for item in items[start : start + per_request]]}
            response = self.client.post("/v1/score", json=body)
            response.raise_for_status()
            if any(item["reward"] is None for item in response.json()["items"]):
                raise SystemExit(f"an item went unscored: {response.text[:300]}")

    def counted(self, items: list[RewardItem], per_request: int) -> int:
        """Instructions the service executed scoring ``items`` in requests of ``per_request``."""
        self._control("--instr=on")
        self.score(items, per_request)
        self._control("--dump")
        self._control("--instr=off")
        self.dumps += 1
        return total_instructions(Path(f"{self.output}.{self.dumps}"))

    def _control(self, option: str) -> None:
        pid = str(self.service.process.pid)
        subprocess.run(["callgrind_control", option, pid], check=True, capture_output=True)

    def stop(self) -> None:
        self.client.close()
        self.service.stop()


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--profile",
        choices=("default", "tiny"),
        default="default",
        help="`default` (rules) or a tiny BERTScore.",
    )
    parser.add_argument(
        "--items", type=int, default=128, help="Items per phase (default 128, a multiple of 64)."
    )
    parser.add_argument("--rounds", type=int, default=2, help="Rounds of the two phases (default 2).")
    args = parse_with_reports(parser)
    require_valgrind()
    reports = load_reports(args.reports)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        profile = str(tiny_profile(workdir)) if args.profile == "tiny" else "default"
        service = CountedService(profile, workdir)
        try:
            service.score(fresh_items(reports, 2 * BATCH, seed=0), 1)  # first-call caches, uncounted
            service.score(fresh_items(reports, 2 * BATCH, seed=1), BATCH)
            for round_number in range(args.rounds):
                single = service.counted(fresh_items(reports, args.items, seed=10 + 2 * round_number), 1)
                batched = service.counted(fresh_items(reports, args.items, seed=11 + 2 * round_number), BATCH)
                rows.append((single / args.items, batched / args.items))
                print(f"round {round_number + 1}: {rows[-1]}", file=sys.stderr)
        finally:
            service.stop()
    print(
        f"## Server instructions per item (bench/request_cost.py, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n"
    )
    print(
        f"Machine: {platform.machine()}, Python {platform.python_version()}, valgrind callgrind counting the "
        f"service only, phase by phase. Profile `{args.profile}`, {args.items} fresh IU X-ray pairs per phase. "
        f"Command: `python bench/request_cost.py --profile {args.profile} --items {args.items} --rounds {args.rounds}`.\n"
    )
    print(f"| round | one-item requests | {BATCH}-item requests | one-item / {BATCH}-item |")
    print("| ---: | ---: | ---: | ---: |")
    for number, (single, batched) in enumerate(rows, 1):
        print(f"| {number} | {single / 1e6:.2f} M | {batched / 1e6:.2f} M | {single / batched:.2f}x |")
    print("\nInstructions per item; requests sent one after another.")


if __name__ == "__main__":
    main()

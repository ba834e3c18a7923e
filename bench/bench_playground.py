"""Does serving the playground page cost ``POST /v1/score`` anything? An interleaved A/B measurement.

Two real services on loopback, the same code and the default profile: one serves the playground
(``UNIRG_PLAYGROUND=true``, the default), the other leaves its routes out (``UNIRG_PLAYGROUND=false``).
The same 64-item requests (real IU X-ray pairs, as in bench_rules.py) go to both in alternation, so
machine noise falls on both alike; each service also gets the page's own requests (``GET /ui/``, its two
assets and ``/ui/examples``) between score requests in the "with page traffic" rounds, as when someone
has the page open. Prints a Markdown section for bench/RESULTS.md with p50 / p99 and their ratios.

Run: ``python bench/bench_playground.py [--reports PATH] [--requests N]``.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from bench_rules import load_pairs  # noqa: E402
from live_service import launch_service  # noqa: E402
from report_set import bench_parser, parse_with_reports  # noqa: E402

PAGE_REQUESTS = ("/ui/", "/ui/static/playground.js", "/ui/static/playground.css", "/ui/examples")


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument(
        "--requests", type=int, default=300, help="Timed 64-item requests per service and mode."
    )
    args = parse_with_reports(parser)

    pairs = load_pairs(args.reports)
    batches = [
        [{"reference": p.reference, "candidate": p.candidate} for p in pairs[start : start + 64]]
        for start in range(0, len(pairs) - 63, 64)
    ]
    with tempfile.TemporaryDirectory() as folder:
        services = {
            "page served": launch_service(Path(folder), env={"UNIRG_PLAYGROUND": "true"}),
            "page left out": launch_service(Path(folder), env={"UNIRG_PLAYGROUND": "false"}),
        }
        try:
            clients = {name: httpx.Client(base_url=s.base_url, timeout=60) for name, s in services.items()}
            assert clients["page served"].get("/ui/").status_code == 200
            assert clients["page left out"].get("/ui/").status_code == 404
            results: dict[tuple[str, str], list[float]] = {}
            for mode in ("score only", "with page traffic"):
                for batch in batches:  # warm-up: every text analysed once by each service
                    for client in clients.values():
                        client.post("/v1/score", json={"items": batch}).raise_for_status()
                for index in range(args.requests):
                    batch = batches[index % len(batches)]
                    order = list(clients.items()) if index % 2 == 0 else list(clients.items())[::-1]
                    for name, client in order:
                        if mode == "with page traffic" and name == "page served":
                            for path in PAGE_REQUESTS:
                                client.get(path).raise_for_status()
                        started = time.perf_counter()
                        client.post("/v1/score", json={"items": batch}).raise_for_status()
                        results.setdefault((mode, name), []).append((time.perf_counter() - started) * 1000)
        finally:
            for service in services.values():
                service.stop()

    load = os.getloadavg()[0]
    print(
        f"## Playground page vs the scoring path (bench/bench_playground.py, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n"
    )
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, load average {load:.1f}, Python "
        f"{platform.python_version()}. Two services on loopback, default profile, 64-item requests of real "
        f"IU X-ray pairs sent to both in alternation, {args.requests} per service and mode after a warm-up. "
        "Command: `python bench/bench_playground.py`.\n"
    )
    print("| mode | service | p50 ms | p99 ms | mean ms | p50 vs page left out |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for mode in ("score only", "with page traffic"):
        baseline = statistics.median(results[(mode, "page left out")])
        for name in ("page served", "page left out"):
            samples = results[(mode, name)]
            p50 = statistics.median(samples)
            print(
                f"| {mode} | {name} | {p50:.1f} | {percentile(samples, 0.99):.1f} | "
                f"{statistics.fmean(samples):.1f} | {p50 / baseline:.2f}x |"
            )


if __name__ == "__main__":
    main()

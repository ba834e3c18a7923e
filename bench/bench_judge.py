"""Latency of a 64-item judge request, cold (every pair goes to the judge) vs warm (every pair cached).

Setup, all on loopback: the OpenAI-compatible test judge (tests/judge_server.py; it answers at once,
or after ``--judge-delay`` seconds to stand in for a real LLM), a real ``unirg serve`` on the
``judge-chexprompt`` profile, and the judge cache in Redis (``--redis-url``) and/or in the in-process
LRU. Workload: the real IU X-ray reports in ../shared/data (each reference paired with another
study's report) when present, else generated reports.

* cold: each request holds 64 pairs never seen before (a new pairing of the reports per round);
* warm: the same 64 pairs again and again, all served from the cache.

Reported: p50 and p99 of the client-side request latency (HTTP included), the judge calls made, the
ratio cold p50 / warm p50 (what the cache saves per request), and for warm requests the server's own
total and the judge component's share (the rest is HTTP and JSON). Target: warm p50 < 10 ms.

Run: ``python bench/bench_judge.py [--rounds N] [--redis-url URL] [--judge-delay S]``; it prints a
Markdown section to paste into bench/RESULTS.md. The machine may be shared: note the load.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from judge_server import JudgeServer  # noqa: E402
from live_service import free_port, launch_service  # noqa: E402
from report_set import bench_parser  # noqa: E402

ITEMS = 64


def judge_reports(path: Path) -> list[str]:
    """The reports of ``path`` (distinct texts), or generated ones when it is missing."""
    if path.is_file():
        # Distinct texts only (normal reports repeat), so that every cold pair is really new.
        studies = json.loads(path.read_text(encoding="utf-8")).values()
        return list(dict.fromkeys(study["report"] for study in studies))
    findings = ["Heart size is normal", "Lungs are clear", "No pleural effusion", "Mild cardiomegaly",
                "Small left pleural effusion", "No pneumothorax", "Left basilar atelectasis"]  # fmt: skip
    return [". ".join(findings[(i + k) % len(findings)] for k in range(3 + i % 3)) + "." for i in range(600)]


def batch(reports: list[str], shift: int) -> list[dict[str, str]]:
    """64 (reference, candidate) pairs: report i against report i + shift (a new pairing per shift)."""
    n = len(reports)
    return [
        {"id": f"{shift}-{i}", "reference": reports[i % n], "candidate": reports[(i + shift) % n]}
        for i in range(ITEMS)
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(base_url: str, reports: list[str], rounds: int, judge: JudgeServer) -> dict[str, Any]:
    with httpx.Client(base_url=base_url, timeout=300) as client:

        def post(items: list[dict[str, str]]) -> tuple[float, dict[str, Any]]:
            started = time.perf_counter()
            response = client.post("/v1/score", json={"items": items})
            elapsed = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            return elapsed, response.json()

        post(batch(reports, 0))  # connections, first-request set-up
        cold, warm = [], []
        calls_before = judge.state.calls
        for round_ in range(1, rounds + 1):
            elapsed, body = post(batch(reports, round_))
            assert not any(item["components"]["judge"]["details"].get("cached") for item in body["items"])
            cold.append(elapsed)
        cold_calls = judge.state.calls - calls_before
        warm_items = batch(reports, 1)
        calls_before = judge.state.calls
        warm_server, warm_judge = [], []
        for _ in range(rounds * 5):
            elapsed, body = post(warm_items)
            assert all(item["components"]["judge"]["details"]["cached"] for item in body["items"])
            warm.append(elapsed)
            warm_server.append(body["timings"]["total_ms"])
            warm_judge.append(body["timings"]["components_ms"]["judge"])
        warm_calls = judge.state.calls - calls_before
    return {
        "cold_p50_ms": statistics.median(cold),
        "cold_p99_ms": percentile(cold, 0.99),
        "warm_p50_ms": statistics.median(warm),
        "warm_p99_ms": percentile(warm, 0.99),
        "warm_server_p50_ms": statistics.median(warm_server),
        "warm_judge_component_p50_ms": statistics.median(warm_judge),
        "cold_requests": len(cold),
        "warm_requests": len(warm),
        "judge_calls_cold": cold_calls,
        "judge_calls_warm": warm_calls,
    }


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=20, help="cold requests (warm: 5x as many); default 20")
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/0",
        help="Redis to cache in; 'none' skips the Redis run",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the run with the in-process LRU cache")
    parser.add_argument(
        "--judge-delay",
        type=float,
        default=0.0,
        help="seconds the test judge waits per call (a stand-in LLM)",
    )
    args = parser.parse_args()

    reports = judge_reports(args.reports)
    runs: dict[str, dict[str, Any]] = {}
    caches = ([] if args.redis_url == "none" else [("redis", args.redis_url)]) + (
        [] if args.no_memory else [("memory", None)]
    )
    with JudgeServer(free_port()) as judge, tempfile.TemporaryDirectory() as logs:
        judge.state.delay = args.judge_delay
        for name, url in caches:
            env = {
                "UNIRG_JUDGE_BASE_URL": judge.base_url,
                "UNIRG_JUDGE_MODEL": "test-judge",
                "UNIRG_JUDGE_CACHE_NAMESPACE": f"unirg-bench:{uuid.uuid4().hex}",
                "UNIRG_JUDGE_CONCURRENCY": "64",
                "UNIRG_REDIS_URL": url or "",
            }
            service = launch_service(Path(logs), "judge-chexprompt", env=env)
            try:
                runs[name] = measure(service.base_url, reports, args.rounds, judge)
            finally:
                service.stop()

    load = os.getloadavg()
    print(f"## LLM judge cache (bench/bench_judge.py, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {load[0]:.1f} (shared machine). {ITEMS} items per request, "
        f"{'IU X-ray reports' if args.reports.is_file() else 'generated reports'}, test judge on loopback "
        f"answering after {args.judge_delay:g} s.\n"
    )
    print(
        "| cache | cold p50 ms | cold p99 ms | warm p50 ms | warm p99 ms | cold/warm p50 "
        "| warm: server total / judge component p50 ms | judge calls cold/warm |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, r in runs.items():
        print(
            f"| {name} | {r['cold_p50_ms']:.1f} | {r['cold_p99_ms']:.1f} | {r['warm_p50_ms']:.1f} | "
            f"{r['warm_p99_ms']:.1f} | {r['cold_p50_ms'] / r['warm_p50_ms']:.1f}x | "
            f"{r['warm_server_p50_ms']:.1f} / {r['warm_judge_component_p50_ms']:.1f} | "
            f"{r['judge_calls_cold']}/{r['judge_calls_warm']} |"
        )
    print()
    verdict = all(r["warm_p50_ms"] < 10 for r in runs.values())
    print(f"Target warm p50 < 10 ms: {'met' if verdict else 'NOT met'}.")


if __name__ == "__main__":
    main()

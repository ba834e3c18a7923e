"""Reliability probe: load, overload, bad input, Redis and judge faults, SIGTERM mid-request.

Everything runs on loopback and stops by itself: real ``unirg serve`` processes on free 127.0.0.1 ports,
the OpenAI-compatible test judge (tests/judge_server.py) and a redis-server of our own. Each phase is
bounded in time and in request count (the whole run takes about a minute and a half on 2 cores).

Phases and what they report:

1. **load** (default profile): ``--clients`` concurrent clients send 64-item requests for
   ``--seconds``; requests, errors (anything but 200), p50/p99 latency, the service's resident memory
   before and after, and ``/healthz`` latency during the load as a ratio to ``/healthz`` when idle
   (the event loop must stay responsive while batches are scored).
2. **overload** (``UNIRG_MAX_CONCURRENT_REQUESTS=2``): 16 clients at once; the share answered 429, the
   ``Retry-After`` values they carried, and 5xx (must be 0).
3. **bad input**: the inputs of issue 12 (NaN, Infinity, text/plain, form-encoded and header-less
   bodies, invalid UTF-8, 20,000-deep JSON, a lone surrogate, a 32 MB body); the status of each and
   the service's memory after the large body (it must be refused before it is read).
4. **redis fault** (judge-chexprompt, Redis cache): Redis is stopped for 3 s mid-stream and restarted;
   5xx, rewards that were wrong (not the test judge's value), and whether the cache is used again.
5. **judge fault**: the judge answers 500 for 3 s, then is healthy; seconds from healthy to the first
   scored item (the breaker's reset starts at 1 s and backs off).
6. **SIGTERM mid-request**: 8 requests in flight, then SIGTERM; how many completed with 200, and the
   seconds from the signal to the process's exit (must be under ``UNIRG_DRAIN_TIMEOUT_S``).

Run: ``python bench/reliability.py [--clients 16] [--seconds 15]``; it prints a Markdown section for
bench/RESULTS.md. The machine may be shared: note its load with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from judge_server import JudgeServer  # noqa: E402
from live_service import ServiceProcess, free_port, launch_service  # noqa: E402

REFERENCE = "Heart size is normal. Lungs are clear."
CANDIDATE = "Heart size is normal. Small left effusion. Minor skin fold."  # test judge: 2 significant errors
JUDGE_SCORE = 1 / (1 + 2)
REPORTS = [
    "Heart size is normal. Lungs are clear. No pleural effusion or pneumothorax.",
    "Small left pleural effusion with adjacent atelectasis. No pneumothorax.",
    "Mild cardiomegaly. Pulmonary vascular congestion without frank edema.",
    "No acute cardiopulmonary process. Degenerative changes of the thoracic spine.",
]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def items(n: int, shift: int = 0) -> list[dict[str, str]]:
    return [
        {"id": str(i), "reference": REPORTS[i % 4], "candidate": REPORTS[(i + shift) % 4] + f" Note {i}."}
        for i in range(n)
    ]


# --- 1. load ---------------------------------------------------------------------------------------------


async def _healthz_latency(client: httpx.AsyncClient, base: str, until: float) -> list[float]:
    samples = []
    while time.monotonic() < until:
        started = time.perf_counter()
        await client.get(f"{base}/healthz")
        samples.append(time.perf_counter() - started)
        await asyncio.sleep(0.05)
    return samples


async def load_phase(base: str, pid: int, clients: int, seconds: float) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        idle = await _healthz_latency(client, base, time.monotonic() + 2)
        rss_before = rss_mib(pid)
        latencies: list[float] = []
        errors = 0
        until = time.monotonic() + seconds

        async def worker(index: int) -> None:
            nonlocal errors
            round_ = 0
            while time.monotonic() < until:
                started = time.perf_counter()
                response = await client.post(f"{base}/v1/score", json={"items": items(64, index + round_)})
                latencies.append(time.perf_counter() - started)
                errors += response.status_code != 200
                round_ += 1

        results = await asyncio.gather(
            _healthz_latency(client, base, until), *(worker(i) for i in range(clients))
        )
        busy = results[0]
    return {
        "requests": len(latencies),
        "errors": errors,
        "p50_s": percentile(latencies, 0.5),
        "p99_s": percentile(latencies, 0.99),
        "rss_before": rss_before,
        "rss_after": rss_mib(pid),
        "healthz_idle_ms": statistics.median(idle) * 1000,
        "healthz_busy_ms": statistics.median(busy) * 1000,
        "healthz_busy_max_ms": max(busy) * 1000,
    }


# --- 2. overload -------------------------------------------------------------------------------------------


async def overload_phase(base: str) -> dict[str, Any]:
    statuses: list[int] = []
    retry_after: list[int] = []
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=20)) as client:

        async def one(index: int) -> None:
            for round_ in range(4):
                response = await client.post(f"{base}/v1/score", json={"items": items(128, index + round_)})
                statuses.append(response.status_code)
                if response.status_code == 429:
                    retry_after.append(int(response.headers["retry-after"]))

        await asyncio.gather(*(one(i) for i in range(16)))
    return {
        "requests": len(statuses),
        "ok": statuses.count(200),
        "rejected": statuses.count(429),
        "server_errors": sum(status >= 500 for status in statuses),
        "retry_after": sorted(set(retry_after)),
    }


# --- 3. bad input -------------------------------------------------------------------------------------------


def bad_input_phase(base: str, pid: int) -> dict[str, Any]:
    valid = b'{"items": [{"reference": "No effusion.", "candidate": "No effusion."}]}'
    cases: dict[str, tuple[bytes, str | None]] = {
        "NaN": (
            b'{"items": [{"reference": "a", "candidate": "b"}], "return_details": NaN}',
            "application/json",
        ),
        "Infinity": (b'{"items": [{"reference": "a", "candidate": Infinity}]}', "application/json"),
        "text/plain": (valid, "text/plain"),
        "form-encoded": (valid, "application/x-www-form-urlencoded"),
        "no content type": (valid, None),
        "invalid UTF-8": (b'{"items": [{"reference": "\xff", "candidate": "b"}]}', "application/json"),
        "20,000-deep JSON": (b"[" * 20_000 + b"]" * 20_000, "application/json"),
        "lone surrogate": (
            b'{"items": [{"reference": "a", "candidate": "\\ud800"}, {"reference": "a", "candidate": "a"}]}',
            "application/json",
        ),
        "32 MB body": (
            b'{"items": [{"reference": "' + b"x" * 32_000_000 + b'", "candidate": "y"}]}',
            "application/json",
        ),
    }
    statuses = {}
    for name, (body, content_type) in cases.items():
        headers = {"content-type": content_type} if content_type else {}
        try:
            statuses[name] = httpx.post(
                f"{base}/v1/score", content=body, headers=headers, timeout=60
            ).status_code
        except httpx.TransportError as exc:  # the service may close the connection on a refused body
            statuses[name] = type(exc).__name__
    return {"statuses": statuses, "rss_after": rss_mib(pid)}


# --- 4, 5. Redis and judge faults ------------------------------------------------------------------------------


class Redis:
    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ping = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True)
            if ping.stdout.strip() == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


def judge_env(judge: JudgeServer) -> dict[str, str]:
    return {
        "UNIRG_JUDGE_BASE_URL": judge.base_url,
        "UNIRG_JUDGE_MODEL": "test-judge",
        "UNIRG_JUDGE_CACHE_NAMESPACE": f"unirg-bench:{uuid.uuid4().hex}",
        "UNIRG_JUDGE_RETRIES": "0",
        "UNIRG_JUDGE_BREAKER_THRESHOLD": "3",
    }


def judge_item(base: str, candidate: str) -> tuple[int, dict[str, Any] | None]:
    response = httpx.post(
        f"{base}/v1/score", json={"items": [{"reference": REFERENCE, "candidate": candidate}]}, timeout=30
    )
    return response.status_code, response.json()["items"][0] if response.status_code == 200 else None


def redis_fault_phase(work: Path, judge: JudgeServer) -> dict[str, Any]:
    redis = Redis(work)
    redis.start()
    env = {
        **judge_env(judge),
        "UNIRG_REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
        "UNIRG_JUDGE_CACHE_RETRY_S": "1",
    }
    service = launch_service(work, "judge-chexprompt", env=env)
    counts = {"requests": 0, "server_errors": 0, "wrong": 0, "null": 0}
    try:
        phase_end = time.monotonic() + 9
        stopped_at, restarted = time.monotonic() + 2, False
        n = 0
        while time.monotonic() < phase_end:
            if redis.process is not None and time.monotonic() > stopped_at and not restarted:
                redis.stop()
            if redis.process is None and time.monotonic() > stopped_at + 3:
                redis.start()
                restarted = True
            status, item = judge_item(service.base_url, f"{CANDIDATE} Note {n % 20}.")
            counts["requests"] += 1
            counts["server_errors"] += status >= 500
            score = item["components"]["judge"]["score"] if item else None
            counts["null"] += score is None
            # Each "Note n." is one more false finding: 1/(1 + 3), never 0.
            counts["wrong"] += score is not None and abs(score - 1 / (1 + 3)) > 1e-9
            n += 1
        ready = httpx.get(f"{service.base_url}/readyz").json()
        counts["cache_available_after"] = ready["scorers"]["judge"]["cache"]["available"]
    finally:
        service.stop()
        redis.stop()
    return counts


def judge_fault_phase(work: Path, judge: JudgeServer) -> dict[str, Any]:
    service = launch_service(work, "judge-chexprompt", env=judge_env(judge))
    control = judge.base_url.removesuffix("/v1") + "/control"
    try:
        httpx.post(control, json={"status": 500}).raise_for_status()
        fault_end = time.monotonic() + 3
        null_during = wrong = 0
        n = 0
        while time.monotonic() < fault_end:
            _, item = judge_item(service.base_url, f"Finding {n}.")
            null_during += item["components"]["judge"]["score"] is None
            wrong += item["components"]["judge"]["score"] == 0
            n += 1
        httpx.post(control, json={"status": None}).raise_for_status()
        healthy_at = time.monotonic()
        recovered = None
        while time.monotonic() < healthy_at + 40:
            _, item = judge_item(service.base_url, CANDIDATE)
            if item["components"]["judge"]["score"] is not None:
                recovered = time.monotonic() - healthy_at
                break
            time.sleep(0.05)
    finally:
        service.stop()
    return {"requests_during_fault": n, "null_during_fault": null_during, "zero_during_fault": wrong,
            "recovery_s": recovered}  # fmt: skip


# --- 6. SIGTERM mid-request ------------------------------------------------------------------------------------


def sigterm_phase(work: Path, drain_s: float) -> dict[str, Any]:
    service: ServiceProcess = launch_service(work, env={"UNIRG_DRAIN_TIMEOUT_S": str(drain_s)})

    def body(request: int) -> dict[str, Any]:
        # Distinct texts everywhere: the rule scorers cache what they have analysed once.
        def report(item: int) -> str:
            return " ".join(f"Finding {request}.{item}.{n}: small left pleural effusion." for n in range(250))

        return {"items": [{"reference": report(i), "candidate": report(i + 1000)} for i in range(48)]}

    statuses: list[int | str] = []

    def send(request: int) -> None:
        try:
            response = httpx.post(f"{service.base_url}/v1/score", json=body(request), timeout=60)
            statuses.append(response.status_code)
        except httpx.TransportError as exc:
            statuses.append(type(exc).__name__)

    senders = [threading.Thread(target=send, args=(request,)) for request in range(8)]
    for sender in senders:
        sender.start()
    deadline = time.monotonic() + 20
    in_flight = 0.0
    while time.monotonic() < deadline and in_flight < 8:
        metrics = httpx.get(f"{service.base_url}/metrics").text
        in_flight = float(
            next(
                line for line in metrics.splitlines() if line.startswith("unirg_requests_in_flight ")
            ).split()[1]
        )
        time.sleep(0.01)
    signalled = time.monotonic()
    service.process.send_signal(signal.SIGTERM)
    code = service.process.wait(timeout=drain_s + 30)
    exit_s = time.monotonic() - signalled
    for sender in senders:
        sender.join(timeout=60)
    return {"in_flight": int(in_flight), "completed": statuses.count(200), "statuses": statuses, "exit_s": exit_s,
            "exit_code": code, "drain_s": drain_s}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients in the load phase")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the load phase")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is needed for the Redis fault phase: apt-get install redis-server")
    started = time.monotonic()
    load_average = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="unirg-reliability-") as tmp:
        work = Path(tmp)
        service = launch_service(work)
        try:
            load = asyncio.run(load_phase(service.base_url, service.process.pid, args.clients, args.seconds))
            bad = bad_input_phase(service.base_url, service.process.pid)
        finally:
            service.stop()
        overloaded = launch_service(work, env={"UNIRG_MAX_CONCURRENT_REQUESTS": "2"})
        try:
            overload = asyncio.run(overload_phase(overloaded.base_url))
        finally:
            overloaded.stop()
        with JudgeServer(free_port()) as judge:
            redis = redis_fault_phase(work, judge)
            httpx.post(judge.base_url.removesuffix("/v1") + "/control/reset").raise_for_status()
            judge_fault = judge_fault_phase(work, judge)
        sigterm = sigterm_phase(work, drain_s=20.0)
    total = time.monotonic() - started
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"## Reliability (bench/reliability.py, {now})\n")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs shared with other jobs (load average "
        f"{load_average:.1f} at the start), Python {platform.python_version()}. Command: `python "
        f"bench/reliability.py --clients {args.clients} --seconds {args.seconds:g}`; {total:.0f} s in all, "
        "everything on loopback.\n"
    )
    print("| phase | result |\n| --- | --- |")
    print(
        f"| load: {args.clients} clients x 64 items, {args.seconds:g} s, default profile | {load['requests']} "
        f"requests, {load['errors']} errors; p50 {load['p50_s'] * 1000:.0f} ms, p99 {load['p99_s'] * 1000:.0f} ms; "
        f"RSS {load['rss_before']:.0f} -> {load['rss_after']:.0f} MiB |"
    )
    ratio = load["healthz_busy_ms"] / load["healthz_idle_ms"]
    print(
        f"| /healthz during the load vs idle | median {load['healthz_busy_ms']:.1f} ms vs "
        f"{load['healthz_idle_ms']:.1f} ms (**{ratio:.1f}x**), max {load['healthz_busy_max_ms']:.0f} ms |"
    )
    print(
        f"| overload: 16 clients x 4 requests of 128 items, UNIRG_MAX_CONCURRENT_REQUESTS=2 | "
        f"{overload['ok']} scored, {overload['rejected']} answered 429 (Retry-After seen: "
        f"{', '.join(map(str, overload['retry_after'])) or 'none'} s), {overload['server_errors']} 5xx |"
    )
    statuses = ", ".join(f"{name} {status}" for name, status in bad["statuses"].items())
    print(f"| bad input | {statuses}; RSS after the 32 MB body {bad['rss_after']:.0f} MiB |")
    print(
        f"| Redis stopped 3 s mid-stream, judge-chexprompt | {redis['requests']} requests, "
        f"{redis['server_errors']} 5xx, {redis['wrong']} wrong values, {redis['null']} null; cache in use "
        f"again after: {redis['cache_available_after']} |"
    )
    recovery = judge_fault["recovery_s"]
    recovered = f"{recovery:.1f} s" if recovery is not None else "never (40 s)"
    print(
        f"| judge answering 500 for 3 s | {judge_fault['null_during_fault']} of "
        f"{judge_fault['requests_during_fault']} items null ({judge_fault['zero_during_fault']} scored 0); first scored item "
        f"{recovered} after the judge was healthy |"
    )
    print(
        f"| SIGTERM with {sigterm['in_flight']} requests in flight (48 long items each), drain "
        f"{sigterm['drain_s']:g} s | {sigterm['completed']} completed with 200; exit "
        f"{sigterm['exit_s']:.1f} s after the signal (code {sigterm['exit_code']}) |"
    )


if __name__ == "__main__":
    main()

"""Start-up, readiness, draining on shutdown, the event loop under load and Retry-After.

In-process tests drive the real app through ``httpx.ASGITransport``; the shutdown and start-up failure
tests run a real ``unirg serve`` and signal it.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from live_service import ServiceProcess, launch_service
from waiting import wait_until, wait_until_async

from reward_service.app import begin_drain, create_app
from reward_service.engine import RewardEngine
from reward_service.load import MAX_RETRY_AFTER_S, MIN_RETRY_AFTER_S, LoadMeter
from reward_service.scorers import ScoreItem
from reward_service.settings import Settings

REFERENCE = "Small left pleural effusion. No pneumothorax."
ITEM = {"reference": REFERENCE, "candidate": REFERENCE}
# Long, varied reports: a request of these takes seconds of CPU in the rule scorers.
LONG_REPORT = " ".join(
    f"Finding {n}: small left pleural effusion with adjacent atelectasis, no pneumothorax."
    for n in range(200)
)


@pytest.fixture
async def app_client() -> AsyncIterator[tuple[object, httpx.AsyncClient]]:
    app = create_app(Settings(max_concurrent_requests=1))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        yield app, client
    await app.state.engine.close()


async def test_score_before_the_profiles_load_is_503_with_retry_after(app_client) -> None:
    _app, client = app_client
    response = await client.post("/v1/score", json={"items": [ITEM]})
    assert response.status_code == 503
    assert "still loading its profiles" in response.json()["detail"]
    assert int(response.headers["retry-after"]) >= 1
    assert (await client.get("/readyz")).status_code == 503


async def test_draining_turns_readiness_503_and_refuses_new_work(app_client) -> None:
    app, client = app_client
    await app.state.engine.load_configured()
    app.state.ready = True
    assert (await client.get("/readyz")).status_code == 200
    begin_drain(app)
    ready = await client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["draining"] is True
    response = await client.post("/v1/score", json={"items": [ITEM]})
    assert response.status_code == 503 and "shutting down" in response.json()["detail"]
    assert (await client.get("/healthz")).status_code == 200


async def test_long_batch_is_scored_off_the_event_loop(app_client) -> None:
    app, client = app_client
    await app.state.engine.load_configured()
    app.state.ready = True
    items = [{"reference": LONG_REPORT, "candidate": LONG_REPORT[::-1]} for _ in range(64)]
    scoring = asyncio.create_task(client.post("/v1/score", json={"items": items}))
    await wait_until_async(lambda: app.state.load.items_in_flight, 30, "the batch in flight", interval=0.001)
    health = await client.get("/healthz")
    # Scored on the event loop, the batch would finish before /healthz could even be read.
    assert health.status_code == 200 and not scoring.done()
    assert (await scoring).status_code == 200


async def test_full_service_answers_429_with_retry_after_from_the_load(app_client) -> None:
    app, client = app_client
    await app.state.engine.load_configured()
    app.state.ready = True
    meter: LoadMeter = app.state.load
    for _ in range(3):  # a recent pace of about 2 items per second
        meter.started(1)
        meter.finished(1)
    items = [{"reference": LONG_REPORT, "candidate": LONG_REPORT[::-1]} for _ in range(40)]
    first = asyncio.create_task(client.post("/v1/score", json={"items": items}))
    await wait_until_async(lambda: meter.items_in_flight, 30, "the first batch in flight", interval=0.001)
    refused = await client.post("/v1/score", json={"items": [ITEM]})
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) == meter.retry_after_s() > 1
    assert (await first).status_code == 200


async def test_start_up_heap_is_frozen_once_loaded_and_released_at_close() -> None:
    """Objects built at start-up leave the cyclic collector's walk (reward_service.heap), until close."""
    engine = RewardEngine(Settings())
    try:
        await engine.load_configured()
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # modules, rule tables, the vocabulary: everything alive at start-up
        batch = await engine.score([ScoreItem("1", REFERENCE, REFERENCE)])
        reward = batch.items[0].composite.reward
        assert reward is not None and reward > 0.9
    finally:
        await engine.close()
    assert gc.get_freeze_count() == 0


def test_retry_after_follows_backlog_and_pace() -> None:
    meter = LoadMeter(window_s=30)
    assert meter.retry_after_s() == MIN_RETRY_AFTER_S
    meter.started(10)
    meter.finished(10)  # 10 items within the first second of the window
    assert meter.retry_after_s(backlog=10) == 1
    assert meter.retry_after_s(backlog=100) == 10
    assert meter.retry_after_s(backlog=10_000) == MAX_RETRY_AFTER_S


# --- a real process -----------------------------------------------------------------------------------


def _unique_long_report(item: int) -> str:
    return " ".join(
        f"Finding {item}-{n}: small left pleural effusion with adjacent atelectasis, no pneumothorax."
        for n in range(200)
    )


def _sigterm_during_request(service: ServiceProcess, items: list[dict]) -> httpx.Response | BaseException:
    """Send one score request, SIGTERM the service once it is in flight; the response or the failure."""
    outcome: dict[str, httpx.Response | BaseException] = {}

    def send() -> None:
        try:
            outcome["response"] = httpx.post(
                f"{service.base_url}/v1/score", json={"items": items}, timeout=120
            )
        except BaseException as exc:  # reported by the caller's assertions
            outcome["response"] = exc

    sender = threading.Thread(target=send)
    sender.start()
    wait_until(
        lambda: "unirg_requests_in_flight 1.0" in httpx.get(f"{service.base_url}/metrics").text,
        30,
        "the score request in flight (unirg_requests_in_flight 1.0 in /metrics)",
        describe=service.log,
    )
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(timeout=60) == -signal.SIGTERM
    sender.join(timeout=120)
    return outcome["response"]


def test_sigterm_mid_request_finishes_it_and_exits_cleanly(tmp_path: Path) -> None:
    service = launch_service(tmp_path, env={"UNIRG_DRAIN_TIMEOUT_S": "30"})
    items = [{"reference": LONG_REPORT, "candidate": LONG_REPORT[::-1]} for _ in range(128)]
    # uvicorn ends by re-raising the signal it was stopped with, as process managers expect (checked inside).
    response = _sigterm_during_request(service, items)
    assert isinstance(response, httpx.Response), response
    assert response.status_code == 200 and len(response.json()["items"]) == 128


def test_profile_that_fails_to_load_exits_1_with_the_reason_last(tmp_path: Path) -> None:
    # The judge profile loads only with UNIRG_JUDGE_BASE_URL and UNIRG_JUDGE_MODEL set.
    result = subprocess.run(
        [sys.executable, "-m", "unirg", "serve", "--port", "0", "--profile", "judge-chexprompt"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream, in the order things were written
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    output = result.stdout.strip()
    assert result.returncode == 1, output
    last = output.splitlines()[-1]
    assert "The service stopped" in last and "UNIRG_JUDGE_BASE_URL" in last


def test_drain_timeout_bounds_shutdown_when_work_outlasts_it(tmp_path: Path) -> None:
    """A request longer than UNIRG_DRAIN_TIMEOUT_S is cut so the process ends within its grace period."""
    service = launch_service(tmp_path, env={"UNIRG_DRAIN_TIMEOUT_S": "1"})
    # Seconds of scoring, far longer than the 1 s drain: every sentence of every item is new, so no
    # report, sentence or pair the scorers remember is reused.
    items = [
        {"reference": report, "candidate": report[::-1]} for report in map(_unique_long_report, range(400))
    ]
    response = _sigterm_during_request(service, items)
    # Cut, or told to retry elsewhere (503): never a 500, never a wrong reward.
    assert not isinstance(response, httpx.Response) or response.status_code == 503, (
        "the request outlasting the drain was neither cut nor refused with 503"
    )

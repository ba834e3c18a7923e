"""A small OpenAI-compatible chat-completions server that stands in for the LLM judge in tests and benchmarks.

It reads the two fenced reports out of the prompt and answers deterministically, so expected scores
can be derived by hand:

* reports are split into sentences at ``.``; a sentence is compared lower-cased and whitespace-collapsed;
* each candidate sentence absent from the reference is a **false finding (A)**, each reference
  sentence absent from the candidate a **missing finding (B)**, each shared sentence a matched finding;
* an error is *clinically insignificant* when its sentence contains the word ``minor``, else significant;
* a CheXprompt-style prompt (system message) gets the JSON answer, a GREEN-style prompt (user turn with
  ``[Matched Findings]``) gets GREEN's sections.

Faults on demand, per item by magic text in the candidate (removed before comparing):
``[[judge:malformed]]`` (an answer without counts), ``[[judge:slow=SECONDS]]``,
``[[judge:status=CODE]]`` (e.g. 500 or 429, every time), ``[[judge:fail=N]]`` (HTTP 500 for the first N
calls with this candidate, then normal answers), ``[[judge:busy=N]]`` (the same with 429); or for every
call through ``POST /control`` (``{"status": 500}``, ``{"delay": 0.5}``, ``{"status": null}`` to heal,
``{"reject_response_format": true}`` to answer 400 to structured-output requests, ``{"retry_after":
"2"}`` for the ``Retry-After`` of every 429, ``"0"`` by default). ``GET /control/stats`` reports
calls, the most calls in flight at once and recent prompts; ``POST /control/reset`` clears them.

Run it alone with ``python tests/judge_server.py --port 8101``; tests use :class:`JudgeServer`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import threading
import time
from collections import Counter, deque
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from waiting import wait_until

from reward_service.taxonomy import TAXONOMY

FENCE = re.compile(r"<<<BEGIN (REFERENCE|CANDIDATE) ([0-9a-f]+)>>>\n(.*?)\n<<<END \1 \2>>>", re.DOTALL)
DIRECTIVE = re.compile(r"\[\[judge:([a-z]+)(?:=([0-9.]+))?\]\]")
CATEGORY_NAMES = {category.letter.lower(): category.description for category in TAXONOMY}
MALFORMED_ANSWER = "The candidate report looks broadly similar to the reference; I cannot give counts."


def sentences(text: str) -> list[str]:
    return [" ".join(part.lower().split()) for part in text.split(".") if part.strip()]


def verdict(reference: str, candidate: str) -> dict[str, Any]:
    """Errors by category and significance, and matched findings, by the rules in the module docstring."""
    ref, cand = sentences(reference), sentences(candidate)
    false_findings = [s for s in cand if s not in ref]
    missing = [s for s in ref if s not in cand]
    matched = [s for s in cand if s in ref]

    def split(found: list[str]) -> tuple[list[str], list[str]]:
        return [s for s in found if "minor" not in s.split()], [s for s in found if "minor" in s.split()]

    a_sig, a_insig = split(false_findings)
    b_sig, b_insig = split(missing)
    return {
        "significant": {"a": a_sig, "b": b_sig},
        "insignificant": {"a": a_insig, "b": b_insig},
        "matched": matched,
    }


def chexprompt_answer(found: dict[str, Any]) -> str:
    def counts(kind: str) -> dict[str, int]:
        return {letter.upper(): len(found[kind].get(letter, [])) for letter in CATEGORY_NAMES}

    return json.dumps(
        {
            "explanation": "Compared sentence by sentence.",
            "clinically_significant": counts("significant"),
            "clinically_insignificant": counts("insignificant"),
        }
    )


def green_answer(found: dict[str, Any]) -> str:
    def section(kind: str) -> str:
        lines = []
        for letter, name in CATEGORY_NAMES.items():
            errors = found[kind].get(letter, [])
            lines.append(f"({letter}) {name}: {len(errors)}." + (" " + "; ".join(errors) if errors else ""))
        return "\n".join(lines)

    matched = found["matched"]
    return (
        "[Explanation]:\nThe reports were compared sentence by sentence.\n\n"
        f"[Clinically Significant Errors]:\n{section('significant')}\n\n"
        f"[Clinically Insignificant Errors]:\n{section('insignificant')}\n\n"
        f"[Matched Findings]:\n{len(matched)}." + (" " + "; ".join(matched) if matched else "")
    )


class JudgeState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()
        self.status: int | None = None
        self.delay = 0.0
        self.reject_response_format = False
        self.retry_after = "0"

    def reset(self) -> None:
        # Calls still sleeping from before a reset belong to the old generation and do not count.
        self.generation = getattr(self, "generation", 0) + 1
        self.in_flight: Counter[int] = Counter()
        self.calls = 0
        self.max_in_flight = 0
        self.statuses: Counter[int] = Counter()
        self.failures_left: dict[str, int] = {}
        self.prompts: deque[list[dict[str, str]]] = deque(maxlen=50)
        #: time.monotonic() at the start of each call (retry waits are the gaps).
        self.call_times: deque[float] = deque(maxlen=1000)
        #: Auth headers, query string and response_format of the last call.
        self.last_request: dict[str, Any] = {}

    def stats(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "max_in_flight": self.max_in_flight,
            "in_flight": self.in_flight[self.generation],
            "statuses": {str(code): n for code, n in self.statuses.items()},
            "prompts": list(self.prompts),
        }


def create_judge_app() -> FastAPI:
    app = FastAPI(title="test judge")
    state = JudgeState()
    app.state.judge = state

    def reply(code: int, content: Any, headers: dict[str, str] | None = None) -> JSONResponse:
        state.statuses[code] += 1
        return JSONResponse(content, status_code=code, headers=headers)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        state.calls += 1
        state.call_times.append(time.monotonic())
        generation = state.generation
        state.in_flight[generation] += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight[generation])
        try:
            messages = body["messages"]
            state.prompts.append(messages)
            state.last_request = {
                "authorization": request.headers.get("authorization"),
                "api-key": request.headers.get("api-key"),
                "query": dict(request.query_params),
                "response_format": body.get("response_format"),
            }
            if state.reject_response_format and "response_format" in body:
                return reply(400, {"error": {"message": "response_format is not supported"}})
            prompt = "\n".join(message["content"] for message in messages)
            reports = {label.lower(): text for label, _tag, text in FENCE.findall(prompt)}
            candidate = reports.get("candidate", "")
            directives = dict(DIRECTIVE.findall(candidate))
            delay = float(directives["slow"]) if "slow" in directives else state.delay
            if delay:
                await asyncio.sleep(delay)
            status = int(directives["status"]) if "status" in directives else state.status
            for directive, failing_status in (("fail", 500), ("busy", 429)):
                if directive in directives:
                    left = state.failures_left.setdefault(candidate, int(directives[directive]))
                    if left > 0:
                        state.failures_left[candidate] = left - 1
                        status = failing_status
            if status is not None and status >= 400:
                headers = {"retry-after": state.retry_after} if status == 429 else None
                return reply(status, {"error": {"message": f"injected HTTP {status}"}}, headers)
            if "malformed" in directives or set(reports) != {"reference", "candidate"}:
                answer = MALFORMED_ANSWER
            else:
                found = verdict(DIRECTIVE.sub("", reports["reference"]), DIRECTIVE.sub("", candidate))
                green = messages[0]["role"] == "user" and "[Matched Findings]" in prompt
                answer = green_answer(found) if green else chexprompt_answer(found)
            return reply(
                200,
                {
                    "id": f"cmpl-{state.calls}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "test-judge"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": answer},
                            "finish_reason": "stop",
                        }
                    ],
                },
            )
        finally:
            state.in_flight[generation] -= 1

    @app.get("/control/stats")
    async def stats() -> dict[str, Any]:
        return state.stats()

    @app.post("/control")
    async def control(request: Request) -> dict[str, Any]:
        settings = await request.json()
        if "status" in settings:
            state.status = settings["status"]
        if "delay" in settings:
            state.delay = float(settings["delay"])
        if "reject_response_format" in settings:
            state.reject_response_format = bool(settings["reject_response_format"])
        if "retry_after" in settings:
            state.retry_after = str(settings["retry_after"])
        return {"status": state.status, "delay": state.delay}

    @app.post("/control/reset")
    async def reset() -> dict[str, Any]:
        state.reset()
        state.status = None
        state.delay = 0.0
        state.reject_response_format = False
        state.retry_after = "0"
        return state.stats()

    return app


class JudgeServer:
    """The test judge on a loopback port, served by uvicorn in a background thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.app = create_judge_app()
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
        )
        self._thread = threading.Thread(target=self._server.run, name=f"judge-server-{port}", daemon=True)

    @property
    def state(self) -> JudgeState:
        return self.app.state.judge

    def start(self) -> JudgeServer:
        self._thread.start()
        wait_until(self._started, 30, f"the test judge server listens on port {self.port}")
        return self

    def _started(self) -> bool:
        if not self._thread.is_alive():
            raise RuntimeError(f"the test judge server stopped before it listened on port {self.port}")
        return self._server.started

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> JudgeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8101, help="port to listen on (default 8101)")
    args = parser.parse_args()
    uvicorn.run(create_judge_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

"""``POST /slime/reward`` on the service's app in this process, posted the way slime's ``remote_rm`` posts."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from in_process import InProcessService

REFERENCE = "Findings: Small left pleural effusion. Heart size normal. Impression: Small left effusion."
RESPONSES = [
    "Findings: Left pleural effusion, small. Heart size is normal. Impression: Small left effusion.",
    "Findings: Heart size normal. Impression: Normal chest.",
    "Findings: Lungs are clear. No pneumothorax. Impression: No acute process.",
    "Findings: Cardiomegaly. Impression: Heart failure.",
]
OVERSIZE = "Findings: " + "Stable appearance of the chest. " * 12  # over the 300-character limit below


async def slime_remote_rm(
    http: httpx.AsyncClient, url: str, prompt: object, response: str, label: str
) -> dict:
    """What slime's remote_rm does with one sample: post prompt/response/label, keep the JSON."""
    answer = await http.post(url, json={"prompt": prompt, "response": response, "label": label})
    answer.raise_for_status()
    return answer.json()


async def test_each_sample_gets_the_reward_of_the_score_route(default_app: InProcessService) -> None:
    async with default_app.async_client() as http:
        expected = (
            await http.post(
                "/v1/score", json={"items": [{"reference": REFERENCE, "candidate": r} for r in RESPONSES]}
            )
        ).json()["items"]
        chat_prompt = [{"role": "user", "content": "Write the findings."}]
        answers = await asyncio.gather(
            *(
                slime_remote_rm(http, "/slime/reward?profile=default", chat_prompt, r, REFERENCE)
                for r in RESPONSES
            )
        )
    for answer, item in zip(answers, expected, strict=True):
        assert answer["reward"] == pytest.approx(item["reward"])  # what --reward-key reward selects
        assert answer["unscored"] == 0.0
        for key, component in item["components"].items():
            assert answer[key] == pytest.approx(component["score"])


async def test_bad_samples_get_a_4xx_that_says_what_to_fix(default_app: InProcessService) -> None:
    async with default_app.async_client() as http:
        missing = await http.post("/slime/reward", json={"prompt": "p", "response": RESPONSES[0]})
        unknown = await http.post(
            "/slime/reward?profile=nope", json={"prompt": "p", "response": RESPONSES[0], "label": REFERENCE}
        )
    assert missing.status_code == 422 and "label" in missing.json()["message"]
    assert unknown.status_code == 404 and "default" in unknown.json()["detail"]


async def test_an_unscorable_sample_is_refused_or_gets_the_stand_in_asked_for(start_app) -> None:
    short_reports = start_app(env={"UNIRG_MAX_REPORT_CHARS": "300"})
    sample = {"prompt": "p", "response": OVERSIZE, "label": REFERENCE}
    async with short_reports.async_client() as http:
        refused = await http.post("/slime/reward", json=sample)
        stand_in = await http.post("/slime/reward?unscored_reward=-1", json=sample)
    assert refused.status_code == 422
    assert (
        "unscored_reward" in refused.json()["detail"] and "UNIRG_MAX_REPORT_CHARS" in refused.json()["detail"]
    )
    assert stand_in.status_code == 200
    assert (stand_in.json()["reward"], stand_in.json()["unscored"]) == (-1.0, 1.0)

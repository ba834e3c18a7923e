"""Bad input, limits, API keys, readiness and the docs page, on the service's app in this process.

Every case here answered a 5xx, a vague 400 or nothing useful before (issue 12); each now gets a 4xx or
503 whose message says what to fix, and one bad item never fails its neighbours.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator

import httpx
import pytest
from flaky_server import flaky_server
from in_process import InProcessService, start_in_process
from prometheus_client.parser import text_string_to_metric_families

from clients import ClientConfig, RewardClient
from reward_service.auth import key_digest

KEY = "alpha-key-0123456789"
OTHER_KEY = "beta-key-9876543210"
FILE_KEY = "gamma-key-from-a-file"
AUTH = {"Authorization": f"Bearer {KEY}"}
REFERENCE = "Small left pleural effusion. No pneumothorax."
GOOD = {"id": "good", "reference": REFERENCE, "candidate": REFERENCE}
BODY_LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessService]:
    hashes = tmp_path_factory.mktemp("hardened-service") / "keys.sha256"
    hashes.write_text(f"# team keys\n{key_digest(FILE_KEY)} ci-runner\n")
    env = {
        "UNIRG_API_KEYS": f"{KEY}, {OTHER_KEY}",
        "UNIRG_API_KEY_HASHES_FILE": str(hashes),
        "UNIRG_MAX_BODY_BYTES": str(BODY_LIMIT),
        "UNIRG_MAX_CONTEXT_KEYS": "3",
        "UNIRG_MAX_CONTEXT_VALUE_CHARS": "50",
        "UNIRG_MAX_ITEMS_PER_REQUEST": "16",
    }
    with start_in_process(env=env, wait_ready=False) as service:
        with RewardClient(
            service.base_url, config=ClientConfig(api_key=KEY), transport=service.transport
        ) as client:
            client.wait_until_ready(timeout=120, interval=0.1)
        yield service


@pytest.fixture(scope="module")
def http(service: InProcessService) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client


def post_raw(
    http: httpx.Client, content: bytes, content_type: str | None = "application/json"
) -> httpx.Response:
    headers = dict(AUTH)
    if content_type is not None:
        headers["content-type"] = content_type
    return http.post("/v1/score", content=content, headers=headers)


def post(http: httpx.Client, body: object) -> httpx.Response:
    return http.post("/v1/score", json=body, headers=AUTH)


# --- 1: non-finite numbers and bodies that are not JSON ------------------------------------------------


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_422_not_500(http: httpx.Client, literal: str) -> None:
    body = f'{{"items": [{{"reference": "a", "candidate": "b"}}], "return_details": {literal}}}'
    response = post_raw(http, body.encode())
    assert response.status_code == 422, response.text
    assert "return_details" in response.json()["message"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", None], ids=["text", "form", "none"]
)
def test_valid_body_with_the_wrong_content_type_says_which_header_to_send(
    http: httpx.Client, content_type: str | None
) -> None:
    response = post_raw(http, json.dumps({"items": [GOOD]}).encode(), content_type)
    assert response.status_code == 422, response.text
    assert "Content-Type: application/json" in response.json()["message"]


def test_invalid_utf8_and_deep_nesting_are_422_saying_why(http: httpx.Client) -> None:
    response = post_raw(http, b'{"items": [{"reference": "\xff\xfe", "candidate": "x"}]}')
    assert response.status_code == 422, response.text
    assert "not valid UTF-8" in response.json()["detail"]
    response = post_raw(http, b"[" * 20_000 + b"]" * 20_000)
    assert response.status_code == 422, response.text
    assert "nested too deeply" in response.json()["detail"]


# --- 2: one bad item never fails its neighbours -------------------------------------------------------


def test_lone_surrogate_in_one_candidate_fails_that_item_alone(http: httpx.Client) -> None:
    body = (
        '{"items": [{"id": "good", "reference": "Small left pleural effusion.", "candidate": "Small left '
        'pleural effusion."}, {"id": "bad\\udfff", "reference": "Small left pleural effusion.", '
        '"candidate": "Small \\ud800 effusion."}]}'
    )
    response = post_raw(http, body.encode())
    assert response.status_code == 200, response.text
    good, bad = response.json()["items"]
    assert good["reward"] > 0.9
    assert bad["id"] == "bad\ufffd"
    assert bad["reward"] is None
    assert "candidate holds a lone UTF-16 surrogate (U+D800" in bad["errors"][0]


def test_empty_reference_is_not_scored_silently(http: httpx.Client) -> None:
    response = post(http, {"items": [GOOD, {"id": "empty", "reference": "  ", "candidate": "No effusion."}]})
    assert response.status_code == 200
    good, empty = response.json()["items"]
    assert good["reward"] > 0.9
    assert empty["reward"] is None and "reference is empty" in empty["errors"][0]


# --- 3: sizes are limited before parsing ------------------------------------------------------------


def test_body_over_the_limit_is_413_naming_the_setting(http: httpx.Client) -> None:
    big = json.dumps({"items": [{"reference": "x" * BODY_LIMIT, "candidate": "y"}]}).encode()
    response = post_raw(http, big)
    assert response.status_code == 413
    assert "UNIRG_MAX_BODY_BYTES" in response.json()["detail"]


def test_streamed_body_without_length_is_cut_at_the_limit(http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"items": [{"reference": "'
        for _ in range(BODY_LIMIT // 1024 + 2):
            yield b"x" * 1024
        yield b'", "candidate": "y"}]}'

    response = http.post(
        "/v1/score",
        content=chunks(),
        headers={**AUTH, "content-type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 413
    assert "UNIRG_MAX_BODY_BYTES" in response.json()["detail"]


def test_context_keys_and_values_are_limited(http: httpx.Client) -> None:
    many = {**GOOD, "context": {f"k{i}": "v" for i in range(4)}}
    response = post(http, {"items": [many]})
    assert response.status_code == 422
    assert "4 keys, over the limit of 3 (UNIRG_MAX_CONTEXT_KEYS)" in response.json()["detail"]
    long = {**GOOD, "context": {"indication": "x" * 51}}
    response = post(http, {"items": [long]})
    assert response.status_code == 422
    assert "UNIRG_MAX_CONTEXT_VALUE_CHARS" in response.json()["detail"]


def test_openapi_schema_states_the_limits(http: httpx.Client) -> None:
    schema = http.get("/openapi.json").json()
    models = schema["components"]["schemas"]
    items = models["ScoreRequest"]["properties"]["items"]
    assert items["minItems"] == 1 and items["maxItems"] == 16
    item = models["ScoreRequestItem"]["properties"]
    assert item["reference"]["maxLength"] == item["candidate"]["maxLength"] == 20_000
    assert item["context"]["maxProperties"] == 3
    assert item["context"]["additionalProperties"]["maxLength"] == 50
    assert (
        f"{BODY_LIMIT} bytes per body (UNIRG_MAX_BODY_BYTES)"
        in schema["paths"]["/v1/score"]["post"]["description"]
    )
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


# --- 5: API keys ---------------------------------------------------------------------------------------


def test_score_without_a_key_is_401_saying_how_to_send_it(http: httpx.Client) -> None:
    response = http.post("/v1/score", json={"items": [GOOD]})
    assert response.status_code == 401
    assert "Authorization: Bearer <key>" in response.json()["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer")
    wrong = http.post("/v1/score", json={"items": [GOOD]}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "not accepted" in wrong.json()["detail"]
    basic = http.post("/v1/score", json={"items": [GOOD]}, headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401 and "not a bearer key" in basic.json()["detail"]


@pytest.mark.parametrize("path", ["/metrics", "/v1/profiles", "/v1/components", "/nowhere"])
def test_every_route_but_liveness_needs_the_key(http: httpx.Client, path: str) -> None:
    assert http.get(path).status_code == 401
    assert http.get(path, headers=AUTH).status_code in (200, 404)


def test_liveness_and_docs_need_no_key(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/docs").status_code == 200


def test_readiness_without_a_key_gives_the_status_only(http: httpx.Client) -> None:
    anonymous = http.get("/readyz")
    assert anonymous.status_code == 200 and anonymous.json() == {"ready": True}
    detailed = http.get("/readyz", headers=AUTH).json()
    assert detailed["ready"] is True and detailed["profiles"] == ["default"]


def _metric(http: httpx.Client, name: str, **labels: str) -> float:
    text = http.get("/metrics", headers=AUTH).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_keys_from_the_setting_and_the_hashes_file_work_and_are_counted_per_key(http: httpx.Client) -> None:
    other_name = f"key-{key_digest(OTHER_KEY)[:8]}"
    before_other = _metric(http, "unirg_requests_by_key_total", key=other_name)
    before_file = _metric(http, "unirg_requests_by_key_total", key="ci-runner")
    for key in (OTHER_KEY, FILE_KEY, FILE_KEY):
        response = http.post("/v1/score", json={"items": [GOOD]}, headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200
    assert _metric(http, "unirg_requests_by_key_total", key=other_name) == before_other + 1
    assert _metric(http, "unirg_requests_by_key_total", key="ci-runner") == before_file + 2
    assert KEY not in http.get("/metrics", headers=AUTH).text


def test_client_sends_the_key_from_its_settings(
    service: InProcessService, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        RewardClient(service.base_url, transport=service.transport) as anonymous,
        pytest.raises(Exception, match="401"),
    ):
        anonymous.score([REFERENCE], [REFERENCE])
    monkeypatch.setenv("UNIRG_REWARD_API_KEY", OTHER_KEY)
    with RewardClient(service.base_url, transport=service.transport) as client:
        assert client.score([REFERENCE], [REFERENCE]).rewards[0] > 0.9


def test_verl_adapter_reads_the_key_from_the_environment(
    http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clients import _adapters
    from clients.verl import compute_score

    # The adapter takes a URL: a loopback server relays its requests (with their key) to the app.
    with flaky_server(http) as front:
        monkeypatch.setenv("UNIRG_REWARD_URL", front.base_url)
        monkeypatch.setenv("UNIRG_REWARD_API_KEY", KEY)
        monkeypatch.setattr(_adapters, "_clients", {})
        assert compute_score("iu", REFERENCE, REFERENCE)["score"] > 0.9
    assert [attempt.path for attempt in front.attempts][-1] == "/v1/score"


# --- /docs offline -----------------------------------------------------------------------------------------


def test_docs_page_loads_its_assets_from_the_service(http: httpx.Client) -> None:
    html = http.get("/docs").text
    assets = re.findall(r"""(?:src|href)=["']([^"']+\.(?:js|css|png))["']""", html)
    assert assets and not [url for url in assets if "://" in url], assets
    for asset in assets:
        response = http.get(f"{asset}")
        assert response.status_code == 200 and len(response.content) > 1000, asset


def test_openrlhf_route_refuses_an_empty_batch_with_a_4xx(http: httpx.Client) -> None:
    response = http.post("/openrlhf/get_reward", json={"query": [], "labels": []}, headers=AUTH)
    assert response.status_code == 422 and "query is empty" in response.json()["detail"]


# --- no input yields a 5xx ----------------------------------------------------------------------------------

_ODD_VALUES = [
    None,
    True,
    0,
    -1,
    10**30,
    1.5,
    "x",
    "",
    "\ud800",
    "Large effusion\ud800.",
    "a" * 30_000,
    [],
    {},
    [1],
    {"a": 1},
]


# Valid shapes with hostile text: a finding the scorers quote back in their details, next to a surrogate.
_TEXTS = ["No effusion.", "Small left effusion.", "Large effusion\ud800.", "\udfff", "Cardiomegaly \ud83d."]


def _random_body(rng: random.Random) -> dict[str, object]:
    items = []
    for _ in range(rng.randint(0, 3)):
        item: dict[str, object] = {"reference": rng.choice(_TEXTS), "candidate": rng.choice(_TEXTS)}
        for key in rng.sample(
            ["id", "reference", "candidate", "prior_report", "context", "extra"], rng.randint(0, 2)
        ):
            item[key] = rng.choice([*_ODD_VALUES, {"indication": rng.choice(_ODD_VALUES)}])
        items.append(item)
    body: dict[str, object] = {"items": items}
    for key in rng.sample(["profile", "return_details", "items", "unknown"], rng.randint(0, 2)):
        body[key] = rng.choice(_ODD_VALUES)
    return body


async def test_random_bodies_never_get_a_5xx() -> None:
    from reward_service.app import create_app
    from reward_service.settings import Settings

    app = create_app(Settings())
    await app.state.engine.load_configured()
    app.state.ready = True
    rng = random.Random(12)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://service", timeout=60) as client:
        for _ in range(300):
            if rng.random() < 0.7:
                path, body = "/v1/score", _random_body(rng)
            else:
                path = "/openrlhf/get_reward"
                body = {
                    "query": [rng.choice(_ODD_VALUES) for _ in range(rng.randint(0, 2))],
                    "labels": rng.choice([None, ["a"], [1], ["\ud800"], []]),
                    "prompts": rng.choice([None, ["\ud800"], [""], "x"]),
                }
            # ensure_ascii keeps lone surrogates as \\ud800 escapes, as a client's JSON would carry them.
            content = json.dumps(body, ensure_ascii=True).encode()
            response = await client.post(path, content=content, headers={"content-type": "application/json"})
            # 503 is the OpenRLHF route's answer for a batch none of whose samples could be scored.
            assert response.status_code < 500 or (path != "/v1/score" and response.status_code == 503), (
                path,
                content[:300],
                response.text[:300],
            )
    await app.state.engine.close()

"""The HTTP API, on the service's app in this process (the refusal of a bad profile: on ``unirg serve``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from in_process import start_in_process

from reward_service.scorers.rouge import rouge_l

REFERENCE = "Heart size is normal. No pleural effusion or pneumothorax. Lungs are clear."


def post(service: httpx.Client, body: object, **params: str) -> httpx.Response:
    return service.post("/v1/score", json=body, params=params)


@pytest.fixture(scope="module")
def rouge_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A service whose default profile is ROUGE-L alone, so numbers can be checked exactly."""
    profile = tmp_path_factory.mktemp("rouge-service") / "rouge-only.yaml"
    profile.write_text(
        yaml.safe_dump(
            {"name": "rouge-only", "components": [{"name": "rouge_l", "weight": 1.0, "required": True}]}
        )
    )
    env = {"UNIRG_MAX_ITEMS_PER_REQUEST": "8", "UNIRG_MAX_REPORT_CHARS": "12000"}
    with start_in_process(str(profile), ["default"], env) as service, service.client() as client:
        yield client


def test_valid_batch_returns_rewards_with_breakdown(rouge_service: httpx.Client) -> None:
    candidates = [REFERENCE, "Normal heart. Clear lungs.", "Large right pneumothorax."]
    response = post(
        rouge_service,
        {
            "items": [
                {"id": f"c{i}", "reference": REFERENCE, "candidate": c} for i, c in enumerate(candidates)
            ]
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["profile"] == "rouge-only"
    assert body["profile_hash"].startswith("sha256:")
    assert set(body["timings"]) == {"total_ms", "components_ms"}
    for item, candidate in zip(body["items"], candidates, strict=True):
        expected = rouge_l(REFERENCE, candidate)[2]
        assert item["reward"] == pytest.approx(expected)
        assert item["components"]["rouge_l"]["score"] == pytest.approx(expected)
        assert item["components"]["rouge_l"]["details"]["precision"] >= 0
    assert [item["id"] for item in body["items"]] == ["c0", "c1", "c2"]


def test_ids_default_to_the_item_index_and_details_can_be_left_out(rouge_service: httpx.Client) -> None:
    body = post(
        rouge_service,
        {"items": [{"reference": REFERENCE, "candidate": "x"}] * 2, "return_details": False},
    ).json()
    assert [item["id"] for item in body["items"]] == ["0", "1"]
    assert body["items"][0]["components"]["rouge_l"]["details"] is None


def test_request_may_select_another_loaded_profile(rouge_service: httpx.Client) -> None:
    body = post(
        rouge_service, {"profile": "default", "items": [{"reference": REFERENCE, "candidate": REFERENCE}]}
    )
    assert body.status_code == 200
    assert body.json()["profile"] == "default"
    assert body.json()["items"][0]["reward"] > 0.9


@pytest.mark.parametrize("candidate", ["", "   \n\t  "])
def test_empty_and_whitespace_candidates_score_zero_not_error(
    rouge_service: httpx.Client, candidate: str
) -> None:
    response = post(rouge_service, {"items": [{"reference": REFERENCE, "candidate": candidate}]})
    assert response.status_code == 200
    assert response.json()["items"][0]["reward"] == 0.0


def test_unicode_reports(rouge_service: httpx.Client) -> None:
    text = "Cœur de taille normale — pas d'épanchement. 心脏大小正常。 Heart normal ✓."
    response = post(rouge_service, {"items": [{"reference": text, "candidate": text}]})
    assert response.status_code == 200
    assert response.json()["items"][0]["reward"] == pytest.approx(1.0)


def test_ten_thousand_character_report_is_scored(rouge_service: httpx.Client) -> None:
    long_report = ("Stable mild cardiomegaly without edema. " * 250)[:10_000]
    response = post(rouge_service, {"items": [{"reference": long_report, "candidate": long_report}]})
    assert response.status_code == 200
    assert response.json()["items"][0]["reward"] == pytest.approx(1.0)


def test_over_long_candidate_fails_alone(rouge_service: httpx.Client) -> None:
    items = [
        {"id": "ok", "reference": REFERENCE, "candidate": REFERENCE},
        {"id": "long", "reference": REFERENCE, "candidate": "x " * 7000},
    ]
    response = post(rouge_service, {"items": items})
    assert response.status_code == 200
    ok, long = response.json()["items"]
    assert ok["reward"] == pytest.approx(1.0)
    assert long["id"] == "long"
    assert long["reward"] is None
    assert "UNIRG_MAX_REPORT_CHARS" in long["errors"][0]


def test_over_long_reference_is_refused_with_the_limit(rouge_service: httpx.Client) -> None:
    response = post(rouge_service, {"items": [{"reference": "x" * 12_001, "candidate": "x"}]})
    assert response.status_code == 422
    assert "items[0].reference has 12001 characters, over the limit of 12000" in response.json()["detail"]


def test_oversize_batch_is_refused_with_the_limit(rouge_service: httpx.Client) -> None:
    response = post(rouge_service, {"items": [{"reference": "a", "candidate": "a"}] * 9})
    assert response.status_code == 413
    assert "9 items exceed the limit of 8" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (
            {"items": [{"reference": 1, "candidate": "x"}]},
            "items.0.reference: Input should be a valid string",
        ),
        ({"items": [{"reference": "x"}]}, "items.0.candidate: Field required"),
        ({"items": "not a list"}, "items: Input should be a valid list"),
        ({}, "items: Field required"),
        ({"items": [{"reference": "x", "candidate": "y", "extra": 1}]}, "items.0.extra: Extra inputs"),
        (
            {"items": [{"reference": "x", "candidate": "y", "context": {"indication": 3}}]},
            "context.indication",
        ),
    ],
)
def test_malformed_requests_get_422_naming_the_field(
    rouge_service: httpx.Client, body: object, fragment: str
) -> None:
    response = post(rouge_service, body)
    assert response.status_code == 422
    assert fragment in response.json()["message"]


def test_empty_batch_and_invalid_json(rouge_service: httpx.Client) -> None:
    assert post(rouge_service, {"items": []}).status_code == 422
    response = rouge_service.post(
        "/v1/score", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert "JSON" in response.json()["message"]


def test_unknown_profile_is_404_listing_loaded_ones(rouge_service: httpx.Client) -> None:
    response = post(rouge_service, {"profile": "nope", "items": [{"reference": "a", "candidate": "a"}]})
    assert response.status_code == 404
    assert "default" in response.json()["detail"] and "rouge-only" in response.json()["detail"]


def test_profiles_and_components_endpoints(rouge_service: httpx.Client) -> None:
    profiles = {p["name"]: p for p in rouge_service.get("/v1/profiles").json()}
    assert profiles["rouge-only"]["loaded"] and profiles["default"]["loaded"]
    assert profiles["rouge-only"]["profile_hash"].startswith("sha256:")
    shown = rouge_service.get("/v1/profiles/rouge-only").json()
    assert shown["components"][0]["name"] == "rouge_l"
    assert rouge_service.get("/v1/profiles/missing").status_code == 404
    components = {c["name"]: c for c in rouge_service.get("/v1/components").json()}
    assert components["bleu2"]["kind"] == "rule"
    assert "max_length_ratio" in components["report_guard"]["options_schema"]["properties"]


def test_health_readiness_metrics_and_docs(rouge_service: httpx.Client) -> None:
    assert rouge_service.get("/healthz").json() == {"status": "ok"}
    ready = rouge_service.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    post(rouge_service, {"items": [{"reference": "a", "candidate": "a"}]})
    metrics = rouge_service.get("/metrics").text
    assert 'unirg_requests_total{route="/v1/score",status="200"}' in metrics
    assert 'unirg_items_total{profile="rouge-only"}' in metrics
    assert 'unirg_component_latency_seconds_count{component="rouge_l"}' in metrics
    assert rouge_service.get("/openapi.json").json()["paths"]["/v1/score"]
    assert rouge_service.get("/docs").status_code == 200


def test_serve_refuses_a_bad_profile_before_binding(
    start_service: Callable[..., str], tmp_path: Path
) -> None:
    with pytest.raises(RuntimeError, match=r"no profile 'missing\.yaml'"):
        start_service(profile="missing.yaml")

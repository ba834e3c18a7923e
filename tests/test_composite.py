"""Profiles: loading, validation messages, hashing, and the composite reward."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from in_process import InProcessService

from reward_service.composite import (
    Profile,
    ProfileError,
    combine,
    load_profile,
    profile_hash,
    shipped_profiles,
)
from reward_service.engine import RewardEngine
from reward_service.scorers import ScoreItem, ScoreResult
from reward_service.settings import Settings


def write_profile(tmp_path: Path, components: list[dict], name: str = "custom") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "components": components}))
    return str(path)


def test_every_shipped_profile_validates() -> None:
    names = shipped_profiles()
    assert "default" in names
    for name in names:
        assert load_profile(name).name == name


@pytest.mark.parametrize(
    ("components", "message"),
    [
        ([{"name": "no_such_metric", "weight": 1}], "unknown scorer 'no_such_metric'"),
        ([{"name": "rouge_l", "weight": 1, "transform": "cube"}], "unknown transform 'cube'"),
        ([{"name": "rouge_l", "weight": 1}, {"name": "rouge_l", "weight": 1}], "repeated: rouge_l"),
        ([{"name": "rouge_l", "weight": 0}], "at least one component needs a non-zero weight"),
        ([{"name": "report_guard", "weight": 1, "options": {"max_length_ratio": -1}}], "max_length_ratio"),
        ([{"name": "report_guard", "weight": 1, "options": {"typo": 1}}], "typo"),
        ([{"name": "rouge_l", "wieght": 1}], "wieght"),
    ],
)
def test_invalid_profiles_say_what_to_fix(tmp_path: Path, components: list[dict], message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        load_profile(write_profile(tmp_path, components))


def test_missing_profile_lists_shipped_ones() -> None:
    with pytest.raises(ProfileError, match=r"one of .*default"):
        load_profile("no-such-profile")


def test_invalid_yaml_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile(str(path))


def test_profile_hash_changes_with_what_defines_the_reward() -> None:
    base = Profile.model_validate({"name": "p", "components": [{"name": "rouge_l", "weight": 1}]})
    reweighted = Profile.model_validate({"name": "p", "components": [{"name": "rouge_l", "weight": 0.5}]})
    optioned = Profile.model_validate(
        {"name": "p", "components": [{"name": "report_guard", "weight": 1, "options": {"repeat_ngram": 3}}]}
    )
    hashes = {
        profile_hash(base, {}),
        profile_hash(reweighted, {}),
        profile_hash(optioned, {}),
        profile_hash(base, {"rouge_l": {"weights_sha256": "abc"}}),
    }
    assert len(hashes) == 4
    assert profile_hash(base, {}) == profile_hash(
        Profile.model_validate({"name": "p", "components": [{"name": "rouge_l", "weight": 1.0}]}), {}
    )


TWO_COMPONENTS = Profile.model_validate(
    {
        "name": "p",
        "components": [
            {"name": "rouge_l", "weight": 0.25},
            {"name": "bleu2", "weight": 0.75, "required": True, "transform": "one_minus"},
            {"name": "report_guard", "weight": 0},
        ],
    }
)


def test_combine_weights_and_transforms() -> None:
    results = {"rouge_l": ScoreResult(0.8), "bleu2": ScoreResult(0.2), "report_guard": ScoreResult(0.0)}
    combined = combine(TWO_COMPONENTS, results)
    assert combined.reward == pytest.approx(0.25 * 0.8 + 0.75 * (1 - 0.2))
    assert combined.contributions == pytest.approx({"rouge_l": 0.2, "bleu2": 0.6})
    assert combined.errors == []


def test_failed_required_component_gives_null_not_zero() -> None:
    results = {
        "rouge_l": ScoreResult(0.8),
        "bleu2": ScoreResult.failed("boom"),
        "report_guard": ScoreResult(1),
    }
    combined = combine(TWO_COMPONENTS, results)
    assert combined.reward is None
    assert "bleu2: boom" in combined.errors


def test_failed_optional_component_rescales_the_rest() -> None:
    results = {
        "rouge_l": ScoreResult.failed("boom"),
        "bleu2": ScoreResult(0.2),
        "report_guard": ScoreResult(1),
    }
    combined = combine(TWO_COMPONENTS, results)
    assert combined.reward == pytest.approx(0.8)  # 0.75 * 0.8 rescaled to the full weight of 1.0
    assert any("rescaled" in error for error in combined.errors)


async def test_engine_scores_items_independently_and_in_order(tmp_path: Path) -> None:
    engine = RewardEngine(Settings(profile=write_profile(tmp_path, [{"name": "rouge_l", "weight": 1}])))
    await engine.load_configured()
    items = [
        ScoreItem(str(i), "heart size normal", text) for i, text in enumerate(["heart size normal", "", "x"])
    ]
    batch = await engine.score(items)
    assert [item.item.id for item in batch.items] == ["0", "1", "2"]
    assert [item.composite.reward for item in batch.items] == [1.0, 0.0, 0.0]
    assert batch.profile.hash.startswith("sha256:")
    await engine.close()


async def test_a_layer_mixing_rules_and_a_judge_keeps_the_profile_order(tmp_path: Path) -> None:
    # Rule components run one after another and the judge concurrently with them; the results still
    # come back in the profile's order, each rule's as if it ran alone.
    components = [
        {"name": "rouge_l", "weight": 1},
        {"name": "judge", "weight": 1, "required": False},
        {"name": "bleu2", "weight": 1},
    ]
    settings = Settings(
        profile=write_profile(tmp_path, components),
        judge_base_url="http://127.0.0.1:9/v1",  # nothing listens: the judge fails, the rules do not
        judge_model="stand-in",
        judge_retries=0,
    )
    engine = RewardEngine(settings)
    await engine.load_configured()
    items = [ScoreItem("0", "Heart size is normal. No effusion.", "Heart size normal. Small effusion.")]
    batch = await engine.score(items)
    scored = batch.items[0]
    assert list(scored.components) == ["rouge_l", "judge", "bleu2"]
    assert list(batch.component_seconds) == ["rouge_l", "judge", "bleu2"]
    assert scored.components["judge"].error is not None
    for key, scorer in batch.profile.scorers.items():
        if key != "judge":
            assert scored.components[key] == scorer.score_items(items)[0]
    await engine.close()


async def test_engine_shares_one_scorer_between_profiles(tmp_path: Path) -> None:
    first = write_profile(tmp_path, [{"name": "rouge_l", "weight": 1}], "first")
    second = write_profile(
        tmp_path, [{"name": "rouge_l", "weight": 2}, {"name": "bleu2", "weight": 1}], "second"
    )
    engine = RewardEngine(Settings(profile=first, extra_profiles=[second]))
    await engine.load_configured()
    assert engine.profiles["first"].scorers["rouge_l"] is engine.profiles["second"].scorers["rouge_l"]
    assert engine.default_profile == "first"
    await engine.close()


GATED = Profile.model_validate(
    {
        "name": "gated",
        "components": [
            {"name": "rouge_l", "weight": 0.25},
            {"name": "bleu2", "weight": 0.75},
            {"name": "report_guard", "gate": True, "required": True},
        ],
    }
)


def test_a_gate_multiplies_the_weighted_sum_and_contributions_still_add_up() -> None:
    results = {"rouge_l": ScoreResult(0.8), "bleu2": ScoreResult(0.4), "report_guard": ScoreResult(0.5)}
    combined = combine(GATED, results)
    assert combined.gate == 0.5
    assert combined.reward == pytest.approx(0.5 * (0.25 * 0.8 + 0.75 * 0.4))
    assert sum(combined.contributions.values()) == pytest.approx(combined.reward)
    assert combine(GATED, {**results, "report_guard": ScoreResult(0.0)}).reward == 0.0
    # Clamped to [0, 1]: a gate never raises the reward nor turns it negative.
    assert combine(GATED, {**results, "report_guard": ScoreResult(3.0)}).gate == 1.0
    assert combine(GATED, {**results, "report_guard": ScoreResult(-1.0)}).reward == 0.0
    assert combine(TWO_COMPONENTS, {**results, "report_guard": ScoreResult(0.0)}).gate == 1.0  # no gate


def test_a_failed_gate_is_null_when_required_and_left_out_otherwise() -> None:
    results = {
        "rouge_l": ScoreResult(0.8),
        "bleu2": ScoreResult(0.4),
        "report_guard": ScoreResult.failed("boom"),
    }
    assert combine(GATED, results).reward is None
    optional = Profile.model_validate(
        {
            "name": "g",
            "components": [{"name": "rouge_l", "weight": 1}, {"name": "report_guard", "gate": True}],
        }
    )
    combined = combine(optional, {"rouge_l": ScoreResult(0.8), "report_guard": ScoreResult.failed("boom")})
    assert combined.reward == pytest.approx(0.8)
    assert any("optional gate report_guard missing" in error for error in combined.errors)


def test_a_gate_has_no_weight_and_is_part_of_the_hash(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"is a gate and has weight 0\.5"):
        load_profile(
            write_profile(
                tmp_path,
                [{"name": "rouge_l", "weight": 1}, {"name": "report_guard", "weight": 0.5, "gate": True}],
            )
        )
    with pytest.raises(ProfileError, match="at least one component needs a non-zero weight"):
        load_profile(write_profile(tmp_path, [{"name": "report_guard", "gate": True}]))
    ungated = Profile.model_validate(
        {"name": "g", "components": [{"name": "rouge_l", "weight": 1}, {"name": "report_guard"}]}
    )
    gated = Profile.model_validate(
        {
            "name": "g",
            "components": [{"name": "rouge_l", "weight": 1}, {"name": "report_guard", "gate": True}],
        }
    )
    assert profile_hash(ungated, {}) != profile_hash(gated, {})


def test_shipped_offline_profiles_are_the_rule_based_ones() -> None:
    offline = {name for name in shipped_profiles() if load_profile(name).offline}
    assert offline == {"default", "clinical"}
    assert not load_profile("unirg-stage1").offline


async def test_the_http_response_shows_the_gate(default_app: InProcessService) -> None:
    async with default_app.async_client() as client:  # started: its profiles are loaded
        response = await client.post(
            "/v1/score",
            json={
                "items": [
                    {"reference": "No pneumothorax.", "candidate": "asdf qwer zxcv."},
                    {"reference": "No pneumothorax.", "candidate": "No pneumothorax. No pneumothorax."},
                ]
            },
        )
    first, second = response.json()["items"]
    assert (first["reward"], first["gate"]) == (0.0, 0.0)
    assert "not a chest X-ray report" in first["components"]["report_guard"]["details"]["reasons"][0]
    assert second["gate"] == pytest.approx(0.5)
    assert second["reward"] == pytest.approx(
        sum(c["contribution"] or 0 for c in second["components"].values())
    )

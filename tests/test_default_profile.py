"""The ``default`` profile ranks reports the way a radiologist would.

For four reference reports (effusion, pneumonia, pneumothorax, heart failure) the graded candidates
below were written by hand: a minor wording change and a faithful paraphrase carry the same
findings; the other five each contain one clinical error. The profile must keep the clinically
correct candidates above every erroneous one, make each clinical error cost at least three times
what paraphrasing costs, and put degenerate output (empty, repeated) below the paraphrase.
The profile is scored in-process by the real engine.
"""

from __future__ import annotations

import asyncio

import pytest

from reward_service.composite import load_profile
from reward_service.engine import RewardEngine
from reward_service.scorers import ScoreItem
from reward_service.settings import Settings

SCENARIOS: dict[str, dict[str, str]] = {
    "effusion": {
        "reference": "The heart is normal in size. There is a small left pleural effusion with adjacent "
        "atelectasis. No pneumothorax. No focal consolidation.",
        "minor_wording": "The heart is normal in size. There is a small left pleural effusion with adjacent "
        "atelectasis. No pneumothorax. No focal consolidation is seen.",
        "paraphrase": "Normal cardiac silhouette. Small left-sided pleural effusion and associated left basilar "
        "atelectasis. There is no pneumothorax or focal airspace consolidation.",
        "missed_finding": "The heart is normal in size. There is left basilar atelectasis. No pneumothorax. "
        "No focal consolidation.",
        "negation_flip": "The heart is normal in size. There is no pleural effusion. There is left basilar "
        "atelectasis. No pneumothorax. No focal consolidation.",
        "laterality_error": "The heart is normal in size. There is a small right pleural effusion with adjacent "
        "atelectasis. No pneumothorax. No focal consolidation.",
        "hallucinated_finding": "The heart is normal in size. There is a small left pleural effusion with "
        "adjacent atelectasis. No pneumothorax. No focal consolidation. Mild interstitial pulmonary edema.",
    },
    "pneumonia": {
        "reference": "Right lower lobe consolidation consistent with pneumonia. Heart size is normal. "
        "No pleural effusion or pneumothorax.",
        "minor_wording": "Right lower lobe consolidation consistent with pneumonia. The heart size is normal. "
        "No pleural effusion or pneumothorax.",
        "paraphrase": "Airspace consolidation in the right lower lobe, compatible with pneumonia. Normal heart "
        "size. No pneumothorax or pleural effusion.",
        "missed_finding": "Heart size is normal. No pleural effusion or pneumothorax. The lungs are clear.",
        "negation_flip": "No right lower lobe consolidation or pneumonia. Heart size is normal. No pleural "
        "effusion or pneumothorax.",
        "laterality_error": "Left lower lobe consolidation consistent with pneumonia. Heart size is normal. "
        "No pleural effusion or pneumothorax.",
        "hallucinated_finding": "Right lower lobe consolidation consistent with pneumonia. Heart size is normal. "
        "No pleural effusion or pneumothorax. There is a 2 cm mass in the left upper lobe.",
    },
    "pneumothorax": {
        "reference": "Small right apical pneumothorax. The lungs are otherwise clear. Heart size is normal. "
        "No pleural effusion.",
        "minor_wording": "Small right apical pneumothorax. Lungs are otherwise clear. Heart size is normal. "
        "No pleural effusion.",
        "paraphrase": "There is a small pneumothorax at the right apex. Otherwise clear lungs. Normal cardiac "
        "size. No effusion.",
        "missed_finding": "The lungs are clear. Heart size is normal. No pleural effusion.",
        "negation_flip": "No pneumothorax. The lungs are otherwise clear. Heart size is normal. No pleural "
        "effusion.",
        "laterality_error": "Small left apical pneumothorax. The lungs are otherwise clear. Heart size is normal. "
        "No pleural effusion.",
        "hallucinated_finding": "Small right apical pneumothorax. The lungs are otherwise clear. Heart size is "
        "normal. No pleural effusion. Mild pulmonary edema.",
    },
    "heart_failure": {
        "reference": "Moderate cardiomegaly. Small bilateral pleural effusions. Mild pulmonary vascular "
        "congestion. No pneumothorax.",
        "minor_wording": "Moderate cardiomegaly. Small bilateral pleural effusions. Mild pulmonary vascular "
        "congestion. There is no pneumothorax.",
        "paraphrase": "The heart is moderately enlarged. There are small pleural effusions on both sides. Mild "
        "vascular congestion. No pneumothorax is seen.",
        "missed_finding": "Moderate cardiomegaly. Mild pulmonary vascular congestion. No pneumothorax.",
        "negation_flip": "Moderate cardiomegaly. No pleural effusions. Mild pulmonary vascular congestion. "
        "No pneumothorax.",
        "laterality_error": "Moderate cardiomegaly. Small right pleural effusion. Mild pulmonary vascular "
        "congestion. No pneumothorax.",
        "hallucinated_finding": "Moderate cardiomegaly. Small bilateral pleural effusions. Mild pulmonary "
        "vascular congestion. No pneumothorax. Right lower lobe consolidation.",
    },
}
CORRECT = ("reference", "minor_wording", "paraphrase")
ERRORS = ("missed_finding", "negation_flip", "laterality_error", "hallucinated_finding")


def score_scenarios() -> dict[str, dict[str, float]]:
    """The default profile's reward of every graded candidate (plus empty and repeated output)."""

    async def run() -> dict[str, dict[str, float]]:
        engine = RewardEngine(Settings())
        await engine.load("default")
        rewards: dict[str, dict[str, float]] = {}
        try:
            for scenario, candidates in SCENARIOS.items():
                reference = candidates["reference"]
                graded = {**candidates, "empty": "", "repeated": " ".join([reference] * 3)}
                items = [
                    ScoreItem(id=kind, reference=reference, candidate=text) for kind, text in graded.items()
                ]
                batch = await engine.score(items, "default")
                assert all(not reward.composite.errors for reward in batch.items), [
                    reward.composite.errors for reward in batch.items
                ]
                rewards[scenario] = {reward.item.id: reward.composite.reward for reward in batch.items}
        finally:
            await engine.close()
        return rewards

    return asyncio.run(run())


@pytest.fixture(scope="module")
def rewards() -> dict[str, dict[str, float]]:
    return score_scenarios()


def test_default_profile_needs_no_models_gpu_or_redis() -> None:
    profile = load_profile("default")
    assert profile.version == 2
    from reward_service.scorers import ScorerKind, scorer_class

    assert {scorer_class(component.name).kind for component in profile.components} == {ScorerKind.RULE}
    assert {"clinical_errors", "report_guard"} <= {c.name for c in profile.components if c.required}
    # The guard gates the reward rather than adding to it (tests/test_reward_hacking.py checks why).
    assert [c.name for c in profile.components if c.gate] == ["report_guard"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_clinically_correct_reports_rank_above_every_error(rewards: dict, scenario: str) -> None:
    scores = rewards[scenario]
    assert scores["reference"] > scores["minor_wording"] > scores["paraphrase"]
    for error in ERRORS:
        assert scores["paraphrase"] > scores[error], error


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_clinical_error_costs_far_more_than_a_paraphrase(rewards: dict, scenario: str) -> None:
    scores = rewards[scenario]
    paraphrase_cost = scores["reference"] - scores["paraphrase"]
    assert paraphrase_cost > 0
    for error in ERRORS:
        assert scores["reference"] - scores[error] >= 3 * paraphrase_cost, error


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_degenerate_output_is_not_rewarded(rewards: dict, scenario: str) -> None:
    scores = rewards[scenario]
    assert scores["repeated"] < scores["paraphrase"]
    assert scores["empty"] < min(scores[error] for error in ERRORS)

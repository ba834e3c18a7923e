"""The offline profiles cannot be gamed: the orderings of issue 9 on a fixed set of studies.

Every shipped profile that runs offline (``default``, ``clinical``) scores every kind of candidate of
:mod:`reward_service.text.variants` against hand-written normal and abnormal references (plus a few
real IU X-ray studies where ../shared/data is present) and must hold:

* text that is not a report scores at most 0.05 whatever the reference, and the guard says why;
* repeating a sentence never raises the reward over stating it once, and a truncated report never
  beats the whole one (for the reference and for each honest candidate);
* negating or hedging every finding never beats the normal template against a normal reference, and
  scores below the reference with one sentence dropped against an abnormal one;
* on the abnormal references, the best constant candidate's mean is at least 0.25 below the mean of
  the reference with one sentence dropped;
* a faithful paraphrase scores within 0.01 of the reference in ``clinical``, within 0.05 (and below
  it) in ``default``.

bench/reward_hacking.py measures the same on every shared study.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Iterator

import pytest
from conftest import SHARED_REPORTS

from reward_service.composite import load_profile, shipped_profiles
from reward_service.engine import RewardEngine
from reward_service.scorers import ScoreItem
from reward_service.settings import Settings
from reward_service.text.variants import KINDS, make_variants, reference_class, repeat_sentence, truncate

PROMPT = (
    "Write the radiology report for the current chest X-ray.\nIndication: {indication}\nComparison: None.\n"
    'Answer in the form "Findings: ... Impression: ...".'
)

# (indication, reference), written for these tests.
NORMAL = [
    (
        "Cough for two weeks.",
        "Findings: The heart is normal in size. The mediastinum is unremarkable. The lungs are clear without "
        "focal consolidation. No pleural effusion or pneumothorax. Impression: No acute cardiopulmonary process.",
    ),
    (
        "Preoperative evaluation.",
        "Findings: Heart size and pulmonary vascularity are within normal limits. No focal airspace disease, "
        "pleural effusion or pneumothorax. The osseous structures are intact. Impression: Normal chest radiograph.",
    ),
    (
        "Fever.",
        "Findings: The lungs are well expanded and clear. Cardiomediastinal silhouette is normal. No effusion. "
        "No pneumothorax. Impression: No acute abnormality.",
    ),
]
ABNORMAL = [
    (
        "Shortness of breath.",
        "Findings: There is a moderate right pleural effusion with adjacent compressive atelectasis of the right "
        "lower lobe. The left lung is clear. Heart size is normal. No pneumothorax. Impression: Moderate right "
        "pleural effusion with right basilar atelectasis.",
    ),
    (
        "Sudden chest pain.",
        "Findings: Large left apical pneumothorax with slight rightward mediastinal shift. The right lung is "
        "clear. No pleural effusion. Impression: Large left pneumothorax.",
    ),
    (
        "Leg swelling and dyspnea.",
        "Findings: The heart is moderately enlarged. There is mild interstitial pulmonary edema with small "
        "bilateral pleural effusions. No focal consolidation. Impression: Cardiomegaly with mild pulmonary edema "
        "and small bilateral pleural effusions.",
    ),
    (
        "Fever and productive cough.",
        "Findings: Dense consolidation in the left lower lobe with air bronchograms. Heart size is normal. No "
        "pleural effusion. No pneumothorax. Impression: Left lower lobe pneumonia.",
    ),
    (
        "Intubated patient.",
        "Findings: An endotracheal tube terminates 6 cm above the carina. Patchy right upper lobe consolidation. "
        "Heart size is normal. No pneumothorax. Impression: Right upper lobe pneumonia.",
    ),
]
REAL_PER_CLASS = 3
MARGIN = 0.25
CEILING = 0.05
HONEST = [kind for kind, spec in KINDS.items() if spec.group == "honest"]


def real_studies() -> Iterator[tuple[str, str, str]]:
    """(class, indication, reference) of the first few normal and abnormal IU X-ray test studies."""
    if not SHARED_REPORTS.is_file():
        return
    from trainer.data import load_studies

    taken = {"normal": 0, "abnormal": 0}
    for study in load_studies(SHARED_REPORTS):
        klass = reference_class(study.reference)
        if taken.get(klass, REAL_PER_CLASS) < REAL_PER_CLASS:
            taken[klass] += 1
            yield klass, study.indication or "", study.reference


def cases() -> list[tuple[str, str, str]]:
    return (
        [("normal", *case) for case in NORMAL]
        + [("abnormal", *case) for case in ABNORMAL]
        + list(real_studies())
    )


def offline_profiles() -> list[str]:
    return sorted(name for name in shipped_profiles() if load_profile(name).offline)


@pytest.fixture(scope="module", params=offline_profiles())
def scored(request: pytest.FixtureRequest) -> tuple[str, list[dict]]:
    """For each case: its class and the reward and guard details of every candidate, by kind."""
    profile = request.param
    studies = []
    for klass, indication, reference in cases():
        context = {"indication": indication, "comparison": "None."}
        candidates = make_variants(reference, context, PROMPT.format(indication=indication))
        # Repetition and truncation of every honest candidate, to hold "never raises" beyond the reference.
        for kind in HONEST:
            if kind in candidates:
                for suffix, alter in (("+repeated", repeat_sentence), ("+truncated", truncate)):
                    altered = alter(candidates[kind])
                    if altered is not None:
                        candidates[kind + suffix] = altered
        studies.append((klass, reference, context, candidates))

    async def run() -> list[dict]:
        engine = RewardEngine(Settings())
        await engine.load(profile)
        try:
            results = []
            for klass, reference, context, candidates in studies:
                items = [
                    ScoreItem(kind, reference, text, context=context) for kind, text in candidates.items()
                ]
                batch = await engine.score(items, profile)
                rewards = {}
                for reward in batch.items:
                    assert reward.composite.reward is not None, reward.composite.errors
                    rewards[reward.item.id] = (
                        reward.composite.reward,
                        reward.components["report_guard"].details,
                    )
                results.append({"class": klass, "reference": reference, "rewards": rewards})
            return results
        finally:
            await engine.close()

    return profile, asyncio.run(run())


def test_the_case_set_is_fixed_and_covers_both_classes() -> None:
    classes = [klass for klass, _, _ in cases()]
    assert classes.count("normal") >= 3 and classes.count("abnormal") >= 5
    # The hand-written references are what their list says.
    assert all(reference_class(reference) == "normal" for _, reference in NORMAL)
    assert all(reference_class(reference) == "abnormal" for _, reference in ABNORMAL)


def test_non_reports_score_at_most_005_and_say_why(scored: tuple[str, list[dict]]) -> None:
    profile, studies = scored
    for study in studies:
        for kind, (reward, guard) in study["rewards"].items():
            if kind in KINDS and KINDS[kind].group == "not_a_report":
                assert reward <= CEILING, (profile, kind, study["reference"][:40])
                assert "not_a_report" in guard["flags"] and guard["reasons"], (profile, kind)


def test_repetition_and_truncation_never_raise_the_reward(scored: tuple[str, list[dict]]) -> None:
    profile, studies = scored
    for study in studies:
        rewards = {kind: value for kind, (value, _) in study["rewards"].items()}
        assert rewards["repeated_sentence"] < rewards["reference"], profile
        assert rewards["truncated"] < rewards["reference"], profile
        for kind in HONEST:
            for suffix in ("+repeated", "+truncated"):
                if kind + suffix in rewards:
                    assert rewards[kind + suffix] <= rewards[kind], (
                        profile,
                        kind + suffix,
                        study["reference"][:40],
                    )


def test_negating_or_hedging_everything_does_not_pay(scored: tuple[str, list[dict]]) -> None:
    profile, studies = scored
    for study in studies:
        rewards = {kind: value for kind, (value, _) in study["rewards"].items()}
        for kind in ("all_negated", "all_hedged"):
            if study["class"] == "normal":
                assert rewards[kind] <= rewards["normal_template"], (profile, kind, study["reference"][:40])
            else:
                assert rewards[kind] < rewards["drop_sentence"], (profile, kind, study["reference"][:40])


def test_no_constant_candidate_comes_near_an_honest_report_on_abnormal_studies(
    scored: tuple[str, list[dict]],
) -> None:
    profile, studies = scored
    abnormal = [study["rewards"] for study in studies if study["class"] == "abnormal"]
    dropped = statistics.fmean(rewards["drop_sentence"][0] for rewards in abnormal)
    for kind, spec in KINDS.items():
        if spec.constant:
            constant = statistics.fmean(rewards[kind][0] for rewards in abnormal)
            assert constant <= dropped - MARGIN, (profile, kind, constant, dropped)


def test_honest_candidates_rank_in_order(scored: tuple[str, list[dict]]) -> None:
    profile, studies = scored
    for study in studies:
        rewards = {kind: value for kind, (value, _) in study["rewards"].items()}
        assert rewards["reference"] == pytest.approx(1.0)
        if study["class"] == "abnormal":
            # A flipped negation or a swapped side is a clinical error; no constant beats the report.
            for error in ("flip_negation", "swap_side"):
                if error in rewards:
                    assert rewards[error] < rewards["reference"], (profile, error)
            for kind, spec in KINDS.items():
                if spec.constant:
                    assert rewards[kind] < rewards["reference"] - MARGIN, (profile, kind)


def test_wording_pays_little_in_default_and_nothing_in_clinical(scored: tuple[str, list[dict]]) -> None:
    profile, studies = scored
    for study in studies[: len(NORMAL) + len(ABNORMAL)]:  # the hand-written references
        rewards = {kind: value for kind, (value, _) in study["rewards"].items()}
        if profile == "clinical":
            assert rewards["paraphrase"] >= rewards["reference"] - 0.01, study["reference"][:60]
        else:
            assert rewards["reference"] - 0.05 <= rewards["paraphrase"] < rewards["reference"], study[
                "reference"
            ][:60]

"""The report guard: what is not an English chest X-ray report, and what makes a report unhealthy.

Every flag must come with a reason a person can read; real reports (../shared/data, where present)
must pass as reports.
"""

from __future__ import annotations

import json
import re

import pytest

from reward_service.scorers import ScoreItem, ScoreResult
from reward_service.scorers.report_guard import ReportGuardScorer, _report_words, _sentences, load_vocabulary
from reward_service.settings import Settings
from reward_service.text.variants import KINDS, make_variant

REFERENCE = "Heart size is normal. The lungs are clear. No pleural effusion or pneumothorax."
CONTEXT = {"indication": "Chest pain and shortness of breath.", "comparison": "None."}
GUARD = ReportGuardScorer("report_guard", ReportGuardScorer.Options(), Settings())


def guard(candidate: str, reference: str = REFERENCE, context: dict | None = None) -> ScoreResult:
    result = GUARD.score_one(ScoreItem("x", reference, candidate, context=context or {}))
    assert result.score is not None
    assert len(result.details["reasons"]) == len(result.details["flags"]) - (
        "not_a_report" in result.details["flags"]
    )
    return result


@pytest.mark.parametrize(
    "report",
    [
        "The heart is normal in size. No focal consolidation, effusion or pneumothorax.",
        "Findings: Normal cardiomediastinal silhouette. There is no focal consolidation. There are no XXXX "
        "of a large pleural effusion. Impression: No acute cardiopulmonary disease.",
        "FINDINGS: PORTABLE AP VIEW OF THE CHEST. THE ENDOTRACHEAL TUBE TERMINATES 4 CM ABOVE THE\nCARINA. "
        "LEFT BASILAR ATELECTASIS.",
        "Impression: Normal chest",  # no full stop, but no fragment either
        "Normal.",
        "Moderate cardiomegaly. Small bilateral pleural effusions. Mild pulmonary vascular congestion.",
        # Other report styles than those of ../shared/data, written for this test.
        "Compared to the prior study from yesterday, the nasogastric tube has been advanced and now terminates "
        "within the gastric body. Persistent retrocardiac opacification likely reflects atelectasis, though "
        "superimposed infection cannot be excluded. Bilateral layering effusions have slightly increased.",
        "Single portable view. Interval extubation. Swan-Ganz catheter removed. Right IJ sheath remains. Patchy "
        "bibasilar airspace disease, improving. Heart size top normal. Tortuous thoracic aorta.",
        "Hyperinflated lungs with flattening of the diaphragms, consistent with COPD. A 1.2 cm spiculated nodule "
        "in the left upper lobe warrants CT correlation. Multilevel degenerative disc disease of the spine.",
    ],
)
def test_healthy_reports_pass(report: str) -> None:
    result = guard(report, context=CONTEXT)
    assert (result.score, result.details["flags"]) == (1.0, [])


@pytest.mark.parametrize(
    ("candidate", "flag", "reason"),
    [
        ("", "empty", "empty"),
        ("   \n\t ", "empty", "empty"),
        ("... !!! ,,", "no_words", "no words"),
        ("12 34 5.6 - a b c", "no_words", "no words"),
        ("asdf qwer zxcv uiop hjkl.", "off_vocabulary", "unknown: asdf, qwer"),
        ("Lorem ipsum dolor sit amet, consectetur adipiscing elit.", "placeholder_text", "lorem, ipsum"),
        ("El corazón es de tamaño normal. No hay derrame pleural.", "other_language", "Spanish"),
        ("Le cœur est de taille normale. Pas d'épanchement pleural.", "other_language", "French"),
        ("Das Herz ist normal groß. Kein Pleuraerguss.", "other_language", "German"),
        ("Il cuore è di dimensioni normali. Non versamento pleurico.", "other_language", "Italian"),
        ("Сердце нормальных размеров. Легкие чистые.", "off_vocabulary", "non-English letters"),
        ("心脏大小正常。双肺清晰。", "off_vocabulary", "non-English letters"),
        ("The quick brown fox jumps over the lazy dog.", "off_vocabulary", "quick, brown"),
        ("This is a test and it went well for all of us.", "no_chest_content", "names chest anatomy"),
        ("Chest pain and shortness of breath.", "echoes_context", "indication"),
        (
            "You are a radiologist. Write the report for this chest X-ray.",
            "echoes_prompt",
            "instructions",
        ),
        ("Generate the findings and impression of this chest radiograph.", "echoes_prompt", "generate"),
    ],
)
def test_text_that_is_not_a_report_scores_zero_and_says_why(candidate: str, flag: str, reason: str) -> None:
    result = guard(candidate, context=CONTEXT)
    assert result.score == 0.0
    assert result.details["flags"] == ["not_a_report", flag]
    assert reason in result.details["reasons"][0]
    assert result.details["reasons"][0].startswith("not a chest X-ray report")


@pytest.mark.parametrize("kind", [kind for kind, spec in KINDS.items() if spec.group == "not_a_report"])
def test_every_non_report_variant_is_recognised(kind: str) -> None:
    prompt = (
        "Write the radiology report for the current chest X-ray.\nIndication: Chest pain.\nAnswer in full."
    )
    text = make_variant(kind, REFERENCE, CONTEXT, prompt)
    assert text is not None
    assert "not_a_report" in guard(text, context=CONTEXT).details["flags"]


def test_one_instruction_word_in_a_report_with_findings_is_not_a_prompt() -> None:
    assert guard("Small left pleural effusion, as you suspected.").details["flags"] == []


def test_a_report_that_mentions_its_indication_is_not_an_echo() -> None:
    context = {"indication": "Evaluate for pneumonia."}
    assert guard("No pneumonia. The lungs are clear.", context=context).details["flags"] == []
    assert guard("Evaluate for pneumonia.", context=context).details["flags"] == [
        "not_a_report",
        "echoes_context",
    ]


def test_repeated_sentences_exact_and_near() -> None:
    exact = guard("No effusion. No effusion. No effusion. Heart is normal.")
    assert exact.details["flags"] == ["repeated_sentences"]
    assert exact.score == pytest.approx(0.5)
    near = guard("There is no pleural effusion. No pleural effusions are seen. Heart size is normal.")
    assert near.details["flags"] == ["repeated_sentences"]
    assert near.score == pytest.approx(2 / 3)
    assert "repeat an earlier one" in near.details["reasons"][0]


def test_sides_and_impressions_are_not_repeats() -> None:
    # Same words but another side, and an impression that restates a finding: both normal reporting.
    report = (
        "Findings: No left pleural effusion. No right pleural effusion. Impression: No left pleural effusion."
    )
    assert guard(report).details["flags"] == []
    # Hard line breaks inside sentences (CheXpert Plus) are not sentence ends, so no fragment repeats.
    wrapped = "1. STABLE SMALL LEFT EFFUSION, UNCHANGED\nSINCE PRIOR.\n2. THE LEFT EFFUSION IS\nSTABLE."
    assert guard(wrapped).details["flags"] == []


@pytest.mark.parametrize(
    ("lowered", "sentences"),
    [
        ("findings: no effusion. impression: no effusion.", ["findings no effusion", "", "no effusion"]),
        ("no effusion impression: normal", ["no effusion", "", "normal"]),  # a header ends a sentence
        ("impression: 1. normal heart. 2. clear lungs!", ["", "normal heart", "clear lungs"]),
        ("summary: conclusion: 3.3 cm nodule? heart: normal", ["", "", "3 3 cm nodule", "heart normal"]),
        ("left effusion\nsince prior.x", ["left effusion since prior x"]),  # no end before a non-space
        ("1 2. 3", []),
    ],
)
def test_sentences_and_section_headers(lowered: str, sentences: list[str]) -> None:
    assert _sentences(lowered) == sentences


def test_report_words_by_byte_table_equal_the_regex_words() -> None:
    for text in ["t7 x-ray p.m. ab", "", "a", "no_effusion2ab", "Überall ok"]:
        assert _report_words(text.lower()) == re.findall(r"[^\W\d_]{2,}", text.lower())


def test_looping_text_without_sentence_breaks() -> None:
    result = guard("no acute pleural effusion " * 15)
    assert "looping_text" in result.details["flags"]
    assert result.score < 0.3


def test_runaway_length() -> None:
    words = [
        "left",
        "right",
        "upper",
        "lower",
        "lobe",
        "opacity",
        "effusion",
        "pleural",
        "small",
        "large",
        "lung",
        "base",
        "apex",
        "heart",
    ]
    report = " ".join(words[(i * 7 + i // len(words)) % len(words)] for i in range(600)) + "."
    result = guard(report)
    assert "runaway_length" in result.details["flags"]
    assert result.details["factors"]["runaway_length"] == pytest.approx(60 / 600)


@pytest.mark.parametrize(
    ("candidate", "fragment"),
    [
        ("Heart size is normal. The lungs are clear. No pleural eff", "eff"),
        ("Heart size is normal. There is a small left", "left"),
        ("Heart size is normal. No pleural effusion or", "or"),
        ("The lungs are clear. The cardiomediastinal silh", "silh"),
    ],
)
def test_a_report_cut_off_mid_sentence_is_truncated(candidate: str, fragment: str) -> None:
    result = guard(candidate)
    assert result.details["flags"] == ["truncated"]
    assert result.score == 0.2
    assert repr(fragment) in result.details["reasons"][0]


def test_a_shotgun_list_of_negations_is_penalised_but_a_thorough_normal_report_is_not() -> None:
    thorough = (
        "No focal consolidation, pleural effusion or pneumothorax. Heart size is normal. No pulmonary edema. "
        "No acute osseous abnormality."
    )
    assert guard(thorough).details["flags"] == []
    shotgun = make_variant("all_negated", REFERENCE)
    assert shotgun is not None
    result = guard(shotgun)
    assert "shotgun_negations" in result.details["flags"]
    assert result.details["factors"]["shotgun_negations"] < 0.3
    assert "a list of negations" in " ".join(result.details["reasons"])


def test_a_long_reference_allows_more_negations() -> None:
    negations = " ".join(f"No {f}." for f in ("pneumothorax", "pleural effusion", "consolidation", "edema"))
    many = negations + " No cardiomegaly. No fracture. No pulmonary nodule. No hilar adenopathy."
    assert "shotgun_negations" in guard(many, reference="Lungs are clear.").details["flags"]
    assert guard(many, reference=many).details["flags"] == []


def test_hedging_every_finding_is_penalised_but_one_hedge_is_not() -> None:
    assert guard("Possible small left pleural effusion. Heart size is normal.").details["flags"] == []
    hedged = make_variant("all_hedged", REFERENCE)
    assert hedged is not None
    result = guard(hedged)
    assert "hedged_findings" in result.details["flags"]
    assert result.details["factors"]["hedged_findings"] < 0.2


def test_the_vocabulary_is_in_the_fingerprint() -> None:
    vocabulary = load_vocabulary()
    assert GUARD.fingerprint() == {
        "vocabulary_version": vocabulary.version,
        "vocabulary_sha256": vocabulary.sha256,
    }
    assert vocabulary.is_known("effusions") and vocabulary.is_known("nonspecific")
    assert not vocabulary.is_content("normal") and vocabulary.is_content("pneumothorax")
    # A word shared with English names no other language.
    assert not any("normal" in words or "no" in words for words in vocabulary.languages.values())


def test_real_reports_pass_as_reports(shared_reports: dict[str, dict]) -> None:
    flagged = {}
    for study_id, study in shared_reports.items():
        result = guard(
            study["report"], reference=study["report"], context={"context": study.get("context") or ""}
        )
        if result.details["flags"]:
            flagged[study_id] = result.details["reasons"]
    # Reports that really repeat a sentence may be flagged; none may be called a non-report.
    assert not [reasons for reasons in flagged.values() if any("not a chest" in r for r in reasons)]
    assert len(flagged) <= len(shared_reports) // 100, flagged


def test_real_hard_wrapped_reports_pass_as_reports() -> None:
    from conftest import SHARED_REPORTS

    path = SHARED_REPORTS.parent / "rexrank_chexpertplus.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent (it lives beside the repository in development checkouts)")
    studies = json.loads(path.read_text(encoding="utf-8"))
    not_reports = [
        study["report"][:80]
        for study in studies.values()
        if "not_a_report" in guard(study["report"], reference=study["report"]).details["flags"]
    ]
    assert not_reports == []


def test_report_caches_are_cleared_with_the_others() -> None:
    from reward_service.text import clear_report_caches
    from reward_service.text.tokens import rouge_tokens

    guard("No effusion. Heart is normal.")
    clear_report_caches()
    assert rouge_tokens.cache_info().currsize == 0

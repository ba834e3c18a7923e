"""The finding extractor's machinery: fast phrase scanning, sentences, attributes, long input."""

from __future__ import annotations

import re

import pytest

from reward_service.text import findings
from reward_service.text.findings import CONCEPTS, extract_findings, normalize_report
from reward_service.text.rules import RULES
from reward_service.text.scanner import phrase_prefixes
from reward_service.text.sentences import split_sentences

SYNTHETIC = [
    "no pleural effusion or pneumothorax; heart size is upper limits of normal.",
    "left-sided picc line tip in the svc. no new consolidation. chf? vs atelectasis.",
    "a b no or lt rt icd chf cabg et tube ng tube 8-12 x-xxxx t-spine e",
    "hydropneumothorax, pneumothoraces, bibasilar opacities and/or effusions; interval increase.",
]


def _naive(patterns: list[str]) -> re.Pattern[str]:
    # What the scanner must be equivalent to: one alternation, first phrase winning at a position.
    return re.compile("|".join(f"(?P<g{i}>(?<![\\w-])(?:{p})(?![\\w-]))" for i, p in enumerate(patterns)))


def _pattern_index(match: re.Match[str]) -> int:
    """Which pattern of :func:`_naive` matched: every alternative is a group named ``g<index>``."""
    assert match.lastgroup is not None
    return int(match.lastgroup[1:])


SCANNERS = [
    (findings._MENTIONS, [concept.pattern for concept in CONCEPTS]),
    (findings._CUE_SCANNER, [pattern for pattern, _ in RULES.cues]),
]


def _assert_scanners_equal_one_big_alternation(texts: list[str]) -> None:
    for scanner, patterns in SCANNERS:
        naive = _naive(patterns)
        for text in texts:
            word_starts = [m.start() for m in re.finditer(r"[\w-]+", text) if "a" <= text[m.start()] <= "z"]
            expected = [
                (m.start(), m.end(), _pattern_index(m))
                for m in naive.finditer(text)
                if "a" <= text[m.start()] <= "z"
            ]
            assert scanner.scan(text, word_starts) == expected, text


def test_dispatching_scanner_equals_one_big_alternation() -> None:
    _assert_scanners_equal_one_big_alternation(SYNTHETIC)


def test_dispatching_scanner_on_real_reports(shared_reports: dict[str, dict]) -> None:
    _assert_scanners_equal_one_big_alternation(
        [normalize_report(s["report"]) for s in shared_reports.values()]
    )


def test_every_phrase_is_dispatched_by_its_prefixes() -> None:
    # A phrase whose prefixes cannot be derived is tried everywhere (slower, never wrong); all of ours can.
    assert all(phrase_prefixes(concept.pattern) for concept in CONCEPTS)
    assert all(phrase_prefixes(pattern) for pattern, _ in RULES.cues)


def test_evidence_sentences_are_the_shared_sentence_split(shared_reports: dict[str, dict]) -> None:
    for study in shared_reports.values():
        normalized = normalize_report(study["report"])
        sentences = set(split_sentences(normalized))
        for mention in extract_findings(study["report"]).mentions:
            assert mention.sentence in sentences


@pytest.mark.parametrize(
    ("report", "key", "laterality", "severity", "change"),
    [
        ("Small left pleural effusion.", "pleural_effusion", {"left"}, {1}, set()),
        (
            "Pleural effusion on the right, increased since the prior exam.",
            "pleural_effusion",
            {"right"},
            set(),
            {"worse"},
        ),
        ("Moderate to large bilateral effusions.", "pleural_effusion", {"left", "right"}, {2, 3}, set()),
        ("Opacity in the right lower lobe and left effusion.", "lung_opacity", {"right"}, set(), set()),
        ("Unchanged mild cardiomegaly.", "cardiomegaly", set(), {1}, {"same"}),
        ("New right apical pneumothorax.", "pneumothorax", {"right"}, set(), {"new"}),
        ("Bibasilar opacities, right greater than left.", "lung_opacity", {"left", "right"}, set(), set()),
        ("The heart is mildly enlarged.", "heart", set(), {1}, set()),
    ],
)
def test_attributes(report: str, key: str, laterality: set, severity: set, change: set) -> None:
    (mention,) = [m for m in extract_findings(report).mentions if m.concept.key == key]
    assert (set(mention.laterality), set(mention.severity), set(mention.change)) == (
        laterality,
        severity,
        change,
    )


def test_comparison_with_a_prior_study() -> None:
    assert extract_findings("Stable cardiomegaly.").compares_with_prior
    assert (
        extract_findings("No change from the prior study.").comparison_sentence
        == "no change from the prior study."
    )
    assert not extract_findings("Mild cardiomegaly. No effusion.").compares_with_prior


def test_long_and_odd_input() -> None:
    report = (
        "There is no pleural effusion, but there is a small left pneumothorax. " * 150
    )  # ~10,000 characters
    mentions = extract_findings(report).mentions
    assert len(mentions) == 300
    assert {(m.concept.key, m.status) for m in mentions} == {("pleural_effusion", 0), ("pneumothorax", 1)}
    for odd in ["", " ", "?", "...", "\n\n", "no " * 2000, "ÉPANCHEMENT ☃ 漢字", "effusion" * 500]:
        extract_findings(odd)


def test_hard_line_breaks_and_runs_of_spaces_stay_inside_a_sentence() -> None:
    # Reports wrapped at a fixed width (MIMIC-CXR, CheXpert Plus) break lines mid-sentence.
    report = "FINDINGS: NO PLEURAL\nEFFUSION OR\n   PNEUMOTHORAX.  ENDOTRACHEAL  TUBE TIP 4 CM\nABOVE THE CARINA.\n\nIMPRESSION:\nSMALL LEFT\nEFFUSION IS NOT SEEN."
    mentions = extract_findings(report).mentions
    statuses = {m.concept.finding: m.status for m in mentions}
    assert statuses["pleural_effusion"] == 0 and statuses["pneumothorax"] == 0
    tube = next(m for m in mentions if m.concept.finding == "endotracheal_tube")
    assert [x.size_mm for x in tube.measurements] == [40.0]
    # Offsets point into the report as given, whitespace and case included.
    assert [report[m.start : m.end] for m in mentions][:3] == [
        "PLEURAL\nEFFUSION",
        "PNEUMOTHORAX",
        "ENDOTRACHEAL  TUBE",
    ]
    # A blank line still ends a sentence.
    assert normalize_report("No effusion\n\nPneumothorax.").count("\n") == 1


# Reports that a sentence-at-a-time reading could get wrong if a rule reached across a sentence end.
ACROSS_SENTENCES = [
    "pleural\n\neffusion is seen. no pneumothorax.",
    "tube tip 3\n\ncm above the carina. left lower lobe opacity.",
    "no focal consolidation. left effusion. right pneumothorax is not seen.",
    "heart is enlarged.\n\nno edema. small left pleural effusion measuring 2.5 x 1.8 cm.",
    "Findings: stable cardiomegaly.   Lungs are clear.\nImpression: no change.",
    "opacity in the\n\nleft base. atelectasis versus pneumonia. compared with the prior study, improved.",
]


def _read_whole_then_by_sentence(text: str) -> tuple[findings.ReportFindings, findings.ReportFindings]:
    from reward_service.text import clear_report_caches

    clear_report_caches()
    whole = extract_findings(text)  # no sentence seen before: read whole
    extract_findings.cache_clear()  # forget the report, keep its sentences
    again = extract_findings(text)  # seen before: read whole, its sentences cut out and remembered
    assert again == whole
    extract_findings.cache_clear()
    by_sentence = extract_findings(text)  # read a sentence at a time from what was remembered
    return whole, by_sentence


def _assert_remembered_sentences_equal_them_analysed_alone() -> None:
    for sentence, remembered in findings._SENTENCES.analyses.items():
        assert remembered == findings._analyse(sentence, [len(sentence) + 1]), sentence


@pytest.mark.parametrize("text", ACROSS_SENTENCES)
def test_a_report_read_by_sentence_equals_it_read_whole(text: str) -> None:
    whole, by_sentence = _read_whole_then_by_sentence(text)
    assert findings._SENTENCES.analyses, "the third reading did not go sentence by sentence"
    assert by_sentence == whole
    _assert_remembered_sentences_equal_them_analysed_alone()


def test_real_reports_read_by_sentence_equal_them_read_whole(shared_reports: dict[str, dict]) -> None:
    reports = [s["report"] for s in shared_reports.values()]
    variants = [r.replace(". ", ".\n") for r in reports[:100]] + [r.upper() for r in reports[100:150]]
    for text in reports + variants:
        whole, by_sentence = _read_whole_then_by_sentence(text)
        assert by_sentence == whole, text
        _assert_remembered_sentences_equal_them_analysed_alone()


def test_masked_word_starts_equal_the_word_regex(shared_reports: dict[str, dict]) -> None:
    # ASCII texts take the masked split; capitals, digits, "_" and "-" must not start a letter word.
    texts = [*SYNTHETIC, "", "-", "a", "x-ray 2.5cm _tmp Abc {z}~a\n\nb;c", "é naïve 3×4 cm"]
    texts += [normalize_report(s["report"]) for s in shared_reports.values()]
    for text in texts:
        words = [match.start() for match in re.finditer(r"[\w-]+", text)]
        expected = (words, [start for start in words if "a" <= text[start] <= "z"])
        assert findings._word_starts(text) == expected, text

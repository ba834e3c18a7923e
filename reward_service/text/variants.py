"""Report perturbations: the candidates a reward must rank, from honest edits to degenerate output.

One home for every way the project alters a report to probe a reward (``bench/reward_hacking.py``,
the tests, the playground). Each kind of variant is a :class:`VariantKind` in :data:`KINDS`, in one
of three groups:

* ``not_a_report``: text that is not an English chest X-ray report (empty, whitespace, punctuation,
  gibberish, lorem ipsum, normal reports in Spanish, French and German, the indication or the
  prompt echoed). A reward must give these (almost) nothing, whatever the reference.
* ``degenerate``: report-like output a policy may drift to: one sentence repeated, the reference
  cut off mid-sentence, "Normal.", a normal template, every finding negated, hedged or asserted.
* ``honest``: the reference itself and honest imperfections of it: a paraphrase (synonym table),
  one sentence dropped, one side swapped, one negation flipped.

The texts and tables are data (``reward_service/rules/report_variants.yaml``). ``make_variant``
returns None where a kind does not apply to a reference (no side word to swap, no indication).
:func:`reference_class` tells abnormal references from normal ones, for results per class.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import yaml

from reward_service.text.clinical_errors import summarize_report
from reward_service.text.findings import FINDINGS, POSITIVE

VARIANTS_RESOURCE = "rules/report_variants.yaml"
Group = Literal["not_a_report", "degenerate", "honest"]
ReferenceClass = Literal["abnormal", "normal", "minor"]
#: Error weight from which a finding is clinically significant (``clinical_errors``' ``min_weight``).
SIGNIFICANT_WEIGHT = 0.5

# Sentences end at ".", "!" or "?" followed by whitespace; hard line breaks inside a sentence do not
# end it (CheXpert Plus wraps its lines).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[A-Za-z]+")
_HEADER = re.compile(r"^\s*(?:findings|impression)\s*:\s*", re.IGNORECASE)
# Where the truncated candidate is cut, as a share of the reference's characters.
_TRUNCATE_AT = 0.6
_REPEATS = 3


@dataclass(frozen=True, slots=True)
class VariantKind:
    """One kind of candidate: its ``name``, ``group``, whether it is the same text for every study."""

    name: str
    group: Group
    constant: bool
    description: str


KINDS: dict[str, VariantKind] = {
    kind.name: kind
    for kind in (
        VariantKind("empty", "not_a_report", True, 'the empty string ""'),
        VariantKind("whitespace", "not_a_report", True, "spaces, tabs and line breaks only"),
        VariantKind("punctuation", "not_a_report", True, "punctuation only"),
        VariantKind("gibberish", "not_a_report", True, 'keyboard mashing ("asdf qwer zxcv ...")'),
        VariantKind("lorem_ipsum", "not_a_report", True, "lorem ipsum placeholder text"),
        VariantKind("spanish_report", "not_a_report", True, "a normal chest X-ray report in Spanish"),
        VariantKind("french_report", "not_a_report", True, "a normal chest X-ray report in French"),
        VariantKind("german_report", "not_a_report", True, "a normal chest X-ray report in German"),
        VariantKind("echo_indication", "not_a_report", False, "the study's indication copied back"),
        VariantKind("echo_prompt", "not_a_report", False, "the generation prompt copied back"),
        VariantKind(
            "repeated_sentence", "degenerate", False, "the reference with its longest sentence said 3 times"
        ),
        VariantKind("truncated", "degenerate", False, "the reference cut off mid-word at 60% of its length"),
        VariantKind("normal_word", "degenerate", True, '"Normal."'),
        VariantKind(
            "normal_template", "degenerate", True, "a faithful template of a normal chest X-ray report"
        ),
        VariantKind("all_negated", "degenerate", True, 'every kind of finding negated ("No X. No Y. ...")'),
        VariantKind("all_hedged", "degenerate", True, 'every kind of finding hedged ("Possible X. ...")'),
        VariantKind("all_asserted", "degenerate", True, 'every kind of finding asserted ("X. Y. ...")'),
        VariantKind("reference", "honest", False, "the reference itself"),
        VariantKind("paraphrase", "honest", False, "the reference reworded by the synonym table"),
        VariantKind("drop_sentence", "honest", False, "the reference without its middle sentence"),
        VariantKind("swap_side", "honest", False, "the reference with its first left/right swapped"),
        VariantKind("flip_negation", "honest", False, "the reference with its first negation removed"),
    )
}


@dataclass(frozen=True, slots=True)
class _Tables:
    constants: dict[str, str]
    synonyms: re.Pattern[str]
    synonym_replacements: tuple[str, ...]
    negation_flips: re.Pattern[str]
    negation_replacements: tuple[str, ...]
    sides: re.Pattern[str]
    side_swaps: dict[str, str]


def _alternation(pairs: list[list[str]]) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """One regex trying every phrase at each position (earliest match wins, then the first listed).

    Each phrase is a named group ``p<index>``, so groups inside a phrase do not shift the lookup.
    """
    pattern = "|".join(f"(?P<p{index}>\\b{phrase}\\b)" for index, (phrase, _) in enumerate(pairs))
    return re.compile(pattern, re.IGNORECASE), tuple(replacement for _, replacement in pairs)


@cache
def variant_data() -> dict[str, Any]:
    """The raw contents of ``report_variants.yaml`` (its version, texts and tables)."""
    return yaml.safe_load((resources.files("reward_service") / VARIANTS_RESOURCE).read_text(encoding="utf-8"))


@cache
def _tables() -> _Tables:
    raw = variant_data()
    constants = {name: text for name, text in raw["constants"].items()}
    phrases = raw["finding_phrases"]
    for name, template in (
        ("all_negated", raw["negated_template"]),
        ("all_hedged", raw["hedged_template"]),
        ("all_asserted", raw["asserted_template"]),
    ):
        constants[name] = " ".join(
            template.format(finding=phrase, Finding=phrase[0].upper() + phrase[1:]) for phrase in phrases
        )
    synonyms, synonym_replacements = _alternation(raw["synonyms"])
    flips, flip_replacements = _alternation(raw["negation_flips"])
    swaps = {side.lower(): other.lower() for side, other in raw["side_swaps"].items()}
    sides = re.compile("|".join(f"\\b{side}\\b" for side in swaps), re.IGNORECASE)
    return _Tables(constants, synonyms, synonym_replacements, flips, flip_replacements, sides, swaps)


def reference_class(report: str) -> ReferenceClass:
    """``abnormal``: the report states (positive, not hedged) a clinically significant finding (error
    weight >= 0.5: pneumothorax, effusion, consolidation, cardiomegaly, atelectasis, emphysema, ...);
    ``normal``: it states no finding at all, positive or hedged; ``minor``: only findings below that
    weight (a granuloma, degenerative change) or hedged ones."""
    findings = summarize_report(report).findings
    if any(
        summary.status == POSITIVE and FINDINGS[finding].weight >= SIGNIFICANT_WEIGHT
        for finding, summary in findings.items()
    ):
        return "abnormal"
    return "minor" if any(summary.present for summary in findings.values()) else "normal"


def split_report_sentences(report: str) -> list[str]:
    """The report's sentences, line breaks inside a sentence kept."""
    return [sentence for sentence in _SENTENCE_END.split(report.strip()) if sentence.strip()]


def _match_case(original: str, replacement: str) -> str:
    if original.isupper() and len(original) > 1:
        return replacement.upper()
    if original[:1].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


def _replace_with(pattern: re.Pattern[str], replacements: tuple[str, ...], text: str, count: int = 0) -> str:
    def replace(match: re.Match[str]) -> str:
        return _match_case(match.group(0), replacements[int(str(match.lastgroup)[1:])])

    return pattern.sub(replace, text, count=count)


def _tidy(text: str) -> str:
    """Spaces and capitals after a phrase was removed: "Heart normal.  pneumothorax." -> "... Pneumothorax."."""
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r" +([.,;:])", r"\1", text)
    return re.sub(r"(^|[.!?:]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text.strip())


def paraphrase(report: str) -> str:
    """The report reworded by the synonym table (one pass; unchanged where no phrase matches)."""
    tables = _tables()
    return _replace_with(tables.synonyms, tables.synonym_replacements, report)


def drop_sentence(report: str) -> str | None:
    """The report without its middle sentence (a section header on it is kept); None under 2 sentences."""
    sentences = split_report_sentences(report)
    if len(sentences) < 2:
        return None
    index = len(sentences) // 2
    header = _HEADER.match(sentences[index])
    kept = sentences[:index] + ([header.group(0).strip()] if header else []) + sentences[index + 1 :]
    return " ".join(kept)


def swap_side(report: str) -> str | None:
    """The report with its first side word swapped; None when it names no side."""
    tables = _tables()
    match = tables.sides.search(report)
    if match is None:
        return None
    swapped = _match_case(match.group(0), tables.side_swaps[match.group(0).lower()])
    return report[: match.start()] + swapped + report[match.end() :]


def flip_negation(report: str) -> str | None:
    """The report with its first negation removed ("No pneumothorax." -> "Pneumothorax."); None if none."""
    tables = _tables()
    flipped = _replace_with(tables.negation_flips, tables.negation_replacements, report, count=1)
    return None if flipped == report else _tidy(flipped)


def repeat_sentence(report: str, times: int = _REPEATS) -> str | None:
    """The report with its longest sentence said ``times`` times in a row; None for an empty report."""
    sentences = split_report_sentences(report)
    if not sentences:
        return None
    index = max(range(len(sentences)), key=lambda i: len(_HEADER.sub("", sentences[i])))
    repeated = _HEADER.sub("", sentences[index])
    return " ".join(sentences[: index + 1] + [repeated] * (times - 1) + sentences[index + 1 :])


def truncate(report: str, share: float = _TRUNCATE_AT) -> str | None:
    """The report cut inside a word of 4+ letters from ``share`` of its length on, as a length limit cuts.

    None when no such word follows (a very short report).
    """
    text = report.strip()
    for match in _WORD.finditer(text, int(len(text) * share)):
        word = match.group(0)
        if len(word) >= 4:
            return text[: match.start() + len(word) // 2]
    return None


def make_variant(
    kind: str,
    reference: str,
    context: Mapping[str, str] | None = None,
    prompt: str | None = None,
) -> str | None:
    """The candidate of ``kind`` for a study, or None where the kind does not apply to it.

    ``context`` is the item's context (``echo_indication`` copies its ``indication``); ``prompt`` the
    generation prompt (``echo_prompt`` copies it). Raises KeyError for an unknown kind.
    """
    spec = KINDS[kind]
    if spec.constant:
        return _tables().constants[kind]
    if kind == "echo_indication":
        indication = (context or {}).get("indication", "").strip()
        return indication if indication and indication.lower() not in {"nan", "none", "none."} else None
    if kind == "echo_prompt":
        return prompt or None
    derived = {
        "reference": lambda text: text,
        "paraphrase": paraphrase,
        "drop_sentence": drop_sentence,
        "swap_side": swap_side,
        "flip_negation": flip_negation,
        "repeated_sentence": repeat_sentence,
        "truncated": truncate,
    }
    return derived[kind](reference)


def make_variants(
    reference: str,
    context: Mapping[str, str] | None = None,
    prompt: str | None = None,
    kinds: list[str] | None = None,
) -> dict[str, str]:
    """Every applicable variant of a study, by kind (all of :data:`KINDS` unless ``kinds`` is given)."""
    variants = {}
    for kind in kinds or KINDS:
        text = make_variant(kind, reference, context, prompt)
        if text is not None:
            variants[kind] = text
    return variants

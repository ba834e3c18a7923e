"""Targeted variants of a real report for the playground's examples: each makes one clinical error.

The rewrites are the project's report perturbations (:mod:`reward_service.text.variants`, whose
tables are ``reward_service/rules/report_variants.yaml``); this module only decides *where* to apply
them, with the rule-based finding analysis (:mod:`reward_service.text.findings`), and keeps a variant
only where the clinical-error analysis (:func:`reward_service.text.clinical_errors.compare_reports`)
finds the error it is named for (or, for the paraphrase, no clinically significant error), trying the
next candidate sentence or finding otherwise:

* ``paraphrase``: the whole report reworded by the synonym table; no finding changes.
* ``negation_flip``: the negation removed from a sentence that rules out findings the report states
  nowhere (one finding alone if it can, the most significant first): a false finding (a).
* ``side_swap``: the side swapped in every sentence stating the most significant finding that lies on
  one side only: a wrong location (c).
* ``dropped_finding``: every sentence stating the report's most significant finding removed: a missed
  finding (b).

A kind that does not apply to a report (nothing ruled out, no one-sided finding) yields no variant.
The rewrites are not reviewed by a radiologist: they show what each scorer notices, no more.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from reward_service.text.chexpert import chexpert_labels, present_observations
from reward_service.text.clinical_errors import compare_reports
from reward_service.text.findings import FINDINGS, NEGATIVE, Mention, extract_findings
from reward_service.text.variants import flip_negation, paraphrase, split_report_sentences, swap_side

# A sentence may open a section ("Findings: ..."); rewrites keep the header where it was.
_SECTION_HEADER = re.compile(r"\s*(?:findings|impression)\s*:\s*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Variant:
    """One generated candidate: its ``kind``, its text and a note saying what was changed."""

    kind: str
    text: str
    note: str


@dataclass(frozen=True, slots=True)
class _Sentence:
    header: str  # "Findings: " or "", kept in place when the sentence is rewritten or dropped
    body: str
    mentions: tuple[tuple[str, Mention], ...]  # (finding, mention): only mentions that name a finding

    @property
    def stated(self) -> set[str]:
        return {finding for finding, m in self.mentions if m.present}


def _sentences(report: str) -> list[_Sentence]:
    sentences = []
    for sentence in split_report_sentences(report):
        header = _SECTION_HEADER.match(sentence)
        cut = header.end() if header else 0
        body = sentence[cut:]
        mentions = tuple(
            (m.concept.finding, m) for m in extract_findings(body).mentions if m.concept.finding is not None
        )
        sentences.append(_Sentence(sentence[:cut], body, mentions))
    return sentences


def _join(sentences: list[_Sentence], bodies: list[str | None]) -> str:
    """The report again, ``None`` bodies dropped (their section header moves to the next sentence)."""
    parts: list[str] = []
    pending = ""
    for sentence, body in zip(sentences, bodies, strict=True):
        if sentence.header:  # a section left with no sentence loses its header too
            pending = sentence.header
        if body is not None:
            parts.append(pending + body)
            pending = ""
    return " ".join(parts)


def _name(finding: str) -> str:
    return FINDINGS[finding].name


def _stated(sentences: list[_Sentence]) -> Counter[str]:
    return Counter(finding for sentence in sentences for finding in sentence.stated)


def _makes(report: str, text: str, category: str) -> bool:
    """Whether ``text`` against ``report`` has an error of ``category`` (a-f) for the clinical-error analysis."""
    return any(error.category == category for error in compare_reports(report, text))


def paraphrase_variant(report: str) -> Variant | None:
    """The report reworded by the synonym table; None when nothing changes, or a finding would.

    The table does not fit every report (a rewording the analysis no longer reads as the same finding),
    so a paraphrase is only offered where the analysis finds no clinically significant error in it and
    the same CheXpert observations are present.
    """
    text = paraphrase(report)
    if text == report or any(error.significant for error in compare_reports(report, text)):
        return None
    if present_observations(chexpert_labels(text)) != present_observations(chexpert_labels(report)):
        return None
    return Variant("paraphrase", text, "reworded by the synonym table")


def negation_flip(report: str) -> Variant | None:
    """A ruled-out finding now stated; None when no sentence's flip makes a false finding."""
    sentences = _sentences(report)
    stated = _stated(sentences)
    # Sentences that rule out only findings the report states nowhere: one finding alone first
    # ("No pneumothorax."), then lists ("No effusion or pneumothorax."), the most significant first.
    targets = []
    for index, sentence in enumerate(sentences):
        findings = {finding for finding, _ in sentence.mentions}
        if (
            findings
            and not findings & stated.keys()
            and all(m.status == NEGATIVE for _, m in sentence.mentions)
        ):
            weight = max(FINDINGS[f].weight for f in findings)
            targets.append((len(findings), -weight, index, findings))
    for _, _, index, _ in sorted(targets):
        body = sentences[index].body
        flipped = flip_negation(body)
        if flipped is None:
            continue
        bodies: list[str | None] = [s.body for s in sentences]
        bodies[index] = flipped
        text = _join(sentences, bodies)
        if _makes(report, text, "a"):
            return Variant("negation_flip", text, f"{body!r} now reads {flipped!r}")
    return None


def side_swap(report: str) -> Variant | None:
    """The side of a one-sided finding swapped wherever it is stated; None when no swap makes a location error."""
    sentences = _sentences(report)
    sides: dict[str, frozenset[str]] = {}
    for sentence in sentences:
        for finding, mention in sentence.mentions:
            if mention.present:
                sides[finding] = sides.get(finding, frozenset()) | mention.laterality
    # A finding seen on both sides stays on both sides after any swap.
    one_sided = sorted(
        (f for f, found in sides.items() if len(found) == 1), key=lambda f: -FINDINGS[f].weight
    )
    for finding in one_sided:
        bodies: list[str | None] = [
            (swap_side(s.body) or s.body) if finding in s.stated else s.body for s in sentences
        ]
        text = _join(sentences, bodies)
        if _makes(report, text, "c"):
            other = "right" if sides[finding] == {"left"} else "left"
            return Variant("side_swap", text, f"{_name(finding)} now on the {other} side")
    return None


def dropped_finding(report: str) -> Variant | None:
    """Every sentence stating the most significant finding removed; None when no removal makes a missed finding."""
    sentences = _sentences(report)
    stated = _stated(sentences)
    # The finding weighing most first; of equals, the one stated most often (what the report is about).
    for finding in sorted(sorted(stated), key=lambda f: (-FINDINGS[f].weight, -stated[f])):
        bodies = [None if finding in s.stated else s.body for s in sentences]
        if all(body is None for body in bodies):
            continue
        text = _join(sentences, bodies)
        if _makes(report, text, "b"):
            dropped = bodies.count(None)
            plural = "s" if dropped > 1 else ""
            return Variant(
                "dropped_finding", text, f"{dropped} sentence{plural} stating {_name(finding)} removed"
            )
    return None


#: The generators in the order the playground lists their variants.
GENERATORS: tuple[Callable[[str], Variant | None], ...] = (
    paraphrase_variant,
    negation_flip,
    side_swap,
    dropped_finding,
)


def make_variants(report: str) -> list[Variant]:
    """Every variant that applies to ``report``, in :data:`GENERATORS` order."""
    return [variant for generate in GENERATORS if (variant := generate(report)) is not None]

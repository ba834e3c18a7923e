"""Candidate variants of a real report, each making one kind of error, for the playground's examples.

Every variant is a plain text rewrite driven by the tables below and by the rule-based finding
extractor (:mod:`reward_service.text.findings`), which picks the sentence to change and checks that
the rewrite changed what it meant to:

* ``paraphrase``: the findings sentences in reverse order and the phrases of :data:`PARAPHRASES`
  reworded; no finding changes, so clinical scores should hold while n-gram overlap drops.
* ``negation_flip``: one sentence that rules a single finding out now states it (the most significant
  such finding that the report does not state anywhere), rewritten by :data:`AFFIRMATIONS`; a report
  with no such sentence has a stated finding ruled out instead (:data:`NEGATIONS`).
* ``side_swap``: "left" and "right" exchanged throughout, when a stated finding lies on one side only.
* ``dropped_finding``: every sentence that states the report's most significant finding removed.

A rewrite that does not apply to a report yields no variant of that kind. The rewrites are not
reviewed by a radiologist: they exist to show what each scorer notices, not as a benchmark.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from reward_service.text.findings import FINDINGS, NEGATIVE, POSITIVE, Mention, extract_findings
from reward_service.text.sentences import sentence_spans


@dataclass(frozen=True, slots=True)
class Rewrite:
    """A case-insensitive regex and its replacement (``re.sub`` syntax), applied to a sentence's body."""

    pattern: str
    replacement: str

    def apply(self, text: str) -> str:
        return re.sub(self.pattern, self.replacement, text, flags=re.IGNORECASE)


#: Rewrites that turn a sentence ruling a finding out into one stating it; the first that works wins.
AFFIRMATIONS: tuple[Rewrite, ...] = (
    Rewrite(r"^there (is|are) no (?:visible |definite |evidence of |radiographic evidence of )*", r"there \1 "),
    Rewrite(r"^no (?:visible |definite |evidence of |radiographic evidence of )*", ""),
    Rewrite(r"\b(is|are) not (seen|identified|visualized|present|demonstrated)\b", r"\1 \2"),
    Rewrite(r"\b(is|are) free of\b", r"\1 positive for"),
    Rewrite(r"\bnegative for\b", "positive for"),
    Rewrite(r"\bwithout (?:evidence of )?", "with "),
)

#: Rewrites that turn a sentence stating a finding into one ruling it out; the last always applies.
NEGATIONS: tuple[Rewrite, ...] = (
    Rewrite(r"^there (is|are) (?:an? )?", r"there \1 no "),
    Rewrite(
        r"\b(is|are) (?:mildly |moderately |severely |markedly )?(enlarged|elevated|present|seen|noted|identified)\b",
        r"\1 not \2",
    ),
    Rewrite(r"^(?:an? )?", "no "),
)

#: Rewordings that keep every finding, its side, grade and change (the paraphrase applies all of them).
PARAPHRASES: tuple[Rewrite, ...] = (
    Rewrite(r"\bwithin normal limits\b", "normal"),
    Rewrite(r"\bheart size is normal\b", "the heart is normal in size"),
    Rewrite(r"\bnormal heart size\b", "heart of normal size"),
    Rewrite(r"\bthe lungs are clear\b", "both lungs are clear"),
    Rewrite(r"\bair space\b", "airspace"),
    Rewrite(r"\bbony structures\b", "osseous structures"),
    Rewrite(r"\bacute bony abnormality\b", "acute osseous abnormality"),
    Rewrite(r"\bthere is no (?!evidence|radiographic|visible)", "there is no evidence of "),
    Rewrite(r"\bno acute cardiopulmonary (disease|process|abnormality)\b", r"no acute cardiopulmonary \1 is seen"),
)

#: Words exchanged by the side swap.
SIDES: dict[str, str] = {"left": "right", "right": "left"}

# "Findings:", "Impression:" and the like start a section; rewrites keep them in place.
_SECTION_LABEL = re.compile(r"(?:findings|impression|comparison|indication|history)\s*:\s*", re.IGNORECASE)
_IMPRESSION = re.compile(r"impression\s*:", re.IGNORECASE)
_SIDE_WORD = re.compile(r"\b(?:left|right)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Variant:
    """One generated candidate: its ``kind``, its text and a note saying what was changed."""

    kind: str
    text: str
    note: str


@dataclass(frozen=True, slots=True)
class _Sentence:
    start: int
    body_start: int  # after a section label such as "Findings: "
    end: int


def _sentences(report: str) -> list[_Sentence]:
    sentences = []
    for start, end in sentence_spans(report):
        label = _SECTION_LABEL.match(report, start, end)
        sentences.append(_Sentence(start, label.end() if label else start, end))
    return sentences


def _finding_mentions(text: str) -> list[Mention]:
    return [mention for mention in extract_findings(text).mentions if mention.concept.finding is not None]


def _with_case_of(original: str, rewritten: str) -> str:
    if original[:1].isupper() and rewritten:
        return rewritten[0].upper() + rewritten[1:]
    return rewritten


def _replace(report: str, edits: list[tuple[int, int, str]]) -> str:
    for start, end, text in sorted(edits, reverse=True):
        report = report[:start] + text + report[end:]
    return report


def _significance(finding: str) -> float:
    return FINDINGS[finding].weight


def _name(finding: str) -> str:
    return FINDINGS[finding].name


def paraphrase(report: str) -> Variant | None:
    """The findings sentences reversed and :data:`PARAPHRASES` applied; None when nothing changes."""
    sentences = _sentences(report)
    impression = next((i for i, s in enumerate(sentences) if _IMPRESSION.match(report, s.start)), len(sentences))
    bodies = [report[s.body_start : s.end] for s in sentences]
    order = list(range(len(sentences)))
    findings_end = sentences[impression].start if impression < len(sentences) else len(report)
    # Line breaks also end a "sentence": there reordering would scramble wrapped lines.
    if "\n" not in report[:findings_end].strip():
        order[:impression] = reversed(order[:impression])
    edits = []
    for position, source in zip(range(len(sentences)), order, strict=True):
        body = bodies[source]
        for rewrite in PARAPHRASES:
            body = rewrite.apply(body)
        target = sentences[position]
        edits.append((target.body_start, target.end, _with_case_of(bodies[source], body)))
    text = _replace(report, edits)
    if text == report:
        return None
    reordered = "findings sentences in reverse order; " if order[:impression] != sorted(order[:impression]) else ""
    return Variant("paraphrase", text, f"{reordered}phrases reworded")


def negation_flip(report: str) -> Variant | None:
    """A ruled-out finding stated (or, failing that, a stated one ruled out); None when neither works."""
    sentences = _sentences(report)
    mentions = [_finding_mentions(report[s.body_start : s.end]) for s in sentences]
    # How many sentences state each finding: a finding stated twice stays stated when one is negated.
    stated = Counter(finding for found in mentions for finding in {m.concept.finding for m in found if m.present})
    attempts: list[tuple[_Sentence, str, tuple[Rewrite, ...], int]] = []
    for sentence, found in zip(sentences, mentions, strict=True):
        # only sentences about one finding, all of whose mentions agree
        if len({m.concept.finding for m in found}) != 1 or len({m.status for m in found}) != 1:
            continue
        finding, status = found[0].concept.finding, found[0].status
        assert finding is not None
        if status == NEGATIVE and not stated[finding]:
            attempts.append((sentence, finding, AFFIRMATIONS, POSITIVE))
        elif status == POSITIVE and stated[finding] == 1:
            attempts.append((sentence, finding, NEGATIONS, NEGATIVE))
    attempts.sort(key=lambda attempt: (attempt[3] != POSITIVE, -_significance(attempt[1])))
    for sentence, finding, rewrites, wanted in attempts:
        body = report[sentence.body_start : sentence.end]
        # Rewrites see a lower-case first word ("No X" -> "X"), unless it is an abbreviation ("PA").
        plain = body if body[1:2].isupper() else body[:1].lower() + body[1:]
        for rewrite in rewrites:
            flipped = _with_case_of(body, rewrite.apply(plain))
            if flipped == body:
                continue
            statuses = {m.status for m in _finding_mentions(flipped) if m.concept.finding == finding}
            if statuses == {wanted}:
                text = _replace(report, [(sentence.body_start, sentence.end, flipped)])
                return Variant("negation_flip", text, f"{body!r} now reads {flipped!r}")
    return None


def side_swap(report: str) -> Variant | None:
    """"left" and "right" exchanged, when a stated finding lies on one side; None otherwise."""
    sides: dict[str, frozenset[str]] = {}
    for mention in _finding_mentions(report):
        if mention.present:
            finding = mention.concept.finding
            sides[finding] = sides.get(finding, frozenset()) | mention.laterality  # type: ignore[index]
    # A finding seen on both sides somewhere in the report stays on both sides after the swap.
    one_sided = [finding for finding, found in sides.items() if len(found) == 1]
    if not one_sided:
        return None

    def swap(match: re.Match[str]) -> str:
        return _with_case_of(match.group(), SIDES[match.group().lower()])

    text, count = _SIDE_WORD.subn(swap, report)
    finding = max(sorted(one_sided), key=_significance)
    words = "word" if count == 1 else "words"
    return Variant("side_swap", text, f"left and right exchanged ({count} {words}): {_name(finding)} on the other side")


def dropped_finding(report: str) -> Variant | None:
    """Every sentence stating the most significant stated finding removed; None when none is stated."""
    sentences = _sentences(report)
    stated: dict[int, set[str]] = {
        index: {m.concept.finding for m in _finding_mentions(report[s.body_start : s.end]) if m.present}  # type: ignore[misc]
        for index, s in enumerate(sentences)
    }
    findings = set().union(*stated.values()) if stated else set()
    if not findings:
        return None
    # The most significant finding; of equals, the one stated most often (it is what the report is about).
    finding = max(
        sorted(findings),
        key=lambda f: (_significance(f), sum(f in found for found in stated.values())),
    )
    dropped = [index for index, found in stated.items() if finding in found]
    if len(dropped) == len(sentences):
        return None
    edits = []
    for index in dropped:
        sentence = sentences[index]
        # Keep a section label with the sentence that now opens the section.
        following = sentences[index + 1].start if index + 1 < len(sentences) else len(report)
        edits.append((sentence.body_start, following, ""))
    text = re.sub(r"\s+$", "", _replace(report, edits))
    text = re.sub(r"(?:\s*(?:findings|impression)\s*:)+$", "", text, flags=re.IGNORECASE)
    plural = "s" if len(dropped) > 1 else ""
    return Variant("dropped_finding", text, f"{len(dropped)} sentence{plural} stating {_name(finding)} removed")


#: The generators in the order the playground lists their variants.
GENERATORS = (paraphrase, negation_flip, side_swap, dropped_finding)


def make_variants(report: str) -> list[Variant]:
    """Every variant that applies to ``report``, in :data:`GENERATORS` order."""
    return [variant for generate in GENERATORS if (variant := generate(report)) is not None]

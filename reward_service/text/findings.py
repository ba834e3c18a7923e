"""Rule-based finding extraction from chest X-ray reports (NegBio / CheXpert style).

The vocabulary and the context rules are data (``reward_service/rules/``, loaded by
:mod:`reward_service.text.rules`). One scan finds every phrase that names a finding ("effusion",
"cardiomegaly", "the heart"), another every cue word that changes its meaning ("no", "may", "left",
"small", "unchanged", "but"); a third pass reads measurements ("2.5 x 1.8 cm", "3 cm above the
carina"). Each mention then gets, from the cues in its sentence:

* a **status**: positive (1), negative (0) or uncertain (-1), decided in CheXpert's order:
  pre-negation uncertainty ("cannot exclude X") first, then negation ("no X", "X is not seen"), then
  uncertainty ("possible X", "X versus Y"), else positive. Forward cues reach to the end of their
  clause (a clause ends at the sentence end or at a terminate cue: "but", "however", ";"); backward
  cues reach a few tokens back, and are shared along a list joined by "and" / "or" / commas
  ("effusion and pneumothorax have resolved").
* **side** (left / right / both), **zone** (upper / middle / lower), **severity** (levels of the
  ordinal scale), **change** (new, worse, better, same) and **measurements**: each such cue belongs
  to the mention it modifies, the next mention in its clause ("small left effusion") unless it
  follows a preposition ("opacity in the left base"), when it belongs to the previous one.

Anatomic *descriptor* mentions ("the heart", "mediastinum") only count when the clause qualifies
them ("normal" makes them negative, "enlarged" positive). A device tip measured outside its usual
position ("ET tube 1 cm above the carina") adds a malpositioned-device mention.

Deliberate deviations from the CheXpert labeler, chosen for use as a reward: "no new X" is a
negation (CheXpert: uncertain); "stable cardiomediastinal silhouette" alone is no mention;
"densities" count as lung opacity; an unqualified "the heart" is not cardiomegaly; "X likely" after
a finding does not hedge it ("opacities, likely atelectasis").

:mod:`reward_service.text.chexpert` turns mentions into the 14 CheXpert labels and
:mod:`reward_service.text.clinical_errors` compares the findings of two reports.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate, compress
from typing import NamedTuple

from reward_service.text.measurements import Measurement, find_measurements
from reward_service.text.rules import (
    ABNORMAL,
    BETTER,
    CHANGE_BITS,
    COMPARISON,
    CONJ_UNC,
    LEFT,
    LOWER,
    MIDDLE,
    NEG,
    NEW,
    NORMAL,
    OTHER,
    POST_NEG,
    POST_PRE_UNC,
    POST_UNC,
    PRE_UNC,
    RIGHT,
    RULES,
    SAME,
    TERM,
    UNC,
    UPPER,
    WORSE,
    Concept,
    Finding,
)
from reward_service.text.scanner import PhraseScanner

__all__ = [
    "CONCEPTS",
    "FINDINGS",
    "NEGATIVE",
    "OTHER",
    "POSITIVE",
    "STATUS_RANK",
    "UNCERTAIN",
    "Concept",
    "Finding",
    "Mention",
    "ReportFindings",
    "extract_findings",
    "normalize_report",
]

POSITIVE = 1
NEGATIVE = 0
UNCERTAIN = -1
#: Several mentions of one thing resolve positive > uncertain > negative (CheXpert's aggregation).
STATUS_RANK = {POSITIVE: 2, UNCERTAIN: 1, NEGATIVE: 0}

#: Every finding the error scorer compares, with its clinical weight (rules/findings.yaml).
FINDINGS: dict[str, Finding] = RULES.findings
#: The phrase groups, in the order they are tried (rules/findings.yaml).
CONCEPTS: tuple[Concept, ...] = RULES.concepts

_SIDE = LEFT | RIGHT
_ZONE = UPPER | MIDDLE | LOWER
_SEVERITY = RULES.severity_mask
_CHANGE = NEW | WORSE | BETTER | SAME
_ATTRIBUTE = _SIDE | _ZONE | _SEVERITY | _CHANGE
_QUALIFIER = NORMAL | ABNORMAL
_SCOPES = RULES.scopes

_MENTIONS = PhraseScanner([concept.pattern for concept in CONCEPTS])
_CUE_SCANNER = PhraseScanner([pattern for pattern, _ in RULES.cues])
_CUE_ROLES = [roles for _, roles in RULES.cues]
_MALPOSITION = next(concept for concept in CONCEPTS if concept.finding == "device_malposition")
_DEVICE_POSITIONS = RULES.attributes.device_positions

# An attribute word right after one of these modifies the mention before it ("opacity in the left base").
_AFTER_PREPOSITION = re.compile(
    r"\b(?:in|at|on|of|within|involving|throughout|over|along|from|overlying|measuring)\s+(?:the\s+)?$"
)
# Text between two mentions that makes them one list ("effusion and pneumothorax have resolved").
_LIST_JOIN = re.compile(r"[\s,]*(?:(?:and|or|and/or|nor)\b)?[\s,]*(?:[\w-]+\s+){0,3}$")
# Words that say what a description is: "opacity consistent with atelectasis".
_EXPLANATION = re.compile(rf"(?<![\w-])(?:{RULES.explanation_cues})(?![\w-])")
# At most two words, none a preposition or conjunction, between an adjective and the noun it modifies.
_MODIFIER_GAP = re.compile(r"\s+(?:(?!(?:with|and|or|of|in|to|for|at|on|by|from)\b)[\w-]+\s+){0,2}")


class Mention(NamedTuple):
    """One finding mentioned in a report, with everything the rules read from its sentence.

    ``start`` / ``end`` are character offsets of the mention (with a descriptor's qualifier) in the
    report as given, whatever :func:`normalize_report` changed.
    """

    concept: Concept
    status: int
    laterality: frozenset[str]
    severity: frozenset[float]
    change: frozenset[str]
    start: int
    end: int
    sentence: str
    zone: frozenset[str] = frozenset()
    #: Sizes and distances, with offsets in the report as given.
    measurements: tuple[Measurement, ...] = ()
    #: The attribute cues that modify it: (start, end, role bits), offsets in the report as given.
    modifiers: tuple[tuple[int, int, int], ...] = ()
    #: A description that a later finding of its sentence explains ("opacities, likely atelectasis").
    explained: bool = False

    def attribute_spans(self, roles: int) -> list[tuple[int, int]]:
        """Spans of the cues that set any of ``roles`` (e.g. the side words)."""
        return [(start, end) for start, end, bits in self.modifiers if bits & roles]

    @property
    def present(self) -> bool:
        """Positive or uncertain: the report says, or does not rule out, that the finding is there."""
        return self.status != NEGATIVE


class ReportFindings(NamedTuple):
    """Every mention in one report, and the first sentence that compares with a prior study (a named
    tuple: a frozen dataclass sets each field through ``object.__setattr__``, dearer)."""

    text: str
    mentions: tuple[Mention, ...]
    #: The first sentence that refers to a prior study or a change, or None when none does.
    comparison_sentence: str | None
    #: Character span of that sentence in the report.
    comparison_span: tuple[int, int] | None = None

    @property
    def compares_with_prior(self) -> bool:
        return self.comparison_sentence is not None


_ABBREVIATIONS = (("vs.", "vs "), ("e.g.", "eg  "), ("i.e.", "ie  "))
# Whitespace that is no paragraph break: reports wrapped at a fixed width (MIMIC-CXR, CheXpert Plus)
# break lines inside sentences, and a negation must reach across them.
_UNUSUAL_WHITESPACE = re.compile(r"\s\s|[^\S ]")
_WHITESPACE_RUN = re.compile(r"\s+")
_PARAGRAPH_BREAK = re.compile(r"\s*\n\s*\n\s*")


class NormalizedReport(NamedTuple):
    """A report as the rules read it, and where each of its characters came from."""

    text: str
    #: Offset in the original report of each character of ``text`` (None: the same offsets).
    origin: tuple[int, ...] | None

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        if self.origin is None:
            return start, end
        return self.origin[start], self.origin[end - 1] + 1 if end > start else self.origin[start]


def normalize_report(text: str) -> str:
    """Lower-cased report, whitespace runs as one space, blank lines as one line break, and "vs.",
    "e.g.", "i.e." kept inside their sentence."""
    return _normalize(text).text


def _normalize(text: str) -> NormalizedReport:
    lowered = text.lower()
    if len(lowered) != len(text):  # a few letters ("İ") lower-case to two characters
        lowered = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    if "." in lowered:
        for abbreviation, replacement in _ABBREVIATIONS:
            if abbreviation in lowered:
                lowered = lowered.replace(abbreviation, replacement)
    if lowered.isascii():  # substring tests are much cheaper than a regex over the whole text
        plain = not ("  " in lowered or "\n" in lowered or "\t" in lowered or "\r" in lowered)
        plain = plain and "\x0b" not in lowered and "\x0c" not in lowered
    else:
        plain = not _UNUSUAL_WHITESPACE.search(lowered)
    if plain:
        return NormalizedReport(lowered, None)
    pieces: list[str] = []
    origin: list[int] = []
    position = 0
    for match in _WHITESPACE_RUN.finditer(lowered):
        start, end = match.span()
        pieces.append(lowered[position:start])
        origin.extend(range(position, start))
        run = match.group()
        replacement = "\n" if _PARAGRAPH_BREAK.fullmatch(run) else " "
        pieces.append(replacement)
        origin.append(start)
        position = end
    pieces.append(lowered[position:])
    origin.extend(range(position, len(lowered)))
    origin.append(len(lowered))  # one past the end
    return NormalizedReport("".join(pieces), tuple(origin))


# Words (phrases start at a letter that follows no letter, digit or hyphen) and punctuation: sentence
# ends as :func:`reward_service.text.sentences.split_sentences` splits ("." "!" "?" before whitespace,
# line breaks), ";" and ":" ending a clause, "?" marking uncertainty.
_WORDS = re.compile(r"[\w-]+")
_SENTENCE_ENDS = re.compile(r"[.!?](?=\s)|\n")
_CLAUSE_PUNCTUATION = re.compile(r"[;:?]")


@dataclass(slots=True)
class _Span:
    """A mention being labelled; ``claim_*`` include a descriptor's qualifier ("heart ... enlarged")."""

    concept: Concept
    start: int
    end: int
    claim_start: int
    claim_end: int
    qualifier: int  # roles of a descriptor's qualifier
    clause_start: int
    clause_end: int
    head: int  # forward cues count up to here: the mention, or a descriptor's qualifier after it


_PAST_THE_END = 1 << 60


class _Layout(NamedTuple):
    word_starts: list[int]  # every word, for token distances
    letter_starts: list[int]  # words that start with a letter: where phrases are tried
    sentence_ends: list[int]  # plus a sentinel past the end
    punctuation: list[tuple[int, int, int]]

    def tokens_between(self, start: int, end: int) -> int:
        """Words that start in ``[start, end)``."""
        return bisect_left(self.word_starts, end) - bisect_left(self.word_starts, start)

    def after_tokens(self, position: int, tokens: int) -> int:
        """The offset of the word ``tokens`` words after ``position`` (the text end if there is none)."""
        index = bisect_left(self.word_starts, position) + tokens
        return self.word_starts[index] if index < len(self.word_starts) else _PAST_THE_END


@lru_cache(maxsize=8192)
def extract_findings(text: str) -> ReportFindings:
    """All finding mentions of a report with status, side, zone, severity, change and measurements.

    Cached by text: in RL every candidate of a group shares one reference, so references are
    extracted once per group. Below that, sentences are remembered too (:class:`_SentenceMemo`):
    reports of one group, and of one model, repeat most of their sentences. Every rule stays inside
    its sentence, so a report read whole and read a sentence at a time give the same mentions.
    """
    normalized = _normalize(text)
    text = normalized.text
    sentence_ends = list(map(re.Match.end, _SENTENCE_ENDS.finditer(text)))
    starts = [0, *sentence_ends]
    if sentence_ends and sentence_ends[-1] == len(text):
        starts.pop()  # no empty sentence after the last end
    sentences = [text[start:end] for start, end in zip(starts, [*sentence_ends, len(text)], strict=False)]
    parts = _SENTENCES.parts(sentences, starts)
    if parts is None:
        sentence_ends.append(len(text) + 1)
        analysis = _analyse(text, sentence_ends)
        _SENTENCES.remember(sentences, starts, analysis)
        parts = [(0, analysis)]
    mentions: list[Mention] = []
    comparison: tuple[str, int] | None = None
    unchanged = normalized.origin is None
    for index, (offset, part) in enumerate(parts):
        if unchanged and offset and part.mentions:
            mentions.extend(_SENTENCES.placed(sentences[index], offset, part.mentions))
        else:
            mentions.extend(_placed(part.mentions, offset, normalized))
        if comparison is None and part.comparison is not None:
            comparison = (part.comparison[0], part.comparison[1] + offset)
    if comparison is None:
        return ReportFindings(text, tuple(mentions), None, None)
    sentence, start = comparison
    return ReportFindings(
        text, tuple(mentions), sentence, normalized.original_span(start, start + len(sentence))
    )


class _Analysis(NamedTuple):
    """What the rules read in a normalised text, offsets in that text."""

    mentions: tuple[Mention, ...]
    #: The first sentence that compares with a prior study, and where it starts.
    comparison: tuple[str, int] | None
    #: The indexes of every sentence that compares.
    comparing: frozenset[int]


class _SentenceMemo:
    """What the rules read in single sentences, by sentence, and the sentences seen once.

    A report with at least a quarter of its sentences analysed before is read a sentence at a time (the
    others analysed alone, then remembered). Any other report is read whole, which costs less than
    reading its sentences one by one, and its sentences seen once before are cut out of that reading
    and remembered. The mentions of a sentence placed at an offset are kept too (reports share sentence
    orders). Each store is emptied when it outgrows ``limit``.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.analyses: dict[str, _Analysis] = {}
        self.seen: set[str] = set()
        self.moved: dict[tuple[int, str], tuple[Mention, ...]] = {}

    def parts(self, sentences: list[str], starts: list[int]) -> list[tuple[int, _Analysis]] | None:
        """``(offset, analysis)`` of each sentence, or None when the report is better read whole."""
        analyses = self.analyses
        if 4 * sum(map(analyses.__contains__, sentences)) < len(sentences):
            return None
        if len(analyses) > self.limit:
            analyses.clear()
        parts = []
        for start, sentence in zip(starts, sentences, strict=True):
            analysis = analyses.get(sentence)
            if analysis is None:
                analysis = analyses[sentence] = _analyse(sentence, [len(sentence) + 1])
            parts.append((start, analysis))
        return parts

    def remember(self, sentences: list[str], starts: list[int], analysis: _Analysis) -> None:
        """Keep the sentences of a report read whole: those seen before, cut out of ``analysis``."""
        seen, analyses = self.seen, self.analyses
        again = [index for index, sentence in enumerate(sentences) if sentence in seen]
        if len(seen) > self.limit:
            seen.clear()
        seen.update(sentences)
        if not again:
            return
        if len(analyses) > self.limit:
            analyses.clear()
        own: dict[int, list[Mention]] = {index: [] for index in again}
        for mention in analysis.mentions:
            index = bisect_right(starts, mention.start) - 1
            if index in own:
                own[index].append(mention)
        for index in again:
            sentence = sentences[index]
            comparison = None
            if index in analysis.comparing:
                stripped = sentence.strip()
                comparison = (stripped, sentence.index(stripped))
            analyses[sentence] = _Analysis(
                _placed(tuple(own[index]), -starts[index], NormalizedReport(sentence, None)),
                comparison,
                _FIRST if comparison is not None else _NONE,
            )

    def placed(self, sentence: str, offset: int, mentions: tuple[Mention, ...]) -> tuple[Mention, ...]:
        """The ``mentions`` of ``sentence`` placed ``offset`` characters into a report that normalising
        left as it was: reports share sentence orders, so most placings were made before."""
        key = (offset, sentence)
        found = self.moved.get(key)
        if found is None:
            if len(self.moved) > self.limit:
                self.moved.clear()
            found = self.moved[key] = _placed(mentions, offset, _AS_GIVEN)
        return found

    def cache_clear(self) -> None:
        self.analyses.clear()
        self.seen.clear()
        self.moved.clear()


_FIRST: frozenset[int] = frozenset({0})
_AS_GIVEN = NormalizedReport("", None)  # offsets that normalising did not move
_NONE: frozenset[int] = frozenset()
_SENTENCES = _SentenceMemo(limit=50_000)


def _placed(mentions: tuple[Mention, ...], offset: int, normalized: NormalizedReport) -> tuple[Mention, ...]:
    """``mentions`` found ``offset`` characters into the normalised report, with offsets in the report as given."""
    if not mentions or (offset == 0 and normalized.origin is None):
        return mentions
    if normalized.origin is None:

        def span(start: int, end: int) -> tuple[int, int]:
            return start + offset, end + offset
    else:
        original_span = normalized.original_span

        def span(start: int, end: int) -> tuple[int, int]:
            return original_span(start + offset, end + offset)

    placed = []
    for mention in mentions:
        start, end = span(mention.start, mention.end)
        measurements = mention.measurements
        if measurements:
            measurements = tuple(
                measurement._replace(start=first, end=last)
                for measurement in measurements
                for first, last in (span(measurement.start, measurement.end),)
            )
        modifiers = mention.modifiers
        if modifiers:
            modifiers = tuple((*span(first, last), roles) for first, last, roles in modifiers)
        placed.append(
            Mention(
                mention.concept,
                mention.status,
                mention.laterality,
                mention.severity,
                mention.change,
                start,
                end,
                mention.sentence,
                mention.zone,
                measurements,
                modifiers,
                mention.explained,
            )
        )
    return tuple(placed)


def _analyse(text: str, sentence_ends: list[int]) -> _Analysis:
    """The mentions of normalised ``text`` (its sentence ends given, the last past its end)."""
    word_starts, letter_starts = _word_starts(text)
    found = _MENTIONS.scan(text, letter_starts, sentence_ends)
    cues = [
        (start, end, _CUE_ROLES[index])
        for start, end, index in _CUE_SCANNER.scan(text, letter_starts, sentence_ends)
    ]
    # Punctuation cues never compare, so the comparison is read before they join the cues.
    comparing_cues = [start for start, _, roles in cues if roles & (COMPARISON | _CHANGE)]
    comparison = None
    comparing = _NONE
    if comparing_cues:
        comparing = frozenset(bisect_right(sentence_ends, start) for start in comparing_cues)
        index = bisect_right(sentence_ends, comparing_cues[0])
        sentence_start = sentence_ends[index - 1] if index else 0
        comparison_sentence = text[sentence_start : sentence_ends[index]].strip()
        comparison = (comparison_sentence, text.index(comparison_sentence, sentence_start))
    if not found:  # most sentences name no finding: nothing more to read
        return _Analysis((), comparison, comparing)
    layout = _layout(text, sentence_ends, word_starts, letter_starts)
    if layout.punctuation:
        cues = sorted(cues + layout.punctuation)
    sentences: dict[int, str] = {}

    def sentence_of(position: int) -> str:
        index = bisect_right(sentence_ends, position)
        sentence = sentences.get(index)
        if sentence is None:  # one copy per sentence, however many mentions it holds
            start = sentence_ends[index - 1] if index else 0
            sentence = sentences[index] = text[start : sentence_ends[index]].strip()
        return sentence

    spans = _spans(text, layout, found, cues)
    if not spans:
        return _Analysis((), comparison, comparing)
    cue_starts = [start for start, _, _ in cues]
    backward = _backward_roles(text, layout, spans, cues, cue_starts)
    attributes = [0] * len(spans)
    modifiers: list[list[tuple[int, int, int]]] = [[] for _ in spans]
    starts = [span.start for span in spans]
    for cue_start, cue_end, roles in cues:
        if roles & _ATTRIBUTE:
            owner = _attribute_owner(text, layout, spans, starts, cue_start, cue_end)
            if owner is not None:
                attributes[owner] |= roles
                modifiers[owner].append((cue_start, cue_end, roles & _ATTRIBUTE))
    measured: list[list[Measurement]] = [[] for _ in spans]
    for measurement in _sentence_measurements(text, sentence_ends):
        owner = _attribute_owner(text, layout, spans, starts, measurement.start, measurement.end)
        if owner is not None:
            measured[owner].append(measurement)
    mentions = []
    statuses = _statuses(spans, cues, cue_starts, backward)
    explained = _explained(text, spans, statuses, sentence_ends)
    for span, status, found, measurements, modified_by, is_explained in zip(
        spans, statuses, attributes, measured, modifiers, explained, strict=True
    ):
        mention = Mention(
            span.concept,
            status,
            _SIDE_NAMES[found & _SIDE],
            _severity(found & _SEVERITY),
            _change(found & _CHANGE),
            span.claim_start,
            span.claim_end,
            sentence_of(span.start),
            _zone(found & _ZONE),
            tuple(measurements),
            tuple(modified_by),
            is_explained,
        )
        mentions.append(mention)
        if measurements:
            malposition = _malposition(mention)
            if malposition is not None:
                mentions.append(malposition)
    return _Analysis(tuple(mentions), comparison, comparing)


def _sentence_measurements(text: str, sentence_ends: list[int]) -> list[Measurement]:
    """The measurements of ``text``, none reaching across a sentence end ("3\ncm" is no size)."""
    found = find_measurements(text)
    if any(bisect_right(sentence_ends, m.start) != bisect_right(sentence_ends, m.end - 1) for m in found):
        found = [
            measurement._replace(start=measurement.start + start, end=measurement.end + start)
            for start, end in zip([0, *sentence_ends], sentence_ends, strict=False)
            for measurement in find_measurements(text[start:end])
        ]
    return found


def _explained(text: str, spans: list[_Span], statuses: list[int], sentence_ends: list[int]) -> list[bool]:
    """Which descriptions a later finding of the same sentence explains (``explained_by`` in the rules)."""
    explained = [False] * len(spans)
    for index, span in enumerate(spans):
        if not span.concept.explained_by or statuses[index] == NEGATIVE:
            continue
        sentence_end = sentence_ends[bisect_right(sentence_ends, span.start)]
        for later in range(index + 1, len(spans)):
            other = spans[later]
            if other.start >= sentence_end:
                break
            if (
                other.concept.finding in span.concept.explained_by
                and statuses[later] != NEGATIVE
                and (statuses[later] == UNCERTAIN or _EXPLANATION.search(text, span.end, other.start))
            ):
                explained[index] = True
                break
    return explained


def _malposition(mention: Mention) -> Mention | None:
    """A malpositioned-device mention when a present device's tip lies outside its usual range."""
    position = _DEVICE_POSITIONS.get(mention.concept.finding or "")
    if position is None or not mention.present:
        return None
    for measurement in mention.measurements:
        if measurement.landmark != position.landmark or measurement.direction is None:
            continue
        signed = measurement.size_mm if measurement.direction == position.direction else -measurement.size_mm
        if not position.min_mm <= signed <= position.max_mm:
            return mention._replace(concept=_MALPOSITION, status=POSITIVE, measurements=(measurement,))
    return None


# A word character as ``_WORDS`` has it, for the ASCII texts nearly every report is: every other
# character becomes a space.
_WORD_MASK = str.maketrans({code: " " for code in range(128) if not _WORDS.fullmatch(chr(code))})
_PLUS_ONE = (1).__add__
_FROM_A = "a".__le__


def _word_starts(text: str) -> tuple[list[int], list[int]]:
    """Where each word of lower-cased ``text`` starts, and each word that starts with a letter.

    An ASCII text is masked (word characters kept, the others made spaces) and split at the spaces,
    all in C: a piece's start is the sum of the earlier pieces' lengths plus one per space, and the
    non-empty pieces are the words. About four times cheaper than iterating ``_WORDS`` matches.
    """
    if not text.isascii():
        word_starts = [match.start() for match in _WORDS.finditer(text)]
        return word_starts, [start for start in word_starts if "a" <= text[start] <= "z"]
    pieces = text.translate(_WORD_MASK).split(" ")
    starts = list(accumulate(map(_PLUS_ONE, map(len, pieces)), initial=0))
    # A word of the masked text starts with a letter (a-z) exactly when it sorts from "a" on: the
    # other word characters (digits, "_", "-", capitals) sort before "a", and none after "z".
    return list(compress(starts, pieces)), list(compress(starts, map(_FROM_A, pieces)))


def _layout(text: str, sentence_ends: list[int], word_starts: list[int], letter_starts: list[int]) -> _Layout:
    """Punctuation cues of ``text``, with its words and sentence ends (the last past its end)."""
    punctuation = [
        (match.start(), match.end(), TERM if match.group() != "?" else UNC | POST_UNC)
        for match in _CLAUSE_PUNCTUATION.finditer(text)
    ]
    return _Layout(word_starts, letter_starts, sentence_ends, punctuation)


def _spans(
    text: str,
    layout: _Layout,
    found: list[tuple[int, int, int]],
    cues: list[tuple[int, int, int]],
) -> list[_Span]:
    """The mentions with their clauses; descriptors only where their clause qualifies them."""
    sentence_ends = layout.sentence_ends
    # Clauses end at sentence ends and at terminator cues.
    breaks = sorted(sentence_ends + [start for start, _, roles in cues if roles & TERM])
    break_ends = sorted(sentence_ends + [end for _, end, roles in cues if roles & TERM])
    cue_starts = [start for start, _, _ in cues]
    finding_starts = [start for start, _, index in found if not CONCEPTS[index].descriptor]
    spans = []
    for start, end, index in found:
        concept = CONCEPTS[index]
        if concept.key == "unmention":
            continue
        before = bisect_right(break_ends, start)
        clause_start = break_ends[before - 1] if before else 0
        clause_end = breaks[bisect_right(breaks, start)]
        if not concept.descriptor:
            spans.append(_Span(concept, start, end, start, end, 0, clause_start, clause_end, start))
            continue
        # The nearest qualifier in the clause wins.
        best = None
        for cue_start, cue_end, roles in cues[
            bisect_left(cue_starts, clause_start) : bisect_right(cue_starts, clause_end)
        ]:
            if not roles & _QUALIFIER or cue_end > clause_end:
                continue
            if cue_end <= start and layout.tokens_between(cue_end, start) <= _SCOPES.qualifier_before:
                distance = start - cue_end
            elif end <= cue_start and layout.tokens_between(end, cue_start) <= _SCOPES.qualifier_after:
                # "... mediastinum, secondary to a large hernia": the word modifies the next finding.
                following = bisect_left(finding_starts, cue_end)
                if (
                    following < len(finding_starts)
                    and finding_starts[following] < clause_end
                    and _MODIFIER_GAP.fullmatch(text, cue_end, finding_starts[following])
                ):
                    continue
                distance = cue_start - end
            else:
                continue
            if best is None or distance < best[0]:
                best = (distance, cue_start, cue_end, roles)
        if best is not None:
            _, cue_start, cue_end, roles = best
            head = cue_start if cue_start > start else start
            spans.append(
                _Span(
                    concept,
                    start,
                    end,
                    min(start, cue_start),
                    max(end, cue_end),
                    roles,
                    clause_start,
                    clause_end,
                    head,
                )
            )
    return spans


def _backward_roles(
    text: str, layout: _Layout, spans: list[_Span], cues: list[tuple[int, int, int]], cue_starts: list[int]
) -> list[int]:
    """Roles of the cues after each mention, up to the next one, shared along "X and Y" lists."""
    backward = [0] * len(spans)
    for index in range(len(spans) - 1, -1, -1):
        span = spans[index]
        head = span.claim_end
        limit = min(span.clause_end, layout.after_tokens(head, _SCOPES.backward))
        following = spans[index + 1] if index + 1 < len(spans) else None
        if following is not None and following.start < limit:
            limit = following.start
        roles = 0
        for cue_index in range(bisect_left(cue_starts, head), bisect_left(cue_starts, limit)):
            roles |= cues[cue_index][2]
        if (
            following is not None
            and following.clause_start == span.clause_start
            and _LIST_JOIN.match(text, head, following.start)
        ):
            roles |= backward[index + 1] & (POST_NEG | POST_PRE_UNC | POST_UNC)
        backward[index] = roles
    return backward


def _statuses(
    spans: list[_Span], cues: list[tuple[int, int, int]], cue_starts: list[int], backward: list[int]
) -> list[int]:
    """Each mention's status from the cues before it in its clause and the backward cues after it."""
    statuses = []
    previous_end = previous_clause = -1
    forward = 0  # roles of the cues from the clause start up to the current mention
    clause_cue = next_cue = 0
    for span, after in zip(spans, backward, strict=True):
        if previous_clause != span.clause_start:
            forward = 0
            clause_cue = next_cue = bisect_left(cue_starts, span.clause_start)
        adjacent_from = previous_end if previous_clause == span.clause_start else span.clause_start
        stop = bisect_left(cue_starts, span.head)
        while next_cue < stop:
            forward |= cues[next_cue][2]
            next_cue += 1
        before = forward
        if stop < next_cue:  # the previous descriptor's qualifier lies beyond this mention
            before = 0
            for cue_index in range(clause_cue, stop):
                before |= cues[cue_index][2]
        adjacent = 0  # cues since the previous mention: "X or Y"
        for cue_index in range(bisect_left(cue_starts, adjacent_from), stop):
            adjacent |= cues[cue_index][2]
        previous_end, previous_clause = span.claim_end, span.clause_start
        statuses.append(_status(span.concept, span.qualifier, before, adjacent, after))
    return statuses


def _status(concept: Concept, qualifier: int, forward: int, adjacent: int, backward: int) -> int:
    if qualifier & NORMAL:
        return NEGATIVE
    if forward & PRE_UNC or backward & POST_PRE_UNC:
        return UNCERTAIN
    if forward & NEG or backward & POST_NEG or (concept.hedged and backward & NORMAL):
        return NEGATIVE
    if (
        concept.hedged
        or qualifier & UNC
        or forward & UNC
        or adjacent & CONJ_UNC
        or backward & (POST_UNC | CONJ_UNC)
    ):
        return UNCERTAIN
    return POSITIVE


def _attribute_owner(
    text: str, layout: _Layout, spans: list[_Span], starts: list[int], start: int, end: int
) -> int | None:
    """The mention an attribute (side, severity, change, measurement) at ``start:end`` belongs to."""
    after = bisect_right(starts, start)
    before = after - 1
    if before >= 0 and start < spans[before].claim_end:
        return before  # the word is part of the mention's own phrase or its qualifier
    forward = (
        after
        if after < len(spans)
        and spans[after].clause_start <= start
        and layout.tokens_between(end, spans[after].start) <= _SCOPES.attach_forward
        else None
    )
    backward = (
        before
        if before >= 0
        and spans[before].clause_end >= end
        and layout.tokens_between(spans[before].claim_end, start) <= _SCOPES.attach_backward
        else None
    )
    if backward is not None and (
        forward is None
        or _AFTER_PREPOSITION.search(text, max(0, start - 20), start)
        or "," in text[end : spans[forward].start]  # "opacity at the left base, with effusion"
    ):
        return backward
    return forward


_SIDE_NAMES = {
    0: frozenset(),
    LEFT: frozenset({"left"}),
    RIGHT: frozenset({"right"}),
    LEFT | RIGHT: frozenset({"left", "right"}),
}
_ZONE_NAMES = ((UPPER, "upper"), (MIDDLE, "middle"), (LOWER, "lower"))


@lru_cache(maxsize=256)
def _severity(roles: int) -> frozenset[float]:
    return frozenset(level for bit, level in RULES.severity_bits.items() if roles & bit)


@lru_cache(maxsize=64)
def _change(roles: int) -> frozenset[str]:
    return frozenset(name for name, bit in CHANGE_BITS.items() if roles & bit)


@lru_cache(maxsize=16)
def _zone(roles: int) -> frozenset[str]:
    return frozenset(name for bit, name in _ZONE_NAMES if roles & bit)

"""Report guard (``report_guard``): is the candidate an English chest X-ray report, and a healthy one?

Policies under RL pressure find outputs that the other metrics still pay for: nothing at all (no
finding, so no clinical error against a normal study), gibberish or another language (no finding
either), the indication copied back, a sentence repeated (recall), a list of every finding negated
or hedged, or text cut off by the generation limit. The guard names each of these:

* **not a report** (score 0): empty text, no words, placeholder text ("lorem ipsum"), another
  language, words that are not English chest X-ray report vocabulary, English with nothing about a
  chest, an echoed prompt, or the item's ``context`` (e.g. its ``indication``) copied back. The
  vocabulary is data (``reward_service/rules/report_vocabulary.yaml``), so no model is needed.
* **unhealthy report** (a factor below 1 for each problem, multiplied): repeated sentences, exact
  or near-duplicate, within one section (an impression restating a finding is a summary, not a
  repeat); looping word n-grams; runaway length against the reference; a text cut off
  mid-sentence; a list of negated findings far beyond what the reference mentions; more hedged
  findings than a report needs.

Used as a profile ``gate`` (see :mod:`reward_service.composite`) the score multiplies the reward, so
a non-report earns nothing and repetition or truncation can only lose reward. ``details`` hold
``flags`` (short names) and ``reasons`` (one sentence per flag, for a human).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from itertools import chain
from operator import methodcaller
from typing import Any

import yaml
from pydantic import Field

from reward_service.scorers.base import RuleScorer, ScoreItem, ScoreResult, ScorerOptions
from reward_service.text.findings import NEGATIVE, POSITIVE, STATUS_RANK, UNCERTAIN, extract_findings
from reward_service.text.tokens import alnum_runs, letter_runs, rouge_tokens

VOCABULARY_RESOURCE = "rules/report_vocabulary.yaml"

# Letter runs in any script: digits, punctuation and "_" separate words; "x-ray" is two words.
_WORDS = re.compile(r"[^\W\d_]+")
# Sentence ends of a lower-cased report: "." "!" "?" before whitespace (a hard line break inside a
# sentence does not end it). Between two ends: word tokens (rouge-score's) and colons (section headers).
_SENTENCE_ENDS = re.compile(r"[.!?](?=\s|$)")
_TOKENS_AND_COLONS = re.compile(r"[a-z0-9]+|:")
_LETTER = re.compile(r"[a-z]")  # a token with a letter: a sentence, not a list number
_SECTION_HEADERS = frozenset({"impression", "conclusion", "conclusions", "summary"})
_NEW_SECTION = ""  # in a list of sentences (each its tokens joined by spaces): a section header
_FINISHED = re.compile(r"[.!?][\"')\]]*\s*$")
_LAST_WORD = re.compile(r"[^\W\d_]+(?=\s*$)")
# Filler that does not change what a sentence says, ignored when looking for near-duplicates.
_FILLER_WORDS = (
    "a an the there is are was were be been seen noted identified present again also findings "
    "impression demonstrated visualized appreciated evident"
)
# Compared without a plural "s", so "effusion" and "effusions" are the same word.
_WITHOUT_PLURAL = methodcaller("removesuffix", "s")
_FILLER = frozenset(map(_WITHOUT_PLURAL, _FILLER_WORDS.split()))
_SUFFIXES = (
    ("ies", "y"),
    ("es", ""),
    ("s", ""),
    ("ed", ""),
    ("ed", "e"),
    ("ing", ""),
    ("ing", "e"),
    ("ly", ""),
)
_PREFIXES = ("non", "pre", "post", "sub", "re")


@dataclass(frozen=True, slots=True)
class ReportVocabulary:
    """The word lists of ``report_vocabulary.yaml``, as sets."""

    version: int
    sha256: str
    known: frozenset[str]
    content: frozenset[str]
    instruction: frozenset[str]
    placeholder: frozenset[str]
    languages: dict[str, frozenset[str]]
    dangling: frozenset[str]

    def is_known(self, word: str) -> bool:
        return _lookup(word, self.known)

    def is_content(self, word: str) -> bool:
        return _lookup(word, self.content)


@lru_cache(maxsize=65536)
def _lookup(word: str, words: frozenset[str]) -> bool:
    """Whether ``word``, or its stem without a plural / verb ending or prefix, is one of ``words``."""
    if word in words:
        return True
    stems = [word[: -len(suffix)] + replacement for suffix, replacement in _SUFFIXES if word.endswith(suffix)]
    stems += [word[len(prefix) :] for prefix in _PREFIXES if word.startswith(prefix)]
    return any(len(stem) > 2 and stem in words for stem in stems)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


@cache
def load_vocabulary() -> ReportVocabulary:
    """The shipped vocabulary, read once per process."""
    raw_bytes = (resources.files("reward_service") / VOCABULARY_RESOURCE).read_bytes()
    raw = yaml.safe_load(raw_bytes)
    known = frozenset().union(*(_words(raw[section]) for section in raw["known_sections"]))
    content = frozenset().union(*(_words(raw[section]) for section in raw["content_sections"]))
    instruction = _words(raw["instruction_words"])
    placeholder = _words(raw["placeholder_words"])
    english = (known | content) - instruction - placeholder
    return ReportVocabulary(
        version=int(raw["version"]),
        sha256=hashlib.sha256(raw_bytes).hexdigest(),
        known=english,
        content=content,
        instruction=instruction,
        placeholder=placeholder,
        # A word shared with English report vocabulary ("no", "normal") tells no language apart.
        languages={name: _words(words) - english for name, words in raw["other_languages"].items()},
        dangling=_words(raw["dangling_words"]),
    )


class ReportGuardOptions(ScorerOptions):
    max_length_ratio: float = Field(
        default=3.0, gt=0, description="Words allowed per reference word before penalty."
    )
    min_length_allowance: int = Field(
        default=60, ge=1, description="Words always allowed, however short the reference."
    )
    repeat_ngram: int = Field(default=4, ge=2, description="n of the word n-grams checked for looping text.")
    min_vocabulary_share: float = Field(
        default=0.6,
        ge=0,
        le=1,
        description="Share of words that must be English chest X-ray report vocabulary; below it the text "
        "is not a report (score 0). Real reports are at 0.9 or more.",
    )
    min_words_for_content: int = Field(
        default=4,
        ge=1,
        description="From this many words on, a report must name some chest anatomy, finding or device.",
    )
    truncation_factor: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="Factor for a report cut off mid-sentence (it ends on a fragment): at most this reward, "
        "so cutting a report short before its mistakes does not pay.",
    )
    near_duplicate_jaccard: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Sentences sharing at least this share of their words (filler ignored) are repeats.",
    )
    negation_allowance: int = Field(
        default=6,
        ge=1,
        description="Negated findings always allowed; beyond this and the reference's findings plus 3, "
        "the factor is allowance / negated findings (a shotgun list of negations).",
    )
    hedge_allowance: int = Field(
        default=3,
        ge=1,
        description="Hedged findings always allowed; beyond this and the reference's hedged findings plus "
        "2, the factor is allowance / hedged findings.",
    )


def _sample(words: list[str], limit: int = 5) -> str:
    unique = list(dict.fromkeys(words))
    return ", ".join(unique[:limit]) + (", ..." if len(unique) > limit else "")


def _finding_statuses(text: str) -> dict[str, int]:
    """Each finding's status in ``text`` (positive > uncertain > negative over its mentions)."""
    statuses: dict[str, int] = {}
    for mention in extract_findings(text).mentions:
        finding = mention.concept.finding
        if finding is None:
            continue
        previous = statuses.get(finding)
        if previous is None or STATUS_RANK[mention.status] > STATUS_RANK[previous]:
            statuses[finding] = mention.status
    return statuses


class ReportGuardScorer(RuleScorer[ReportGuardOptions]):
    description = (
        "0 for text that is not an English chest X-ray report (empty, gibberish, placeholder, another "
        "language, an echoed prompt or indication); otherwise 1 lowered for repeated sentences, looping, "
        "runaway length, truncation and shotgun lists of negated or hedged findings."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.vocabulary = load_vocabulary()

    def fingerprint(self) -> dict[str, Any]:
        return {"vocabulary_version": self.vocabulary.version, "vocabulary_sha256": self.vocabulary.sha256}

    def score_one(self, item: ScoreItem) -> ScoreResult:
        options = self.options
        text = item.candidate
        lowered = text.lower()
        words = _report_words(lowered)
        if not text.strip():
            return _not_a_report("empty", "the candidate is empty or only whitespace", words=0)
        if not words:
            return _not_a_report(
                "no_words",
                "the candidate has no words, only punctuation, digits, symbols or single letters",
                0,
            )
        problem = self._not_a_report(words, item, options)
        if problem is not None:
            return problem

        flags: list[str] = []
        reasons: list[str] = []
        factors: dict[str, float] = {}

        def penalise(flag: str, factor: float, reason: str) -> None:
            flags.append(flag)
            reasons.append(f"{reason} (factor {factor:.2f})")
            factors[flag] = factor

        tokens = rouge_tokens(text)
        sentences = _sentences(lowered)
        repeats = _repeated_sentences(sentences, options.near_duplicate_jaccard)
        if repeats:
            count = len(sentences) - sentences.count(_NEW_SECTION)
            penalise(
                "repeated_sentences",
                1.0 - len(repeats) / count,
                f"{len(repeats)} of {count} sentences repeat an earlier one in their section "
                f"(e.g. {repeats[0]!r})",
            )
        n = options.repeat_ngram
        grams = max(0, len(tokens) - n + 1)
        distinct_ratio = (
            len(set(zip(*(tokens[i:] for i in range(n)), strict=False))) / grams if grams else 1.0
        )
        # Natural reports repeat few 4-grams; below half distinct the text is looping.
        if distinct_ratio < 0.5:
            penalise(
                "looping_text",
                distinct_ratio / 0.5,
                f"only {distinct_ratio:.0%} of its {n}-word sequences are distinct: the text loops",
            )
        allowed = max(
            options.min_length_allowance,
            options.max_length_ratio * len(rouge_tokens(item.reference)),
        )
        if len(tokens) > allowed:
            penalise(
                "runaway_length",
                allowed / len(tokens),
                f"{len(tokens)} words where {allowed:.0f} are allowed for this reference",
            )
        fragment = self._truncated_at(text)
        if fragment is not None:
            penalise(
                "truncated",
                options.truncation_factor,
                f"the text stops mid-sentence, on {fragment!r}, without a full stop",
            )
        self._check_finding_lists(item, options, penalise)

        score = 1.0
        for factor in factors.values():
            score *= factor
        return ScoreResult(
            score,
            {
                "flags": flags,
                "reasons": reasons,
                "factors": factors,
                "words": len(tokens),
                "allowed_words": allowed,
                "repeated_sentences": len(repeats),
                "distinct_ngram_ratio": distinct_ratio,
            },
        )

    def _not_a_report(
        self, words: list[str], item: ScoreItem, options: ReportGuardOptions
    ) -> ScoreResult | None:
        vocabulary = self.vocabulary
        count = len(words)
        # Placeholder, instruction and foreign words are never report vocabulary, so every check reads
        # only the words outside it: none or a few in a real report.
        known = vocabulary.known
        # The set test runs in C; most reports have no word outside the vocabulary.
        outside = [] if known.issuperset(words) else [word for word in words if word not in known]
        placeholder = [word for word in outside if word in vocabulary.placeholder]
        if len(placeholder) >= max(2, 0.3 * count):
            return _not_a_report(
                "placeholder_text",
                f"{len(placeholder)} of {count} words are placeholder text ({_sample(placeholder)})",
                count,
            )
        unknown = [word for word in outside if not vocabulary.is_known(word)]
        known_share = 1.0 - len(unknown) / count
        if known_share < options.min_vocabulary_share:
            language, hits = max(
                (
                    (name, [word for word in outside if word in listed])
                    for name, listed in vocabulary.languages.items()
                ),
                key=lambda entry: len(entry[1]),
            )
            if len(hits) >= max(2, 0.2 * count):
                return _not_a_report(
                    "other_language",
                    f"not English: {len(hits)} of {count} words are common {language} words "
                    f"({_sample(hits)}); the rule scorers read English only",
                    count,
                    vocabulary_share=known_share,
                )
            script = "" if all(word.isascii() for word in unknown) else " (non-English letters)"
            return _not_a_report(
                "off_vocabulary",
                f"only {known_share:.0%} of its {count} words are English chest X-ray report vocabulary "
                f"(at least {options.min_vocabulary_share:.0%} needed); unknown{script}: {_sample(unknown)}",
                count,
                vocabulary_share=known_share,
            )
        instructions = sorted({word for word in outside if word in vocabulary.instruction})
        # Two instruction words, or one in a text that reports no finding ("Generate the findings.").
        if len(instructions) >= 2 or (instructions and not _finding_statuses(item.candidate)):
            return _not_a_report(
                "echoes_prompt",
                f"reads as instructions, not a report: {', '.join(instructions)}",
                count,
                vocabulary_share=known_share,
            )
        echoed = self._echoed_context(words, item)
        if echoed is not None:
            return _not_a_report(
                "echoes_context",
                f"repeats the item's {echoed} instead of reporting findings",
                count,
                vocabulary_share=known_share,
            )
        if (
            count >= options.min_words_for_content
            # A content word as it is (in C) makes the stem lookups needless: nearly every report has one.
            and vocabulary.content.isdisjoint(words)
            and not any(vocabulary.is_content(word) for word in words)
        ):
            return _not_a_report(
                "no_chest_content",
                f"no word of its {count} names chest anatomy, a finding or a device",
                count,
                vocabulary_share=known_share,
            )
        return None

    @staticmethod
    def _echoed_context(words: list[str], item: ScoreItem) -> str | None:
        """The context field the candidate copies: most of its words from there, most of that field."""
        if not item.context:
            return None
        candidate = set(words)
        fields = {key: _context_words(value) for key, value in item.context.items() if value}
        every = set().union(*fields.values()) if fields else set()
        if not every or len(candidate & every) < 0.8 * len(candidate):
            return None
        for key, field_words in fields.items():
            if field_words and len(candidate & field_words) >= 0.6 * len(field_words):
                return key
        return None

    def _truncated_at(self, text: str) -> str | None:
        """The fragment a report cut off mid-sentence ends on, or None when it ends like a report."""
        if _FINISHED.search(text):
            return None
        last = _LAST_WORD.search(text)
        if last is None:
            return None  # ends on a digit or symbol, e.g. "(2)" or "5 mm.": no fragment to judge
        word = last.group(0).lower()
        if len(word) == 1 or word in self.vocabulary.dangling or not self.vocabulary.is_known(word):
            return word
        return None

    def _check_finding_lists(
        self, item: ScoreItem, options: ReportGuardOptions, penalise: Callable[[str, float, str], None]
    ) -> None:
        candidate = _finding_statuses(item.candidate)
        negated = [finding for finding, status in candidate.items() if status == NEGATIVE]
        hedged = [finding for finding, status in candidate.items() if status == UNCERTAIN]
        if len(negated) <= options.negation_allowance and len(hedged) <= options.hedge_allowance:
            return
        reference = _finding_statuses(item.reference)
        negation_allowance = max(options.negation_allowance, len(reference) + 3)
        if len(negated) > negation_allowance:
            asserted = sum(status == POSITIVE for status in candidate.values())
            penalise(
                "shotgun_negations",
                negation_allowance / len(negated),
                f"rules out {len(negated)} findings ({_sample(negated)}) with {asserted} asserted, where the "
                f"reference mentions {len(reference)}: a list of negations, not a reading",
            )
        reference_hedged = sum(status == UNCERTAIN for status in reference.values())
        hedge_allowance = max(options.hedge_allowance, reference_hedged + 2)
        if len(hedged) > hedge_allowance:
            penalise(
                "hedged_findings",
                hedge_allowance / len(hedged),
                f"hedges {len(hedged)} findings ({_sample(hedged)}) where the reference hedges "
                f"{reference_hedged}: a list of possibilities, not a reading",
            )


def _sentences(lowered: str) -> list[str]:
    """The sentences of a lower-cased text, each its word tokens joined by spaces, with ``_NEW_SECTION``
    where a section starts at a header ("impression:"); sentences without a letter (list numbers) are
    left out."""
    return list(chain.from_iterable(map(_sentences_between_ends, _SENTENCE_ENDS.split(lowered))))


@lru_cache(maxsize=16384)
def _sentences_between_ends(piece: str) -> tuple[str, ...]:
    """:func:`_sentences` of the text between two sentence ends, cached: reports repeat most of their
    sentences. A header ends the sentence before it; the header's word is in no sentence."""
    if ":" not in piece:  # one sentence, or none: found in C
        return (" ".join(alnum_runs(piece)),) if _LETTER.search(piece) else ()
    sentences: list[str] = []
    tokens: list[str] = []
    for token in _TOKENS_AND_COLONS.findall(piece):
        if token != ":":
            tokens.append(token)
        elif tokens and tokens[-1] in _SECTION_HEADERS:
            if _has_letter(tokens[:-1]):
                sentences.append(" ".join(tokens[:-1]))
            sentences.append(_NEW_SECTION)
            tokens = []
    if _has_letter(tokens):
        sentences.append(" ".join(tokens))
    return tuple(sentences)


def _has_letter(tokens: list[str]) -> bool:
    return any(map(_LETTER.search, tokens))


def _repeated_sentences(sentences: list[str], threshold: float) -> list[str]:
    """Sentences (of :func:`_sentences`) that repeat an earlier one of the same section, exactly or
    sharing at least ``threshold`` of their meaning words (Jaccard)."""
    repeats: list[str] = []
    seen: list[frozenset[str]] = []  # meanings of the current section's sentences
    exact: set[str] = set()
    for sentence in sentences:
        if sentence == _NEW_SECTION:
            seen, exact = [], set()
            continue
        if sentence in exact:
            repeats.append(sentence)
            continue
        meaning = _meaning(sentence)
        size = len(meaning)
        low, high = threshold * size, size / threshold
        for earlier in seen[-50:]:
            if low <= len(earlier) <= high:
                # |union| = |a| + |b| - |intersection|: no union set to build.
                common = len(meaning & earlier)
                if common >= threshold * (size + len(earlier) - common):
                    repeats.append(sentence)
                    break
        else:
            exact.add(sentence)
            seen.append(meaning)
    return repeats


@lru_cache(maxsize=16384)
def _meaning(sentence: str) -> frozenset[str]:
    """A sentence's words without a plural "s", filler left out (cached: reports repeat sentences)."""
    return frozenset(map(_WITHOUT_PLURAL, sentence.split(" "))) - _FILLER


@lru_cache(maxsize=4096)
def _context_words(value: str) -> frozenset[str]:
    """Words of a context field (cached: the candidates of one prompt share its context)."""
    return frozenset(_report_words(value.lower()))


def _report_words(lowered: str) -> list[str]:
    """Words of two letters or more of a lower-cased text: single letters ("T7", "p.m.", "x-ray") tell no
    language."""
    if lowered.isascii():
        return [word for word in letter_runs(lowered) if len(word) > 1]  # the words of _WORDS, found in C
    return [word for word in _WORDS.findall(lowered) if len(word) > 1]


def _not_a_report(flag: str, reason: str, words: int, **details: Any) -> ScoreResult:
    return ScoreResult(
        0.0,
        {
            "flags": ["not_a_report", flag],
            "reasons": [f"not a chest X-ray report: {reason}"],
            "words": words,
            **details,
        },
    )

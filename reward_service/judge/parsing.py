"""Tolerant parsers of judge answers: CheXprompt-style JSON (or CheXprompt's original tuple lists) and
GREEN's section format, both into :class:`ErrorCounts`.

Judges wrap JSON in code fences, add prose around it, spell category keys many ways, or answer in the
format of the prompt they were fine-tuned on. The parsers accept all of those, and raise
:class:`JudgeParseError` (never guess 0) when the counts cannot be read: a null score is honest, a 0
would be a real (and very wrong) reward.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from reward_service.taxonomy import LETTERS, TAXONOMY

#: Counts above this are treated as a garbled answer rather than a real count.
MAX_COUNT = 100

# CheXprompt's own keys for the six error types, accepted as aliases of the letters.
_NAMED_CATEGORIES = {category.chexprompt_key: category.letter for category in TAXONOMY}
_SIGNIFICANT_KEYS = re.compile(r"^(clinically[_ ]?)?significant([_ ]?errors)?$", re.IGNORECASE)
_INSIGNIFICANT_KEYS = re.compile(
    r"^(clinically[_ ]?)?(insignificant|non[_ ]?significant)([_ ]?errors)?$", re.I
)


class JudgeParseError(ValueError):
    """The judge's answer does not hold the counts; the message says what was missing."""


@dataclass(frozen=True, slots=True)
class ErrorCounts:
    """Error counts of one candidate by CheXprompt category (A-F), plus GREEN's matched findings."""

    significant: dict[str, int]
    insignificant: dict[str, int]
    matched_findings: int | None = None

    @property
    def n_significant(self) -> int:
        return sum(self.significant.values())

    @property
    def n_insignificant(self) -> int:
        return sum(self.insignificant.values())

    @property
    def n_all(self) -> int:
        return self.n_significant + self.n_insignificant

    def green(self) -> float | None:
        """GREEN = matched / (matched + significant errors); 0 when nothing matched; None without a count."""
        if self.matched_findings is None:
            return None
        if self.matched_findings == 0:
            return 0.0
        return self.matched_findings / (self.matched_findings + self.n_significant)

    def to_json(self) -> dict[str, Any]:
        return {
            "significant": dict(self.significant),
            "insignificant": dict(self.insignificant),
            "matched_findings": self.matched_findings,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ErrorCounts:
        """Read back what :meth:`to_json` wrote (a cache entry); raises KeyError/TypeError/ValueError
        on anything else. Strict and cheap: this runs for every cache hit."""
        matched = data.get("matched_findings")
        return cls(
            significant={c: int(data["significant"][c]) for c in LETTERS},
            insignificant={c: int(data["insignificant"][c]) for c in LETTERS},
            matched_findings=None if matched is None else int(matched),
        )


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise JudgeParseError(f"{where}: expected a count, got {value!r}")
    if isinstance(value, int):
        count = value
    elif isinstance(value, float) and value.is_integer():
        count = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        count = int(value.strip())
    elif isinstance(value, list):
        count = len(value)  # a list of described errors
    elif isinstance(value, dict) and "count" in value:
        return _count(value["count"], where)
    else:
        raise JudgeParseError(f"{where}: expected a count, got {value!r}")
    if not 0 <= count <= MAX_COUNT:
        raise JudgeParseError(f"{where}: count {count} is out of range 0..{MAX_COUNT}")
    return count


def _category(key: str) -> str | None:
    key = key.strip()
    named = _NAMED_CATEGORIES.get(key.lower())
    if named:
        return named
    match = re.match(r"^\(?([a-fA-F])\)?(?:$|[\s_.:)-])", key)
    return match.group(1).upper() if match else None


def _counts_dict(value: Any, where: str) -> dict[str, int]:
    counts = dict.fromkeys(LETTERS, 0)
    if isinstance(value, list):  # [["A", 1], ...] or [{"category": "A", "count": 1}, ...]
        pairs = []
        for entry in value:
            if isinstance(entry, list | tuple) and len(entry) == 2:
                pairs.append((str(entry[0]), entry[1]))
            elif isinstance(entry, dict) and "category" in entry:
                pairs.append((str(entry["category"]), entry.get("count", 1)))
            else:
                raise JudgeParseError(f"{where}: cannot read entry {entry!r}")
        value = dict(pairs)
    if not isinstance(value, dict):
        raise JudgeParseError(f"{where}: expected an object of counts per category, got {value!r}")
    seen = False
    for key, raw in value.items():
        category = _category(str(key))
        if category is None:
            continue  # e.g. an "explanation" next to the counts
        counts[category] += _count(raw, f"{where}.{key}")
        seen = True
    if value and not seen:
        raise JudgeParseError(f"{where}: no category A-F among keys {sorted(map(str, value))}")
    return counts


def _json_objects(text: str) -> list[dict[str, Any]]:
    """Every top-level JSON object embedded in ``text`` (code fences and prose around them ignored)."""
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    index = text.find("{")
    while index != -1:
        try:
            value, end = decoder.raw_decode(text, index)
        except json.JSONDecodeError:
            index = text.find("{", index + 1)
            continue
        if isinstance(value, dict):
            found.append(value)
        index = text.find("{", end)
    return found


def _from_json_object(obj: dict[str, Any]) -> ErrorCounts | None:
    significant = insignificant = None
    for key, value in obj.items():
        if _SIGNIFICANT_KEYS.match(str(key)):
            significant = value
        elif _INSIGNIFICANT_KEYS.match(str(key)):
            insignificant = value
    if significant is None and isinstance(obj.get("errors"), list):
        # {"errors": [{"category": "A", "significant": true, ...}, ...]}
        sig = dict.fromkeys(LETTERS, 0)
        insig = dict.fromkeys(LETTERS, 0)
        for entry in obj["errors"]:
            category = _category(str(entry.get("category", ""))) if isinstance(entry, dict) else None
            if category is None:
                raise JudgeParseError(f"errors: cannot read entry {entry!r}")
            (sig if entry.get("significant", entry.get("clinically_significant", True)) else insig)[
                category
            ] += 1
        return ErrorCounts(sig, insig)
    if significant is None:
        return None
    return ErrorCounts(
        _counts_dict(significant, "clinically_significant"),
        _counts_dict(insignificant if insignificant is not None else {}, "clinically_insignificant"),
    )


_TUPLE = re.compile(r"\(\s*([A-Fa-f])\s*,\s*(\d+)\s*\)")


def _from_tuple_lists(text: str) -> ErrorCounts | None:
    """CheXprompt's original answer: ``Number of clinically significant errors by type: ((A, 1), ...)``."""
    sig_at = re.search(r"clinically\s+significant\s+errors\s+by\s+type\s*:", text, re.IGNORECASE)
    if not sig_at:
        return None
    insig_at = re.search(r"clinically\s+insignificant\s+errors\s+by\s+type\s*:", text, re.IGNORECASE)
    sig_text = text[sig_at.end() : insig_at.start() if insig_at and insig_at.start() > sig_at.end() else None]
    insig_text = text[insig_at.end() :] if insig_at else ""

    def read(section: str, where: str) -> dict[str, int]:
        # Only the first paragraph: an explanation after the list may quote "(A, 1)"-like text.
        pairs = _TUPLE.findall(section.strip().split("\n\n")[0])
        if not pairs:
            raise JudgeParseError(f"{where}: no (category, count) pairs")
        return _counts_dict({letter.upper(): int(count) for letter, count in pairs}, where)

    return ErrorCounts(
        read(sig_text, "clinically significant errors"),
        read(insig_text, "clinically insignificant errors") if insig_at else dict.fromkeys(LETTERS, 0),
    )


def parse_chexprompt(answer: str) -> ErrorCounts:
    """Error counts from a CheXprompt-style answer: JSON (as asked for) or CheXprompt's tuple lists."""
    if not answer or not answer.strip():
        raise JudgeParseError("empty answer")
    for obj in _json_objects(answer):
        counts = _from_json_object(obj)
        if counts is not None:
            return counts
    counts = _from_tuple_lists(answer)
    if counts is not None:
        return counts
    raise JudgeParseError("no clinically significant error counts found (neither JSON nor CheXprompt lists)")


# --- GREEN ----------------------------------------------------------------------------------------

_GREEN_HEADING = re.compile(r"^[ \t>*#_]*\[\s*([A-Za-z ]+?)\s*\][ \t*_]*:?", re.MULTILINE)
_GREEN_LINE = re.compile(r"^[ \t*\-]*\(\s*([a-fA-F1-6])\s*\)(.*)$", re.MULTILINE)
_NONE_SECTION = re.compile(r"^\W*(?:no|none|n/a|nil|0\b)", re.IGNORECASE)


def _green_sections(answer: str) -> dict[str, str]:
    headings = list(_GREEN_HEADING.finditer(answer))
    sections: dict[str, str] = {}
    for index, heading in enumerate(headings):
        end = headings[index + 1].start() if index + 1 < len(headings) else len(answer)
        name = " ".join(heading.group(1).lower().split())
        sections.setdefault(name, answer[heading.end() : end].strip())
    return sections


def _green_counts(section: str, where: str) -> dict[str, int]:
    counts = dict.fromkeys(LETTERS, 0)
    lines = _GREEN_LINE.findall(section)
    if not lines:
        if _NONE_SECTION.match(section) or not section.strip():
            return counts
        raise JudgeParseError(f"{where}: no (a)-(f) lines")
    for label, rest in lines:
        category = LETTERS[int(label) - 1] if label.isdigit() else label.upper()
        # The count is the first integer after the colon that ends the category's name.
        match = re.search(r":\s*\**\s*(\d+)\b", rest)
        if match is None:
            if _NONE_SECTION.match(rest.split(":", 1)[-1]):
                continue
            raise JudgeParseError(f"{where} ({label}): no count in {rest.strip()[:80]!r}")
        counts[category] = _count(int(match.group(1)), f"{where} ({label})")
    return counts


def parse_green(answer: str) -> ErrorCounts:
    """Error counts and matched findings from an answer in GREEN's section format.

    ``[Clinically Significant Errors]`` and ``[Matched Findings]`` are required (GREEN's formula reads
    both); a missing ``[Clinically Insignificant Errors]`` section counts as none.
    """
    if not answer or not answer.strip():
        raise JudgeParseError("empty answer")
    sections = _green_sections(answer)
    significant = sections.get("clinically significant errors")
    if significant is None:
        raise JudgeParseError("no [Clinically Significant Errors] section")
    matched = sections.get("matched findings")
    if matched is None:
        raise JudgeParseError("no [Matched Findings] section")
    matched_count = re.match(r"^\W*(\d+)\b", matched)
    if matched_count:
        n_matched = _count(int(matched_count.group(1)), "matched findings")
    elif _NONE_SECTION.match(matched):
        n_matched = 0
    else:
        raise JudgeParseError(f"matched findings: no count in {matched[:80]!r}")
    insignificant = sections.get("clinically insignificant errors", "")
    return ErrorCounts(
        _green_counts(significant, "clinically significant errors"),
        _green_counts(insignificant, "clinically insignificant errors"),
        n_matched,
    )


PARSERS = {"chexprompt": parse_chexprompt, "green": parse_green}

__all__ = [
    "PARSERS",
    "ErrorCounts",
    "JudgeParseError",
    "parse_chexprompt",
    "parse_green",
]

"""Detection of instruction-like content in candidate reports, robust to Unicode disguises.

A policy trained against an LLM judge learns to write to the judge. Plain pattern matching on the raw
text misses the cheapest disguises: homoglyphs ("ignоre" with a Cyrillic o), fullwidth or mathematical
letters ("ｉｇｎｏｒｅ", "𝐢𝐠𝐧𝐨𝐫𝐞"), zero-width characters inside words, accents, other languages and
paraphrases. So the candidate is first normalised into two views (see ``injection_patterns.yaml``):

* **latin**: NFKC (compatibility forms such as fullwidth and mathematical letters become plain ones),
  invisible format characters removed, case-folded, every homoglyph mapped to the Latin letter it imitates
  (Unicode's confusables data, from the ``confusable-homoglyphs`` package), accents removed;
* **native**: the same without the homoglyph mapping and accent removal, for patterns in other scripts.

Patterns and their trigger words are data (``injection_patterns.yaml``). Two more flags come from the
raw text: ``delimiter`` (fence-like ``<<<``/``>>>`` runs) and ``chat_markup`` (chat-template special
tokens), and one from the normalisation itself: ``obfuscated`` (letters of two scripts, or invisible
characters, inside one word: a radiology report has no reason for either).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

FENCE_RUN = re.compile(r"<{3,}|>{3,}")
# Shapes of chat-template special tokens of common model families (ChatML, Llama 2/3, Gemma, Phi, Mistral).
CHAT_MARKUP = re.compile(
    r"<\|[^<>|\n]{1,40}\|>|</?s>|\[/?INST\]|<</?SYS>>|<(?:start|end)_of_turn>|<\|?(?:begin|end)_of_text\|?>",
    re.IGNORECASE,
)
_WORD = re.compile(r"\w+")


@cache
def _homoglyph_table() -> dict[int, str]:
    """Non-ASCII character -> the ASCII letter it imitates, from Unicode's confusables (UTS #39) data."""
    from confusable_homoglyphs.confusables import confusables_data

    table = {}
    for character, glyphs in confusables_data.items():
        if len(character) != 1 or character.isascii():
            continue
        latin = next(
            (g["c"] for g in glyphs if len(g["c"]) == 1 and g["c"].isascii() and g["c"].isalpha()), None
        )
        if latin is not None:
            table[ord(character)] = latin.lower()
    return table


def _without_invisibles(text: str) -> str:
    return "".join(c for c in text if unicodedata.category(c) != "Cf")


def _without_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


@dataclass(frozen=True, slots=True)
class NormalisedText:
    """The views of one candidate that the patterns are matched against."""

    raw: str
    native: str
    latin: str
    obfuscated: bool

    @classmethod
    def of(cls, text: str) -> NormalisedText:
        if text.isascii():  # most reports: nothing to normalise beyond case
            folded = text.casefold()
            return cls(text, folded, folded, False)
        native = _without_invisibles(unicodedata.normalize("NFKC", text)).casefold()
        latin = _without_accents(native.translate(_homoglyph_table()))
        return cls(text, native, latin, _is_obfuscated(text))


def _is_obfuscated(text: str) -> bool:
    """Whether a word mixes ASCII letters with look-alikes from other scripts or hides invisible characters."""
    from confusable_homoglyphs.categories import alias

    table = _homoglyph_table()
    for word in _WORD.findall(text):
        if word.isascii() or not any(c.isascii() and c.isalpha() for c in word):
            continue
        # Latin letters with accents or Turkish ı are ordinary; a Cyrillic о among Latin letters is not.
        if any(ord(c) in table and alias(c) not in ("LATIN", "COMMON") for c in word):
            return True
    return bool(re.search(r"\w[\u00ad\u180e\u200b-\u200f\u2060-\u2064\ufeff]+\w", text))


@dataclass(frozen=True, slots=True)
class InjectionRule:
    name: str
    triggers: tuple[str, ...]
    latin: re.Pattern[str] | None
    native_triggers: tuple[str, ...]
    native: re.Pattern[str] | None

    def matches(self, text: NormalisedText) -> bool:
        if (
            self.latin is not None
            and any(t in text.latin for t in self.triggers)
            and self.latin.search(text.latin)
        ):
            return True
        return (
            self.native is not None
            and any(t in text.native for t in self.native_triggers)
            and self.native.search(text.native) is not None
        )


def _compile(patterns: list[str] | None) -> re.Pattern[str] | None:
    # MULTILINE: a role prefix such as "system:" counts at the start of any line.
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.MULTILINE) if patterns else None


@cache
def injection_rules() -> tuple[InjectionRule, ...]:
    """The rules of ``injection_patterns.yaml``, compiled once."""
    source = resources.files("reward_service.judge").joinpath("injection_patterns.yaml").read_text("utf-8")
    rules = []
    for name, spec in yaml.safe_load(source).items():
        rules.append(
            InjectionRule(
                name=name,
                triggers=tuple(spec.get("triggers", ())),
                latin=_compile(spec.get("latin")),
                native_triggers=tuple(spec.get("native_triggers", ())),
                native=_compile(spec.get("native")),
            )
        )
    return tuple(rules)


def detect_injection(text: str) -> list[str]:
    """Names of the instruction-like patterns found in ``text`` (empty when it reads like a report)."""
    normalised = NormalisedText.of(text)
    flags = [rule.name for rule in injection_rules() if rule.matches(normalised)]
    # Delimiters and chat markup are looked for in the raw text and in its NFKC form (fullwidth ＜＜＜).
    for view in dict.fromkeys((text, normalised.native)):
        if ("<<<" in view or ">>>" in view) and FENCE_RUN.search(view) and "delimiter" not in flags:
            flags.append("delimiter")
        if ("<" in view or "[" in view) and CHAT_MARKUP.search(view) and "chat_markup" not in flags:
            flags.append("chat_markup")
    if normalised.obfuscated:
        flags.append("obfuscated")
    return flags

"""Sentence splitting for radiology reports."""

from __future__ import annotations

import re

# A sentence ends at ".", "!" or "?" followed by whitespace, or at a line break. Decimal numbers
# ("1.5 cm") and abbreviations without a following space stay inside their sentence.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def split_sentences(text: str) -> list[str]:
    """Non-empty, stripped sentences of ``text`` in order."""
    return [sentence.strip() for sentence in _SENTENCE_END.split(text) if sentence.strip()]

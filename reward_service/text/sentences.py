"""Sentence splitting for radiology reports."""

from __future__ import annotations

import re

# A sentence ends at ".", "!" or "?" followed by whitespace, or at a line break. Decimal numbers
# ("1.5 cm") and abbreviations without a following space stay inside their sentence.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def split_sentences(text: str) -> list[str]:
    """Non-empty, stripped sentences of ``text`` in order."""
    return [sentence.strip() for sentence in _SENTENCE_END.split(text) if sentence.strip()]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` offsets into ``text`` of the sentences :func:`split_sentences` returns, in order."""
    spans = []
    start = 0
    for boundary in (*_SENTENCE_END.finditer(text), None):
        end = len(text) if boundary is None else boundary.start()
        piece = text[start:end]
        if piece.strip():
            leading = len(piece) - len(piece.lstrip())
            spans.append((start + leading, start + len(piece.rstrip())))
        if boundary is not None:
            start = boundary.end()
    return spans

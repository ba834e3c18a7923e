"""Tokenisers that reproduce the reference implementations' exact behaviour."""

from __future__ import annotations

import re

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def rexrank_tokens(text: str) -> list[str]:
    """ReXrank's BLEU tokens: lower-cased, "." split off, split on single spaces, empty tokens dropped."""
    return [token for token in text.lower().replace(".", " .").split(" ") if token]


def rouge_tokens(text: str) -> list[str]:
    """The ``rouge-score`` package's default tokens (no stemming): lower-cased ASCII alphanumeric runs."""
    return _NON_ALNUM.sub(" ", text.lower()).split()

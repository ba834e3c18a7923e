"""Tokenisers that reproduce the reference implementations' exact behaviour."""

from __future__ import annotations

import re
from functools import lru_cache

_ALNUM_RUNS = re.compile(r"[a-z0-9]+")


def rexrank_tokens(text: str) -> list[str]:
    """ReXrank's BLEU tokens: lower-cased, "." split off, split on single spaces, empty tokens dropped."""
    return [token for token in text.lower().replace(".", " .").split(" ") if token]


@lru_cache(maxsize=8192)
def rouge_tokens(text: str) -> tuple[str, ...]:
    """The ``rouge-score`` package's default tokens (no stemming): lower-cased ASCII alphanumeric runs.

    Cached by text: ROUGE-L and the report guard read the same reports, and in GRPO every candidate of
    a group shares the reference. A tuple of strings, once seen by the cyclic garbage collector, is no
    longer tracked by it.
    """
    return tuple(_ALNUM_RUNS.findall(text.lower()))

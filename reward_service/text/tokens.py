"""Tokenisers that reproduce the reference implementations' exact behaviour."""

from __future__ import annotations

from functools import lru_cache

# Byte tables for bytes.translate: ASCII letters and digits kept, every other byte a space. A regex
# findall costs about ten times more (a search and a match call per token). Non-ASCII text is translated
# as UTF-8, whose multi-byte characters are made of bytes >= 0x80 only, so each becomes separators.
_ALNUM = b"abcdefghijklmnopqrstuvwxyz0123456789"
_ALNUM_RUNS = bytes(byte if byte in _ALNUM else 0x20 for byte in range(256))
_ALNUM_RUNS_LOWERED = bytes(
    byte + 0x20 if 0x41 <= byte <= 0x5A else kept for byte, kept in enumerate(_ALNUM_RUNS)
)


def rexrank_tokens(text: str) -> list[str]:
    """ReXrank's BLEU tokens: lower-cased, "." split off, split on single spaces, empty tokens dropped."""
    return [token for token in text.lower().replace(".", " .").split(" ") if token]


def alnum_runs(lowered: str) -> list[str]:
    """The runs of ASCII letters and digits (regex ``[a-z0-9]+``) of a lower-cased text."""
    return lowered.encode("utf-8", "surrogatepass").translate(_ALNUM_RUNS).decode("ascii").split()


@lru_cache(maxsize=8192)
def rouge_tokens(text: str) -> tuple[str, ...]:
    """The ``rouge-score`` package's default tokens (no stemming): lower-cased ASCII alphanumeric runs.

    Cached by text: ROUGE-L and the report guard read the same reports, and in GRPO every candidate of
    a group shares the reference. A tuple of strings, once seen by the cyclic garbage collector, is no
    longer tracked by it.
    """
    if text.isascii():  # lower-cased by the table; other text first by str.lower ("K" Kelvin sign is "k")
        return tuple(text.encode("ascii").translate(_ALNUM_RUNS_LOWERED).decode("ascii").split())
    return tuple(alnum_runs(text.lower()))

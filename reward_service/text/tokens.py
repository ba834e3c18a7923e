"""Tokenisers that reproduce the reference implementations' exact behaviour."""

from __future__ import annotations

from functools import lru_cache


def _runs_table(kept: bytes) -> bytes:
    """A ``bytes.translate`` table keeping the bytes of ``kept`` and making every other byte a space, so
    that ``split`` gives the runs of kept bytes: a tenth of a regex findall's cost (a search and a match
    call per token). Non-ASCII text is translated as UTF-8, whose multi-byte characters are made of bytes
    >= 0x80 only, so each becomes separators."""
    return bytes(byte if byte in kept else 0x20 for byte in range(256))


_LETTERS = b"abcdefghijklmnopqrstuvwxyz"
_LETTER_RUNS = _runs_table(_LETTERS)
_ALNUM_RUNS = _runs_table(_LETTERS + b"0123456789")
_ALNUM_RUNS_LOWERED = bytes(
    byte + 0x20 if 0x41 <= byte <= 0x5A else kept for byte, kept in enumerate(_ALNUM_RUNS)
)


def rexrank_tokens(text: str) -> list[str]:
    """ReXrank's BLEU tokens: lower-cased, "." split off, split on single spaces, empty tokens dropped."""
    return [token for token in text.lower().replace(".", " .").split(" ") if token]


def letter_runs(lowered: str) -> list[str]:
    """The runs of ASCII letters (regex ``[a-z]+``) of a lower-cased ASCII text."""
    return lowered.encode("ascii").translate(_LETTER_RUNS).decode("ascii").split()


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

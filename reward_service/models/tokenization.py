"""Token ids through the part of the tokenizer API that transformers 4.56+ and 5.x share.

transformers 5 removed ``encode_plus`` (call the tokenizer instead), ``build_inputs_with_special_tokens``
and the slow Python tokenizers. The model scorers only need to put a model's special tokens around
ids they already have; :class:`SpecialTokens` reads those tokens from the tokenizer's own encoding of
a one-word text, so it holds for any tokenizer (``[CLS] ... [SEP]`` for BERT, ``<s> ... </s>`` for
RoBERTa, nothing for GPT-2) and gives what ``build_inputs_with_special_tokens`` gave on
transformers 4 (the tests compare the two there).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from typing import Any


@dataclass(frozen=True, slots=True)
class SpecialTokens:
    """The ids a tokenizer puts before (``start``) and after (``end``) a single sequence."""

    start: tuple[int, ...]
    end: tuple[int, ...]

    @classmethod
    def of(cls, tokenizer: Any) -> SpecialTokens:
        """Read them from ``tokenizer``'s encoding of a one-word text with special tokens."""
        encoding = tokenizer("a", add_special_tokens=True, return_special_tokens_mask=True)
        ids, mask = list(encoding["input_ids"]), list(encoding["special_tokens_mask"])
        if 0 not in mask:
            raise ValueError(f"{type(tokenizer).__name__} encodes the text 'a' as special tokens only")
        first = mask.index(0)
        last = len(mask) - mask[::-1].index(0)
        return cls(tuple(ids[:first]), tuple(ids[last:]))

    def wrap(self, ids: Sequence[int]) -> list[int]:
        """``ids`` with the special tokens around them (``build_inputs_with_special_tokens(ids)``)."""
        return [*self.start, *ids, *self.end]


#: Text the word cache reads as the tokenizer does: printable ASCII, tabs and line breaks. The characters
#: this leaves out are those the tokenizer drops (control characters) or treats otherwise than
#: ``str.split`` (other whitespace, non-ASCII letters, accents).
_NOT_PLAIN_ASCII = re.compile(r"[^\t\n\r\x20-\x7e]")


class CachedWordIds:
    """The token ids (no special tokens) a slow BERT WordPiece tokenizer gives a text, word by word.

    transformers 4's pure-Python ``BertTokenizer`` (which bert-score and CheXbert ask for) reads each
    character in Python: about a millisecond for a report. Its basic tokenizer cuts the text
    at whitespace before anything else, and every later step (lower-casing, splitting off punctuation,
    WordPiece) reads one whitespace-separated chunk alone, so on plain ASCII text the ids of a text are
    its chunks' ids in order; reports repeat their words, so each chunk's ids are kept. Text with other
    characters, or holding an added token (``[SEP]``), goes to the tokenizer whole.
    """

    def __init__(self, tokenizer: Any, cache_size: int = 65_536) -> None:
        self.tokenizer = tokenizer
        self.added = tuple(str(token) for token in tokenizer.added_tokens_encoder)
        self.chunk_ids = lru_cache(maxsize=cache_size)(self._chunk_ids)

    @classmethod
    def for_tokenizer(cls, tokenizer: Any) -> CachedWordIds | None:
        """A word cache for ``tokenizer`` when it is transformers 4's slow BERT tokenizer truncating from
        the end (its default, which callers cut as); None for any other (fast ones are Rust already)."""
        from transformers import BertTokenizer

        slow_bert = isinstance(tokenizer, BertTokenizer) and not tokenizer.is_fast
        return cls(tokenizer) if slow_bert and tokenizer.truncation_side == "right" else None

    def tokenizer_ids(self, text: str) -> list[int]:
        """What the tokenizer itself gives, text whole."""
        return tokenizer_ids(self.tokenizer, text)

    def _chunk_ids(self, chunk: str) -> tuple[int, ...]:
        return tuple(tokenizer_ids(self.tokenizer, chunk))

    def __call__(self, text: str) -> list[int]:
        if _NOT_PLAIN_ASCII.search(text) or any(token in text for token in self.added):
            return self.tokenizer_ids(text)
        return list(chain.from_iterable(map(self.chunk_ids, text.split())))


def tokenizer_ids(tokenizer: Any, text: str) -> list[int]:
    """The ids of ``tokenizer``'s tokens of ``text``, no special tokens (``tokenize`` then look-up)."""
    ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))
    assert isinstance(ids, list)  # a list of tokens gives a list of ids
    return ids

"""Token ids through the part of the tokenizer API that transformers 4.56+ and 5.x share.

transformers 5 removed ``encode_plus`` (call the tokenizer instead), ``build_inputs_with_special_tokens``
and the slow Python tokenizers. The model scorers only need to put a model's special tokens around
ids they already have; :class:`SpecialTokens` reads those tokens from the tokenizer's own encoding of
a one-word text, so it holds for any tokenizer (``[CLS] ... [SEP]`` for BERT, ``<s> ... </s>`` for
RoBERTa, nothing for GPT-2) and gives what ``build_inputs_with_special_tokens`` gave on
transformers 4 (the tests compare the two there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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

"""The ``radgraph`` package's tokenizer calls, answered through the tokenizer API of transformers 5.

radgraph 0.1.18 (no release since) vendors allennlp's ``PretrainedTransformerTokenizer`` and
``PretrainedTransformerIndexer``, which call two tokenizer methods that transformers 5 removed:
``encode_plus`` (to find the special tokens and to split each word into wordpieces) and
``build_inputs_with_special_tokens`` (to frame each 512-wordpiece segment). So on transformers 5 the
package cannot even build a model. Everything else it does with the tokenizer (``encode``,
``tokenize``, ``convert_ids_to_tokens``, ``get_vocab``, ...) still exists.

Every tokenizer those classes hold comes from one function,
``radgraph.allennlp.common.cached_transformers.get_tokenizer``. While a model is being built inside
:func:`current_tokenizer_api`, that function hands out the same tokenizer wrapped in
:class:`CurrentApiTokenizer`, which answers the two old calls with the current API (calling the
tokenizer; special tokens read by :class:`~reward_service.models.tokenization.SpecialTokens`) and
passes everything else through. The package's own code then runs unchanged, and the wrapped
tokenizers stay in the objects built, so annotation works afterwards too.

Why a scoped swap and not an import-time patch: nothing outside a ``with current_tokenizer_api():``
block sees a change, and the package's tokenizer cache keeps the plain tokenizers. While the block
runs (a model load, under a lock), any other thread building a radgraph model in this process gets
wrapped tokenizers as well, which give the same ids. The wrapper is used on transformers 4 too, so
the one code path is what the tests compare with the unmodified package there.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from reward_service.models.tokenization import SpecialTokens

_SWAP_LOCK = threading.Lock()


class CurrentApiTokenizer:
    """A transformers tokenizer that also answers ``encode_plus`` and ``build_inputs_with_special_tokens``.

    Only single sequences are framed: the radgraph code path never asks for a pair.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.special_tokens = SpecialTokens.of(tokenizer)

    def __getattr__(self, name: str) -> Any:
        if name in ("tokenizer", "special_tokens"):  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.tokenizer, name)

    def encode_plus(self, *args: Any, **kwargs: Any) -> Any:
        # On transformers 4, calling the tokenizer with one text (or one pair) is encode_plus.
        return self.tokenizer(*args, **kwargs)

    def build_inputs_with_special_tokens(
        self, token_ids_0: Sequence[int], token_ids_1: Sequence[int] | None = None
    ) -> list[int]:
        if token_ids_1 is not None:
            raise NotImplementedError("CurrentApiTokenizer frames single sequences only")
        return self.special_tokens.wrap(token_ids_0)


@contextmanager
def current_tokenizer_api() -> Iterator[None]:
    """Within the block, the radgraph package's tokenizers are :class:`CurrentApiTokenizer` wrappers.

    Build the package's objects (``radgraph.RadGraph``, its embedders and indexers) inside it.
    """
    from radgraph.allennlp.common import cached_transformers

    with _SWAP_LOCK:
        package_get_tokenizer = cached_transformers.get_tokenizer

        def get_tokenizer(model_name: str, **kwargs: Any) -> CurrentApiTokenizer:
            return CurrentApiTokenizer(package_get_tokenizer(model_name, **kwargs))

        cached_transformers.get_tokenizer = get_tokenizer
        try:
            yield
        finally:
            cached_transformers.get_tokenizer = package_get_tokenizer

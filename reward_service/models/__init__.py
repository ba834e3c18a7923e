"""Model loading for the model scorers: where weights come from and how they are shared.

- :mod:`.hub`: resolve a local path or hub id (cache under ``model_cache_dir``), device selection,
  weight fingerprints, :class:`MissingWeightsError` (imports no torch).
- :mod:`.weights`: the kinds of weight a scorer declares (hub model, hub file, packaged model), each
  locating itself offline and fetching itself; the packaged all-MiniLM-L6-v2 (BERTScore's default).
- :mod:`.registry`: one loaded model (and batcher) per weights, shared by the scorers using it.
- :mod:`.chexbert`: the CheXbert labeler architecture loading the original checkpoint.
- :mod:`.tokenization`: special tokens through the tokenizer API transformers 4 and 5 share.
- :mod:`.radgraph`: batched RadGraph annotation and the RadGraph archive weight.
- :mod:`.radgraph_compat`: the radgraph package's tokenizer calls on that API (transformers 5).

Random-weight models for tests and benchmarks are not part of the product: see ``unirg_testing/``.

Nothing heavy is imported here; import the submodules you need.
"""

from reward_service.models.hub import MissingWeightsError

__all__ = ["MissingWeightsError"]

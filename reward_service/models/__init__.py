"""Model loading for the model scorers: where weights come from and how they are shared.

- :mod:`.hub`: resolve a local path or hub id (cache under ``model_cache_dir``), device selection,
  weight fingerprints, :class:`MissingWeightsError` (imports no torch).
- :mod:`.registry`: one loaded model (and batcher) per weights, shared by the scorers using it.
- :mod:`.chexbert`: the CheXbert labeler architecture loading the original checkpoint.
- :mod:`.tokenization`: special tokens through the tokenizer API transformers 4 and 5 share.
- :mod:`.radgraph_compat`: the radgraph package's tokenizer calls on that API (transformers 5).
- :mod:`.random_init`, :mod:`.random_dygie`: random-weight models of the real architectures for
  offline tests and benchmarks.

Nothing heavy is imported here; import the submodules you need.
"""

from reward_service.models.hub import MissingWeightsError

__all__ = ["MissingWeightsError"]

"""Random-weight models of the real architectures, built offline: for tests, benchmarks and examples only.

Not part of the installed ``unirg`` distribution (``pyproject.toml`` packages only ``reward_service``,
``clients`` and ``trainer``), and never imported by them: run from the repository root, where pytest
(``pythonpath = ["."]``) and the benchmark and example scripts put it on ``sys.path``.

- :mod:`unirg_testing.encoders`: BERT and RoBERTa encoders with their tokenizers, a CheXbert checkpoint
  in the original layout, tiny vocabularies, and :data:`~unirg_testing.encoders.SIZES` of real encoders.
- :mod:`unirg_testing.dygie`: a DyGIE (RadGraph) model directory the ``radgraph`` package loads.
- :mod:`unirg_testing.qwen2`: tiny Qwen2 / Qwen2-VL policies with word-level tokenizers (the trainer).

Every builder imports torch and transformers only when called, and this package imports none of its
modules: verl's environment imports :mod:`unirg_testing.qwen2` without the service installed.
"""

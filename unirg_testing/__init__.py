"""Random-weight models of the real architectures, built offline: for tests, benchmarks and examples only.

Not part of the installed ``unirg`` distribution (``pyproject.toml`` packages only ``reward_service``,
``clients`` and ``trainer``), and never imported by them: run from the repository root, where pytest
(``pythonpath = ["."]``) and the benchmark and example scripts put it on ``sys.path``.

- :mod:`unirg_testing.encoders`: BERT and RoBERTa encoders with their tokenizers, a CheXbert checkpoint
  in the original layout, tiny vocabularies, and :data:`~unirg_testing.encoders.SIZES` of real encoders.
- :mod:`unirg_testing.dygie`: a DyGIE (RadGraph) model directory the ``radgraph`` package loads.
- :mod:`unirg_testing.qwen2`: tiny Qwen2 / Qwen2-VL policies with word-level tokenizers (the trainer).

Every builder imports torch and transformers only when called.
"""

from unirg_testing.dygie import build_random_dygie
from unirg_testing.encoders import (
    SIZES,
    build_bert_encoder,
    build_chexbert_checkpoint,
    build_roberta_encoder,
    minilm_vocab_file,
    write_tiny_vocab,
)
from unirg_testing.qwen2 import build_word_tokenizer, save_tiny_qwen2, save_tiny_qwen2_vl

__all__ = [
    "SIZES",
    "build_bert_encoder",
    "build_chexbert_checkpoint",
    "build_random_dygie",
    "build_roberta_encoder",
    "build_word_tokenizer",
    "minilm_vocab_file",
    "save_tiny_qwen2",
    "save_tiny_qwen2_vl",
    "write_tiny_vocab",
]

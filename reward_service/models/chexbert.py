"""The CheXbert labeler (Smit et al., 2020) rebuilt with transformers, loading the original checkpoint.

Architecture (``bert_labeler`` of the CheXbert repository): a ``bert-base-uncased`` ``BertModel``;
on the final hidden state of [CLS] (after dropout, inactive at inference) 13 heads ``Linear(768, 4)``
(classes blank, positive, negative, uncertain) and one "No Finding" head ``Linear(768, 2)`` (blank,
positive). ``chexbert.pth`` stores ``DataParallel(bert_labeler).state_dict()`` under
``model_state_dict``, so every key starts with ``module.``.

Reports are cleaned and tokenized as CheXbert's ``utils.tokenize`` does: whitespace runs collapsed,
WordPiece tokens, [CLS] ... [SEP], cut to 512 tokens (keeping the final [SEP]); an empty report is
``[CLS] [SEP]``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import BertConfig, BertModel, BertTokenizer

from reward_service.batching import padded_length
from reward_service.models.tokenization import CachedWordIds, tokenizer_ids
from reward_service.text.chexpert import CHEXPERT_OBSERVATIONS

#: The 14 labels in head order: CheXpert's observations.
CHEXBERT_LABELS = CHEXPERT_OBSERVATIONS
#: Classes of the 13 four-way heads; the "No Finding" head has only the first two.
CLASS_NAMES = ("blank", "positive", "negative", "uncertain")
MAX_TOKENS = 512


class CheXbertModel(nn.Module):
    """``bert_labeler`` with the original attribute names, so the checkpoint loads key for key."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.bert = BertModel(config)
        self.dropout = nn.Dropout(0.1)
        hidden = config.hidden_size
        heads = [nn.Linear(hidden, 4) for _ in CHEXBERT_LABELS[:-1]] + [nn.Linear(hidden, 2)]
        self.linear_heads = nn.ModuleList(heads)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Per-head logits (14 tensors ``[N, 4 or 2]``) and the final [CLS] vectors ``[N, hidden]``."""
        cls_hidden = self.bert(input_ids, attention_mask=attention_mask)[0][:, 0, :]
        dropped = self.dropout(cls_hidden)
        return [head(dropped) for head in self.linear_heads], cls_hidden


@dataclass(frozen=True, slots=True)
class CheXbertOutput:
    """One report's CheXbert result: a class index per label (``CLASS_NAMES``) and its [CLS] vector."""

    classes: tuple[int, ...]
    cls_vector: torch.Tensor


def load_checkpoint_state(path: Path) -> dict[str, torch.Tensor]:
    """The model state dict of a ``chexbert.pth`` with the ``module.`` prefix removed."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("model_state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{path} is not a CheXbert checkpoint: no model_state_dict")
    stripped = {key.removeprefix("module."): value for key, value in state.items()}
    # Saved by older transformers, which kept position_ids as a persistent buffer.
    stripped.pop("bert.embeddings.position_ids", None)
    return stripped


def load_chexbert(checkpoint: Path, encoder_dir: Path, device: str) -> tuple[CheXbertModel, BertTokenizer]:
    """The CheXbert model (eval mode, on ``device``) and its tokenizer.

    ``encoder_dir`` holds the bert-base-uncased config and tokenizer files; its weights are not used
    (the checkpoint holds the whole model). Raises ``ValueError`` naming missing or unexpected keys.
    """
    config = BertConfig.from_pretrained(encoder_dir)
    tokenizer = BertTokenizer.from_pretrained(encoder_dir)
    model = CheXbertModel(config)
    state = load_checkpoint_state(checkpoint)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{checkpoint} does not match the CheXbert architecture of {encoder_dir}: "
            f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}"
        )
    return model.to(device).eval(), tokenizer


_WHITESPACE = re.compile(r"\s+")


def tokenize_report(text: str, tokenizer: BertTokenizer, word_ids: CachedWordIds | None = None) -> list[int]:
    """Token ids of one report exactly as CheXbert's preprocessing and ``tokenize`` produce them
    (through ``word_ids``, the slow tokenizer's word cache, when given)."""
    cleaned = _WHITESPACE.sub(" ", text.strip().replace("\n", " ")).strip()
    # CheXbert passes the WordPiece tokens to encode_plus, which only looks them up and adds [CLS]
    # and [SEP]; transformers 5 has no encode_plus, so both steps are spelled out.
    token_ids = word_ids(cleaned) if word_ids is not None else tokenizer_ids(tokenizer, cleaned)
    ids = [tokenizer.cls_token_id, *token_ids, tokenizer.sep_token_id]
    if len(ids) > MAX_TOKENS:
        ids = [*ids[: MAX_TOKENS - 1], tokenizer.sep_token_id]
    return ids


@torch.inference_mode()
def run_chexbert(
    model: CheXbertModel, batch: Sequence[Sequence[int]], device: str, pad_multiple: int = 1
) -> list[CheXbertOutput]:
    """Label a batch of tokenized reports in one forward pass, padded to a multiple of ``pad_multiple``."""
    width = padded_length(max(len(ids) for ids in batch), pad_multiple)
    input_ids = torch.zeros(len(batch), width, dtype=torch.long)
    attention = torch.zeros(len(batch), width, dtype=torch.long)
    for row, ids in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention[row, : len(ids)] = 1
    logits, cls_hidden = model(input_ids.to(device), attention.to(device))
    classes = torch.stack([head.argmax(dim=1) for head in logits], dim=1).cpu()
    cls_hidden = cls_hidden.float().cpu()
    return [
        CheXbertOutput(tuple(int(c) for c in classes[row]), cls_hidden[row].clone())
        for row in range(len(batch))
    ]

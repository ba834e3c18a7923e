"""RadGraph F1 (``radgraph``): entity and relation agreement of the two reports' RadGraph graphs.

Both reports are annotated by a DyGIE RadGraph model loaded by the ``radgraph`` package
(:mod:`reward_service.models.radgraph` batches the forward pass across items and requests; the
annotations are the package's). From the two annotations:

- ``simple``, ``partial``, ``complete``: the package's reward levels, computed by the package's own
  ``radgraph.rewards.compute_reward`` (``F1RadGraph(reward_level=...)``): F1 over entities
  ``(tokens, label)``; over entities marked with whether they have a relation; over entities without
  relations plus ``(tokens, label, relation, target tokens)`` of each relation (lower-cased).
- ``rexrank``: ReXrank's "RadGraph" (CXR-Report-Metric's ``radgraph_combined``), the mean of
  entity F1 (entities ``(tokens, label)``, which equals ``simple``) and relation F1 (relations
  ``((tokens, label), (target tokens, target label), relation)``). RadCliQ-v1 uses this value;
  with ``model_type: radgraph`` (RadGraph v1) it is the leaderboard's number.

As in ``F1RadGraph``, a pair where either report is empty scores 0 at every level without running
the model. A report of whitespace only (which makes the package's data reader fail the whole call)
is treated the same way.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import Field

from reward_service.models.radgraph import RadGraphArchive
from reward_service.models.weights import Weight
from reward_service.scorers.base import ScoreItem, ScoreResult, ScorerOptions
from reward_service.scorers.model_base import ModelParts, SharedModelScorer

if TYPE_CHECKING:
    from reward_service.settings import Settings

Annotation = dict[str, Any]
RewardLevel = Literal["simple", "partial", "complete", "rexrank"]


class RadGraphOptions(ScorerOptions):
    model_type: Literal["radgraph", "radgraph-xl", "modern-radgraph-xl", "echograph"] = Field(
        default="radgraph", description="RadGraph model: radgraph (v1, ReXrank's), radgraph-xl, ..."
    )
    model_dir: Path | None = Field(
        default=None,
        description="Directory holding <model_type>/ (config.json, vocabulary/, weights.th) as the radgraph "
        "package lays it out; default <model_cache_dir>/radgraph.",
    )
    reward_level: RewardLevel = Field(
        default="rexrank",
        description="The score: simple, partial or complete (the radgraph package's levels) or rexrank "
        "(mean of entity and relation F1, ReXrank's RadGraph). All are in the details.",
    )
    return_graphs: bool = Field(default=False, description="Put both reports' entity graphs in the details.")


def set_f1(reference: set[Any], candidate: set[Any]) -> float:
    """F1 of two sets (CXR-Report-Metric's ``compute_f1``): 0 when either is empty."""
    true_positives = len(reference & candidate)
    if not true_positives:
        return 0.0
    precision, recall = true_positives / len(candidate), true_positives / len(reference)
    return 2 * precision * recall / (precision + recall)


def graph_entities(annotation: Annotation) -> set[tuple[str, str]]:
    """The ``(tokens, label)`` entities of an annotation."""
    return {(entity["tokens"], entity["label"]) for entity in annotation["entities"].values()}


def graph_relations(annotation: Annotation) -> set[tuple[tuple[str, str], tuple[str, str], str]]:
    """The ``((tokens, label), (target tokens, target label), relation)`` relations of an annotation."""
    entities = annotation["entities"]
    return {
        (
            (entity["tokens"], entity["label"]),
            (entities[target]["tokens"], entities[target]["label"]),
            relation,
        )
        for entity in entities.values()
        for relation, target in entity["relations"]
    }


#: Every level's value for a pair with an empty report.
EMPTY_SCORES = {
    "simple": 0.0,
    "partial": 0.0,
    "complete": 0.0,
    "entity_f1": 0.0,
    "relation_f1": 0.0,
    "rexrank": 0.0,
}


def radgraph_scores(reference: Annotation, candidate: Annotation) -> dict[str, float]:
    """All levels for one pair of annotations: the package's three levels, entity/relation F1, rexrank."""
    from radgraph.rewards import compute_reward

    # compute_reward is unannotated: with "all" it returns the three levels, pyright also infers one float.
    all_levels = cast(tuple[float, float, float], compute_reward(candidate, reference, "all"))
    simple, partial, complete = all_levels
    entity_f1 = set_f1(graph_entities(reference), graph_entities(candidate))
    relation_f1 = set_f1(graph_relations(reference), graph_relations(candidate))
    return {
        "simple": float(simple),
        "partial": float(partial),
        "complete": float(complete),
        "entity_f1": entity_f1,
        "relation_f1": relation_f1,
        "rexrank": (entity_f1 + relation_f1) / 2,
    }


def is_blank(report: str) -> bool:
    """Whether a report has no words (the package scores "" as 0 and fails on whitespace)."""
    return not report.split()


#: Batch cost of one word, in the "padded tokens" of UNIRG_BATCH_TOKEN_BUDGET. DyGIE keeps about 8
#: candidate spans per word (2 * hidden + 20 floats each) besides BERT's states, so a word weighs
#: several wordpieces of a plain encoder; this keeps a batch's span tensors within a few hundred MB.
WORD_COST = 4


def _report_cost(report: str) -> int:
    return WORD_COST * (len(report.split()) + 2)


def _build(directory: Path, settings: Settings) -> ModelParts[str, Annotation]:
    """Load the RadGraph model in ``directory`` (named ``<model_type>``) through the package's loader."""
    from reward_service.models.hub import file_sha256, select_device
    from reward_service.models.radgraph import BatchedRadGraph, encoder_name, with_local_encoder

    model_type = directory.name
    encoder = encoder_name(directory)
    workdir = None
    package_dir = directory.parent
    if not Path(encoder).is_dir():  # a hub id: use the copy in the service's cache, not ~/.cache
        local = _resolve_encoder(encoder, model_type, settings)
        if local is not None:
            workdir = Path(tempfile.mkdtemp(prefix="unirg-radgraph-"))
            package_dir = with_local_encoder(directory, local, workdir)
    try:
        model = BatchedRadGraph(package_dir, model_type, select_device(settings))
    except BaseException:
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
        raise
    fingerprint = {
        "model_type": model_type,
        "encoder": encoder,
        "weights_sha256": file_sha256(directory / "weights.th"),
    }
    return ModelParts(
        name=f"radgraph:{model_type}",
        prepare=str,
        process=model.annotate,
        cost=_report_cost,
        fingerprint=fingerprint,
        cache_key=f"{model_type}:{fingerprint['weights_sha256']}",
        cleanup=None if workdir is None else partial(shutil.rmtree, workdir, ignore_errors=True),
    )


def _resolve_encoder(encoder: str, model_type: str, settings: Settings) -> Path | None:
    """The local copy of a hub-id encoder in the service's cache, or None to let the package find it.

    The service's cache (``<model_cache_dir>/hub``) comes first. Failing that, a copy in the default
    Hugging Face cache, where the package itself looks, is accepted as is.
    """
    from reward_service.models.hub import MissingWeightsError, resolve_model_dir

    try:
        return resolve_model_dir(encoder, settings, what=f"RadGraph {model_type} encoder config/tokenizer")
    except MissingWeightsError:
        from huggingface_hub import snapshot_download

        try:
            snapshot_download(encoder, local_files_only=True)
        except Exception:
            raise MissingWeightsError(f"RadGraph {model_type} encoder config/tokenizer", encoder) from None
        return None


class RadGraphScorer(SharedModelScorer[RadGraphOptions, Annotation]):
    description = (
        "RadGraph F1: entities and relations of both reports by a RadGraph model; reward level simple, "
        "partial, complete or rexrank (mean of entity and relation F1)."
    )
    family = "radgraph"

    @classmethod
    def weights(cls, options: ScorerOptions, settings: Settings) -> list[Weight]:
        from reward_service.models.hub import radgraph_cache_dir

        assert isinstance(options, RadGraphOptions)
        cache_dir = (options.model_dir or radgraph_cache_dir(settings)).expanduser().resolve()
        return [RadGraphArchive(options.model_type, "RadGraph model", cache_dir)]

    def resolve(self) -> tuple[str, Callable[[], ModelParts[str, Annotation]]]:
        options = self.options
        (archive,) = self.weights(options, self.settings)
        directory = archive.resolve(self.settings)
        return f"{directory}:{self.settings.device}", partial(_build, directory, self.settings)

    def score_without_model(self, item: ScoreItem) -> ScoreResult | None:
        if is_blank(item.reference) or is_blank(item.candidate):
            return self._result(EMPTY_SCORES, None, None)
        return None

    def compare(self, reference: Annotation, candidate: Annotation) -> ScoreResult:
        options = self.options
        graphs = (reference, candidate) if options.return_graphs else (None, None)
        return self._result(radgraph_scores(reference, candidate), *graphs)

    def _result(
        self, scores: Mapping[str, float], reference: Annotation | None, candidate: Annotation | None
    ) -> ScoreResult:
        options = self.options
        details: dict[str, Any] = dict(scores)
        if options.return_graphs:
            details["reference_graph"] = reference["entities"] if reference else {}
            details["candidate_graph"] = candidate["entities"] if candidate else {}
        return ScoreResult(scores[options.reward_level], details=details)

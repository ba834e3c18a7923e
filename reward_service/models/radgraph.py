"""RadGraph annotation of many reports in one DyGIE forward pass, identical to the ``radgraph`` package.

``radgraph.RadGraph`` loads a DyGIE model (``<cache dir>/<model_type>/``: ``config.json``,
``vocabulary/``, ``weights.th``) and annotates reports through a data loader with a batch size of 1:
one BERT forward and one span/relation pass per report. :class:`BatchedRadGraph` loads the model with
that same loader (its tokenizer calls answered on transformers 5 by
:mod:`reward_service.models.radgraph_compat`) and runs many reports together:

- each report is preprocessed and turned into an instance by the package's own functions
  (``preprocess_reports``, ``DyGIEReader.text_to_instance``), then the instances are padded into one
  batch by allennlp's ``Batch``;
- DyGIE already treats the sentences of a document as a batch (BERT, span extraction, entity
  scoring and relation pruning are all per sentence, with masks). The package makes each report a
  one-sentence document, so here the reports of a batch become the sentences of one forward pass;
- decoding is done per report on exactly the tensors the one-report path would see: the entity
  module's own ``predict`` (per sentence, padded spans masked), and the relation module's own
  ``_predict_sentence`` on the report's slice of the pruned spans. Slicing matters: the package's
  relation decoding masks only the columns of the padded span-pair matrix, so decoding the padded
  batch as a whole would invent relations for reports with fewer kept spans than the longest one;
- the output goes through the package's ``postprocess_reports``, so each report's annotation is
  the same dict ``RadGraph.forward`` returns (``text``, ``entities`` with tokens, label, offsets
  and relations).

Padding is masked everywhere (BERT attention, span and pruning masks), so batched scores equal the
one-report scores up to floating-point rounding of differently shaped matrix products; the
discrete annotations (argmax labels, top-k spans) are the same unless two scores tie within that
rounding, which the tests check on real reports.

Only NER and relations are supported (RadGraph's models have coreference and events switched off);
:class:`BatchedRadGraph` refuses a config that turns them on rather than silently diverging.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reward_service.models.hub import MODEL_FILE_PATTERNS, MissingWeightsError, hub_cache_dir
from reward_service.models.weights import Weight
from reward_service.settings import Settings

#: Model types the ``radgraph`` package knows (``radgraph.radgraph.MODEL_MAPPING``).
MODEL_TYPES = ("radgraph", "radgraph-xl", "modern-radgraph-xl", "echograph")
#: Files of a model directory, as the package's archives lay them out.
MODEL_FILES = ("config.json", "vocabulary", "weights.th")
#: The hub repository holding the ``<model_type>.tar.gz`` archives.
ARCHIVE_REPO = "StanfordAIMI/RRG_scorers"

#: Most candidate span pairs scored in one relation pass. The pair embeddings are
#: ``3 * (2 * hidden + feature_size)`` floats each (about 19 KB for a bert-base DyGIE), so this
#: bounds that stage's memory at a few hundred MB whatever the batch.
DEFAULT_PAIR_BUDGET = 16_384

#: Most reports in one DyGIE forward pass on a CPU. A CPU gains almost nothing from batching (one
#: report of ~50 wordpieces already keeps BERT's matrix products busy) while padding, attention and
#: the padded span/pair tensors grow with the batch: measured on 2 cores with a bert-base DyGIE on
#: IU X-ray reports, batches of 16-48 in random length order cost 1.6-2x the per-report time of
#: batches of 1-4 (length-sorted batches of 16 about 1.1x).
CPU_MAX_REPORTS = 4


def missing_model_files(model_dir: Path) -> list[str]:
    """The files of a DyGIE model directory that are absent (empty when it looks complete)."""
    return [name for name in MODEL_FILES if not (model_dir / name).exists()]


@dataclass(frozen=True, slots=True)
class RadGraphArchive(Weight):
    """A RadGraph model (``spec`` is its ``model_type``) extracted from its archive to ``target/<model_type>/``.

    The archive's ``config.json`` names a BERT encoder by hub id, whose config and tokenizer the
    ``radgraph`` package reads from the default Hugging Face cache: fetching puts them there too.
    """

    target: Path

    @property
    def directory(self) -> Path:
        return self.target / self.spec

    def resolve(self, settings: Settings) -> Path:
        missing = missing_model_files(self.directory)
        if missing:
            raise MissingWeightsError(
                f"{self.what} {self.spec!r}",
                str(self.directory),
                f"missing {', '.join(missing)} in {self.directory}",
            )
        return self.directory

    def fetch(self, settings: Settings) -> str:
        import tarfile

        from huggingface_hub import hf_hub_download, snapshot_download

        archive = hf_hub_download(ARCHIVE_REPO, f"{self.spec}.tar.gz", cache_dir=hub_cache_dir(settings))
        self.directory.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(self.directory, filter="data")
        encoder = encoder_name(self.directory)
        snapshot_download(encoder, allow_patterns=list(MODEL_FILE_PATTERNS))
        return f"extracted to {self.directory} (encoder {encoder} in the Hugging Face cache)"


def encoder_name(model_dir: Path) -> str:
    """The BERT encoder a DyGIE ``config.json`` names (a hub id in the published RadGraph archives).

    The package reads only that encoder's config and tokenizer (its weights are in ``weights.th``).
    """
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    return config["dataset_reader"]["token_indexers"]["bert"]["model_name"]


def with_local_encoder(model_dir: Path, encoder_dir: Path, into: Path) -> Path:
    """Lay out ``into/<model_type>/`` like ``model_dir`` but naming ``encoder_dir`` as its encoder.

    The package hands the encoder name of ``config.json`` to transformers as is, so a hub id there
    is looked up in the default Hugging Face cache. To load from the service's own cache (or any
    local copy) instead, ``config.json`` is rewritten with the local path while ``vocabulary/``
    and ``weights.th`` are symlinked, not copied. Returns ``into`` (the package's ``model_cache_dir``).
    """
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    local = str(Path(encoder_dir).resolve())
    config["dataset_reader"]["token_indexers"]["bert"]["model_name"] = local
    config["model"]["embedder"]["token_embedders"]["bert"]["model_name"] = local
    target = into / model_dir.name
    target.mkdir(parents=True, exist_ok=True)
    (target / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    for name in ("vocabulary", "weights.th"):
        (target / name).symlink_to((model_dir / name).resolve())
    return into


@dataclass(frozen=True, slots=True)
class _Sentences:
    """What the entity module reads from a document: its dataset name and its sentences in order."""

    dataset: str
    sentences: tuple[Any, ...]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.sentences)


class BatchedRadGraph:
    """A RadGraph model loaded by the ``radgraph`` package, annotating reports in batches.

    Args:
        cache_dir: the directory holding ``<model_type>/`` (``radgraph.RadGraph``'s ``model_cache_dir``).
        model_type: one of :data:`MODEL_TYPES`.
        device: a torch device name (``cpu``, ``cuda``, ``cuda:1``).
        pair_budget: most span pairs per relation pass (bounds memory; see :data:`DEFAULT_PAIR_BUDGET`).
        max_reports: most reports per forward pass; a larger batch is run as length-sorted
            sub-batches. Default: :data:`CPU_MAX_REPORTS` on a CPU, no limit on a GPU.

    The package downloads a missing model when constructed; check :func:`missing_model_files`
    first to keep a service offline.
    """

    def __init__(
        self,
        cache_dir: str | Path,
        model_type: str = "radgraph",
        device: str = "cpu",
        *,
        pair_budget: int = DEFAULT_PAIR_BUDGET,
        max_reports: int | None = None,
    ) -> None:
        import radgraph
        import torch

        from reward_service.models.radgraph_compat import current_tokenizer_api

        if model_type not in MODEL_TYPES:
            raise ValueError(
                f"unknown RadGraph model_type {model_type!r}; choose one of {', '.join(MODEL_TYPES)}"
            )
        torch_device = torch.device(device)
        cuda = (torch_device.index or 0) if torch_device.type == "cuda" else -1
        # The package prints its device choice; keep the service's stdout for its own logs.
        with contextlib.redirect_stdout(io.StringIO()), current_tokenizer_api():
            self.package = radgraph.RadGraph(model_type=model_type, model_cache_dir=str(cache_dir), cuda=cuda)
        # radgraph's DyGIE model. The package ships no types: pyright sees DyGIE's submodules and
        # settings only through torch's Module.__getattr__ (Tensor | Module).
        self.model: Any = self.package.model
        self.reader = self.package.reader
        self.model_type = self.package.model_type
        self.device = self.package.device
        self.pair_budget = pair_budget
        if max_reports is None and torch_device.type == "cpu":
            max_reports = CPU_MAX_REPORTS
        if max_reports is not None and max_reports < 1:
            raise ValueError("max_reports must be >= 1 (or None for no limit)")
        self.max_reports = max_reports
        self._check_supported()

    def _check_supported(self) -> None:
        weights = self.model._loss_weights
        if weights.get("coref", 0) > 0 or weights.get("events", 0) > 0 or self.model._coref.coref_prop > 0:
            raise ValueError(
                "this DyGIE model uses coreference or event extraction, which batched RadGraph inference "
                "does not implement; RadGraph models use entities and relations only"
            )

    def annotate(self, reports: Sequence[str]) -> list[dict[str, Any]]:
        """One annotation per report, equal to ``radgraph.RadGraph(...)(reports)[str(i)]``.

        Like the package, an empty report is annotated as the text ``"None"``. At most
        ``max_reports`` reports share a forward pass, grouped by length so padding stays small.
        """
        if not reports:
            return []
        size = self.max_reports or len(reports)
        if len(reports) <= size:
            return self._annotate(reports)
        order = sorted(range(len(reports)), key=lambda i: len(reports[i].split()))
        annotations: list[dict[str, Any]] = [{} for _ in reports]
        for start in range(0, len(order), size):
            group = order[start : start + size]
            for index, annotation in zip(group, self._annotate([reports[i] for i in group]), strict=True):
                annotations[index] = annotation
        return annotations

    def _annotate(self, reports: Sequence[str]) -> list[dict[str, Any]]:
        """One forward pass over ``reports`` (non-empty)."""
        import torch
        from radgraph.allennlp.data.batch import Batch
        from radgraph.utils import batch_to_device, postprocess_reports, preprocess_reports

        texts = [report or "None" for report in reports]
        documents = preprocess_reports(texts, self.model_type)
        instances = [self.reader.text_to_instance(document) for document in documents]
        batch = Batch(instances)
        batch.index_instances(self.model.vocab)
        tensors = batch_to_device(batch.as_tensor_dict(), self.device)
        assert isinstance(tensors, dict)  # unannotated: a dict of tensors comes back as one
        with torch.inference_mode():
            outputs = self._forward(tensors)
        annotations = postprocess_reports(outputs)
        return [annotations[document["doc_key"]] for document in documents]

    def _forward(self, tensors: dict[str, Any]) -> list[dict[str, Any]]:
        """``DyGIE.forward`` + ``make_output_human_readable`` for N one-sentence documents at once."""
        import copy

        import torch.nn.functional as F
        from radgraph.allennlp.nn import util

        model = self.model
        documents = tensors["metadata"]
        sentences = tuple(document.sentences[0] for document in documents)
        dataset = documents[0].dataset
        # Every tensor is (documents, 1 sentence, ...): the documents' sentences become the batch.
        text = tensors["text"]
        spans = tensors["spans"].squeeze(1)  # (N, max spans, 2), padded with -1
        text_embeddings = model._embedder(text, num_wrapping_dims=1).squeeze(1)
        text_mask = util.get_text_field_mask(text, num_wrapping_dims=1).float().squeeze(1)
        sentence_lengths = text_mask.sum(dim=1).long()
        span_mask = (spans[:, :, 0] >= 0).float()
        spans = F.relu(spans.float()).long()
        span_embeddings = model._endpoint_span_extractor(text_embeddings, spans)

        ner = model._ner(
            spans, span_mask, span_embeddings, sentence_lengths, None, _Sentences(dataset, sentences)
        )
        relations = self._relations(spans, span_mask, span_embeddings, sentence_lengths, dataset, sentences)

        results = []
        for document, entities, pairs in zip(documents, ner["predictions"], relations, strict=True):
            annotated = copy.deepcopy(document)
            annotated.sentences[0].predicted_ner = entities
            annotated.sentences[0].predicted_relations = pairs
            results.append(annotated.to_json())
        return results

    def _relations(
        self,
        spans: Any,
        span_mask: Any,
        span_embeddings: Any,
        sentence_lengths: Any,
        dataset: str,
        sentences: tuple[Any, ...],
    ) -> list[list[Any]]:
        """Relation predictions per sentence, scoring at most ``pair_budget`` span pairs at a time."""
        relation = self.model._relation
        relation._active_namespace = f"{dataset}__relation_labels"
        keep = relation_spans_to_keep(sentence_lengths, relation._spans_per_word)
        predictions: list[list[Any]] = []
        for start, stop in pair_chunks(keep, self.pair_budget):
            chunk = slice(start, stop)
            (top_embeddings, top_mention_scores, num_keep, _top_mask, _top_indices, top_spans) = (
                relation._prune_spans(
                    spans[chunk], span_mask[chunk], span_embeddings[chunk], sentence_lengths[chunk]
                )
            )
            pair_embeddings = relation._compute_span_pair_embeddings(top_embeddings)
            scores = relation._compute_relation_scores(pair_embeddings, top_mention_scores).cpu()
            top_spans, num_keep = top_spans.cpu(), num_keep.cpu()
            for offset, sentence in enumerate(sentences[chunk]):
                # The one-report path prunes to exactly max(k, 1) spans: decode that slice only.
                width = max(int(num_keep[offset]), 1)
                _, sentence_predictions = relation._predict_sentence(
                    top_spans[offset, :width], scores[offset, :width, :width], num_keep[offset], sentence
                )
                predictions.append(sentence_predictions)
        return predictions


def relation_spans_to_keep(sentence_lengths: Any, spans_per_word: float) -> list[int]:
    """How many spans the relation module keeps per sentence (as ``RelationExtractor._prune_spans``)."""
    return [max(math.ceil(float(length) * spans_per_word), 1) for length in sentence_lengths.tolist()]


def pair_chunks(keep: Sequence[int], budget: int) -> list[tuple[int, int]]:
    """Consecutive ``[start, stop)`` ranges whose padded span-pair count ``n * max(k)^2`` fits ``budget``.

    A sentence over budget alone still gets a range of its own.
    """
    chunks: list[tuple[int, int]] = []
    start, widest = 0, 0
    for index, k in enumerate(keep):
        candidate = max(widest, k)
        if index > start and (index - start + 1) * candidate * candidate > budget:
            chunks.append((start, index))
            start, candidate = index, k
        widest = candidate
    if keep:
        chunks.append((start, len(keep)))
    return chunks

"""Random-weight DyGIE (RadGraph) model directories, built offline for tests and benchmarks.

The ``radgraph`` package loads a model from ``<cache dir>/<model_type>/`` holding ``config.json``,
``vocabulary/`` and ``weights.th`` (the layout of the ``radgraph.tar.gz`` archives on the hub). The
real ``config.json`` names its BERT encoder by hub id; the package only reads that encoder's config
and tokenizer (its weights are part of ``weights.th``). The directory built here has the same files,
with a random BERT encoder of the requested size stored under ``encoder/`` next to them and named
in ``config.json`` by absolute path, so loading works offline through the package's own loader.

The model is built with the package's own classes (``DyGIE``, the mismatched BERT embedder), so the
state dict has exactly the keys the loader expects (it loads with ``strict=True``).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reward_service.models.radgraph_compat import current_tokenizer_api
from unirg_testing.encoders import build_bert_encoder, minilm_vocab_file

#: RadGraph's entity and relation labels (RadGraph v1 schema).
RADGRAPH_ENTITY_LABELS = ("ANAT-DP", "OBS-DP", "OBS-DA", "OBS-U")
RADGRAPH_RELATION_LABELS = ("modify", "located_at", "suggestive_of")


def dygie_config(
    encoder: str,
    *,
    max_span_width: int = 8,
    feature_size: int = 20,
    feedforward_hidden: int = 150,
    max_length: int = 512,
    spans_per_word: float = 0.5,
) -> dict[str, Any]:
    """A DyGIE ``config.json`` of the shape the ``radgraph`` package reads (NER and relations only)."""
    bert = {"model_name": encoder, "max_length": max_length}
    return {
        "dataset_reader": {
            "type": "dygie",
            "max_span_width": max_span_width,
            "token_indexers": {"bert": {"type": "pretrained_transformer_mismatched", **bert}},
        },
        "model": {
            "type": "dygie",
            "embedder": {"token_embedders": {"bert": {"type": "pretrained_transformer_mismatched", **bert}}},
            "initializer": {},
            "module_initializer": {},
            "feature_size": feature_size,
            "max_span_width": max_span_width,
            "target_task": "relation",
            "feedforward_params": {"num_layers": 2, "hidden_dims": feedforward_hidden, "dropout": 0.4},
            "loss_weights": {"ner": 1.0, "relation": 1.0, "coref": 0.0, "events": 0.0},
            "modules": {
                "coref": {"spans_per_word": 0.3, "max_antecedents": 100, "coref_prop": 0},
                "ner": {},
                "relation": {"spans_per_word": spans_per_word},
                "events": {
                    "trigger_spans_per_word": 0.3,
                    "argument_spans_per_word": 0.8,
                    "loss_weights": {"trigger": 1.0, "arguments": 1.0},
                },
            },
        },
    }


def build_random_dygie(
    cache_dir: str | Path,
    *,
    model_type: str = "radgraph",
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int = 64,
    vocab_file: str | Path | None = None,
    max_span_width: int = 8,
    feature_size: int = 20,
    feedforward_hidden: int = 150,
    logit_scale: float = 30.0,
    entity_rate: float = 0.03,
    relation_rate: float = 0.25,
    seed: int = 0,
) -> Path:
    """Write a random-weight DyGIE model to ``cache_dir/<model_type>/`` and return that directory.

    ``cache_dir`` is what ``radgraph.RadGraph(model_cache_dir=...)`` and the ``radgraph`` scorer's
    ``model_dir`` option take. Defaults give a tiny model for tests; ``hidden_size=768,
    num_layers=12, num_heads=12, intermediate_size=3072`` gives a bert-base-size encoder like the
    real RadGraph's.

    A random model's label scores barely vary between spans, so the output layers are rescaled
    (``logit_scale``) and their biases set from a probe report so that about ``entity_rate`` of the
    candidate spans get each entity label and about ``relation_rate`` of the candidate span pairs
    each relation label: a plausible number of entities and relations per report, with clear
    margins between the label scores.
    """
    import torch
    from radgraph.allennlp.data import Vocabulary
    from radgraph.allennlp.modules import text_field_embedders, token_embedders
    from radgraph.dygie.models import dygie

    model_dir = Path(cache_dir) / model_type
    encoder_dir = build_bert_encoder(
        model_dir / "encoder",
        vocab_file=Path(vocab_file) if vocab_file is not None else minilm_vocab_file(),
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        intermediate_size=intermediate_size,
        seed=seed,
    )

    config = dygie_config(
        str(encoder_dir.resolve()),
        max_span_width=max_span_width,
        feature_size=feature_size,
        feedforward_hidden=feedforward_hidden,
    )
    (model_dir / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")

    vocab = Vocabulary(non_padded_namespaces=["*tags", "*labels"])
    # The null label must be index 0 of the entity namespace (the NER module asserts it).
    vocab.add_tokens_to_namespace(["", *RADGRAPH_ENTITY_LABELS], f"{model_type}__ner_labels")
    vocab.add_tokens_to_namespace(list(RADGRAPH_RELATION_LABELS), f"{model_type}__relation_labels")
    vocab.save_to_files(str(model_dir / "vocabulary"))

    torch.manual_seed(seed)
    bert = config["model"]["embedder"]["token_embedders"]["bert"]
    # Built the way radgraph.RadGraph builds it, so the state dict keys match its loader.
    with current_tokenizer_api():
        token_embedder = token_embedders.PretrainedTransformerMismatchedEmbedder(
            model_name=bert["model_name"], max_length=bert["max_length"]
        )
    embedder = text_field_embedders.BasicTextFieldEmbedder({"bert": token_embedder})
    # The keys radgraph.RadGraph drops before calling DyGIE(...).
    dropped = {"type", "embedder", "initializer", "module_initializer"}
    model_params = {key: value for key, value in config["model"].items() if key not in dropped}
    model = dygie.DyGIE(vocab=vocab, embedder=embedder, **model_params)
    torch.save(model.state_dict(), model_dir / "weights.th")
    _calibrate_output_layers(model_dir, model_type, logit_scale, entity_rate, relation_rate)
    return model_dir


_PROBE_REPORT = (
    "The heart is normal in size. The mediastinum is unremarkable. There is mild bibasilar "
    "atelectasis. No pleural effusion or pneumothorax. Degenerative changes of the thoracic spine."
)


def _calibrate_output_layers(
    model_dir: Path, model_type: str, logit_scale: float, entity_rate: float, relation_rate: float
) -> None:
    """Rescale the entity and relation output layers and set their biases from a probe report."""
    from statistics import NormalDist

    import radgraph
    import torch

    with contextlib.redirect_stdout(io.StringIO()), current_tokenizer_api():  # it prints its device choice
        loader = radgraph.RadGraph(model_type=model_type, model_cache_dir=str(model_dir.parent), cuda=-1)
    model = loader.model
    ner_outputs = [scorer[-1]._module for scorer in model._ner._ner_scorers.values()]
    relation_outputs = list(model._relation._relation_scorers.values())
    captured: dict[str, torch.Tensor] = {}

    def keep(name: str) -> Callable[..., None]:
        def hook(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            # A copy: the relation module adds mention scores to this tensor in place afterwards.
            captured[name] = output.detach().reshape(-1, output.shape[-1]).clone()

        return hook

    handles = [ner_outputs[0].register_forward_hook(keep("ner"))]
    handles.append(relation_outputs[0].register_forward_hook(keep("relation")))
    with torch.no_grad():
        loader([_PROBE_REPORT])
    for handle in handles:
        handle.remove()
    with torch.no_grad():
        for layers, name, rate in (
            (ner_outputs, "ner", entity_rate),
            (relation_outputs, "relation", relation_rate),
        ):
            logits = captured[name] * logit_scale
            # Shift each label so that a fraction ``rate`` of the probe's logits is above 0 (the null score).
            threshold = NormalDist().inv_cdf(1.0 - rate)
            shift = -(logits.mean(0) + threshold * logits.std(0))
            for layer in layers:
                layer.weight.mul_(logit_scale)
                layer.bias.mul_(logit_scale).add_(shift)
    torch.save(model.state_dict(), model_dir / "weights.th")

"""Reference numbers of the model-scorer packages on transformers 4, for the transformers-5 tests.

Run with the interpreter of an environment on transformers 4 (the default test environment): it
builds tiny random-weight models into OUT_DIR (a BERT and a RoBERTa encoder, a CheXbert checkpoint,
a DyGIE RadGraph model), scores fixed texts with the reference code paths -- ``bert_score.BERTScorer``,
``bert_score.utils.sent_encode``, CheXbert's original tokenization and forward pass,
``radgraph.RadGraph`` and ``radgraph.F1RadGraph`` -- and writes OUT_DIR/reference.json with the model
paths, the texts and the numbers. ``tests/test_transformers5.py`` runs it at test time and checks
that the scorers give the same numbers on the same model files under transformers 5, so nothing here
is a stored magic number: rerun it and the expectations are rebuilt.

    python tests/transformers4_reference.py OUT_DIR
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

#: BERTScore settings compared: (encoder, layer, rescale with the test baseline).
BERTSCORE_CASES = [("bert", 1, False), ("bert", 2, True), ("roberta", 2, False), ("roberta", 1, True)]
BASELINE = "LAYER,P,R,F\n0,0.1,0.2,0.3\n1,0.6,0.55,0.58\n2,0.7,0.65,0.68\n"


def build_models(out: Path) -> dict[str, str]:
    from unirg_testing.dygie import build_random_dygie
    from unirg_testing.encoders import (
        build_bert_encoder,
        build_chexbert_checkpoint,
        build_roberta_encoder,
    )

    bert = build_bert_encoder(out / "tiny-bert", seed=1)
    models = {
        "bert": bert,
        "roberta": build_roberta_encoder(out / "tiny-roberta", seed=4),
        "chexbert": build_chexbert_checkpoint(out / "chexbert.pth", bert, seed=2),
        "baseline": out / "baseline.tsv",
        "radgraph": out / "radgraph-models",
    }
    models["baseline"].write_text(BASELINE, encoding="utf-8")
    build_random_dygie(models["radgraph"], model_type="radgraph", seed=3)
    return {name: str(path) for name, path in models.items()}


def bertscore_reference(models: dict[str, str]) -> dict[str, Any]:
    from bert_score import BERTScorer
    from bert_score.utils import get_tokenizer, sent_encode
    from fidelity import CANDIDATES, TOKENIZER_EDGE_CASES, pairs

    items = pairs()
    cases = []
    for encoder, layer, rescale in BERTSCORE_CASES:
        scorer = BERTScorer(
            model_type=models[encoder],
            num_layers=layer,
            device="cpu",
            lang="en",
            rescale_with_baseline=rescale,
            baseline_path=models["baseline"] if rescale else None,
        )
        precision, recall, f1 = scorer.score([i.candidate for i in items], [i.reference for i in items])
        cases.append(
            {
                "encoder": encoder,
                "layer": layer,
                "rescale": rescale,
                "precision": precision.tolist(),
                "recall": recall.tolist(),
                "f1": f1.tolist(),
            }
        )
    texts = [*CANDIDATES, *TOKENIZER_EDGE_CASES]
    ids = {
        encoder: [sent_encode(get_tokenizer(models[encoder], use_fast=False), text) for text in texts]
        for encoder in ("bert", "roberta")
    }
    return {"items": [[i.reference, i.candidate] for i in items], "cases": cases, "texts": texts, "ids": ids}


def chexbert_reference(models: dict[str, str]) -> dict[str, Any]:
    from fidelity import (
        CANDIDATES,
        REFERENCES,
        TOKENIZER_EDGE_CASES,
        one_report_forward,
        original_chexbert,
        original_chexbert_ids,
    )
    from transformers import BertTokenizer

    model = original_chexbert(Path(models["bert"]), Path(models["chexbert"]))
    tokenizer = BertTokenizer.from_pretrained(models["bert"])
    texts = list(dict.fromkeys([*REFERENCES, *CANDIDATES, *TOKENIZER_EDGE_CASES]))
    outputs = []
    for text in texts:
        classes, cls = one_report_forward(model, tokenizer, text)
        outputs.append(
            {"ids": original_chexbert_ids(tokenizer, text), "classes": classes, "cls": cls.tolist()}
        )
    return {"texts": texts, "outputs": outputs}


def radgraph_reference(models: dict[str, str], shared_reports: Path | None) -> dict[str, Any]:
    import radgraph
    from fidelity import HAND_WRITTEN, annotate_with_package, grpo_items

    with contextlib.redirect_stdout(io.StringIO()):  # the package prints its device choice
        package = radgraph.RadGraph(model_type="radgraph", model_cache_dir=models["radgraph"], cuda=-1)
        f1radgraph = radgraph.F1RadGraph(
            reward_level="all", model_type="radgraph", model_cache_dir=models["radgraph"], cuda=-1
        )
    reports = [*HAND_WRITTEN, "", "Heart size normal. " * 40]
    if shared_reports is not None and shared_reports.is_file():
        studies = json.loads(shared_reports.read_text(encoding="utf-8"))
        reports += [study["report"] for study in list(studies.values())[:40]]
    # The package fails a whole call on a whitespace-only report, and the scorer scores it 0 without
    # the model: compare the others.
    items = [item for item in grpo_items(HAND_WRITTEN) if item.candidate.strip() or not item.candidate]
    _, levels, _, _ = f1radgraph(refs=[i.reference for i in items], hyps=[i.candidate for i in items])
    return {
        "reports": reports,
        "annotations": annotate_with_package(package, reports),
        "items": [[i.id, i.reference, i.candidate] for i in items],
        "levels": [list(level) for level in zip(*levels, strict=True)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build tiny random models into OUT_DIR and write OUT_DIR/reference.json: the numbers "
        "bert-score, CheXbert's original code path and radgraph give on them under transformers 4. "
        "tests/test_transformers5.py runs this with the interpreter named by UNIRG_TRANSFORMERS4_PYTHON.",
    )
    parser.add_argument("out_dir", type=Path, help="directory for the models and reference.json")
    parser.add_argument(
        "--shared-reports",
        type=Path,
        default=None,
        help="a ReXrank-layout JSON whose first 40 reports are annotated too (skipped when absent)",
    )
    args = parser.parse_args(argv)

    import transformers

    if int(transformers.__version__.split(".")[0]) != 4:
        parser.error(f"run this with transformers 4 (this interpreter has {transformers.__version__})")
    import bert_score
    import radgraph  # noqa: F401  (checked here so a missing package fails before any work)
    import torch

    args.out_dir.mkdir(parents=True, exist_ok=True)
    models = build_models(args.out_dir)
    reference = {
        "versions": {
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "bert_score": bert_score.__version__,
        },
        "models": models,
        "bertscore": bertscore_reference(models),
        "chexbert": chexbert_reference(models),
        "radgraph": radgraph_reference(models, args.shared_reports),
    }
    (args.out_dir / "reference.json").write_text(json.dumps(reference), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

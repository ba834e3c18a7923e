"""On transformers 5, the model scorers give the numbers the reference packages give on transformers 4.

The reference packages cannot run here (bert-score and CheXbert's original tokenization call tokenizer
methods transformers 5 removed), so a transformers-4 interpreter (``UNIRG_TRANSFORMERS4_PYTHON``;
``make test`` sets it) runs ``tests/transformers4_reference.py`` at test time: it builds tiny random
models and writes the packages' numbers on them. The scorers here load those same model files.
Token ids and discrete outputs (CheXbert classes, RadGraph graphs and F1 levels) must be equal;
floats equal within 1e-5 (BERTScore) and 5e-4 (SembScore: batched, padded passes against the original's
one report at a time, as in the transformers-4 comparison).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from fidelity import TRANSFORMERS_MAJOR, score_with, scorer_settings
from live_service import REPO_ROOT, SHARED_REPORTS

from reward_service.scorers import ScoreItem

pytestmark = pytest.mark.skipif(
    TRANSFORMERS_MAJOR < 5,
    reason="on transformers 4 the model-scorer tests compare with the reference packages directly",
)

REFERENCE_SCRIPT = Path(__file__).with_name("transformers4_reference.py")
TRANSFORMERS4_PYTHON = "UNIRG_TRANSFORMERS4_PYTHON"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict:
    python = os.environ.get(TRANSFORMERS4_PYTHON)
    if not python:
        pytest.fail(
            f"set {TRANSFORMERS4_PYTHON} to a Python whose environment has transformers 4 and the project's "
            "test extra (e.g. .venv/bin/python); `make test` does"
        )
    out = tmp_path_factory.mktemp("transformers4-reference")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests")])}
    subprocess.run(
        [python, str(REFERENCE_SCRIPT), str(out), "--shared-reports", str(SHARED_REPORTS)],
        env=env,
        check=True,
        timeout=900,
    )
    data = json.loads((out / "reference.json").read_text(encoding="utf-8"))
    assert data["versions"]["transformers"].startswith("4.")
    return data


def test_the_reference_ran_on_transformers_4_and_we_run_on_5(reference: dict) -> None:
    import transformers

    assert reference["versions"]["transformers"].split(".")[0] == "4"
    assert transformers.__version__.split(".")[0] == "5"


@pytest.mark.parametrize("encoder", ["bert", "roberta"])
def test_bertscore_token_ids_equal_sent_encode_on_transformers_4(reference: dict, encoder: str) -> None:
    from bert_score.utils import get_tokenizer

    from reward_service.models.tokenization import SpecialTokens
    from reward_service.scorers.bertscore import encode_sentence

    tokenizer = get_tokenizer(reference["models"][encoder], use_fast=False)
    special = SpecialTokens.of(tokenizer)
    expected = reference["bertscore"]["ids"][encoder]
    for text, ids in zip(reference["bertscore"]["texts"], expected, strict=True):
        assert encode_sentence(tokenizer, special, text) == ids, text


@pytest.mark.parametrize("case", range(4))
async def test_bertscore_equals_bert_score_on_transformers_4(
    reference: dict, tmp_path: Path, case: int
) -> None:
    expected = reference["bertscore"]["cases"][case]
    models = reference["models"]
    options = {"model": models[expected["encoder"]], "layer": expected["layer"]}
    if expected["rescale"]:
        options["baseline"] = models["baseline"]
    items = [
        ScoreItem(id=str(i), reference=ref, candidate=cand)
        for i, (ref, cand) in enumerate(reference["bertscore"]["items"])
    ]
    results = await score_with("bertscore", options, scorer_settings(tmp_path), items)
    for index, result in enumerate(results):
        assert result.error is None
        assert result.score == pytest.approx(expected["f1"][index], abs=1e-5)
        assert result.details["precision"] == pytest.approx(expected["precision"][index], abs=1e-5)
        assert result.details["recall"] == pytest.approx(expected["recall"][index], abs=1e-5)


async def test_chexbert_and_semb_equal_the_original_on_transformers_4(
    reference: dict, tmp_path: Path
) -> None:
    import torch
    from transformers import BertTokenizer

    from reward_service.models.chexbert import tokenize_report
    from reward_service.text.chexpert import CHEXPERT_OBSERVATIONS

    models, expected = reference["models"], reference["chexbert"]
    tokenizer = BertTokenizer.from_pretrained(models["bert"])
    for text, output in zip(expected["texts"], expected["outputs"], strict=True):
        assert tokenize_report(text, tokenizer) == output["ids"], text
    # The tiny model labels reports differently, so equal labels mean equal tokenisation, masks and heads.
    assert len({tuple(output["classes"]) for output in expected["outputs"]}) >= len(expected["texts"]) // 2

    texts = expected["texts"]
    # Every text against the first four, so SembScore and labels are checked on real pairs.
    items = [ScoreItem(f"{r}-{c}", texts[r], texts[c]) for r in range(4) for c in range(len(texts))]
    options = {"checkpoint": models["chexbert"], "encoder": models["bert"]}
    labels = await score_with("chexbert", options, scorer_settings(tmp_path), items)
    semb = await score_with("semb", options, scorer_settings(tmp_path), items)
    by_text = dict(zip(texts, expected["outputs"], strict=True))

    def present(classes: list[int]) -> list[str]:  # "rrg": positive (1) or uncertain (3)
        return sorted(name for name, c in zip(CHEXPERT_OBSERVATIONS, classes, strict=True) if c in (1, 3))

    for item, label_result, semb_result in zip(items, labels, semb, strict=True):
        ref, cand = by_text[item.reference], by_text[item.candidate]
        assert label_result.details["reference_labels"] == present(ref["classes"])
        assert label_result.details["candidate_labels"] == present(cand["classes"])
        cosine = torch.nn.functional.cosine_similarity(
            torch.tensor(ref["cls"]), torch.tensor(cand["cls"]), dim=0
        )
        # Rounding of batched vs one-report float32 passes (see test_model_scorers.py); 4.9e-5 seen.
        assert semb_result.score == pytest.approx(float(cosine), abs=5e-4)


def test_radgraph_annotations_equal_the_package_on_transformers_4(reference: dict) -> None:
    from reward_service.models.radgraph import BatchedRadGraph

    expected = reference["radgraph"]
    batched = BatchedRadGraph(reference["models"]["radgraph"], "radgraph", "cpu")
    assert batched.annotate(expected["reports"]) == expected["annotations"]
    # Relations must occur for the comparison to mean anything.
    assert sum(len(e["relations"]) for a in expected["annotations"] for e in a["entities"].values()) > 0


async def test_radgraph_scores_equal_f1radgraph_on_transformers_4(reference: dict, tmp_path: Path) -> None:
    expected = reference["radgraph"]
    items = [ScoreItem(id, ref, cand) for id, ref, cand in expected["items"]]
    results = await score_with(
        "radgraph", {"model_dir": reference["models"]["radgraph"]}, scorer_settings(tmp_path), items
    )
    for item, result, levels in zip(items, results, expected["levels"], strict=True):
        assert result.error is None, (item.id, result.error)
        assert [result.details["simple"], result.details["partial"], result.details["complete"]] == levels
    assert any(result.score for result in results)

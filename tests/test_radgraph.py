"""RadGraph F1: our batched DyGIE path against the ``radgraph`` package on the same model.

The model is a tiny random-weight DyGIE built at test time (unirg_testing.dygie) and
loaded by the package's own loader. Its annotations are meaningless, but the package's one-report
path (``radgraph.RadGraph``, ``radgraph.F1RadGraph``) and our batched path must agree exactly.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from fidelity import (
    HAND_WRITTEN,
    annotate_with_package,
    grpo_items,
    radgraph_package_context,
    score_with,
    scorer_settings,
)

from reward_service.models.hub import MissingWeightsError
from reward_service.models.radgraph import BatchedRadGraph, pair_chunks
from reward_service.scorers import ScoreItem, ScoreResult, scorer_class
from reward_service.scorers.radgraph import radgraph_scores
from unirg_testing.dygie import build_random_dygie

radgraph = pytest.importorskip("radgraph")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random DyGIE under ``<dir>/radgraph/`` (the layout ``RadGraph(model_cache_dir=dir)`` reads)."""
    root = tmp_path_factory.mktemp("radgraph-models")
    build_random_dygie(root, model_type="radgraph", seed=3)
    return root


@pytest.fixture(scope="module")
def package(model_dir: Path) -> radgraph.RadGraph:
    with radgraph_package_context():
        return radgraph.RadGraph(model_type="radgraph", model_cache_dir=str(model_dir), cuda=-1)


@pytest.fixture(scope="module")
def batched(model_dir: Path) -> BatchedRadGraph:
    return BatchedRadGraph(model_dir, "radgraph", "cpu")


def shared_texts(shared_reports: dict[str, dict], count: int) -> list[str]:
    return [study["report"] for study in list(shared_reports.values())[:count]]


def test_tiny_model_loads_through_the_package_loader(package: radgraph.RadGraph) -> None:
    annotation = package(["Mild cardiomegaly. Small left pleural effusion with adjacent atelectasis."])["0"]
    assert annotation["text"].startswith("Mild cardiomegaly .")
    labels = {entity["label"] for entity in annotation["entities"].values()}
    assert labels and labels <= {"ANAT-DP", "OBS-DP", "OBS-DA", "OBS-U"}


def test_batched_annotations_equal_the_package(package: radgraph.RadGraph, batched: BatchedRadGraph) -> None:
    reports = [*HAND_WRITTEN, "", "Heart size normal. " * 40]
    expected = annotate_with_package(package, reports)
    assert batched.annotate(reports) == expected
    # The random model must produce graphs with relations for the comparison to mean anything...
    assert sum(len(e["relations"]) for a in expected for e in a["entities"].values()) > 0
    # ...with every entity label, and graphs whose size differs from report to report.
    labels = {entity["label"] for a in expected for entity in a["entities"].values()}
    assert labels == {"ANAT-DP", "OBS-DP", "OBS-DA", "OBS-U"}
    assert len({len(a["entities"]) for a in expected}) >= 4


def test_batched_annotations_equal_the_package_on_shared_reports(
    package: radgraph.RadGraph, batched: BatchedRadGraph, shared_reports: dict[str, dict]
) -> None:
    reports = shared_texts(shared_reports, 40)
    expected = annotate_with_package(package, reports)
    assert batched.annotate(reports) == expected
    # All 40 reports in one forward pass (as on a GPU, where max_reports has no default limit).
    whole = copy.copy(batched)
    whole.max_reports = None
    assert whole.annotate(reports) == expected
    # Relation scoring split into many small chunks gives the same graphs.
    small = copy.copy(whole)
    small.pair_budget = 64
    assert small.annotate(reports) == expected


def test_pair_chunks_respect_the_budget() -> None:
    assert pair_chunks([2, 2, 3, 5, 1], 20) == [(0, 2), (2, 3), (3, 4), (4, 5)]
    assert pair_chunks([1, 1, 1, 1], 100) == [(0, 4)]
    assert pair_chunks([30], 10) == [(0, 1)]
    assert pair_chunks([], 10) == []


def test_rexrank_level_from_a_hand_made_graph() -> None:
    # Reference: effusion (OBS-DP) located_at pleural (ANAT-DP); cardiomegaly (OBS-DP).
    reference = {
        "entities": {
            "1": {"tokens": "effusion", "label": "OBS-DP", "relations": [["located_at", "2"]]},
            "2": {"tokens": "pleural", "label": "ANAT-DP", "relations": []},
            "3": {"tokens": "cardiomegaly", "label": "OBS-DP", "relations": []},
        }
    }
    # Candidate: the same effusion relation, edema instead of cardiomegaly, and one wrong relation.
    candidate = {
        "entities": {
            "1": {"tokens": "effusion", "label": "OBS-DP", "relations": [["located_at", "2"]]},
            "2": {"tokens": "pleural", "label": "ANAT-DP", "relations": []},
            "3": {"tokens": "edema", "label": "OBS-DP", "relations": [["located_at", "2"]]},
        }
    }
    scores = radgraph_scores(reference, candidate)
    # Entities: 2 of 3 on each side match -> F1 2/3. Relations: 1 of 1 vs 1 of 2 -> P 1/2, R 1 -> 2/3.
    assert scores["entity_f1"] == pytest.approx(2 / 3)
    assert scores["relation_f1"] == pytest.approx(2 / 3)
    assert scores["rexrank"] == pytest.approx(2 / 3)
    assert scores["simple"] == pytest.approx(2 / 3)
    candidate["entities"]["1"]["relations"] = []
    scores = radgraph_scores(reference, candidate)
    # Relations now: candidate {edema->pleural}, reference {effusion->pleural}: no overlap.
    assert scores["relation_f1"] == 0.0
    assert scores["rexrank"] == pytest.approx(1 / 3)


def assert_equal_to_f1radgraph(model_dir: Path, items: list[ScoreItem], results: list[ScoreResult]) -> None:
    with radgraph_package_context():
        f1radgraph = radgraph.F1RadGraph(
            reward_level="all", model_type="radgraph", model_cache_dir=str(model_dir), cuda=-1
        )
    # The package fails the whole call on a whitespace-only report; it scores "" as 0, and so do we.
    scored = [
        (item, result)
        for item, result in zip(items, results, strict=True)
        if item.candidate.strip() or not item.candidate
    ]
    _, (simple, partial, complete), _, _ = f1radgraph(
        refs=[item.reference for item, _ in scored], hyps=[item.candidate for item, _ in scored]
    )
    for (item, result), levels in zip(scored, zip(simple, partial, complete, strict=True), strict=True):
        assert result.error is None, (item.id, result.error)
        assert (result.details["simple"], result.details["partial"], result.details["complete"]) == levels, (
            item.id
        )
        assert result.details["entity_f1"] == result.details["simple"]
        assert result.score == (result.details["entity_f1"] + result.details["relation_f1"]) / 2


async def test_scores_equal_f1radgraph(model_dir: Path, tmp_path: Path) -> None:
    items = grpo_items(HAND_WRITTEN)
    results = await score_with("radgraph", {"model_dir": str(model_dir)}, scorer_settings(tmp_path), items)
    assert_equal_to_f1radgraph(model_dir, items, results)
    by_id = {item.id: result for item, result in zip(items, results, strict=True)}
    assert by_id["blank"].score == 0.0 and by_id["empty-c"].score == 0.0
    assert any(result.score for result in results)


async def test_scores_equal_f1radgraph_on_shared_reports(
    model_dir: Path, tmp_path: Path, shared_reports: dict[str, dict]
) -> None:
    items = grpo_items(shared_texts(shared_reports, 12))
    results = await score_with(
        "radgraph", {"model_dir": str(model_dir), "reward_level": "partial"}, scorer_settings(tmp_path), items
    )
    for result in results:
        assert result.error is None and result.score == result.details["partial"]
    rexrank = await score_with("radgraph", {"model_dir": str(model_dir)}, scorer_settings(tmp_path), items)
    assert_equal_to_f1radgraph(model_dir, items, rexrank)


async def test_concurrent_calls_equal_one_call_and_return_graphs(model_dir: Path, tmp_path: Path) -> None:
    items = grpo_items(HAND_WRITTEN)
    cls = scorer_class("radgraph")
    options = cls.Options.model_validate({"model_dir": str(model_dir), "return_graphs": True})
    scorer = cls("radgraph", options, scorer_settings(tmp_path))
    await scorer.load()
    try:
        whole = await scorer.score_batch(items, {})
        chunks = [items[i : i + 5] for i in range(0, len(items), 5)]
        parts = await asyncio.gather(*(scorer.score_batch(chunk, {}) for chunk in chunks))
    finally:
        await scorer.close()
    assert [r.score for part in parts for r in part] == [r.score for r in whole]
    assert [r.details for part in parts for r in part] == [r.details for r in whole]
    first = whole[0].details
    assert first["reference_graph"] == first["candidate_graph"]  # item 0 compares a report with itself
    # Identical graphs: entity F1 1; relation F1 1, or 0 when there are no relations (CXR-Report-Metric's
    # F1 of two empty sets).
    has_relations = any(entity["relations"] for entity in first["reference_graph"].values())
    assert first["entity_f1"] == 1.0 and first["relation_f1"] == (1.0 if has_relations else 0.0)


async def test_a_failing_report_fails_only_its_items(model_dir: Path, tmp_path: Path) -> None:
    cls = scorer_class("radgraph")
    scorer = cls(
        "radgraph", cls.Options.model_validate({"model_dir": str(model_dir)}), scorer_settings(tmp_path)
    )
    await scorer.load()
    try:
        # A whitespace-only report makes the package's data reader raise; submitted with others in one
        # batch, only that report fails (the scorer itself scores blank reports as 0 before this point).
        references, candidates = await scorer.model.encoder.encode(
            HAND_WRITTEN[:3], [HAND_WRITTEN[3], " \t ", HAND_WRITTEN[4]]
        )
    finally:
        await scorer.close()
    assert not any(isinstance(r, BaseException) for r in references)
    assert isinstance(candidates[1], AssertionError)
    assert not isinstance(candidates[0], BaseException) and not isinstance(candidates[2], BaseException)


async def test_missing_weights_name_the_file_and_the_fetch_command(model_dir: Path, tmp_path: Path) -> None:
    incomplete = tmp_path / "models" / "radgraph"
    incomplete.mkdir(parents=True)
    (incomplete / "config.json").write_text((model_dir / "radgraph" / "config.json").read_text())
    with pytest.raises(MissingWeightsError) as raised:
        await score_with("radgraph", {"model_dir": str(tmp_path / "models")}, scorer_settings(tmp_path), [])
    message = str(raised.value)
    assert "weights.th" in message and "vocabulary" in message and "unirg models fetch" in message
    # The default location is <model_cache_dir>/radgraph/<model_type>.
    with pytest.raises(MissingWeightsError, match="radgraph-xl"):
        await score_with("radgraph", {"model_type": "radgraph-xl"}, scorer_settings(tmp_path), [])


async def test_fingerprint_hashes_the_weights(model_dir: Path, tmp_path: Path) -> None:
    cls = scorer_class("radgraph")
    scorer = cls(
        "radgraph", cls.Options.model_validate({"model_dir": str(model_dir)}), scorer_settings(tmp_path)
    )
    await scorer.load()
    try:
        fingerprint = scorer.fingerprint()
    finally:
        await scorer.close()
    weights = (model_dir / "radgraph" / "weights.th").read_bytes()
    assert fingerprint == {
        "model_type": "radgraph",
        "encoder": str((model_dir / "radgraph" / "encoder").resolve()),
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
    }


async def test_encoder_named_by_hub_id_loads_from_the_service_cache(model_dir: Path, tmp_path: Path) -> None:
    # The published archives name their encoder by hub id; the service must find its config and tokenizer
    # in <model_cache_dir>/hub (where `unirg models fetch` puts them), not in the default HF cache.
    config = scorer_settings(tmp_path)
    commit = "0" * 40
    repo = config.model_cache_dir / "hub" / "models--unirg-test--tiny-radgraph-encoder"
    shutil.copytree(model_dir / "radgraph" / "encoder", repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    published = tmp_path / "published" / "radgraph"
    published.mkdir(parents=True)
    shutil.copytree(model_dir / "radgraph" / "vocabulary", published / "vocabulary")
    shutil.copy(model_dir / "radgraph" / "weights.th", published / "weights.th")
    raw = json.loads((model_dir / "radgraph" / "config.json").read_text())
    raw["dataset_reader"]["token_indexers"]["bert"]["model_name"] = "unirg-test/tiny-radgraph-encoder"
    raw["model"]["embedder"]["token_embedders"]["bert"]["model_name"] = "unirg-test/tiny-radgraph-encoder"
    (published / "config.json").write_text(json.dumps(raw))

    items = grpo_items(HAND_WRITTEN)[:12]
    before = set(Path(tempfile.gettempdir()).glob("unirg-radgraph-*"))
    results = await score_with("radgraph", {"model_dir": str(published.parent)}, config, items)
    assert_equal_to_f1radgraph(model_dir, items, results)
    assert set(Path(tempfile.gettempdir()).glob("unirg-radgraph-*")) <= before  # removed on close

    shutil.rmtree(repo)
    with pytest.raises(MissingWeightsError, match="unirg-test/tiny-radgraph-encoder"):
        await score_with("radgraph", {"model_dir": str(published.parent)}, config, items)


def test_service_scores_equal_f1radgraph(model_dir: Path, tmp_path: Path, start_service) -> None:
    import httpx

    profile = tmp_path / "radgraph-only.yaml"
    profile.write_text(
        yaml.safe_dump(
            {
                "name": "radgraph-only",
                "components": [{"name": "radgraph", "weight": 1.0, "options": {"model_dir": str(model_dir)}}],
            }
        )
    )
    base_url = start_service(str(profile), env={"UNIRG_DEVICE": "cpu"})
    items = grpo_items(HAND_WRITTEN)[:20]
    payload = {
        "items": [{"id": i.id, "reference": i.reference, "candidate": i.candidate} for i in items],
        "return_details": True,
    }
    response = httpx.post(f"{base_url}/v1/score", json=payload, timeout=120)
    assert response.status_code == 200, response.text
    results = [
        ScoreResult(entry["components"]["radgraph"]["score"], entry["components"]["radgraph"]["details"])
        for entry in response.json()["items"]
    ]
    assert_equal_to_f1radgraph(model_dir, items, results)

"""``unirg eval``: fidelity against reference implementations, inputs, breakdowns, cache, outputs."""

from __future__ import annotations

import csv
import json
import random
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.stats
from fast_bleu import BLEU
from sklearn.metrics import f1_score, precision_score, recall_score

from reward_service.text.chexpert import (
    CHEXPERT_OBSERVATIONS,
    CHEXPERT_TOP5,
    chexpert_labels,
    present_observations,
)
from reward_service.text.tokens import rexrank_tokens
from unirg.evaluation import EvaluationConfig, InputError, TextField, evaluate, render_html
from unirg.evaluation.inputs import load_ground_truth, load_predictions, match
from unirg.evaluation.metrics import disease_key
from unirg.evaluation.report import write_csv, write_json
from unirg.evaluation.statistics import (
    StudyMatrix,
    compare,
    estimate,
    mean_statistic,
    resample_weights,
    seeded_rng,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CHEXPERT_PLUS = DATA / "rexrank_chexpertplus.json"
IU_TEST = DATA / "rexrank_iuxray_test.json"

SENTENCES = (
    "The heart is enlarged.",
    "Heart size is normal.",
    "There is a small left pleural effusion.",
    "No pleural effusion.",
    "Right lower lobe consolidation concerning for pneumonia.",
    "Lungs are clear.",
    "Mild pulmonary edema.",
    "Bibasilar atelectasis.",
    "No pneumothorax.",
    "Small right apical pneumothorax.",
    "Endotracheal tube in good position.",
    "Possible left lower lobe opacity.",
    "Healed rib fracture on the left.",
    "New right pleural effusion.",
    "Worsening pulmonary edema.",
    "Improved left basilar atelectasis.",
    "Unchanged cardiomegaly.",
)


def report(rng: random.Random) -> str:
    return " ".join(rng.sample(SENTENCES, rng.randint(1, 4)))


def write_jsonl(path: Path, rows: Sequence[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def synthetic(tmp_path: Path, n: int = 120, seed: int = 1) -> tuple[Path, Path, Path]:
    """Ground truth (JSONL with metadata) and two systems: a noisy copy and random reports."""
    rng = random.Random(seed)
    references = [report(rng) for _ in range(n)]
    gt = [
        {
            "study_id": f"s{i}",
            "report": text,
            "sex": rng.choice(["F", "M"]),
            "age": rng.choice([25, 45, 65, 85, float("nan")]) if i % 7 else 70,
            "subject_id": f"p{i // 3}",
            "study_date": f"2020-0{1 + i % 3}-01",
        }
        for i, text in enumerate(references)
    ]
    good = {f"s{i}": text if i % 3 else report(rng) for i, text in enumerate(references)}
    bad = {f"s{i}": report(rng) for i in range(n)}
    gt_path = tmp_path / "gt.jsonl"
    gt_path.write_text(
        "".join(json.dumps(row) + "\n" for row in gt), encoding="utf-8"
    )  # NaN as the bare token
    (tmp_path / "good.json").write_text(json.dumps(good), encoding="utf-8")
    (tmp_path / "bad.json").write_text(json.dumps(bad), encoding="utf-8")
    return gt_path, tmp_path / "good.json", tmp_path / "bad.json"


def run(tmp_path: Path, gt: Sequence[Path], preds: Sequence[Path], **options: Any):
    config = EvaluationConfig(
        ground_truth=[(None, p) for p in gt],
        predictions=[(None, p) for p in preds],
        permutations=options.pop("permutations", 2000),
        rexrank=options.pop("rexrank", False),
        cache=options.pop("cache", tmp_path / "cache.sqlite"),
        **options,
    )
    return evaluate(config)


def metric(evaluation, system: str, key: str, dataset: int = 0) -> dict:
    return evaluation.summary["datasets"][dataset]["systems"][system]["metrics"][key]


# --- fidelity ------------------------------------------------------------------------------------


def fast_bleu2(reference: str, candidate: str) -> float:
    return BLEU([rexrank_tokens(reference)], {"b": (0.5, 0.5)}).get_score([rexrank_tokens(candidate)])["b"][0]


def test_bleu2_is_rexranks_on_real_reports(tmp_path: Path) -> None:
    if not IU_TEST.is_file():
        pytest.skip(f"{IU_TEST} is absent (it lives beside the repository in development checkouts)")
    studies = json.loads(IU_TEST.read_text(encoding="utf-8"))
    ids = list(studies)
    # Each study gets another study's report: realistic, imperfect predictions.
    predictions = {study: studies[ids[(i + 7) % len(ids)]]["report"] for i, study in enumerate(ids)}
    (tmp_path / "shifted.json").write_text(json.dumps(predictions), encoding="utf-8")
    evaluation = run(tmp_path, [IU_TEST], [tmp_path / "shifted.json"])
    expected = np.mean([fast_bleu2(studies[s]["report"], predictions[s]) for s in ids])
    assert metric(evaluation, "shifted", "rexrank:bleu2")["value"] == pytest.approx(expected, abs=1e-9)


def published_radcliq(radgraph: float, bertscore: float, semb: float, bleu2: float) -> float:
    # Yu et al. 2023, RadCliQ-v1 as ReXrank computes it (normaliser and linear model from the paper's code).
    mu = np.array([0.53792312, 0.61757256, 0.76479421, 0.44738335])
    sigma = np.array([0.30282584, 0.22430938, 0.25394391, 0.29892717])
    coefficients = np.array([-0.3770837, -0.3703001, -0.2526162, 4.3e-12])
    return float(((np.array([radgraph, bertscore, semb, bleu2]) - mu) / sigma) @ coefficients + 2.47e-10)


@pytest.mark.slow
def test_rexrank_summary_uses_the_published_radcliq(
    tmp_path: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNIRG_MODEL_CACHE_DIR", str(model_cache))
    monkeypatch.setenv("UNIRG_DEVICE", "cpu")
    gt, good, bad = synthetic(tmp_path, n=40)
    evaluation = run(tmp_path, [gt], [good, bad], rexrank=True, resamples=200)
    assert evaluation.summary["notes"] == []
    rows = [row for row in evaluation.rows if row["system"] == "good"]
    features = [
        [row[f"radcliq-v1:{name}"] for name in ("radgraph", "bertscore", "semb", "bleu2")] for row in rows
    ]
    expected = 1 / np.mean([published_radcliq(*f) for f in features])
    assert metric(evaluation, "good", "rexrank:1/radcliq")["value"] == pytest.approx(expected, rel=1e-9)
    assert metric(evaluation, "good", "rexrank:bertscore")["value"] == pytest.approx(
        np.mean([f[1] for f in features])
    )
    interval = metric(evaluation, "good", "rexrank:1/radcliq")
    assert interval["low"] is not None and interval["low"] <= interval["high"]
    # CheXbert labels come with the model metrics: the disease table has them too, F1 as scikit-learn's.
    assert "chexbert" in evaluation.summary["datasets"][0]["systems"]["good"]["support"]
    references = [json.loads(line)["report"] for line in gt.read_text().splitlines()]
    candidates = list(json.loads(good.read_text()).values())
    y_true, y_pred = chexbert_labels(references, candidates)
    f1 = f1_score(y_true, y_pred, average=None, zero_division=0)
    for index, label in enumerate(CHEXPERT_OBSERVATIONS):
        assert metric(evaluation, "good", disease_key("chexbert", "f1", label))["value"] == pytest.approx(
            f1[index]
        )
    micro = f1_score(y_true, y_pred, average="micro", zero_division=0)
    assert metric(evaluation, "good", disease_key("chexbert", "average", "micro14"))[
        "value"
    ] == pytest.approx(micro)


def chexbert_labels(references: Sequence[str], candidates: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """CheXbert's present labels of each pair, straight from the engine's chexbert scorer."""
    import asyncio

    from reward_service.engine import RewardEngine
    from reward_service.scorers import ScoreItem
    from reward_service.settings import Settings
    from unirg.evaluation.evaluate import CHEXBERT_LABELS_PROFILE

    async def label() -> list[dict]:
        engine = RewardEngine(Settings())
        try:
            await engine.load(str(CHEXBERT_LABELS_PROFILE))
            items = [
                ScoreItem(str(i), r, c) for i, (r, c) in enumerate(zip(references, candidates, strict=True))
            ]
            batch = await engine.score(items)
            return [item.components["chexbert"].details for item in batch.items]
        finally:
            await engine.close()

    details = asyncio.run(label())

    def matrix(key: str) -> np.ndarray:
        return np.array([[name in d[key] for name in CHEXPERT_OBSERVATIONS] for d in details], dtype=int)

    return matrix("reference_labels"), matrix("candidate_labels")


def rule_labels(texts: Sequence[str]) -> np.ndarray:
    return np.array(
        [[name in present_observations(chexpert_labels(t)) for name in CHEXPERT_OBSERVATIONS] for t in texts],
        dtype=int,
    )


def test_disease_f1_equals_scikit_learn(tmp_path: Path) -> None:
    gt, good, _ = synthetic(tmp_path)
    evaluation = run(tmp_path, [gt], [good], resamples=200)
    references = [json.loads(line)["report"] for line in gt.read_text().splitlines()]
    candidates = list(json.loads(good.read_text()).values())
    y_true, y_pred = rule_labels(references), rule_labels(candidates)
    assert y_true.sum() > 0 and (y_true != y_pred).sum() > 0
    f1 = f1_score(y_true, y_pred, average=None, zero_division=0)
    precision = precision_score(y_true, y_pred, average=None, zero_division=np.nan)
    recall = recall_score(y_true, y_pred, average=None, zero_division=np.nan)
    for index, label in enumerate(CHEXPERT_OBSERVATIONS):
        assert metric(evaluation, "good", disease_key("rule", "f1", label))["value"] == pytest.approx(
            f1[index]
        )
        ours_p = metric(evaluation, "good", disease_key("rule", "precision", label))["value"]
        assert (ours_p is None and np.isnan(precision[index])) or ours_p == pytest.approx(precision[index])
        ours_r = metric(evaluation, "good", disease_key("rule", "recall", label))["value"]
        assert (ours_r is None and np.isnan(recall[index])) or ours_r == pytest.approx(recall[index])
    top5 = [CHEXPERT_OBSERVATIONS.index(name) for name in CHEXPERT_TOP5]
    expected = {
        "micro14": f1_score(y_true, y_pred, average="micro", zero_division=0),
        "macro14": f1_score(y_true, y_pred, average="macro", zero_division=0),
        "micro5": f1_score(y_true[:, top5], y_pred[:, top5], average="micro", zero_division=0),
        "macro5": f1_score(y_true[:, top5], y_pred[:, top5], average="macro", zero_division=0),
    }
    for key, value in expected.items():
        assert metric(evaluation, "good", disease_key("rule", "average", key))["value"] == pytest.approx(
            value
        )
    support = evaluation.summary["datasets"][0]["systems"]["good"]["support"]["rule"]
    assert [support[name] for name in CHEXPERT_OBSERVATIONS] == y_true.sum(axis=0).tolist()


def test_bootstrap_is_seeded_and_agrees_with_scipy() -> None:
    rng = np.random.default_rng(5)
    values = rng.beta(2, 5, size=300)
    data = StudyMatrix({"x": values, "x#n": np.ones_like(values)})
    statistic = mean_statistic("mean", "x")
    first = estimate(data, [statistic], resample_weights(300, 5000, seeded_rng(0, "a")))["mean"]
    again = estimate(data, [statistic], resample_weights(300, 5000, seeded_rng(0, "a")))["mean"]
    other = estimate(data, [statistic], resample_weights(300, 5000, seeded_rng(1, "a")))["mean"]
    assert first == again and other != first
    reference = scipy.stats.bootstrap(
        (values,), np.mean, n_resamples=5000, method="percentile", confidence_level=0.95, random_state=3
    ).confidence_interval
    width = reference.high - reference.low
    assert first.value == pytest.approx(values.mean())
    # Two independent 5,000-resample runs: endpoints agree to Monte Carlo error (a few % of the width).
    assert abs(first.low - reference.low) < 0.05 * width
    assert abs(first.high - reference.high) < 0.05 * width


def test_bootstrap_of_a_ratio_statistic_agrees_with_scipy() -> None:
    rng = np.random.default_rng(8)
    truth = rng.random(400) < 0.3
    predicted = np.where(rng.random(400) < 0.8, truth, ~truth)
    tp, fp, fn = (
        (truth & predicted).astype(float),
        (~truth & predicted).astype(float),
        (truth & ~predicted).astype(float),
    )
    data = StudyMatrix({"tp": tp, "fp": fp, "fn": fn})
    from unirg.evaluation.statistics import Statistic, ratio

    f1 = Statistic("f1", ("tp", "fp", "fn"), lambda s: ratio(2 * s["tp"], 2 * s["tp"] + s["fp"] + s["fn"]))
    ours = estimate(data, [f1], resample_weights(400, 5000, seeded_rng(0, "f1")))["f1"]

    def sklearn_f1(t: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
        t, p = np.atleast_2d(t), np.atleast_2d(p)
        tps = (t & p).sum(axis=-1)
        return 2 * tps / (2 * tps + (~t & p).sum(axis=-1) + (t & ~p).sum(axis=-1))

    reference = scipy.stats.bootstrap(
        (truth, predicted),
        sklearn_f1,
        paired=True,
        vectorized=True,
        n_resamples=5000,
        method="percentile",
        random_state=2,
    ).confidence_interval
    assert ours.value == pytest.approx(f1_score(truth, predicted))
    width = reference.high - reference.low
    assert abs(ours.low - reference.low) < 0.05 * width and abs(ours.high - reference.high) < 0.05 * width


def test_paired_tests_agree_with_scipy_and_see_no_difference_between_equals() -> None:
    rng = np.random.default_rng(11)
    a = rng.normal(0.50, 0.2, size=200)
    b = a - 0.03 + rng.normal(0, 0.1, size=200)
    stat = mean_statistic("m", "x")

    def matrix(values: np.ndarray) -> StudyMatrix:
        return StudyMatrix({"x": values, "x#n": np.ones_like(values)})

    weights = resample_weights(200, 2000, seeded_rng(0, "w"))
    result = compare(matrix(a), matrix(b), [stat], weights, 10000, seeded_rng(0, "p"))["m"]
    reference = scipy.stats.permutation_test(
        (a, b),
        lambda x, y, axis=-1: np.mean(x, axis=axis) - np.mean(y, axis=axis),
        permutation_type="samples",
        n_resamples=10000,
        vectorized=True,
        random_state=4,
    )
    assert result.difference.value == pytest.approx(a.mean() - b.mean())
    assert result.p_randomisation == pytest.approx(reference.pvalue, abs=0.01)
    assert result.p_bootstrap < 0.05 and result.difference.low > 0
    same = compare(matrix(a), matrix(a.copy()), [stat], weights, 1000, seeded_rng(0, "q"))["m"]
    assert same.p_randomisation == 1.0 and same.p_bootstrap == 1.0


def test_a_whole_evaluation_is_reproducible_under_its_seed(tmp_path: Path) -> None:
    gt, good, bad = synthetic(tmp_path, n=40)

    def numbers(seed: int) -> list:
        evaluation = run(tmp_path, [gt], [good, bad], resamples=200, permutations=500, seed=seed)
        dataset = evaluation.summary["datasets"][0]
        return [dataset["systems"], dataset["comparisons"], dataset["breakdowns"]]

    first = numbers(7)
    assert numbers(7) == first
    changed = numbers(8)
    assert changed != first
    # The seed moves the intervals, never the point estimates.
    assert (
        changed[0]["good"]["metrics"]["default:reward"]["value"]
        == first[0]["good"]["metrics"]["default:reward"]["value"]
    )


# --- inputs --------------------------------------------------------------------------------------


def test_every_layout_gives_the_same_numbers(tmp_path: Path) -> None:
    rng = random.Random(3)
    refs = {f"id{i}": (report(rng), report(rng)) for i in range(30)}
    preds = {study: report(rng) for study in refs}
    rexrank = {
        s: {"section_findings": f, "section_impression": i, "report": f"Findings: {f} Impression: {i}"}
        for s, (f, i) in refs.items()
    }
    (tmp_path / "gt.json").write_text(json.dumps(rexrank))
    write_jsonl(
        tmp_path / "gt.jsonl", [{"study_id": s, "findings": f, "impression": i} for s, (f, i) in refs.items()]
    )
    with (tmp_path / "gt.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["study_id", "section_findings", "section_impression"])
        writer.writerows([s, f, i] for s, (f, i) in refs.items())
    (tmp_path / "plain.json").write_text(json.dumps(preds))
    (tmp_path / "rex.json").write_text(json.dumps({s: {"model_prediction": t} for s, t in preds.items()}))
    write_jsonl(tmp_path / "rows.jsonl", [{"study_id": s, "report": t} for s, t in preds.items()])
    with (tmp_path / "metric.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["study_id", "report"])
        writer.writerows(preds.items())
    values = set()
    for gt in ("gt.json", "gt.jsonl", "gt.csv"):
        for pred in ("plain.json", "rex.json", "rows.jsonl", "metric.csv"):
            evaluation = run(tmp_path, [tmp_path / gt], [tmp_path / pred], resamples=100, cache=None)
            values.add(round(metric(evaluation, Path(pred).stem, "default:reward")["value"], 12))
    assert len(values) == 1


def test_text_choice_and_real_file_quirks(tmp_path: Path) -> None:
    gt = tmp_path / "gt.json"
    gt.write_text(
        '{"a": {"section_findings": NaN, "section_impression": "NO ACUTE\\nDISEASE.", "report": "Findings: None. Impression: NO ACUTE\\nDISEASE."},'
        ' "b": {"section_findings": "Small left effusion.", "section_impression": "Effusion.", "age": NaN}}'
    )
    rexrank = load_ground_truth(gt, text=TextField.REXRANK)
    assert [s.reference for s in rexrank.studies] == [
        "Findings: None Impression: NO ACUTE DISEASE.",
        "Findings: Small left effusion. Impression: Effusion.",
    ]
    report = load_ground_truth(gt, text=TextField.REPORT)
    assert report.studies[0].reference == "Findings: None. Impression: NO ACUTE DISEASE."
    findings = load_ground_truth(gt, text=TextField.FINDINGS)
    assert [s.reference for s in findings.studies] == [None, "Small left effusion."]
    assert findings.missing_metadata == {"age": 1}
    (tmp_path / "p.json").write_text(json.dumps({"a": "x", "b": "Small left effusion."}))
    found = match(findings, load_predictions(tmp_path / "p.json"))
    assert found.no_reference == ["a"] and [s.id for s in found.studies] == ["b"]


def test_missing_empty_and_extra_predictions_are_counted(tmp_path: Path) -> None:
    gt, good, _ = synthetic(tmp_path, n=30)
    predictions = json.loads(good.read_text())
    del predictions["s1"], predictions["s2"]
    predictions["s3"] = ""
    predictions["unknown"] = "Lungs are clear."
    (tmp_path / "partial.json").write_text(json.dumps(predictions))
    evaluation = run(tmp_path, [gt], [tmp_path / "partial.json"], resamples=100)
    inputs = evaluation.summary["datasets"][0]["systems"]["partial"]["inputs"]
    assert inputs == {
        "predictions": str(tmp_path / "partial.json"),
        "evaluated": 30,
        "missing": 2,
        "empty": 1,
        "extra": 1,
        "no_reference": 0,
    }
    text = " ".join(evaluation.warnings)
    assert (
        "2 studies have no prediction" in text and "1 predictions are empty" in text and "'unknown'" in text
    )
    rows = {row["study_id"]: row["prediction"] for row in evaluation.rows}
    assert rows["s1"] == "missing" and rows["s3"] == "empty" and rows["s4"] == "given"
    dropped = run(tmp_path, [gt], [tmp_path / "partial.json"], resamples=100, missing="drop")
    assert dropped.summary["datasets"][0]["systems"]["partial"]["n"] == 28
    with pytest.raises(InputError, match=r"have no prediction .* --missing"):
        run(tmp_path, [gt], [tmp_path / "partial.json"], resamples=100, missing="error")


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        ("", "empty.json", "is empty"),
        ("[1, 2]", "list.json", "one object per study"),
        ('{"s0": 3}', "numbers.json", "cannot find the generated report"),
        ("study_id,report\n", "header.csv", "header but no rows"),
        ("{not json", "broken.json", "is not JSON"),
        ('{"x": "Lungs are clear."}', "other_ids.json", "no study id of .* ground-truth ids look like 's0'"),
    ],
)
def test_bad_predictions_say_what_to_fix(tmp_path: Path, content: str, name: str, message: str) -> None:
    gt, _, _ = synthetic(tmp_path, n=10)
    (tmp_path / name).write_text(content)
    with pytest.raises(InputError, match=message):
        run(tmp_path, [gt], [tmp_path / name], resamples=100)


def test_bad_ground_truth_and_options_say_what_to_fix(tmp_path: Path) -> None:
    gt, good, _ = synthetic(tmp_path, n=10)
    with pytest.raises(InputError, match="no metadata column 'scanner'; its columns are sex, age"):
        run(tmp_path, [gt], [good], resamples=100, by=["scanner"])
    write_jsonl(tmp_path / "nocol.jsonl", [{"study_id": "s0", "text": "x"}])
    with pytest.raises(InputError, match="no report text found"):
        run(tmp_path, [tmp_path / "nocol.jsonl"], [good], resamples=100)
    write_jsonl(tmp_path / "noid.jsonl", [{"report": "x"}])
    with pytest.raises(InputError, match="row 1 has no study id"):
        run(tmp_path, [tmp_path / "noid.jsonl"], [good], resamples=100)
    with pytest.raises(InputError, match="age-bins"):
        run(tmp_path, [gt], [good], resamples=100, age_bins=[60, 40])


def test_nan_and_text_where_an_age_belongs_are_reported_not_fatal(tmp_path: Path) -> None:
    gt, good, _ = synthetic(tmp_path, n=30)
    rows = [json.loads(line) for line in gt.read_text().splitlines()]
    rows[4]["age"] = "unknown"
    write_jsonl(tmp_path / "gt2.jsonl", rows)
    evaluation = run(tmp_path, [tmp_path / "gt2.jsonl"], [good], resamples=100)
    nan_count = sum(1 for row in rows if isinstance(row["age"], float) and np.isnan(row["age"]))
    assert any(
        f"is NaN or empty for {nan_count} studies" in w and "give them an age" in w
        for w in evaluation.warnings
    )
    assert any("not a number for 1 studies (first: 's4')" in w for w in evaluation.warnings)
    age = next(b for b in evaluation.summary["datasets"][0]["breakdowns"] if b["key"] == "age")
    assert {g["label"]: g["n"] for g in age["groups"]}["missing"] == nan_count + 1


# --- breakdowns ----------------------------------------------------------------------------------


def test_subgroups_of_real_chexpert_plus_metadata(tmp_path: Path) -> None:
    if not CHEXPERT_PLUS.is_file():
        pytest.skip(f"{CHEXPERT_PLUS} is absent (it lives beside the repository in development checkouts)")
    studies = json.loads(CHEXPERT_PLUS.read_text(encoding="utf-8"))
    normal = dict.fromkeys(
        studies, "Lungs are clear. No pleural effusion or pneumothorax. Normal heart size."
    )
    (tmp_path / "normal.json").write_text(json.dumps(normal))
    evaluation = run(tmp_path, [CHEXPERT_PLUS], [tmp_path / "normal.json"], resamples=200)
    breakdowns = {b["key"]: b for b in evaluation.summary["datasets"][0]["breakdowns"]}
    assert {"sex", "age", "race", "ethnicity", "encounter", "change"} <= set(breakdowns)
    for key in ("sex", "age", "race", "ethnicity"):
        assert sum(group["n"] for group in breakdowns[key]["groups"]) == 200
    ages = {g["label"]: g for g in breakdowns["age"]["groups"]}
    assert ages["missing"]["n"] == 2  # the two bare NaN ages
    expected_ages = [v["age"] for v in studies.values() if v["age"] == v["age"]]
    assert ages["≥80"]["n"] == sum(a >= 80 for a in expected_ages)
    races = {g["label"]: g for g in breakdowns["race"]["groups"]}
    assert races["Native American"]["small"] and not races["White"]["small"]
    # A group's number is the mean over exactly its studies (checked against the per-study CSV rows).
    white = {study for study, v in studies.items() if v["race"] == "White"}
    rewards = [row["default:reward"] for row in evaluation.rows if row["study_id"] in white]
    assert races["White"]["systems"]["normal"]["metrics"]["default:reward"]["value"] == pytest.approx(
        np.mean(rewards)
    )
    assert races["White"]["systems"]["normal"]["n"] == len(white)


def test_longitudinal_breakdowns(tmp_path: Path) -> None:
    rows = [
        {
            "study_id": "c",
            "subject_id": "p1",
            "study_date": "2021-03-01",
            "report": "Worsening pulmonary edema.",
            "prior_report": "Mild pulmonary edema.",
        },
        {"study_id": "a", "subject_id": "p1", "study_date": "2021-01-01", "report": "Mild pulmonary edema."},
        {
            "study_id": "b",
            "subject_id": "p1",
            "study_date": "2021-02-01",
            "report": "Unchanged mild pulmonary edema.",
            "prior_report": "Mild pulmonary edema.",
        },
        {
            "study_id": "d",
            "subject_id": "p2",
            "study_date": "2021-01-05",
            "report": "New right pleural effusion.",
            "prior_report": "Lungs are clear.",
        },
        {"study_id": "e", "subject_id": "p2", "study_date": "2020-12-05", "report": "Lungs are clear."},
        {
            "study_id": "f",
            "subject_id": "p3",
            "study_date": "2021-01-05",
            "report": "Improved left basilar atelectasis.",
            "prior_report": "Left basilar atelectasis.",
        },
    ]
    write_jsonl(tmp_path / "gt.jsonl", rows)
    (tmp_path / "p.json").write_text(json.dumps({r["study_id"]: "Lungs are clear." for r in rows}))
    evaluation = run(tmp_path, [tmp_path / "gt.jsonl"], [tmp_path / "p.json"], resamples=100)
    breakdowns = {b["key"]: b for b in evaluation.summary["datasets"][0]["breakdowns"]}

    def members(key: str) -> dict[str, int]:
        return {g["label"]: g["n"] for g in breakdowns[key]["groups"]}

    assert members("encounter") == {"1st": 3, "2nd": 2, "3rd+": 1}
    assert members("prior") == {"no prior report": 2, "prior report given": 4}
    changes = members("change")
    assert (
        changes["worsened"] == 1
        and changes["new"] == 1
        and changes["improved"] == 1
        and changes["unchanged"] == 1
    )
    assert changes["no change stated"] == 2
    assert all(g["small"] for g in breakdowns["encounter"]["groups"])


def test_by_a_numeric_column_cuts_quartiles_and_by_a_text_column_groups_values(tmp_path: Path) -> None:
    gt, good, _ = synthetic(tmp_path, n=80)
    rows = [json.loads(line) for line in gt.read_text().splitlines()]
    for index, row in enumerate(rows):
        row["weight_kg"] = 40 + index  # 80 distinct values: quartiles
        row["scanner"] = "A" if index % 4 else "B"
    write_jsonl(tmp_path / "gt2.jsonl", rows)
    evaluation = run(tmp_path, [tmp_path / "gt2.jsonl"], [good], resamples=100, by=["weight_kg", "scanner"])
    breakdowns = {b["key"]: b for b in evaluation.summary["datasets"][0]["breakdowns"]}
    weights = [g["n"] for g in breakdowns["weight_kg"]["groups"]]
    assert len(weights) == 4 and sum(weights) == 80 and max(weights) - min(weights) <= 2
    assert {g["label"]: g["n"] for g in breakdowns["scanner"]["groups"]} == {"A": 60, "B": 20}


def test_several_datasets_give_one_column_each(tmp_path: Path) -> None:
    gt, good, bad = synthetic(tmp_path, n=40)
    rows = [json.loads(line) for line in gt.read_text().splitlines()]
    write_jsonl(tmp_path / "first.jsonl", rows[:25])
    write_jsonl(tmp_path / "second.jsonl", rows[25:])
    evaluation = run(
        tmp_path, [tmp_path / "first.jsonl", tmp_path / "second.jsonl"], [good, bad], resamples=100
    )
    datasets = evaluation.summary["datasets"]
    assert [d["name"] for d in datasets] == ["first", "second"]
    assert [d["systems"]["good"]["n"] for d in datasets] == [25, 15]
    html = render_html(evaluation)
    assert "Across datasets" in html and html.count('<h2 id="first">first</h2>') == 1


# --- cache, service, outputs ---------------------------------------------------------------------


def test_rerun_scores_only_new_pairs(tmp_path: Path) -> None:
    gt, good, bad = synthetic(tmp_path, n=50)
    cache = tmp_path / "shared.sqlite"
    first = run(tmp_path, [gt], [good], resamples=100, cache=cache)
    assert first.summary["cache"]["hits"] == 0
    second = run(tmp_path, [gt], [good, bad], resamples=100, cache=cache)
    pairs = {
        (json.loads(line)["report"], t)
        for line, t in zip(gt.read_text().splitlines(), json.loads(good.read_text()).values(), strict=True)
    }
    per_pair = first.summary["cache"]["misses"] / len(pairs)  # every component and the reward
    bad_pairs = {
        (json.loads(line)["report"], t)
        for line, t in zip(gt.read_text().splitlines(), json.loads(bad.read_text()).values(), strict=True)
    }
    assert second.summary["cache"]["hits"] == first.summary["cache"]["misses"]
    assert second.summary["cache"]["misses"] == per_pair * len(bad_pairs - pairs)
    assert metric(second, "good", "default:reward") == metric(first, "good", "default:reward")


def test_service_backend_matches_in_process(tmp_path: Path, default_app, relay) -> None:
    gt, good, bad = synthetic(tmp_path, n=40)
    local = run(tmp_path, [gt], [good, bad], resamples=200, cache=None)
    service = relay(default_app)  # the service backend takes a URL; the relay passes it to the app
    remote = run(tmp_path, [gt], [good, bad], resamples=200, cache=None, service=service.base_url)
    assert service.score_attempts(), "the evaluation did not score through the service"
    for key in (
        "default:reward",
        "default:clinical_errors",
        "errors:missed_finding",
        disease_key("rule", "average", "micro14"),
    ):
        assert metric(remote, "bad", key) == pytest.approx(metric(local, "bad", key))
    assert remote.summary["profiles"][0]["hash"] == local.summary["profiles"][0]["hash"]


def judged_sentences(text: str) -> set[str]:
    # How tests/judge_server.py reads a report: sentences at ".", lower-cased, whitespace collapsed.
    return {" ".join(part.lower().split()) for part in text.split(".") if part.strip()}


def test_judge_profile_adds_its_error_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from judge_server import JudgeServer
    from live_service import free_port

    gt, good, _ = synthetic(tmp_path, n=30)
    with JudgeServer(free_port()) as judge:
        monkeypatch.setenv("UNIRG_JUDGE_BASE_URL", judge.base_url)
        monkeypatch.setenv("UNIRG_JUDGE_MODEL", "test-judge")
        evaluation = run(tmp_path, [gt], [good], resamples=100, profiles=["judge-chexprompt"], cache=None)
    references = [json.loads(line)["report"] for line in gt.read_text().splitlines()]
    candidates = list(json.loads(good.read_text()).values())
    false = [
        len(judged_sentences(c) - judged_sentences(r)) for r, c in zip(references, candidates, strict=True)
    ]
    missed = [
        len(judged_sentences(r) - judged_sentences(c)) for r, c in zip(references, candidates, strict=True)
    ]
    assert sum(false) > 0
    assert metric(evaluation, "good", "judge:false_finding")["value"] == pytest.approx(np.mean(false))
    assert metric(evaluation, "good", "judge:missed_finding")["value"] == pytest.approx(np.mean(missed))
    expected_score = np.mean([1 / (1 + f + m) for f, m in zip(false, missed, strict=True)])
    assert metric(evaluation, "good", "judge-chexprompt:judge")["value"] == pytest.approx(expected_score)
    assert [p["name"] for p in evaluation.summary["profiles"]] == ["judge-chexprompt", "default"]


def test_a_profile_that_cannot_load_names_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gt, good, _ = synthetic(tmp_path, n=10)
    monkeypatch.setenv("UNIRG_MODEL_CACHE_DIR", str(tmp_path / "empty-cache"))
    with pytest.raises(InputError, match=r"profile 'unirg-stage1' could not be loaded: .*unirg models fetch"):
        run(tmp_path, [gt], [good], resamples=100, profiles=["unirg-stage1"])


def test_outputs_are_complete_and_the_html_is_self_contained(tmp_path: Path) -> None:
    gt, good, bad = synthetic(tmp_path, n=60)
    evaluation = run(tmp_path, [gt], [good, bad], resamples=200)
    html = render_html(evaluation)
    assert "<script" not in html and not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert html.count("<svg") > 20 and "Worst-scored studies" in html and "Per-observation F1" in html
    write_json(evaluation, tmp_path / "results.json")
    data = json.loads((tmp_path / "results.json").read_text())
    comparison = data["datasets"][0]["comparisons"][0]
    assert (comparison["a"], comparison["b"]) == ("good", "bad")
    assert comparison["metrics"]["default:reward"]["p_randomisation"] < 0.01
    assert (
        metric(evaluation, "good", "default:reward")["value"]
        > metric(evaluation, "bad", "default:reward")["value"]
    )
    write_csv(evaluation, tmp_path / "per_study.csv")
    with (tmp_path / "per_study.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 120 and {"errors:missed_finding", "default:reward"} <= set(rows[0])
    worst = data["datasets"][0]["systems"]["bad"]["worst"]
    assert worst[0]["score"] == min(float(r["default:reward"]) for r in rows if r["system"] == "bad")
    assert worst[0]["errors"] and "kind" in worst[0]["errors"][0]


def unirg(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "unirg", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)},
    )


def test_unirg_eval_command(tmp_path: Path) -> None:
    gt, good, bad = synthetic(tmp_path, n=40)
    result = unirg(
        "eval",
        str(gt),
        "--pred",
        f"sft={good}",
        "--pred",
        f"random={bad}",
        "--resamples",
        "200",
        "--permutations",
        "1000",
        "--no-rexrank",
        "--cache",
        str(tmp_path / "c.sqlite"),
        "-o",
        str(tmp_path / "out"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"report.html", "results.json", "per_study.csv"}
    assert "sft (n=40)" in result.stdout and "default: reward" in result.stdout
    assert "scoring with default" in result.stderr  # the progress bar
    bad_run = unirg("eval", str(gt), "--pred", str(tmp_path / "nope.json"), cwd=tmp_path)
    assert bad_run.returncode == 2 and "nope.json: no such file" in bad_run.stderr
    help_text = unirg("eval", "--help", cwd=tmp_path)
    assert help_text.returncode == 0 and "--pred" in help_text.stdout and "Examples" in help_text.stdout


def test_baseline_example_runs_on_the_real_data(tmp_path: Path) -> None:
    if not (IU_TEST.is_file() and CHEXPERT_PLUS.is_file()):
        pytest.skip(f"{DATA} is absent (it lives beside the repository in development checkouts)")
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "evaluate_baselines.py"),
            "--output",
            str(tmp_path),
            "--resamples",
            "200",
            "--permutations",
            "500",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "results.json").read_text())
    assert [d["name"] for d in data["datasets"]] == ["iu_xray_test", "chexpert_plus"]
    iu = data["datasets"][0]["systems"]
    # Retrieval copies real reports, so its reports mention findings; the template never does.
    assert (
        iu["retrieval"]["metrics"]["errors:false_finding"]["value"]
        > iu["normal"]["metrics"]["errors:false_finding"]["value"]
    )
    assert (tmp_path / "report.html").stat().st_size > 10_000

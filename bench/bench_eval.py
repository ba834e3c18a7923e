"""Wall time of ``unirg eval`` on 2,000 studies x 2 systems (offline ``default`` profile, every breakdown).

Workload: 2,000 ground-truth studies drawn (seeded) from the real report sets in ../shared/data (IU
X-ray test and validation, CheXpert Plus), with metadata attached so that every breakdown runs: sex,
age (some NaN), race, ethnicity and view from the CheXpert Plus studies, a subject and a date per
study (encounter index), a prior report for about half, the change the reference states. Two systems:
``retrieval`` (another study's report) and ``normal`` (one template). 1,000 bootstrap resamples and
10,000 approximate-randomisation permutations, as ``unirg eval`` defaults.

Timed regimes, each from cold in-process caches (report analyses cleared):

* **cold**: no disk cache: every pair scored, then every statistic;
* **re-run**: the disk cache already holds every pair (what a second ``unirg eval`` costs).

The peer, timed in the same run, is ``scipy.stats.bootstrap`` (percentile, vectorised, 1,000
resamples) computing the overall intervals of the same per-study mean metrics of one system; our
vectorised bootstrap computes the same intervals (``estimate``), and the ratio is printed.

Run: ``python bench/bench_eval.py [--studies N] [--rounds N]``; prints a Markdown section for
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import scipy.stats

from reward_service.text import clear_report_caches
from unirg.evaluation import EvaluationConfig, evaluate
from unirg.evaluation.statistics import (
    StudyMatrix,
    estimate,
    mean_statistic,
    resample_weights,
    seeded_rng,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
FILES = ("rexrank_iuxray_test.json", "rexrank_iuxray_valid.json", "rexrank_chexpertplus.json")
METADATA = ("sex", "age", "race", "ethnicity", "ap_pa")
NORMAL = "Findings: Lungs are clear. No pleural effusion or pneumothorax. Heart size is normal. Impression: No acute disease."


def build_workload(folder: Path, studies: int, seed: int) -> tuple[Path, list[Path]]:
    rng = random.Random(seed)
    pool = []
    for name in FILES:
        pool.extend(json.loads((DATA / name).read_text(encoding="utf-8")).values())
    people = [s for s in pool if "sex" in s]
    rows, retrieval = [], {}
    for index in range(studies):
        study = rng.choice(pool)
        person = rng.choice(people)
        row = {
            "study_id": f"b{index}",
            "report": study["report"],
            "context": study.get("context"),
            **{column: person[column] for column in METADATA},
            "subject_id": f"subject{index // 3}",
            "study_date": f"2024-{1 + index % 3:02d}-01",
        }
        if rng.random() < 0.5:
            row["prior_report"] = rng.choice(pool)["report"]
        rows.append(row)
        retrieval[row["study_id"]] = rng.choice(pool)["report"]
    gt = folder / "gt.jsonl"
    # json.dumps writes NaN ages as the bare token, like the real files.
    gt.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    (folder / "retrieval.json").write_text(json.dumps(retrieval), encoding="utf-8")
    (folder / "normal.json").write_text(json.dumps(dict.fromkeys(retrieval, NORMAL)), encoding="utf-8")
    return gt, [folder / "retrieval.json", folder / "normal.json"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--studies", type=int, default=2000, help="ground-truth studies")
    parser.add_argument("--rounds", type=int, default=2, help="best of this many timings per regime")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    missing = [name for name in FILES if not (DATA / name).is_file()]
    if missing:
        raise SystemExit(f"{DATA} lacks {', '.join(missing)}: this benchmark needs the shared report sets")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        gt, predictions = build_workload(folder, args.studies, args.seed)

        def run(cache: Path | None):
            clear_report_caches()
            config = EvaluationConfig(
                ground_truth=[(None, gt)],
                predictions=[(None, p) for p in predictions],
                cache=cache,
                rexrank=False,
            )
            started = time.perf_counter()
            evaluation = evaluate(config)
            return time.perf_counter() - started, evaluation

        cold_times, warm_times = [], []
        for _ in range(args.rounds):
            seconds, evaluation = run(None)
            cold_times.append((seconds, evaluation.summary["seconds"]))
        cache = folder / "cache.sqlite"
        run(cache)
        for _ in range(args.rounds):
            seconds, evaluation = run(cache)
            warm_times.append((seconds, evaluation.summary["seconds"]))
        dataset = evaluation.summary["datasets"][0]
        groups = sum(len(b["groups"]) for b in dataset["breakdowns"])
        statistics = len(evaluation.summary["metrics"])

        # Peer: scipy's bootstrap on the per-study mean metrics of one system, against ours on the same.
        rows = [row for row in evaluation.rows if row["system"] == "retrieval"]
        columns = [key for key in rows[0] if key.startswith(("default:", "errors:"))]
        values = {key: np.array([float(row[key]) for row in rows]) for key in columns}
        started = time.perf_counter()
        for key in columns:
            scipy.stats.bootstrap(
                (values[key],), np.mean, n_resamples=1000, method="percentile", random_state=0
            )
        scipy_seconds = time.perf_counter() - started
        matrix = StudyMatrix({**values, **{f"{k}#n": np.ones(len(rows)) for k in columns}})
        started = time.perf_counter()
        weights = resample_weights(len(rows), 1000, seeded_rng(0, "bench"))
        estimate(matrix, [mean_statistic(k, k) for k in columns], weights)
        ours_seconds = time.perf_counter() - started

    unique_pairs = len({(r["study_id"], r["system"]) for r in evaluation.rows})
    load = os.getloadavg()[0]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"## `unirg eval`, {args.studies:,} studies x 2 systems (bench/bench_eval.py, {stamp})\n")
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, load average {load:.1f} at the end (shared with other "
        f"engineers' work), Python {platform.python_version()}, one process. Offline `default` profile (ReXrank model "
        f"metrics off), {evaluation.summary['config']['resamples']:,} resamples, "
        f"{evaluation.summary['config']['permutations']:,} permutations, {statistics} statistics per group, "
        f"{len(dataset['breakdowns'])} breakdowns with {groups} groups; {unique_pairs:,} study-system pairs. "
        f"Wall time, best of {args.rounds}. Command: `python bench/bench_eval.py`.\n"
    )
    print("| regime | total s | scoring s | statistics and breakdowns s | target |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, times, target in (
        ("cold (no disk cache)", cold_times, "< 60 s"),
        ("re-run (every pair in the disk cache)", warm_times, ""),
    ):
        total, parts = min(times, key=lambda entry: entry[0])
        print(f"| {label} | {total:.1f} | {parts['scoring']:.1f} | {parts['statistics']:.1f} | {target} |")
    print()
    print(
        f"Bootstrap of {len(columns)} per-study means of one system (1,000 resamples): ours {ours_seconds * 1000:.0f} ms, "
        f"peer `scipy.stats.bootstrap` {scipy_seconds * 1000:.0f} ms: {scipy_seconds / ours_seconds:.1f}x."
    )


if __name__ == "__main__":
    main()

"""The whole evaluation: read inputs, score every pair, compute every number with its interval.

:func:`evaluate` returns an :class:`Evaluation`: a JSON-ready ``summary`` (what the HTML report, the
JSON file and the terminal table show) and the per-study rows (the CSV).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reward_service.composite import ProfileError
from reward_service.scorers import ScoreItem
from reward_service.text.chexpert import CHEXPERT_OBSERVATIONS
from unirg.evaluation.breakdowns import DEFAULT_AGE_BINS, Breakdown, BreakdownOptions, breakdowns_for
from unirg.evaluation.cache import ResultCache
from unirg.evaluation.inputs import (
    GroundTruth,
    InputError,
    Match,
    MissingPolicy,
    Predictions,
    TextField,
    load_ground_truth,
    load_predictions,
    match,
)
from unirg.evaluation.metrics import MetricPlan, disease_key, plan_metrics, study_columns
from unirg.evaluation.scoring import (
    REWARD,
    EngineBackend,
    ProfileInfo,
    ScoredItem,
    ScoringBackend,
    ServiceBackend,
    score_pairs,
)
from unirg.evaluation.statistics import (
    DEFAULT_PERMUTATIONS,
    DEFAULT_RESAMPLES,
    Statistic,
    StudyMatrix,
    compare,
    estimate,
    resample_weights,
    seeded_rng,
)

#: The profile that is always evaluated: it carries the clinical-error counts.
BASE_PROFILE = "default"
#: The profile whose components are ReXrank's model metrics.
REXRANK_PROFILE = "radcliq-v1"
#: CheXbert labels for the disease-level table, loaded with the ReXrank profile (same weights).
CHEXBERT_LABELS_PROFILE = Path(__file__).with_name("chexbert-labels.yaml")
HISTOGRAM_BINS = 20


@dataclass(slots=True)
class EvaluationConfig:
    """What to evaluate and how; ``unirg eval --help`` documents each field."""

    ground_truth: Sequence[tuple[str | None, Path]]
    predictions: Sequence[tuple[str | None, Path]]
    text: TextField = TextField.REPORT
    profiles: Sequence[str] = (BASE_PROFILE,)
    rexrank: bool | None = None  # None: when the model scorers and their weights are available
    service: str | None = None
    by: Sequence[str] = ()
    age_bins: Sequence[float] = DEFAULT_AGE_BINS
    min_group_size: int = 30
    resamples: int = DEFAULT_RESAMPLES
    permutations: int = DEFAULT_PERMUTATIONS
    seed: int = 0
    missing: MissingPolicy = MissingPolicy.EMPTY
    cache: Path | None = None
    worst: int = 10

    def __post_init__(self) -> None:
        if not self.ground_truth:
            raise InputError("give at least one ground-truth file")
        if not self.predictions:
            raise InputError("give at least one prediction file (--pred)")
        if self.resamples < 100:
            raise InputError("--resamples must be at least 100 for a 95% interval")
        self.missing = MissingPolicy(self.missing)
        if not self.age_bins or sorted(self.age_bins) != list(self.age_bins):
            raise InputError("--age-bins must be increasing numbers, e.g. 40,60,80")


@dataclass(slots=True)
class Evaluation:
    summary: dict[str, Any]
    rows: list[dict[str, Any]]  # one per (dataset, system, study): the per-study CSV
    warnings: list[str] = field(default_factory=list)


Progress = Callable[[str, int], Callable[[int], None]]  # (description, total) -> advance(n)


def _no_progress(description: str, total: int) -> Callable[[int], None]:
    return lambda _: None


def _unique_names(named: Sequence[tuple[str | None, Path]]) -> list[str]:
    names = [name or path.stem for name, path in named]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InputError(
            f"two inputs are both called {duplicates[0]!r}: name them as NAME=PATH (e.g. --pred sft={duplicates[0]}.json)"
        )
    return names


async def _load_profiles(
    backend: ScoringBackend, config: EvaluationConfig, notes: list[str]
) -> list[ProfileInfo]:
    names = list(dict.fromkeys(config.profiles))
    if BASE_PROFILE not in names:
        names.append(BASE_PROFILE)
    profiles = []
    for name in names:
        try:
            profiles.append(await backend.load(name))
        except ProfileError:
            raise
        except Exception as exc:  # weights, a judge endpoint or the service missing: say which profile
            raise InputError(f"profile {name!r} could not be loaded: {exc}") from None
    wants_rexrank = config.rexrank is not False and all(p.by_scorer("radcliq") is None for p in profiles)
    if wants_rexrank:
        try:
            profiles.append(await backend.load(REXRANK_PROFILE))
            if all(p.by_scorer("chexbert") is None for p in profiles) and not config.service:
                profiles.append(await backend.load(str(CHEXBERT_LABELS_PROFILE)))
        except Exception as exc:  # model weights or the models extra missing: the summary says so
            if config.rexrank:
                raise InputError(
                    f"the ReXrank metrics need the {REXRANK_PROFILE} profile, which failed: {exc}"
                ) from None
            notes.append(
                f"ReXrank model metrics (BERTScore, SembScore, RadGraph, RadCliQ) not computed: {exc}. "
                f"Install the `models` extra and run `unirg models fetch --profile {REXRANK_PROFILE}`."
            )
    return profiles


def _items(studies_and_candidates: Match) -> list[ScoreItem]:
    return [
        ScoreItem(
            id=study.id,
            reference=study.reference or "",
            candidate=candidate,
            prior_report=study.prior_report,
            context={"context": study.context} if study.context else {},
        )
        for study, candidate in zip(
            studies_and_candidates.studies, studies_and_candidates.candidates, strict=True
        )
    ]


def evaluate(config: EvaluationConfig, progress: Progress = _no_progress) -> Evaluation:
    """Run one evaluation (see :class:`EvaluationConfig`); raises :class:`InputError` on bad input."""
    dataset_names = _unique_names(config.ground_truth)
    system_names = _unique_names(config.predictions)
    datasets = [
        load_ground_truth(path, text=config.text, name=name)
        for name, (_, path) in zip(dataset_names, config.ground_truth, strict=True)
    ]
    systems = [
        load_predictions(path, text=config.text, name=name)
        for name, (_, path) in zip(system_names, config.predictions, strict=True)
    ]
    matches = {
        (d.name, s.name): match(d, s, missing_policy=config.missing) for d in datasets for s in systems
    }
    notes: list[str] = []
    warnings: list[str] = []
    for dataset in datasets:
        for system in systems:
            found = matches[(dataset.name, system.name)]
            if found.missing:
                verb = (
                    "scored as empty reports"
                    if config.missing is MissingPolicy.EMPTY
                    else "left out for this system"
                )
                warnings.append(
                    f"{system.name} on {dataset.name}: {len(found.missing)} studies have no prediction ({verb}; first: {found.missing[0]!r})"
                )
            if found.empty:
                warnings.append(
                    f"{system.name} on {dataset.name}: {len(found.empty)} predictions are empty (first: {found.empty[0]!r})"
                )
            if found.no_reference:
                warnings.append(
                    f"{dataset.name}: {len(found.no_reference)} studies have no {config.text.value} text and are not evaluated (first: {found.no_reference[0]!r})"
                )
    all_ids = {study.id for dataset in datasets for study in dataset.studies}
    for system in systems:
        extra = sorted(set(system.texts) - all_ids)
        if extra:
            warnings.append(
                f"{system.name}: {len(extra)} predictions match no ground-truth study and are ignored (first: {extra[0]!r})"
            )
    warnings = list(dict.fromkeys(warnings))

    # Breakdowns come from the ground truth alone: built before scoring, so a bad --by fails fast.
    options = BreakdownOptions(columns=config.by, age_bins=config.age_bins, warnings=warnings)
    breakdowns = {
        dataset.name: breakdowns_for(
            [study for study in dataset.studies if study.reference is not None],
            options,
            dataset.name,
            dataset.columns,
        )
        for dataset in datasets
    }
    cache = ResultCache(config.cache)
    started = time.perf_counter()
    try:
        profiles, scored = asyncio.run(_score_all(config, matches, progress, cache, notes))
    finally:
        cache.close()
    scoring_seconds = time.perf_counter() - started
    plan = plan_metrics(profiles)
    statistics = plan.statistics()

    summary: dict[str, Any] = {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config": {
            "text": config.text.value,
            "resamples": config.resamples,
            "permutations": config.permutations,
            "seed": config.seed,
            "missing": config.missing.value,
            "min_group_size": config.min_group_size,
            "confidence": 0.95,
            "service": config.service,
        },
        "profiles": [
            {
                "name": p.name,
                "hash": p.hash,
                "components": [{"key": c.key, "scorer": c.scorer, "weight": c.weight} for c in p.components],
            }
            for p in profiles
        ],
        "metrics": [
            {
                "key": m.key,
                "label": m.label,
                "section": m.section,
                "higher_is_better": m.higher_is_better,
                "source": m.source,
            }
            for m in plan.metrics
        ],
        "primary": plan.primary,
        "systems": system_names,
        "datasets": [],
        "notes": notes,
        "cache": {
            "path": str(config.cache) if config.cache else None,
            "hits": cache.hits,
            "misses": cache.misses,
        },
    }
    rows: list[dict[str, Any]] = []
    pairs = len(systems) * (len(systems) - 1) // 2
    advance = progress("statistics", sum(len(systems) + pairs + len(breakdowns[d.name]) for d in datasets))
    for dataset in datasets:
        summary["datasets"].append(
            _evaluate_dataset(
                dataset,
                systems,
                matches,
                scored,
                plan,
                statistics,
                config,
                breakdowns[dataset.name],
                rows,
                advance,
            )
        )
    summary["warnings"] = warnings
    summary["seconds"] = {
        "scoring": round(scoring_seconds, 3),
        "statistics": round(time.perf_counter() - started - scoring_seconds, 3),
    }
    return Evaluation(summary, rows, warnings)


async def _score_all(
    config: EvaluationConfig,
    matches: dict[tuple[str, str], Match],
    progress: Progress,
    cache: ResultCache,
    notes: list[str],
) -> tuple[list[ProfileInfo], dict[tuple[str, str], dict[str, list[ScoredItem]]]]:
    backend: ScoringBackend = ServiceBackend(config.service) if config.service else EngineBackend()
    try:
        profiles = await _load_profiles(backend, config, notes)
        items = {key: _items(found) for key, found in matches.items()}
        flat = [item for key in matches for item in items[key]]
        scored: dict[tuple[str, str], dict[str, list[ScoredItem]]] = {key: {} for key in matches}
        for profile in profiles:
            advance = progress(f"scoring with {profile.name}", len(flat))
            results = await score_pairs(backend, profile, flat, cache, advance)
            offset = 0
            for key in matches:
                count = len(items[key])
                scored[key][profile.name] = results[offset : offset + count]
                offset += count
        return profiles, scored
    finally:
        await backend.close()


def _intervals(values: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    return {key: interval.as_dict() for key, interval in values.items()}


def _evaluate_dataset(
    dataset: GroundTruth,
    systems: Sequence[Predictions],
    matches: dict[tuple[str, str], Match],
    scored: dict[tuple[str, str], dict[str, list[ScoredItem]]],
    plan: MetricPlan,
    statistics: Sequence[Statistic],
    config: EvaluationConfig,
    breakdowns: Sequence[Breakdown],
    rows: list[dict[str, Any]],
    advance: Callable[[int], None],
) -> dict[str, Any]:
    matrices: dict[str, StudyMatrix] = {}
    ids: dict[str, list[str]] = {}
    per_system: dict[str, Any] = {}
    for system in systems:
        found = matches[(dataset.name, system.name)]
        key = (dataset.name, system.name)
        references = [study.reference or "" for study in found.studies]
        columns = study_columns(plan, scored[key], references, found.candidates)
        matrices[system.name] = StudyMatrix(columns)
        ids[system.name] = [study.id for study in found.studies]
        n = len(found.studies)
        weights = resample_weights(n, config.resamples, seeded_rng(config.seed, dataset.name, "all"))
        per_system[system.name] = {
            "n": n,
            "inputs": {
                "predictions": str(system.path),
                "evaluated": n,
                "missing": len(found.missing),
                "empty": len(found.empty),
                "extra": len(found.extra),
                "no_reference": len(found.no_reference),
            },
            "metrics": _intervals(estimate(matrices[system.name], statistics, weights)),
            "support": _support(plan, columns),
            "histograms": _histograms(plan, columns),
            "worst": _worst(plan, found, scored[key], columns, config.worst),
        }
        rows.extend(_rows(dataset.name, system.name, found, scored[key], plan))
        advance(1)
    comparisons = []
    for first, second in itertools.combinations([s.name for s in systems], 2):
        in_second = set(ids[second])
        common = [study_id for study_id in ids[first] if study_id in in_second]
        a = _align(matrices[first], ids[first], common)
        b = _align(matrices[second], ids[second], common)
        weights = resample_weights(
            len(common), config.resamples, seeded_rng(config.seed, dataset.name, "paired")
        )
        rng = seeded_rng(config.seed, dataset.name, "randomisation", first, second)
        result = compare(a, b, statistics, weights, config.permutations, rng)
        comparisons.append(
            {
                "a": first,
                "b": second,
                "n": len(common),
                "metrics": {k: v.as_dict() for k, v in result.items()},
            }
        )
        advance(1)
    # Groups hold ground-truth studies; with --missing drop a system may lack some of them.
    studies = [study for study in dataset.studies if study.reference is not None]
    results = []
    for breakdown in breakdowns:
        groups = []
        for label, mask in breakdown.groups.items():
            group_ids = {studies[i].id for i in np.flatnonzero(mask)}
            entry: dict[str, Any] = {
                "label": label,
                "n": len(group_ids),
                "small": len(group_ids) < config.min_group_size,
                "systems": {},
            }
            for system in systems:
                rows_in_group = np.array(
                    [i for i, study_id in enumerate(ids[system.name]) if study_id in group_ids], dtype=int
                )
                if rows_in_group.size == 0:
                    continue
                weights = resample_weights(
                    rows_in_group.size,
                    config.resamples,
                    seeded_rng(config.seed, dataset.name, breakdown.key, label),
                )
                values = estimate(matrices[system.name].subset(rows_in_group), statistics, weights)
                entry["systems"][system.name] = {"n": int(rows_in_group.size), "metrics": _intervals(values)}
            groups.append(entry)
        advance(1)
        results.append(
            {
                "key": breakdown.key,
                "title": breakdown.title,
                "note": breakdown.note,
                "overlapping": breakdown.overlapping,
                "groups": groups,
            }
        )
    return {
        "name": dataset.name,
        "path": str(dataset.path),
        "studies": len(dataset.studies),
        "columns": dataset.columns,
        "systems": per_system,
        "comparisons": comparisons,
        "breakdowns": results,
    }


def _align(matrix: StudyMatrix, order: list[str], common: list[str]) -> StudyMatrix:
    position = {study_id: index for index, study_id in enumerate(order)}
    return matrix.subset(np.array([position[study_id] for study_id in common], dtype=int))


def _support(plan: MetricPlan, columns: dict[str, np.ndarray]) -> dict[str, dict[str, int]]:
    """Reference positives (support) and candidate positives of each observation, per labeler."""
    out = {}
    for source in plan.disease_sources:
        out[source] = {
            label: int(
                columns[f"disease:{source}:{label}:tp"].sum() + columns[f"disease:{source}:{label}:fn"].sum()
            )
            for label in CHEXPERT_OBSERVATIONS
        }
    return out


def _histograms(plan: MetricPlan, columns: dict[str, np.ndarray]) -> dict[str, dict[str, list[float]]]:
    """Score distributions of each profile's reward and of its components that lie in [0, 1]."""
    out = {}
    for metric in plan.metrics:
        if not metric.section.startswith("profile "):
            continue
        values = columns[metric.key][columns[metric.key + "#n"] > 0]
        if values.size == 0 or values.min() < 0 or values.max() > 1:
            continue
        counts, edges = np.histogram(values, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
        out[metric.key] = {"counts": counts.tolist(), "edges": edges.tolist()}
    return out


def _worst(
    plan: MetricPlan,
    found: Match,
    scored: dict[str, list[ScoredItem]],
    columns: dict[str, np.ndarray],
    count: int,
) -> list[dict[str, Any]]:
    values = columns[plan.primary]
    present = columns[plan.primary + "#n"] > 0
    order = [i for i in np.argsort(values, kind="stable") if present[i]][:count]
    errors_component = next(
        ((p.name, c.key) for p in plan.profiles for c in p.components if c.scorer == "clinical_errors"), None
    )
    worst = []
    for index in order:
        errors = []
        if errors_component is not None:
            details = scored[errors_component[0]][index][errors_component[1]]["details"] or {}
            errors = details.get("errors") or []
        worst.append(
            {
                "study_id": found.studies[index].id,
                "score": float(values[index]),
                "reference": found.studies[index].reference,
                "candidate": found.candidates[index],
                "errors": errors,
            }
        )
    return worst


def _rows(
    dataset: str, system: str, found: Match, scored: dict[str, list[ScoredItem]], plan: MetricPlan
) -> list[dict[str, Any]]:
    missing, empty = set(found.missing), set(found.empty)
    errors_component = next(
        ((p.name, c.key) for p in plan.profiles for c in p.components if c.scorer == "clinical_errors"), None
    )
    rows = []
    for index, study in enumerate(found.studies):
        row: dict[str, Any] = {
            "dataset": dataset,
            "system": system,
            "study_id": study.id,
            "prediction": "missing" if study.id in missing else ("empty" if study.id in empty else "given"),
        }
        for profile in plan.profiles:
            results = scored[profile.name][index]
            row[f"{profile.name}:{REWARD}"] = results[REWARD]["score"]
            for component in profile.components:
                row[f"{profile.name}:{component.key}"] = results[component.key]["score"]
        if errors_component is not None:
            counts = (scored[errors_component[0]][index][errors_component[1]]["details"] or {}).get(
                "counts"
            ) or {}
            row.update({f"errors:{kind}": value for kind, value in counts.items()})
        rows.append(row)
    return rows


__all__ = ["Evaluation", "EvaluationConfig", "InputError", "disease_key", "evaluate"]

"""What an evaluation measures: per-study columns from the scored pairs, and the statistics over them.

Sections of the summary:

- each profile's reward and component scores (``default`` always: it carries the clinical errors);
- the ReXrank summary (BLEU-2, BERTScore, SembScore, RadGraph, 1/mean(RadCliQ-v1)) from whichever
  loaded profile has those components (BLEU-2 is in ``default``; the others need ``radcliq-v1``);
- clinical-error counts per study in each CheXprompt category, from the ``clinical_errors`` component;
- disease level: per-observation precision, recall and F1 of the 14 CheXpert observations (the rule
  labeler always; CheXbert when a profile has the ``chexbert`` component), positive (and, in the "rrg"
  mapping, uncertain) against the rest, with micro and macro averages over all 14 and over the top 5.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from reward_service.taxonomy import TAXONOMY
from reward_service.text.chexpert import (
    CHEXPERT_OBSERVATIONS,
    CHEXPERT_TOP5,
    chexpert_labels,
    present_observations,
)
from unirg.evaluation.scoring import REWARD, ProfileInfo, ScoredItem
from unirg.evaluation.statistics import Statistic, StatisticFn, mean_statistic, ratio

#: ReXrank's summary metrics: (statistic key, label, scorer whose component gives the column).
REXRANK_METRICS: tuple[tuple[str, str, str], ...] = (
    ("rexrank:bleu2", "BLEU-2", "bleu2"),
    ("rexrank:bertscore", "BERTScore", "bertscore"),
    ("rexrank:semb", "SembScore", "semb"),
    ("rexrank:radgraph", "RadGraph", "radgraph"),
)
RADCLIQ_KEY = "rexrank:1/radcliq"
#: Clinical-error kinds in CheXprompt order with their letters, as the clinical_errors details name them.
ERROR_KINDS: tuple[tuple[str, str], ...] = tuple((c.letter.lower(), c.kind) for c in TAXONOMY)
#: Error counts shown per study: (column prefix, scorer whose details hold them, section title).
ERROR_SOURCES: tuple[tuple[str, str, str], ...] = (
    ("errors", "clinical_errors", "Clinical errors per study"),
    ("judge", "judge", "LLM judge errors per study"),
)
DISEASE_AVERAGES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("micro14", "micro-F1 (14)", CHEXPERT_OBSERVATIONS),
    ("macro14", "macro-F1 (14)", CHEXPERT_OBSERVATIONS),
    ("micro5", "micro-F1 (top 5)", CHEXPERT_TOP5),
    ("macro5", "macro-F1 (top 5)", CHEXPERT_TOP5),
)


@dataclass(frozen=True, slots=True)
class Metric:
    """One number of the summary: its statistic, how it is shown and where."""

    statistic: Statistic
    label: str
    section: str
    higher_is_better: bool = True
    source: str = ""  # where the per-study values come from (profile and component)

    @property
    def key(self) -> str:
        return self.statistic.key


@dataclass(slots=True)
class MetricPlan:
    """Which columns and statistics an evaluation has, decided once from the loaded profiles."""

    profiles: list[ProfileInfo]
    metrics: list[Metric]
    disease_sources: list[str]  # "rule", and "chexbert" when a profile has that component
    primary: str  # the column (and mean statistic) worst studies are ranked by: the first profile's reward

    def statistics(self) -> list[Statistic]:
        return [metric.statistic for metric in self.metrics]


def _column(profile: str, key: str) -> str:
    return f"{profile}:{key}"


def _find(profiles: Sequence[ProfileInfo], scorer: str) -> tuple[ProfileInfo, str] | None:
    # A profile that computes RadCliQ holds the ReXrank settings of its features: prefer it.
    ordered = sorted(profiles, key=lambda p: p.by_scorer("radcliq") is None)
    for profile in ordered:
        component = profile.by_scorer(scorer)
        if component is not None:
            return profile, component.key
    return None


def plan_metrics(profiles: Sequence[ProfileInfo]) -> MetricPlan:
    metrics: list[Metric] = []
    for profile in profiles:
        section = f"profile {profile.name}"
        metrics.append(
            Metric(
                mean_statistic(_column(profile.name, REWARD), _column(profile.name, REWARD)),
                "reward",
                section,
                source=profile.name,
            )
        )
        for component in profile.components:
            column = _column(profile.name, component.key)
            # Every component's score grows with quality (radcliq's is -RadCliQ).
            metrics.append(
                Metric(
                    mean_statistic(column, column),
                    component.key,
                    section,
                    source=f"{profile.name}/{component.key}",
                )
            )
    for key, label, scorer in REXRANK_METRICS:
        found = _find(profiles, scorer)
        if found is not None:
            column = _column(found[0].name, found[1])
            metrics.append(
                Metric(mean_statistic(key, column), label, "ReXrank", source=f"{found[0].name}/{found[1]}")
            )
    radcliq = _find(profiles, "radcliq")
    if radcliq is not None:
        metrics.append(
            Metric(
                Statistic(
                    RADCLIQ_KEY,
                    ("radcliq_raw", "radcliq_raw#n"),
                    lambda s: ratio(s["radcliq_raw#n"], s["radcliq_raw"]),
                ),
                "1/RadCliQ-v1",
                "ReXrank",
                source=f"{radcliq[0].name}/{radcliq[1]}",
            )
        )
    for prefix, scorer, section in ERROR_SOURCES:
        found = _find(profiles, scorer)
        if found is not None:
            metrics.extend(_error_metrics(prefix, section, f"{found[0].name}/{found[1]}"))
    sources = ["rule"]
    if _find(profiles, "chexbert") is not None:
        sources.append("chexbert")
    for source in sources:
        metrics.extend(_disease_metrics(source))
    first = profiles[0]
    return MetricPlan(list(profiles), metrics, sources, _column(first.name, REWARD))


def _error_metrics(prefix: str, section: str, source: str) -> list[Metric]:
    """Mean significant errors per study, per CheXprompt category, and insignificant errors."""
    keys = [("significant", "significant errors")]
    keys += [(kind, f"({letter}) {kind.replace('_', ' ')}") for letter, kind in ERROR_KINDS]
    keys.append(("insignificant", "insignificant errors"))
    return [
        Metric(mean_statistic(f"{prefix}:{key}", f"{prefix}:{key}"), label, section, False, source)
        for key, label in keys
    ]


def disease_column(source: str, label: str, count: str) -> str:
    return f"disease:{source}:{label}:{count}"


def disease_key(source: str, measure: str, label: str) -> str:
    return f"disease:{source}:{measure}:{label}"


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    # scikit-learn's zero_division=0: an observation never present in either report has F1 0.
    value = ratio(2 * tp, 2 * tp + fp + fn)
    return np.nan_to_num(value, nan=0.0)


def _disease_metrics(source: str) -> list[Metric]:
    section = f"Disease level ({'rule labeler' if source == 'rule' else 'CheXbert'})"
    metrics = []
    for label in CHEXPERT_OBSERVATIONS:
        tp, fp, fn = (disease_column(source, label, count) for count in ("tp", "fp", "fn"))
        columns = (tp, fp, fn)
        metrics += [
            Metric(
                Statistic(
                    disease_key(source, "precision", label),
                    columns,
                    lambda s, tp=tp, fp=fp: ratio(s[tp], s[tp] + s[fp]),
                ),
                f"{label} precision",
                section,
            ),
            Metric(
                Statistic(
                    disease_key(source, "recall", label),
                    columns,
                    lambda s, tp=tp, fn=fn: ratio(s[tp], s[tp] + s[fn]),
                ),
                f"{label} recall",
                section,
            ),
            Metric(
                Statistic(
                    disease_key(source, "f1", label),
                    columns,
                    lambda s, c=columns: _f1(*(s[name] for name in c)),
                ),
                f"{label} F1",
                section,
            ),
        ]
    for key, label, observations in DISEASE_AVERAGES:
        columns = tuple(
            disease_column(source, name, count) for name in observations for count in ("tp", "fp", "fn")
        )
        fn = _micro(source, observations) if key.startswith("micro") else _macro(source, observations)
        metrics.append(Metric(Statistic(disease_key(source, "average", key), columns, fn), label, section))
    return metrics


def _micro(source: str, observations: Sequence[str]) -> StatisticFn:
    def statistic(sums: Mapping[str, np.ndarray]) -> np.ndarray:
        tp, fp, fn = (
            np.sum([sums[disease_column(source, name, count)] for name in observations], axis=0)
            for count in ("tp", "fp", "fn")
        )
        return _f1(tp, fp, fn)

    return statistic


def _macro(source: str, observations: Sequence[str]) -> StatisticFn:
    def statistic(sums: Mapping[str, np.ndarray]) -> np.ndarray:
        scores = [
            _f1(*(sums[disease_column(source, name, count)] for count in ("tp", "fp", "fn")))
            for name in observations
        ]
        return np.sum(scores, axis=0) / len(scores)

    return statistic


def _present(value: object) -> float:
    return 1.0 if value is not None else 0.0


def study_columns(
    plan: MetricPlan,
    scored: Mapping[str, Sequence[ScoredItem]],
    references: Sequence[str],
    candidates: Sequence[str],
) -> dict[str, np.ndarray]:
    """Every per-study column the plan's statistics read (a value column and its ``#n`` presence)."""
    n = len(references)
    columns: dict[str, np.ndarray] = {}

    def put(name: str, values: Sequence[float | None]) -> None:
        columns[name] = np.array([0.0 if v is None else float(v) for v in values])
        columns[name + "#n"] = np.array([_present(v) for v in values])

    for profile in plan.profiles:
        items = scored[profile.name]
        put(_column(profile.name, REWARD), [item[REWARD]["score"] for item in items])
        for component in profile.components:
            put(_column(profile.name, component.key), [item[component.key]["score"] for item in items])
    for key, _, scorer in REXRANK_METRICS:
        found = _find(plan.profiles, scorer)
        if found is not None:
            source = columns[_column(found[0].name, found[1])]
            columns[key], columns[key + "#n"] = source, columns[_column(found[0].name, found[1]) + "#n"]
    radcliq = _find(plan.profiles, "radcliq")
    if radcliq is not None:
        put(
            "radcliq_raw",
            [(item[radcliq[1]]["details"] or {}).get("radcliq") for item in scored[radcliq[0].name]],
        )
    errors = _find(plan.profiles, "clinical_errors")
    if errors is not None:
        details = [item[errors[1]]["details"] or {} for item in scored[errors[0].name]]
        put("errors:significant", [d.get("significant_errors") for d in details])
        put("errors:insignificant", [d.get("insignificant_errors") for d in details])
        for _, kind in ERROR_KINDS:
            put(f"errors:{kind}", [(d.get("counts") or {}).get(kind) if d else None for d in details])
    judge = _find(plan.profiles, "judge")
    if judge is not None:
        # The judge's details count errors by category letter; an item it could not judge has none.
        verdicts = [item[judge[1]] for item in scored[judge[0].name]]
        counted = [
            v["details"] if v["score"] is not None and "n_significant" in (v["details"] or {}) else None
            for v in verdicts
        ]
        put("judge:significant", [d["n_significant"] if d else None for d in counted])
        put("judge:insignificant", [d["n_insignificant"] if d else None for d in counted])
        for letter, kind in ERROR_KINDS:
            put(
                f"judge:{kind}",
                [d["errors"]["significant"].get(letter.upper(), 0) if d else None for d in counted],
            )
    for source in plan.disease_sources:
        reference_sets, candidate_sets = _label_sets(plan, source, scored, references, candidates)
        # A study the labeler failed on (None) counts in no cell, so it leaves every F1 unchanged.
        known = np.array([labels is not None for labels in reference_sets], dtype=float)
        for label in CHEXPERT_OBSERVATIONS:
            ref = np.array([labels is not None and label in labels for labels in reference_sets], dtype=float)
            cand = np.array(
                [labels is not None and label in labels for labels in candidate_sets], dtype=float
            )
            columns[disease_column(source, label, "tp")] = ref * cand
            columns[disease_column(source, label, "fp")] = known * (1 - ref) * cand
            columns[disease_column(source, label, "fn")] = ref * (1 - cand)
    assert all(len(values) == n for values in columns.values())
    return columns


def _label_sets(
    plan: MetricPlan,
    source: str,
    scored: Mapping[str, Sequence[ScoredItem]],
    references: Sequence[str],
    candidates: Sequence[str],
) -> tuple[list[frozenset[str] | None], list[frozenset[str] | None]]:
    """Observations present (positive or uncertain, the "rrg" mapping) in each reference and candidate;
    None where the labeler failed on the pair."""
    if source == "rule":
        return (
            [present_observations(chexpert_labels(text)) for text in references],
            [present_observations(chexpert_labels(text)) for text in candidates],
        )
    found = _find(plan.profiles, "chexbert")
    assert found is not None
    results = [item[found[1]] for item in scored[found[0].name]]
    labelled = [
        result["score"] is not None and "reference_labels" in (result["details"] or {}) for result in results
    ]
    return (
        [
            frozenset(r["details"]["reference_labels"]) if ok else None
            for r, ok in zip(results, labelled, strict=True)
        ],
        [
            frozenset(r["details"]["candidate_labels"]) if ok else None
            for r, ok in zip(results, labelled, strict=True)
        ],
    )

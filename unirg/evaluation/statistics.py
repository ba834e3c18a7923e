"""Bootstrap confidence intervals and paired tests, vectorised with numpy.

Every number of an evaluation is a function of per-study column *sums*: a mean is
``sum(value) / sum(present)``, an F1 is ``2 sum(tp) / (2 sum(tp) + sum(fp) + sum(fn))``, ReXrank's
``1/RadCliQ`` is ``sum(present) / sum(radcliq)``. So one resample of the studies is one row of
multiplicities ``w`` (how often each study was drawn) and its sums are ``w @ X``: all resamples of
all columns are one matrix product, and any statistic is computed from those sums at once.

Resampling draws studies, not tokens or sentences. Intervals are percentile intervals (the 2.5th and
97.5th percentiles of the resampled statistic), as ``scipy.stats.bootstrap(method="percentile")``.
The paired tests use the same studies for both systems: the paired bootstrap resamples studies
once for both, approximate randomisation swaps the two systems' outputs study by study.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: A statistic from column sums: each sum is a float array (one entry per resample) or a 0-d array.
StatisticFn = Callable[[Mapping[str, np.ndarray]], np.ndarray]

DEFAULT_RESAMPLES = 1000
DEFAULT_PERMUTATIONS = 10000
CONFIDENCE = 0.95
# Resamples or permutations held in memory at once (rows of the weight matrix).
_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class Statistic:
    """A number of the evaluation, defined by the per-study columns it sums and a function of them."""

    key: str
    columns: tuple[str, ...]
    fn: StatisticFn


def mean_statistic(key: str, column: str) -> Statistic:
    """The mean of ``column`` over the studies where it is present (its ``#n`` column is 1)."""
    present = column + "#n"
    return Statistic(key, (column, present), lambda s: _ratio(s[column], s[present]))


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator != 0, numerator / np.where(denominator != 0, denominator, 1), np.nan)


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator``, NaN where the denominator is 0."""
    return _ratio(np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float))


@dataclass(frozen=True, slots=True)
class Interval:
    value: float | None
    low: float | None
    high: float | None

    def as_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "low": self.low, "high": self.high}


@dataclass(frozen=True, slots=True)
class Comparison:
    """System A minus system B on one statistic, over the studies both were evaluated on."""

    difference: Interval
    p_bootstrap: float | None
    p_randomisation: float | None

    def as_dict(self) -> dict[str, object]:
        return {
            "difference": self.difference.as_dict(),
            "p_bootstrap": self.p_bootstrap,
            "p_randomisation": self.p_randomisation,
        }


def seeded_rng(seed: int, *labels: str) -> np.random.Generator:
    """A generator fixed by the seed and the labels (dataset, group, ...), whatever the run order."""
    digest = hashlib.sha256("\x1f".join(labels).encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def resample_weights(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``resamples x n`` multiplicities: row b counts how often each study is drawn in resample b."""
    draws = rng.integers(0, n, size=(resamples, n))
    offsets = (np.arange(resamples) * n)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=resamples * n).reshape(resamples, n).astype(float)


def _sums(
    matrix: np.ndarray, columns: Mapping[str, int], weights: np.ndarray | None
) -> dict[str, np.ndarray]:
    totals = matrix.sum(axis=0) if weights is None else weights @ matrix
    return {name: totals[..., index] for name, index in columns.items()}


def _finite(value: float | np.ndarray) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _percentiles(samples: np.ndarray) -> tuple[float | None, float | None]:
    finite = samples[np.isfinite(samples)]
    if finite.size < 0.5 * samples.size:  # most resamples leave the statistic undefined
        return None, None
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


class StudyMatrix:
    """The per-study columns of one system on one set of studies, as one float matrix."""

    def __init__(self, columns: Mapping[str, np.ndarray]) -> None:
        self.names = {name: index for index, name in enumerate(columns)}
        self.matrix = np.column_stack([np.asarray(values, dtype=float) for values in columns.values()])

    @property
    def n(self) -> int:
        return self.matrix.shape[0]

    def subset(self, rows: np.ndarray) -> StudyMatrix:
        view = StudyMatrix.__new__(StudyMatrix)
        view.names = self.names
        view.matrix = self.matrix[rows]
        return view


def estimate(data: StudyMatrix, statistics: Sequence[Statistic], weights: np.ndarray) -> dict[str, Interval]:
    """Point estimate and bootstrap percentile interval of each statistic (``weights`` from
    :func:`resample_weights` over the same studies)."""
    point = _sums(data.matrix, data.names, None)
    resampled = _sums(data.matrix, data.names, weights)
    samples = np.vstack(
        [np.broadcast_to(np.asarray(s.fn(resampled), dtype=float), (weights.shape[0],)) for s in statistics]
    )
    bounds = np.full((len(statistics), 2), np.nan)
    finite = np.all(np.isfinite(samples), axis=1)  # the function: the method's stub type is not indexable
    if finite.any():  # one percentile call for every statistic defined in every resample
        tail = (1 - CONFIDENCE) / 2 * 100
        bounds[finite] = np.percentile(samples[finite], [tail, 100 - tail], axis=1).T
    out = {}
    for index, statistic in enumerate(statistics):
        low, high = (
            (float(bounds[index, 0]), float(bounds[index, 1]))
            if finite[index]
            else _percentiles(samples[index])
        )
        out[statistic.key] = Interval(_finite(statistic.fn(point)), low, high)
    return out


def compare(
    first: StudyMatrix,
    second: StudyMatrix,
    statistics: Sequence[Statistic],
    weights: np.ndarray,
    permutations: int,
    rng: np.random.Generator,
) -> dict[str, Comparison]:
    """Paired bootstrap and approximate randomisation of ``first - second`` on the same studies.

    Bootstrap p-value: twice the share of resampled differences on the far side of 0 (at most 1).
    Randomisation p-value: ``(1 + #{|permuted difference| >= |observed|}) / (1 + permutations)``,
    where each permutation swaps the two systems' results on a random half of the studies.
    """
    if first.n != second.n or first.names != second.names:
        raise ValueError("paired comparison needs the same studies and columns for both systems")
    point_a = _sums(first.matrix, first.names, None)
    point_b = _sums(second.matrix, second.names, None)
    boot_a = _sums(first.matrix, first.names, weights)
    boot_b = _sums(second.matrix, second.names, weights)
    observed = {s.key: float(s.fn(point_a) - s.fn(point_b)) for s in statistics}
    exceed = dict.fromkeys(observed, 0)
    valid = dict.fromkeys(observed, 0)
    difference = second.matrix - first.matrix
    total_a, total_b = first.matrix.sum(axis=0), second.matrix.sum(axis=0)
    done = 0
    while done < permutations:
        size = min(_CHUNK, permutations - done)
        swaps = rng.integers(0, 2, size=(size, first.n)).astype(float) @ difference
        swapped_a, swapped_b = total_a + swaps, total_b - swaps
        perm_a = {name: swapped_a[:, i] for name, i in first.names.items()}
        perm_b = {name: swapped_b[:, i] for name, i in first.names.items()}
        for statistic in statistics:
            delta = np.asarray(statistic.fn(perm_a) - statistic.fn(perm_b), dtype=float)
            finite = np.isfinite(delta)
            valid[statistic.key] += int(finite.sum())
            # A tolerance keeps ties (e.g. identical systems) counted as "at least as extreme".
            target = abs(observed[statistic.key]) - 1e-12
            exceed[statistic.key] += int((np.abs(delta[finite]) >= target).sum())
        done += size
    out = {}
    for statistic in statistics:
        key = statistic.key
        deltas = np.asarray(statistic.fn(boot_a) - statistic.fn(boot_b), dtype=float)
        low, high = _percentiles(deltas)
        finite = deltas[np.isfinite(deltas)]
        p_boot = None
        if np.isfinite(observed[key]) and finite.size:
            p_boot = float(min(1.0, 2 * min((finite <= 0).mean(), (finite >= 0).mean())))
        p_rand = (1 + exceed[key]) / (1 + valid[key]) if np.isfinite(observed[key]) and valid[key] else None
        out[key] = Comparison(Interval(_finite(observed[key]), low, high), p_boot, p_rand)
    return out

"""Subgroups of the studies: metadata columns, longitudinal position, prior study, stated change.

A breakdown is a set of named groups, each a boolean mask over the evaluated studies. Metadata
groups partition the studies (a missing value is its own group, ``missing``); the stated-change
groups may overlap (a reference can call one finding new and another unchanged). Each group is
resampled on its own for its intervals, and groups smaller than ``min_group_size`` are flagged.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from reward_service.text.findings import extract_findings
from unirg.evaluation.inputs import InputError, Study

#: Metadata columns broken down without being asked when the ground truth carries them.
DEMOGRAPHIC_COLUMNS: tuple[str, ...] = (
    "sex",
    "gender",
    "age",
    "race",
    "ethnicity",
    "institution",
    "site",
    "hospital",
    "dataset",
    "view",
    "view_position",
    "ap_pa",
    "frontal_lateral",
)
#: Columns binned by the age bins rather than grouped by value.
AGE_COLUMNS = ("age", "age_years", "patient_age")
DEFAULT_AGE_BINS: tuple[float, ...] = (40, 60, 80)
#: A numeric column with more distinct values than this is cut into quartiles.
MAX_VALUE_GROUPS = 12
MISSING = "missing"
#: Where the subject of a study and its order come from, first found wins.
SUBJECT_COLUMNS = ("subject_id", "patient_id", "patient")
ORDER_COLUMNS = (
    "study_date",
    "date",
    "study_datetime",
    "acquisition_date",
    "study_order",
    "order",
    "encounter",
)
#: Study-id conventions that name the subject and the encounter number (CheXpert / CheXpert Plus).
SUBJECT_ID_PATTERNS = (re.compile(r"^(?P<subject>patient\d+)_study(?P<order>\d+)$"),)
#: What the change words of the findings analysis mean, in the order groups are listed.
CHANGE_GROUPS: tuple[tuple[str, str], ...] = (
    ("new", "new"),
    ("worse", "worsened"),
    ("better", "improved"),
    ("same", "unchanged"),
)
NO_CHANGE_STATED = "no change stated"
_NO_COMPARISON = re.compile(r"^\W*(none|nan|n/?a|no(ne)? (prior|comparison)s?)?\W*$", re.IGNORECASE)
_COMPARISON_FIELD = re.compile(
    r"comparison\s*:\s*(?P<text>.*?)(?=\b(?:indication|history|technique)\s*:|$)", re.IGNORECASE
)


@dataclass(slots=True)
class Breakdown:
    key: str
    title: str
    groups: dict[str, np.ndarray]  # group label -> mask over the studies
    note: str = ""
    overlapping: bool = False


@dataclass(slots=True)
class BreakdownOptions:
    columns: Sequence[str] = ()  # asked for with --by, on top of the demographic columns present
    age_bins: Sequence[float] = DEFAULT_AGE_BINS
    warnings: list[str] = field(default_factory=list)


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return None if math.isnan(value) else float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return None if math.isnan(number) else number
    return None


def _fmt_number(value: float) -> str:
    return f"{value:g}"


def _bin_label(low: float, high: float) -> str:
    # Whole-number edges read as ages do ("40-59" holds 40 <= age < 60); others as half-open ranges.
    if float(low).is_integer() and float(high).is_integer():
        return f"{_fmt_number(low)}-{_fmt_number(high - 1)}"
    return f"{_fmt_number(low)} to <{_fmt_number(high)}"


def age_label(age: float, bins: Sequence[float]) -> str:
    edges = sorted(bins)
    if age < edges[0]:
        return f"<{_fmt_number(edges[0])}"
    for low, high in itertools.pairwise(edges):
        if low <= age < high:
            return _bin_label(low, high)
    return f"≥{_fmt_number(edges[-1])}"


def _age_order(bins: Sequence[float]) -> list[str]:
    edges = sorted(bins)
    labels = [f"<{_fmt_number(edges[0])}"]
    labels += [_bin_label(low, high) for low, high in itertools.pairwise(edges)]
    return [*labels, f"≥{_fmt_number(edges[-1])}"]


def _masks(labels: Sequence[str], order: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    array = np.array(labels, dtype=object)
    present = list(dict.fromkeys(labels))
    if order is not None:
        present = [label for label in order if label in present] + [
            label for label in present if label not in order
        ]
    else:
        present = sorted(present, key=lambda label: (label == MISSING, label))
    return {label: array == label for label in present}


def metadata_breakdown(
    studies: Sequence[Study], column: str, options: BreakdownOptions, dataset: str
) -> Breakdown:
    values = [study.metadata.get(column) for study in studies]
    missing = [study.id for study, value in zip(studies, values, strict=True) if value is None]
    if column.lower() in AGE_COLUMNS:
        labels, bad = [], []
        for study, value in zip(studies, values, strict=True):
            number = _number(value)
            if number is None and value is not None:
                bad.append(study.id)
            labels.append(MISSING if number is None else age_label(number, options.age_bins))
        if bad:
            options.warnings.append(
                f"{dataset}: `{column}` is not a number for {len(bad)} studies (first: {bad[0]!r}); they are "
                f"grouped as {MISSING!r}: give a number or leave the value empty"
            )
        if missing:
            options.warnings.append(
                f"{dataset}: `{column}` is NaN or empty for {len(missing)} studies (first: {missing[0]!r}); "
                f"they are grouped as {MISSING!r}: give them an age to place them in an age bin"
            )
        order = [*_age_order(options.age_bins), MISSING]
        note = "age bins " + ", ".join(_age_order(options.age_bins))
        return Breakdown(column, f"by {column}", _masks(labels, order), note)
    numbers = [_number(value) for value in values]
    distinct = {number for number in numbers if number is not None}
    is_numeric = all(n is not None or v is None for n, v in zip(numbers, values, strict=True)) and distinct
    if is_numeric and len(distinct) > MAX_VALUE_GROUPS:
        quartiles = np.quantile(sorted(distinct), [0.25, 0.5, 0.75]).tolist()
        labels = [MISSING if n is None else age_label(n, quartiles) for n in numbers]
        return Breakdown(
            column, f"by {column}", _masks(labels, [*_age_order(quartiles), MISSING]), "quartile bins"
        )
    labels = [MISSING if value is None else str(value) for value in values]
    return Breakdown(column, f"by {column}", _masks(labels))


def _subject_and_order(study: Study) -> tuple[str | None, object]:
    subject = next((study.metadata[c] for c in SUBJECT_COLUMNS if study.metadata.get(c) is not None), None)
    order = next((study.metadata[c] for c in ORDER_COLUMNS if study.metadata.get(c) is not None), None)
    for pattern in SUBJECT_ID_PATTERNS:
        found = pattern.match(study.id)
        if found:
            subject = subject or found["subject"]
            if order is None:
                order = int(found["order"])
    return (None if subject is None else str(subject)), order


def encounter_breakdown(studies: Sequence[Study]) -> Breakdown | None:
    """Encounter index of each study within its subject (1st, 2nd, 3rd or later)."""
    keys = [_subject_and_order(study) for study in studies]
    if all(subject is None for subject, _ in keys):
        return None
    by_subject: dict[str, list[int]] = {}
    for index, (subject, _) in enumerate(keys):
        if subject is not None:
            by_subject.setdefault(subject, []).append(index)
    labels = [MISSING] * len(studies)
    for indices in by_subject.values():

        def sort_key(index: int) -> tuple[int, str, int]:
            order = keys[index][1]
            number = _number(order)
            # Dates sort as text (ISO dates do); numbers as numbers; file order breaks ties.
            return (0, f"{number:020.6f}" if number is not None else str(order or ""), studies[index].order)

        for rank, index in enumerate(sorted(indices, key=sort_key), start=1):
            labels[index] = {1: "1st", 2: "2nd"}.get(rank, "3rd+")
    return Breakdown(
        "encounter",
        "by encounter within the subject",
        _masks(labels, ["1st", "2nd", "3rd+", MISSING]),
        "subject and order from "
        + ("a subject column" if any(c in studies[0].metadata for c in SUBJECT_COLUMNS) else "the study id"),
    )


def comparison_given(context: str | None) -> bool | None:
    """Whether the context's "Comparison:" field names a prior study (None: the context has none)."""
    if not context:
        return None
    found = _COMPARISON_FIELD.search(context)
    if found is None:
        return None
    return not _NO_COMPARISON.match(found["text"].strip())


def prior_breakdown(studies: Sequence[Study]) -> Breakdown | None:
    if any(study.prior_report is not None for study in studies):
        labels = ["prior report given" if study.prior_report else "no prior report" for study in studies]
        return Breakdown(
            "prior", "by prior report in the input", _masks(labels), "from the prior_report column"
        )
    given = [comparison_given(study.context) for study in studies]
    if all(value is None for value in given):
        return None
    labels = [
        MISSING if value is None else ("comparison given" if value else "no comparison") for value in given
    ]
    return Breakdown(
        "prior", "by prior study in the input", _masks(labels), "from the context's Comparison field"
    )


def stated_changes(reference: str) -> set[str]:
    """The changes the reference states about findings it reports present (new, worse, better, same)."""
    return {
        change
        for mention in extract_findings(reference).mentions
        if mention.present
        for change in mention.change
    }


def change_breakdown(references: Sequence[str]) -> Breakdown:
    changes = [stated_changes(text) for text in references]
    groups = {label: np.array([word in found for found in changes]) for word, label in CHANGE_GROUPS}
    groups[NO_CHANGE_STATED] = np.array([not found for found in changes])
    groups = {label: mask for label, mask in groups.items() if mask.any()}
    return Breakdown(
        "change",
        "by the change the reference states",
        groups,
        "a study is in every group its reference states (groups overlap)",
        overlapping=True,
    )


def breakdowns_for(
    studies: Sequence[Study], options: BreakdownOptions, dataset: str, available: Sequence[str]
) -> list[Breakdown]:
    """Every breakdown of one ground-truth set: metadata (demographic columns present, then --by),
    encounter index, prior study and stated change."""
    unknown = [column for column in options.columns if column not in available]
    if unknown:
        raise InputError(
            f"{dataset} has no metadata column {', '.join(map(repr, unknown))}; its columns are "
            f"{', '.join(available) or 'none'}"
        )
    columns = sorted(
        (c for c in available if c.lower() in DEMOGRAPHIC_COLUMNS),
        key=lambda c: DEMOGRAPHIC_COLUMNS.index(c.lower()),
    )
    columns += [c for c in options.columns if c not in columns]
    found = [metadata_breakdown(studies, column, options, dataset) for column in columns]
    for extra in (encounter_breakdown(studies), prior_breakdown(studies)):
        if extra is not None:
            found.append(extra)
    found.append(change_breakdown([study.reference or "" for study in studies]))
    return found

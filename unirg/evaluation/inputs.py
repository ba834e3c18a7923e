"""Reading ground truth and predictions in the layouts the field uses, and matching them by study id.

Ground truth: the ReXrank JSON layout (``{study_id: {"section_findings", "section_impression",
"report", "context", ...metadata}}``), or JSONL / CSV rows with ``study_id`` and the report or its
sections; every other column is metadata (sex, age, race, view, ...).

Predictions: ReXrank JSON with ``model_prediction``, a plain ``{study_id: text}`` JSON, JSONL rows, or
the CXR-Report-Metric CSV (``study_id,report``).

Real files have quirks that are handled here rather than cleaned away by the user: ``NaN`` (a bare
JSON token) where a section or a number is missing, upper-case text with hard line breaks inside
sentences, and "Findings: None." for a missing section.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn


class InputError(ValueError):
    """An input that cannot be evaluated; the message says what to fix."""


class TextField(StrEnum):
    """Which text of a study is evaluated."""

    REPORT = "report"  # the `report` field; the ReXrank join of the sections when there is none
    FINDINGS = "findings"
    IMPRESSION = "impression"
    REXRANK = "rexrank"  # "Findings: {findings} Impression: {impression}", a missing one printed None


class MissingPolicy(StrEnum):
    """What a study without a prediction counts as."""

    EMPTY = "empty"  # an empty report: a system cannot gain by skipping hard studies
    DROP = "drop"  # left out for that system (paired tests use the studies both systems have)
    ERROR = "error"  # refuse to evaluate


#: Accepted column names of each concept, first match wins.
ID_COLUMNS = ("study_id", "id")
FINDINGS_COLUMNS = ("section_findings", "findings")
IMPRESSION_COLUMNS = ("section_impression", "impression")
REPORT_COLUMNS = ("report",)
PREDICTION_COLUMNS = ("model_prediction", "prediction", "generated_report", "report")
PRIOR_COLUMNS = ("prior_report", "section_prior_report")
CONTEXT_COLUMNS = ("context", "indication")
#: Columns that hold text or file paths, never metadata to break down by.
_TEXT_COLUMNS = frozenset(
    {
        *ID_COLUMNS,
        *FINDINGS_COLUMNS,
        *IMPRESSION_COLUMNS,
        *REPORT_COLUMNS,
        *PREDICTION_COLUMNS,
        *PRIOR_COLUMNS,
        *CONTEXT_COLUMNS,
        "image_path",
        "key_image_path",
        "section_clinical_history",
        "split",
    }
)
_WHITESPACE = re.compile(r"\s+")


def is_missing(value: Any) -> bool:
    """None, NaN (the bare JSON token real files carry) and blank strings count as missing."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and (not value.strip() or value.strip().lower() == "nan")


def clean_text(value: Any) -> str | None:
    """Report text with runs of whitespace (hard line breaks inside sentences) made single spaces."""
    if is_missing(value):
        return None
    if not isinstance(value, str):
        raise InputError(f"expected report text, found {type(value).__name__} {value!r}")
    return _WHITESPACE.sub(" ", value).strip()


def rexrank_join(findings: str | None, impression: str | None) -> str:
    """ReXrank's evaluated text: both sections, a missing one printed as ``None``."""
    return f"Findings: {findings or 'None'} Impression: {impression or 'None'}"


def _first(row: Mapping[str, Any], columns: Sequence[str]) -> Any:
    for column in columns:
        if column in row:
            return row[column]
    return None


def _has_any(row: Mapping[str, Any], columns: Sequence[str]) -> bool:
    return any(column in row for column in columns)


def select_text(row: Mapping[str, Any], text: TextField) -> str | None:
    """The evaluated text of one ground-truth row (None when that text is absent)."""
    findings = clean_text(_first(row, FINDINGS_COLUMNS))
    impression = clean_text(_first(row, IMPRESSION_COLUMNS))
    if text is TextField.FINDINGS:
        return findings
    if text is TextField.IMPRESSION:
        return impression
    if text is TextField.REPORT and _has_any(row, REPORT_COLUMNS):
        return clean_text(_first(row, REPORT_COLUMNS))
    if findings is None and impression is None:
        return None
    return rexrank_join(findings, impression)


def _metadata_value(value: Any) -> Any:
    """A metadata value as a group label or a number; lists (e.g. views) join their distinct values."""
    if isinstance(value, list):
        parts = sorted({str(part) for part in value if not is_missing(part)})
        return "+".join(parts) if parts else None
    if is_missing(value) or isinstance(value, dict):
        return None
    return value


@dataclass(slots=True)
class Study:
    """One ground-truth study: the evaluated reference text, its context and metadata."""

    id: str
    reference: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    context: str | None = None
    prior_report: str | None = None
    order: int = 0  # position in the file: the encounter order when no date or order column exists


@dataclass(slots=True)
class GroundTruth:
    name: str
    path: Path
    studies: list[Study]
    #: Metadata columns with missing values -> how many studies lack them (NaN, blank, absent).
    missing_metadata: dict[str, int] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        seen: dict[str, None] = {}
        for study in self.studies:
            seen.update(dict.fromkeys(study.metadata))
        return list(seen)


@dataclass(slots=True)
class Predictions:
    name: str
    path: Path
    texts: dict[str, str | None]


def split_named(spec: str) -> tuple[str | None, Path]:
    """``NAME=PATH`` -> (NAME, PATH); a bare path has no name (the file's stem is used)."""
    name, sep, path = spec.partition("=")
    if sep and name and not Path(spec).exists():
        return name, Path(path)
    return None, Path(spec)


def _read_rows(path: Path) -> tuple[str, list[dict[str, Any]] | dict[str, Any]]:
    """(layout, content): ``json`` gives the decoded object, ``rows`` a list of row dicts."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    raw = path.read_text(encoding="utf-8-sig")
    if not raw.strip():
        raise InputError(f"{path} is empty: give a file with one study per entry")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = list(csv.DictReader(raw.splitlines()))
        if not rows:
            raise InputError(f"{path} has a header but no rows")
        return "rows", rows
    if suffix == ".jsonl":
        rows = []
        for number, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number} is not a JSON object ({exc.msg})") from None
            if not isinstance(row, dict):
                raise InputError(f"{path}:{number} is not a JSON object: each line must be one study")
            rows.append(row)
        return "rows", rows
    try:
        content = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path} is not JSON ({exc.msg} at line {exc.lineno}); name JSONL files *.jsonl and CSV files *.csv"
        ) from None
    if isinstance(content, list):
        if not all(isinstance(row, dict) for row in content):
            raise InputError(f"{path}: a JSON list must hold one object per study")
        return "rows", content
    if not isinstance(content, dict) or not content:
        raise InputError(f"{path}: expected a JSON object keyed by study id, found {type(content).__name__}")
    return "json", content


def _row_id(row: Mapping[str, Any], path: Path, number: int) -> str:
    value = _first(row, ID_COLUMNS)
    if is_missing(value):
        raise InputError(
            f"{path}: row {number} has no study id: give every row a `study_id` column "
            f"(found columns: {', '.join(sorted(row)) or 'none'})"
        )
    return str(value)


def load_ground_truth(
    path: Path, *, text: TextField = TextField.REPORT, name: str | None = None
) -> GroundTruth:
    """Read a ground-truth file (ReXrank JSON, JSONL or CSV)."""
    layout, content = _read_rows(path)
    if layout == "json":
        assert isinstance(content, dict)
        bad = next((key for key, value in content.items() if not isinstance(value, dict)), None)
        if bad is not None:
            raise InputError(
                f"{path}: study {bad!r} is not an object. Ground truth in JSON must use the ReXrank layout "
                '{study_id: {"section_findings": ..., "section_impression": ..., "report": ...}}'
            )
        rows = [{"study_id": key, **value} for key, value in content.items()]
    else:
        assert isinstance(content, list)
        rows = content
    text_columns = (*REPORT_COLUMNS, *FINDINGS_COLUMNS, *IMPRESSION_COLUMNS)
    if not any(_has_any(row, text_columns) for row in rows):
        raise InputError(
            f"{path}: no report text found. Give each study a `report` column, or `section_findings` / "
            f"`section_impression` (found columns: {', '.join(sorted(rows[0]))})"
        )
    studies = []
    seen: set[str] = set()
    missing: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        study_id = _row_id(row, path, number)
        if study_id in seen:
            raise InputError(f"{path}: study id {study_id!r} occurs twice; ids must be unique in one file")
        seen.add(study_id)
        metadata = {}
        for column, value in row.items():
            if column in _TEXT_COLUMNS:
                continue
            cleaned = _metadata_value(value)
            if cleaned is None:
                missing[column] = missing.get(column, 0) + 1
            metadata[column] = cleaned
        studies.append(
            Study(
                id=study_id,
                reference=select_text(row, text),
                metadata=metadata,
                context=clean_text(_first(row, CONTEXT_COLUMNS)),
                prior_report=clean_text(_first(row, PRIOR_COLUMNS)),
                order=number,
            )
        )
    return GroundTruth(name or path.stem, path, studies, missing)


def load_predictions(
    path: Path, *, text: TextField = TextField.REPORT, name: str | None = None
) -> Predictions:
    """Read one system's predictions: ReXrank JSON, ``{study_id: text}`` JSON, JSONL or CSV."""
    layout, content = _read_rows(path)
    texts: dict[str, str | None] = {}
    if layout == "json":
        assert isinstance(content, dict)
        for key, value in content.items():
            texts[str(key)] = _prediction_text(value, path, key, text)
    else:
        assert isinstance(content, list)
        for number, row in enumerate(content, start=1):
            study_id = _row_id(row, path, number)
            if study_id in texts:
                raise InputError(f"{path}: study id {study_id!r} occurs twice; give one prediction per study")
            texts[study_id] = _prediction_text(row, path, study_id, text)
    return Predictions(name or path.stem, path, texts)


def _prediction_text(value: Any, path: Path, key: str, text: TextField) -> str | None:
    if isinstance(value, str) or is_missing(value):
        return clean_text(value)
    if not isinstance(value, dict):
        _bad_prediction(path, key)
    if _has_any(value, PREDICTION_COLUMNS):
        return clean_text(_first(value, PREDICTION_COLUMNS))
    if _has_any(value, (*FINDINGS_COLUMNS, *IMPRESSION_COLUMNS)):
        return select_text(value, text)
    _bad_prediction(path, key)


def _bad_prediction(path: Path, key: str) -> NoReturn:
    raise InputError(
        f"{path}: cannot find the generated report of study {key!r}. Give predictions as "
        '{study_id: "text"}, ReXrank JSON with `model_prediction`, or JSONL/CSV rows with `study_id` '
        "and `report`"
    )


@dataclass(slots=True)
class Match:
    """How one system's predictions line up with one ground-truth set."""

    studies: list[Study]  # evaluated studies, in ground-truth order
    candidates: list[str]  # the prediction of each (empty string when missing or empty)
    missing: list[str]  # ground-truth ids without a prediction
    empty: list[str]  # ids whose prediction is empty
    extra: list[str]  # prediction ids not in the ground truth
    no_reference: list[str]  # ground-truth ids without the evaluated text (left out, counted)


def match(
    ground_truth: GroundTruth,
    predictions: Predictions,
    *,
    missing_policy: MissingPolicy = MissingPolicy.EMPTY,
) -> Match:
    """Pair predictions with ground-truth studies by id; nothing is dropped without being counted."""
    ids = {study.id for study in ground_truth.studies}
    matched = ids & set(predictions.texts)
    if not matched:
        raise InputError(
            f"no study id of {predictions.path} is in {ground_truth.path}: ground-truth ids look like "
            f"{_examples(study.id for study in ground_truth.studies)}, prediction ids like "
            f"{_examples(predictions.texts)}; key the predictions by the ground truth's study ids"
        )
    missing = [study.id for study in ground_truth.studies if study.id not in predictions.texts]
    if missing and missing_policy is MissingPolicy.ERROR:
        raise InputError(
            f"{len(missing)} studies of {ground_truth.path} have no prediction in {predictions.path} "
            f"(first: {_examples(missing)}); add them or pass --missing empty|drop"
        )
    studies, candidates, empty, no_reference = [], [], [], []
    for study in ground_truth.studies:
        if study.reference is None:
            no_reference.append(study.id)
            continue
        if study.id not in predictions.texts and missing_policy is MissingPolicy.DROP:
            continue
        candidate = predictions.texts.get(study.id)
        if study.id in predictions.texts and candidate is None:
            empty.append(study.id)
        studies.append(study)
        candidates.append(candidate or "")
    if not studies:
        raise InputError(
            f"{ground_truth.path}: no study has the evaluated text; choose another --text "
            "(report, findings, impression, rexrank)"
        )
    extra = sorted(set(predictions.texts) - ids)
    return Match(studies, candidates, missing, empty, extra, no_reference)


def _examples(values: Iterable[str], count: int = 3) -> str:
    shown = []
    for value in values:
        shown.append(repr(value))
        if len(shown) == count:
            break
    return ", ".join(shown)

"""Report-generation studies: reading ReXrank JSON / JSONL, building prompts and TRL datasets.

A study is one imaging exam: its images (the key, frontal, view first), the clinical context
(indication, comparison), optionally the prior study's report and image (longitudinal generation), and the
reference report the model should write, as ``"Findings: ... Impression: ..."``.

Input layouts (paths in ``image_path`` / ``prior_image_path`` are relative to ``image_root``):

* ReXrank JSON: ``{study_id: {"image_path": [...], "key_image_path": ..., "context": "Indication: ...
  Comparison: ...", "section_findings": ..., "section_impression": ..., "report": ...}}``;
* JSONL: one such object a line, with the id under ``study_id`` (or ``id``). JSONL may also give
  ``indication`` / ``comparison`` directly instead of ``context``.

Either may add ``prior_report`` and ``prior_image_path`` (a path or a list) and ``split``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets import Dataset

    from trainer.config import UniRGArguments

__all__ = [
    "DEFAULT_PROMPT_TEMPLATE",
    "PRIOR_TEMPLATE",
    "Study",
    "build_dataset",
    "build_messages",
    "load_studies",
    "parse_context",
    "reference_report",
]

DEFAULT_PROMPT_TEMPLATE = (
    "{prior}Write the radiology report for the current chest X-ray.\n"
    "Indication: {indication}\n"
    "Comparison: {comparison}\n"
    'Answer in the form "Findings: ... Impression: ...".'
)
# Filled into {prior} when the study has a prior report; the image sentence only when a prior image is shown.
PRIOR_TEMPLATE = "Prior report: {prior_report}\n"
PRIOR_IMAGE_NOTE = "The first image is from the prior study, the others from the current study.\n"

_CONTEXT_LABEL = re.compile(r"\b(indication|history|comparison|technique)\s*:", re.IGNORECASE)


class DataError(ValueError):
    """The data file is malformed or refers to images that do not exist."""


@dataclass(frozen=True)
class Study:
    """One exam to write a report for."""

    study_id: str
    reference: str
    images: tuple[Path, ...] = ()
    indication: str | None = None
    comparison: str | None = None
    prior_report: str | None = None
    prior_images: tuple[Path, ...] = ()


def parse_context(context: str | None) -> dict[str, str]:
    """Split ReXrank's ``"Indication: ... Comparison: ..."`` into ``{"indication": ..., "comparison": ...}``.

    ``History`` counts as indication; labels may come in any order; text before the first label is
    treated as indication.
    """
    if not context or not context.strip():
        return {}
    matches = list(_CONTEXT_LABEL.finditer(context))
    parts: dict[str, str] = {}
    if not matches:
        return {"indication": context.strip()}
    if head := context[: matches[0].start()].strip():
        parts["indication"] = head
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        label = match.group(1).lower()
        key = "indication" if label == "history" else label
        text = context[match.end() : following.start() if following else len(context)].strip()
        if text:
            parts[key] = f"{parts[key]} {text}" if key in parts else text
    return parts


def reference_report(record: Mapping[str, Any]) -> str:
    """The target text ``"Findings: ... Impression: ..."``: ``report`` when given, else built from sections."""
    if report := (record.get("report") or "").strip():
        return report
    findings = (record.get("section_findings") or "").strip()
    impression = (record.get("section_impression") or "").strip()
    sections = [
        f"Findings: {findings}" if findings else "",
        f"Impression: {impression}" if impression else "",
    ]
    return " ".join(s for s in sections if s)


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    return [value] if isinstance(value, str) else [v for v in value if v]


def _current_images(record: Mapping[str, Any]) -> list[str]:
    """Image paths with the key (frontal) image first: UniRG feeds the frontal view."""
    paths = _as_list(record.get("image_path"))
    views = _as_list(record.get("frontal_lateral"))
    key = record.get("key_image_path")
    if not key and len(views) == len(paths):
        key = next((p for p, v in zip(paths, views, strict=True) if v.lower() == "frontal"), None)
    if key:
        return [key, *(p for p in paths if p != key)]
    return paths


def _read_records(path: Path, data_format: str) -> Iterable[tuple[str, Mapping[str, Any]]]:
    if data_format == "auto":
        data_format = "jsonl" if path.suffix.lower() == ".jsonl" else "rexrank"
    try:
        if data_format == "rexrank":
            raw = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict):
                raise DataError(
                    f"{path}: a ReXrank file maps study ids to studies; found {type(raw).__name__}"
                )
            yield from ((str(k), v) for k, v in raw.items())
            return
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                record = json.loads(line)
                study_id = record.get("study_id", record.get("id", f"{path.stem}-{number}"))
                yield str(study_id), record
    except FileNotFoundError:
        raise DataError(f"data file {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid {data_format} JSON: {exc}") from None


def load_studies(
    path: str | Path,
    *,
    data_format: str = "auto",
    image_root: str | Path | None = None,
    split: str | None = None,
    max_samples: int | None = None,
) -> list[Study]:
    """Read studies from a ReXrank JSON or JSONL file; studies without any reference text are skipped."""
    path = Path(path)
    root = Path(image_root) if image_root else path.parent
    studies = []
    for study_id, record in _read_records(path, data_format):
        if not isinstance(record, Mapping):
            raise DataError(f"{path}: study {study_id} is not an object")
        if split is not None and record.get("split") != split:
            continue
        reference = reference_report(record)
        if not reference:
            continue
        context = parse_context(record.get("context"))
        studies.append(
            Study(
                study_id=study_id,
                reference=reference,
                images=tuple(root / p for p in _current_images(record)),
                indication=record.get("indication") or context.get("indication"),
                comparison=record.get("comparison") or context.get("comparison"),
                prior_report=(record.get("prior_report") or "").strip() or None,
                prior_images=tuple(root / p for p in _as_list(record.get("prior_image_path"))),
            )
        )
        if max_samples is not None and len(studies) >= max_samples:
            break
    if not studies:
        raise DataError(
            f"{path}: no study with a reference report" + (f" in split {split!r}" if split else "")
        )
    return studies


def build_messages(
    study: Study,
    *,
    n_images: int = 0,
    n_prior_images: int = 0,
    prompt_template: str | None = None,
    system_prompt: str | None = None,
) -> list[dict[str, Any]]:
    """The conversational prompt for ``study``; ``n_images`` image placeholders precede the text.

    Prior images come first, then the current ones. With no images the user content is a plain string,
    which text-only chat templates expect.
    """
    prior = ""
    if study.prior_report:
        prior += PRIOR_TEMPLATE.format(prior_report=study.prior_report)
    if n_prior_images:
        prior += PRIOR_IMAGE_NOTE
    text = (prompt_template or DEFAULT_PROMPT_TEMPLATE).format(
        indication=study.indication or "None.", comparison=study.comparison or "None.", prior=prior
    )
    content: str | list[dict[str, Any]] = text
    if n_images:
        content = [*({"type": "image"} for _ in range(n_images)), {"type": "text", "text": text}]
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*messages, {"role": "user", "content": content}]


def build_dataset(studies: list[Study], args: UniRGArguments) -> Dataset:
    """A TRL dataset: conversational ``prompt`` (+ ``completion`` for SFT), ``reference`` and context columns.

    For a VLM the ``images`` column holds image files that ``datasets`` decodes lazily (prior images first,
    then up to ``max_images`` current ones); a missing file fails here, before any model is loaded.
    """
    from datasets import Dataset, Image, List

    vlm = args.model_kind == "vlm"
    rows: dict[str, list[Any]] = {
        k: [] for k in ("study_id", "prompt", "reference", "indication", "comparison", "prior_report")
    }
    if args.stage == "sft":
        rows["completion"] = []
    if vlm:
        rows["images"] = []
    for study in studies:
        prior_images = list(study.prior_images[:1]) if (vlm and args.use_prior) else []
        images = list(study.images[: args.max_images]) if vlm else []
        if vlm and not images:
            raise DataError(f"study {study.study_id} has no image; a vlm run needs one per study")
        missing = [p for p in (*prior_images, *images) if not p.is_file()]
        if missing:
            raise DataError(f"study {study.study_id}: image {missing[0]} does not exist (check image_root)")
        shown = study if args.use_prior else replace(study, prior_report=None)
        rows["study_id"].append(study.study_id)
        rows["prompt"].append(
            build_messages(
                shown,
                n_images=len(prior_images) + len(images),
                n_prior_images=len(prior_images),
                prompt_template=args.prompt_template,
                system_prompt=args.system_prompt,
            )
        )
        rows["reference"].append(study.reference)
        rows["indication"].append(study.indication or "")
        rows["comparison"].append(study.comparison or "")
        rows["prior_report"].append(shown.prior_report or "")
        if args.stage == "sft":
            rows["completion"].append([{"role": "assistant", "content": study.reference}])
        if vlm:
            rows["images"].append([str(p) for p in (*prior_images, *images)])
    dataset = Dataset.from_dict(rows)
    return dataset.cast_column("images", List(Image())) if vlm else dataset

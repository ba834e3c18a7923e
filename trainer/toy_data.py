"""A generated toy report-generation task: small enough for a tiny model to learn on a CPU in minutes.

Each study has one of four conditions. Its synthetic "X-ray" (a dark square with a bright blob whose
place and size depend on the condition), its indication and its report all follow from the condition
(every indication belongs to one condition), so a policy can raise its reward by learning the report
phrases and which report goes with which input. Reports
use a vocabulary of a few dozen words in the ReXrank "Findings: ... Impression: ..." form, and the first
word after "Findings:" already tells the four reports apart, so learning which report fits a study is a
single early choice (a tiny model learns that under GRPO in a few dozen steps).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from trainer.data import DEFAULT_PROMPT_TEMPLATE, PRIOR_IMAGE_NOTE, PRIOR_TEMPLATE

__all__ = ["CONDITIONS", "toy_corpus", "write_toy_dataset"]

# condition -> (indications, findings sentences, impression)
CONDITIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "normal": (
        ("Routine exam.", "Chest pain."),
        ("Normal heart size.", "The lungs are clear.", "No pleural effusion."),
        "No acute cardiopulmonary disease.",
    ),
    "effusion": (
        ("Dyspnea.", "Pleuritic pain."),
        ("Small left pleural effusion.", "Normal heart size."),
        "Small left pleural effusion.",
    ),
    "cardiomegaly": (
        ("Leg swelling.", "Heart failure."),
        ("Enlarged heart.", "The lungs are clear."),
        "Mild cardiomegaly.",
    ),
    "pneumonia": (
        ("Fever and cough.", "Cough."),
        ("Right lower lobe opacity.", "Normal heart size."),
        "Right lower lobe pneumonia.",
    ),
}
# Where each condition puts its bright blob (x, y as fractions of the image side) and its radius.
_BLOBS = {
    "normal": None,
    "effusion": (0.7, 0.8, 0.12),
    "cardiomegaly": (0.5, 0.6, 0.25),
    "pneumonia": (0.3, 0.7, 0.1),
}


def _report(condition: str, hallucinated: str | None = None) -> str:
    """The condition's report; ``hallucinated`` (another condition) adds that condition's key finding."""
    _, findings, impression = CONDITIONS[condition]
    extra = (CONDITIONS[hallucinated][1][0],) if hallucinated else ()
    return f"Findings: {' '.join((*findings, *extra))} Impression: {impression}"


def toy_corpus() -> list[str]:
    """Every text a toy prompt or report can contain: the vocabulary source for the tiny tokenizer."""
    texts = [DEFAULT_PROMPT_TEMPLATE, PRIOR_TEMPLATE, PRIOR_IMAGE_NOTE, "None."]
    for condition, (indications, findings, _) in CONDITIONS.items():
        texts += [_report(condition), *indications, findings[0]]
    return texts


def _draw_image(condition: str, path: Path, size: int, rng: random.Random) -> None:
    from PIL import Image, ImageDraw

    image = Image.new("L", (size, size), color=rng.randint(20, 50))
    if blob := _BLOBS[condition]:
        x, y, r = (v * size for v in blob)
        ImageDraw.Draw(image).ellipse((x - r, y - r, x + r, y + r), fill=rng.randint(190, 230))
    image.save(path)


def write_toy_dataset(
    directory: str | Path,
    *,
    n_studies: int = 32,
    seed: int = 0,
    image_size: int = 56,
    with_priors: bool = False,
    conditions: Sequence[str] | None = None,
    hallucination_rate: float = 0.0,
    filename: str = "train.jsonl",
) -> Path:
    """Write ``n_studies`` toy studies as JSONL (``filename``) plus PNG images under ``directory/images``.

    ``conditions`` (default: all) cycle so every one is represented. ``with_priors`` gives every study a
    prior report and prior image (a normal study) for the longitudinal prompt. ``hallucination_rate`` is
    the share of reports that also state a finding the study does not have (another condition's key
    finding): noisy warm-up data whose hallucinations the reward's clinical-error component penalises.
    Returns the path of the data file.
    """
    directory = Path(directory)
    (directory / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    names = list(conditions or CONDITIONS)
    path = directory / filename
    with path.open("w", encoding="utf-8") as out:
        for index in range(n_studies):
            condition = names[index % len(names)]
            study_id = f"{path.stem}-{seed}-{index:04d}"
            image = f"images/{study_id}.png"
            _draw_image(condition, directory / image, image_size, rng)
            indication = rng.choice(CONDITIONS[condition][0])
            others = [c for c in CONDITIONS if c not in (condition, "normal")]
            hallucinated = rng.choice(others) if rng.random() < hallucination_rate else None
            record = {
                "study_id": study_id,
                "image_path": [image],
                "key_image_path": image,
                "context": f"Indication: {indication} Comparison: None.",
                "report": _report(condition, hallucinated),
                "condition": condition,
            }
            if with_priors:
                prior = f"images/{study_id}-prior.png"
                _draw_image("normal", directory / prior, image_size, rng)
                record |= {"prior_report": _report("normal"), "prior_image_path": prior}
            out.write(json.dumps(record) + "\n")
    return path

"""Evaluate two simple baselines on the real report sets and write the HTML report.

Baselines (they need no model, so they show what a trained model has to beat):

- ``retrieval``: for each study, the report of the most similar *other* study by indication (TF-IDF
  cosine of the indication words over the other studies of the same file; ties go to the first).
- ``normal``: one fixed normal report for every study.

Both are evaluated on the IU X-ray test set and on the 200 CheXpert Plus studies (one column each
in the report; CheXpert Plus brings the sex, age, race and ethnicity breakdowns).

Run from the repository root (the data lives beside it in ``../shared/data``)::

    python examples/evaluate_baselines.py                 # writes outputs/eval-baselines/
    python examples/evaluate_baselines.py --output DIR --resamples 1000

It is the same as writing the two prediction files and running
``unirg eval iu=... chexpert=... --pred retrieval=... --pred normal=...``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np

from unirg.evaluation import EvaluationConfig, evaluate, write_csv, write_html, write_json
from unirg.evaluation.cli import print_summary
from unirg.evaluation.inputs import TextField, clean_text, select_text

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DATASETS = {"iu_xray_test": "rexrank_iuxray_test.json", "chexpert_plus": "rexrank_chexpertplus.json"}
NORMAL_REPORT = (
    "Findings: The heart size and mediastinal contours are within normal limits. The lungs are clear. "
    "There is no pleural effusion or pneumothorax. No acute osseous abnormality. "
    "Impression: No acute cardiopulmonary process."
)
_INDICATION = re.compile(r"indication\s*:\s*(.*?)(?=comparison\s*:|$)", re.IGNORECASE | re.DOTALL)
_WORD = re.compile(r"[a-z]+")
# De-identification marks and empty fields carry no similarity.
_IGNORED = {"xxxx", "nan", "none"}


def indication(study: dict) -> str:
    found = _INDICATION.search(clean_text(study.get("context")) or "")
    return found.group(1) if found else ""


def tfidf(texts: list[str]) -> np.ndarray:
    """Unit-length TF-IDF rows of the texts' words (smoothed idf)."""
    tokens = [[w for w in _WORD.findall(text.lower()) if w not in _IGNORED] for text in texts]
    vocabulary = {word: i for i, word in enumerate(sorted({w for words in tokens for w in words}))}
    documents = Counter(word for words in tokens for word in set(words))
    matrix = np.zeros((len(texts), max(1, len(vocabulary))))
    for row, words in enumerate(tokens):
        for word, count in Counter(words).items():
            matrix[row, vocabulary[word]] = count * (math.log((1 + len(texts)) / (1 + documents[word])) + 1)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


def retrieval_predictions(studies: dict[str, dict]) -> dict[str, str]:
    ids = list(studies)
    vectors = tfidf([indication(studies[i]) for i in ids])
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -1.0)  # never the study itself
    best = similarity.argmax(axis=1)
    return {
        study: select_text(studies[ids[j]], TextField.REPORT) or ""
        for study, j in zip(ids, best, strict=True)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--output", type=Path, default=Path("outputs/eval-baselines"), help="where the report goes"
    )
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument(
        "--permutations", type=int, default=10000, help="randomisation trials per system pair"
    )
    args = parser.parse_args()
    missing = [name for name in DATASETS.values() if not (DATA / name).is_file()]
    if missing:
        raise SystemExit(f"{DATA} lacks {', '.join(missing)}: this example needs the shared report sets")
    args.output.mkdir(parents=True, exist_ok=True)
    retrieval, normal = {}, {}
    for name in DATASETS.values():
        studies = json.loads((DATA / name).read_text(encoding="utf-8"))
        retrieval.update(retrieval_predictions(studies))
        normal.update(dict.fromkeys(studies, NORMAL_REPORT))
    predictions = {"retrieval": retrieval, "normal": normal}
    for system, texts in predictions.items():
        (args.output / f"{system}.json").write_text(json.dumps(texts, indent=1), encoding="utf-8")
    evaluation = evaluate(
        EvaluationConfig(
            ground_truth=[(dataset, DATA / file) for dataset, file in DATASETS.items()],
            predictions=[(system, args.output / f"{system}.json") for system in predictions],
            resamples=args.resamples,
            permutations=args.permutations,
        )
    )
    write_html(evaluation, args.output / "report.html", "Baselines on IU X-ray and CheXpert Plus")
    write_json(evaluation, args.output / "results.json")
    write_csv(evaluation, args.output / "per_study.csv")
    print_summary(evaluation.summary)
    for line in [*evaluation.summary["notes"], *evaluation.warnings]:
        print(line)
    print(f"wrote {args.output / 'report.html'}")


if __name__ == "__main__":
    main()

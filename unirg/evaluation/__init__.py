"""Evaluating report-generation systems the way UniRG is judged (``unirg eval``).

Read ground truth and predictions (:mod:`.inputs`), score every pair with reward profiles in-process
or through a running service, with a disk cache (:mod:`.scoring`, :mod:`.cache`), turn the results
into per-study columns (:mod:`.metrics`), bootstrap every number and compare systems
(:mod:`.statistics`), break the studies down by metadata and longitudinal position
(:mod:`.breakdowns`), and write the HTML report, JSON and CSV (:mod:`.report`).

Example::

    from pathlib import Path
    from unirg.evaluation import EvaluationConfig, evaluate, write_html

    evaluation = evaluate(EvaluationConfig(
        ground_truth=[(None, Path("gt.json"))],
        predictions=[("sft", Path("sft.json")), ("grpo", Path("grpo.json"))],
    ))
    write_html(evaluation, Path("report.html"))
"""

from unirg.evaluation.evaluate import Evaluation, EvaluationConfig, evaluate
from unirg.evaluation.inputs import InputError, TextField, load_ground_truth, load_predictions
from unirg.evaluation.report import render_html, write_csv, write_html, write_json

__all__ = [
    "Evaluation",
    "EvaluationConfig",
    "InputError",
    "TextField",
    "evaluate",
    "load_ground_truth",
    "load_predictions",
    "render_html",
    "write_csv",
    "write_html",
    "write_json",
]

"""``unirg eval``: evaluate report-generation systems against ground truth, with intervals and a report."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from unirg.evaluation.inputs import MissingPolicy, TextField, split_named

console = Console(stderr=True)

EPILOG = """\
Examples:

  unirg eval gt.json --pred model=predictions.json

  unirg eval iu=iu_test.json chexpert=chexpert_plus.json --pred sft=sft.jsonl --pred grpo=grpo.jsonl \\
      --by view --output eval-grpo

Writes OUTPUT/report.html (open it in any browser, offline), OUTPUT/results.json (every number with its interval) and OUTPUT/per_study.csv, and prints the summary. Study ids of the prediction files must be the ground truth's; missing, empty and extra predictions are counted and listed.
"""


@contextmanager
def _progress() -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:

        def start(description: str, total: int) -> Callable[[int], None]:
            task = bar.add_task(description, total=total)
            return lambda count: bar.advance(task, count)

        yield start


def _age_bins(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"--age-bins takes numbers separated by commas, e.g. 40,60,80 (got {text!r})"
        ) from None


def eval_command(
    ground_truth: Annotated[
        list[str],
        typer.Argument(
            help="Ground-truth file(s): ReXrank JSON, or JSONL/CSV with study_id and report (or "
            "section_findings/section_impression); other columns are metadata. Several files are "
            "several datasets, one column each. Name one as NAME=PATH.",
            show_default=False,
        ),
    ],
    pred: Annotated[
        list[str],
        typer.Option(
            "--pred",
            "-p",
            help="A system's predictions, NAME=PATH or PATH: ReXrank JSON with model_prediction, "
            '{"study_id": "text"} JSON, JSONL, or CSV (study_id,report). Repeat for several systems.',
            show_default=False,
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for report.html, results.json, per_study.csv.")
    ] = Path("eval-report"),
    text: Annotated[
        TextField,
        typer.Option(
            help='Text evaluated: report, findings, impression, or rexrank ("Findings: ... Impression: ...").'
        ),
    ] = TextField.REPORT,
    profile: Annotated[
        list[str] | None,
        typer.Option(
            help="Reward profile(s) whose components are metrics (name or YAML); default is always added."
        ),
    ] = None,
    rexrank: Annotated[
        bool | None,
        typer.Option(
            "--rexrank/--no-rexrank",
            help="ReXrank model metrics via radcliq-v1 (BERTScore, SembScore, RadGraph, RadCliQ). Default: when the weights are there.",
            show_default=False,
        ),
    ] = None,
    service: Annotated[
        str | None,
        typer.Option(help="Score through a running reward service at this URL instead of in-process."),
    ] = None,
    by: Annotated[
        list[str] | None,
        typer.Option(
            help="Also break down by this metadata column (sex, age, race, ethnicity, view are automatic)."
        ),
    ] = None,
    age_bins: Annotated[str, typer.Option(help="Age bin edges, comma-separated.")] = "40,60,80",
    min_group_size: Annotated[
        int, typer.Option(help="Groups smaller than this are flagged too small to judge.")
    ] = 30,
    resamples: Annotated[
        int, typer.Option(help="Bootstrap resamples of the studies for 95% intervals.")
    ] = 1000,
    permutations: Annotated[
        int, typer.Option(help="Approximate-randomisation trials per system pair.")
    ] = 10000,
    seed: Annotated[
        int, typer.Option(help="Seed of resampling and permutations (same seed, same numbers).")
    ] = 0,
    missing: Annotated[
        MissingPolicy,
        typer.Option(
            help="A study without a prediction: empty (score it as an empty report), drop it, or error."
        ),
    ] = MissingPolicy.EMPTY,
    cache: Annotated[
        Path | None,
        typer.Option(
            help="SQLite cache of scored pairs (a re-run scores only new pairs). [default: MODEL_CACHE_DIR/eval-cache.sqlite]"
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Score everything afresh and keep nothing.")
    ] = False,
    worst: Annotated[int, typer.Option(help="Worst-scored studies listed per system.")] = 10,
    title: Annotated[str, typer.Option(help="Title of the HTML report.")] = "UniRG evaluation",
) -> None:
    """Evaluate report-generation systems against ground truth the way UniRG is judged.

    Every profile component, the ReXrank summary, clinical-error counts per CheXprompt category and per-disease F1 (14 CheXpert observations), each with a 95% bootstrap interval; paired tests between systems; breakdowns by demographics, encounter, prior study and the change the reference states; an offline HTML report with charts.
    """
    from reward_service.composite import ProfileError
    from reward_service.settings import Settings
    from unirg.evaluation.evaluate import EvaluationConfig, evaluate
    from unirg.evaluation.inputs import InputError
    from unirg.evaluation.report import write_csv, write_html, write_json

    cache_path = None if no_cache else (cache or Settings().model_cache_dir / "eval-cache.sqlite")
    try:
        config = EvaluationConfig(
            ground_truth=[split_named(spec) for spec in ground_truth],
            predictions=[split_named(spec) for spec in pred],
            text=text,
            profiles=profile or ["default"],
            rexrank=rexrank,
            service=service,
            by=by or (),
            age_bins=_age_bins(age_bins),
            min_group_size=min_group_size,
            resamples=resamples,
            permutations=permutations,
            seed=seed,
            missing=missing,
            cache=cache_path,
            worst=worst,
        )
        with _progress() as progress:
            evaluation = evaluate(config, progress)
    except (InputError, ProfileError) as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(2) from None
    output.mkdir(parents=True, exist_ok=True)
    write_html(evaluation, output / "report.html", title)
    write_json(evaluation, output / "results.json")
    write_csv(evaluation, output / "per_study.csv")
    print_summary(evaluation.summary)
    for line in evaluation.summary["notes"]:
        console.print(f"[cyan]note:[/] {line}")
    for line in evaluation.warnings:
        console.print(f"[yellow]warning:[/] {line}")
    console.print(f"wrote {output / 'report.html'}, {output / 'results.json'}, {output / 'per_study.csv'}")


def _cell(interval: dict) -> str:
    if interval["value"] is None:
        return "—"
    if interval["low"] is None:
        return f"{interval['value']:.3f}"
    return f"{interval['value']:.3f} [{interval['low']:.3f}, {interval['high']:.3f}]"


def print_summary(summary: dict) -> None:
    """The summary table of each dataset on the terminal (the report has everything else)."""
    from unirg.evaluation.report import summary_metrics

    out = Console()
    for dataset in summary["datasets"]:
        table = Table(title=f"{dataset['name']}: mean [95% CI]")
        table.add_column("metric")
        for system in summary["systems"]:
            table.add_column(f"{system} (n={dataset['systems'][system]['n']})", justify="right")
        comparison = dataset["comparisons"][0] if dataset["comparisons"] else None
        if comparison:
            table.add_column(f"p {comparison['a']} vs {comparison['b']}", justify="right")
        for metric in summary_metrics(summary):
            if metric["section"].startswith("Clinical") and metric["key"] != "errors:significant":
                continue  # the categories are in the report
            row = [f"{metric['section'].removeprefix('profile ')}: {metric['label']}"]
            row += [_cell(dataset["systems"][s]["metrics"][metric["key"]]) for s in summary["systems"]]
            if comparison:
                p = comparison["metrics"][metric["key"]]["p_randomisation"]
                row.append("—" if p is None else f"{p:.3g}")
            table.add_row(*row)
        out.print(table)

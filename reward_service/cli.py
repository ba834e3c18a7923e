"""The ``unirg`` command: serve the reward service, score reports, inspect profiles.

Sub-commands of other parts of the project (``unirg models``, ``unirg train``) are mounted here with
one line each; their modules import heavy libraries only when the command runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from reward_service.composite import ProfileError, load_profile, shipped_profiles
from reward_service.models.cli import models_app
from reward_service.scorers import ScoreItem
from reward_service.settings import Settings
from reward_service.text.cli import rules_app
from trainer.cli import train as train_command

app = typer.Typer(
    help="UniRG: clinically grounded rewards for radiology report generation.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
profiles_app = typer.Typer(help="List and show reward profiles.", no_args_is_help=True)
app.add_typer(profiles_app, name="profiles")
app.add_typer(models_app, name="models")
app.add_typer(rules_app, name="rules")
app.command("train")(train_command)  # trainer/cli.py; imports TRL only when run
console = Console()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [UNIRG_HOST, default 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [UNIRG_PORT, default 8000].")] = None,
    profile: Annotated[
        str | None, typer.Option(help="Default profile: shipped name or YAML path [UNIRG_PROFILE].")
    ] = None,
    extra_profile: Annotated[
        list[str] | None, typer.Option(help="Another profile requests may select; repeatable.")
    ] = None,
    log_level: Annotated[
        str | None, typer.Option(help="debug, info, warning, error [UNIRG_LOG_LEVEL].")
    ] = None,
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Serve on Ray Serve replicas instead of one uvicorn process (needs the `ray` extra).",
        ),
    ] = False,
    ray_address: Annotated[
        str,
        typer.Option(help="With --ray: the cluster to join; `auto` finds a running one, else starts one."),
    ] = "auto",
    replicas: Annotated[int, typer.Option(help="With --ray: number of replicas.", min=1)] = 1,
    max_replicas: Annotated[
        int | None, typer.Option(help="With --ray: autoscale from 1 up to this many replicas instead.", min=1)
    ] = None,
    num_gpus: Annotated[
        float, typer.Option(help="With --ray: GPUs per replica, fractions allowed (0.25).", min=0)
    ] = 0.0,
) -> None:
    """Run the reward service (HTTP API on uvicorn, or on Ray Serve with --ray) until interrupted."""
    import uvicorn

    from reward_service.app import create_app

    overrides: dict[str, Any] = {
        "host": host,
        "port": port,
        "profile": profile,
        "extra_profiles": extra_profile or None,
        "log_level": log_level,
    }
    settings = Settings(**{key: value for key, value in overrides.items() if value is not None})
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _check_profiles(settings)
    if ray:
        from reward_service.ray_cli import serve_on_ray

        scaling = {"max_replicas": max_replicas} if max_replicas else {"num_replicas": replicas}
        serve_on_ray(settings, ray_address, num_gpus=num_gpus, **scaling)
        return
    application = create_app(settings)
    server = uvicorn.Server(
        uvicorn.Config(application, host=settings.host, port=settings.port, log_level=settings.log_level)
    )
    server.run()
    if application.state.load_error:
        console.print(f"[red]The service stopped: {application.state.load_error}")
        raise typer.Exit(1)


def _check_profiles(settings: Settings) -> None:
    """Fail before binding a port when a profile file is missing or invalid."""
    for name in [settings.profile, *settings.extra_profiles]:
        try:
            load_profile(name)
        except ProfileError as exc:
            console.print(f"[red]{exc}")
            raise typer.Exit(2) from None


def _read_items(file: Path, candidates: Path | None, field: str) -> list[ScoreItem]:
    """Items from a JSONL file, or from ReXrank JSON references plus ReXrank JSON candidates."""
    text = file.read_text(encoding="utf-8")
    if file.suffix == ".jsonl":
        items = []
        for line_number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            try:
                items.append(
                    ScoreItem(
                        id=str(row.get("id", line_number)),
                        reference=row["reference"],
                        candidate=row["candidate"],
                        prior_report=row.get("prior_report"),
                        context=row.get("context") or {},
                    )
                )
            except KeyError as exc:
                raise typer.BadParameter(f"{file}:{line_number} lacks the field {exc}") from None
        return items
    if candidates is None:
        raise typer.BadParameter(
            "a ReXrank JSON reference file needs --candidates with the generated reports"
        )
    references = json.loads(text)
    generated = json.loads(candidates.read_text(encoding="utf-8"))
    missing = sorted(set(references) - set(generated))
    if missing:
        console.print(
            f"[yellow]{len(missing)} studies have no candidate and are skipped (first: {missing[0]})"
        )
    return [
        ScoreItem(id=study, reference=references[study][field], candidate=generated[study][field])
        for study in references
        if study in generated
    ]


@app.command()
def score(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="JSONL of {id, reference, candidate} rows, or ReXrank JSON references.", exists=True
        ),
    ] = None,
    candidates: Annotated[
        Path | None, typer.Option(help="ReXrank JSON of generated reports, keyed like FILE.", exists=True)
    ] = None,
    reference: Annotated[str | None, typer.Option(help="One reference report (with --candidate).")] = None,
    candidate: Annotated[str | None, typer.Option(help="One generated report (with --reference).")] = None,
    profile: Annotated[str, typer.Option(help="Shipped profile name or YAML path.")] = "default",
    field: Annotated[
        str, typer.Option(help="ReXrank field to compare: report, section_findings, ...")
    ] = "report",
    output: Annotated[
        Path | None, typer.Option(help="Also write every item's full result as JSONL here.")
    ] = None,
) -> None:
    """Score report pairs in-process with a profile and print a table (no server needed)."""
    from reward_service.engine import RewardEngine

    if file is not None:
        items = _read_items(file, candidates, field)
    elif reference is not None and candidate is not None:
        items = [ScoreItem(id="1", reference=reference, candidate=candidate)]
    else:
        raise typer.BadParameter("give a FILE, or both --reference and --candidate")
    if not items:
        raise typer.BadParameter("nothing to score")

    async def run() -> Any:
        engine = RewardEngine(Settings(profile=profile))
        try:
            await engine.load_configured()
            return await engine.score(items)
        finally:
            await engine.close()

    try:
        batch = asyncio.run(run())
    except ProfileError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(2) from None
    keys = [component.component_key for component in batch.profile.profile.components]
    table = Table(title=f"profile {batch.profile.profile.name} ({batch.profile.hash[:19]}…)")
    table.add_column("id")
    table.add_column("reward", justify="right")
    for key in keys:
        table.add_column(key, justify="right")
    for item in batch.items[:50]:
        row = [item.item.id, _fmt(item.composite.reward)]
        row += [_fmt(item.components[key].score) for key in keys]
        table.add_row(*row)
    if len(batch.items) > 50:
        table.add_row(f"… {len(batch.items) - 50} more", *([""] * (len(keys) + 1)))
    table.add_section()
    table.add_row(
        "mean",
        _fmt(_mean(item.composite.reward for item in batch.items)),
        *[_fmt(_mean(item.components[key].score for item in batch.items)) for key in keys],
    )
    console.print(table)
    if output is not None:
        with output.open("w", encoding="utf-8") as handle:
            for item in batch.items:
                handle.write(
                    json.dumps(
                        {
                            "id": item.item.id,
                            "reward": item.composite.reward,
                            "errors": item.composite.errors,
                            "components": {
                                key: {"score": result.score, "details": result.details, "error": result.error}
                                for key, result in item.components.items()
                            },
                        },
                        default=str,
                    )
                    + "\n"
                )
        console.print(f"wrote {len(batch.items)} results to {output}")


def _mean(values: Any) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.fmean(present) if present else None


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


@profiles_app.command("list")
def profiles_list() -> None:
    """List the shipped profiles."""
    table = Table("name", "version", "components", "description")
    for name, path in sorted(shipped_profiles().items()):
        try:
            profile = load_profile(str(path))
        except ProfileError as exc:
            table.add_row(name, "?", "[red]invalid", str(exc).splitlines()[0])
            continue
        components = ", ".join(f"{c.component_key}×{c.weight:g}" for c in profile.components)
        table.add_row(name, str(profile.version), components, profile.description)
    console.print(table)


@profiles_app.command("show")
def profiles_show(name: Annotated[str, typer.Argument(help="Shipped profile name or YAML path.")]) -> None:
    """Print a profile's full definition as JSON."""
    try:
        profile = load_profile(name)
    except ProfileError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(2) from None
    console.print_json(profile.model_dump_json())


@app.command("settings")
def settings_table(
    markdown: Annotated[
        bool, typer.Option(help="Print a Markdown table (the README's configuration table).")
    ] = False,
) -> None:
    """Show every UNIRG_ setting: its environment variable, default and meaning."""
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "(unset)" if default is None else json.dumps(default, default=str)
        rows.append((f"UNIRG_{name.upper()}", shown, field.description or ""))
    if markdown:
        print("| variable | default | meaning |\n| --- | --- | --- |")
        for variable, default, meaning in rows:
            print(f"| `{variable}` | `{default}` | {meaning} |")
        return
    table = Table("variable", "default", "meaning")
    for row in rows:
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    app()

"""The reward service's commands: serve it, score reports in-process, profiles, settings, API keys.

``service_app`` also carries the service's ``models`` and ``rules`` groups. It is one part of the
``unirg`` command (``unirg/cli.py``), which adds ``train`` and ``eval``; nothing here imports the
trainer or the clients. Heavy libraries are imported only when a command runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import statistics
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from reward_service.composite import ProfileError, load_profile, shipped_profiles
from reward_service.models.cli import missing_weights, models_app
from reward_service.scorers import ScoreItem, ScorerKind, scorer_class
from reward_service.settings import Settings
from reward_service.text.cli import rules_app
from unirg.common.extras import MissingExtraError, check_extra

#: Mounted without a name in ``unirg.cli.app``: its commands and groups become ``unirg``'s own.
service_app = typer.Typer()
profiles_app = typer.Typer(help="List and show reward profiles.", no_args_is_help=True)
service_app.add_typer(profiles_app, name="profiles")
service_app.add_typer(models_app, name="models")
service_app.add_typer(rules_app, name="rules")
keys_app = typer.Typer(
    help="Make API keys for UNIRG_API_KEYS / UNIRG_API_KEY_HASHES_FILE.", no_args_is_help=True
)
service_app.add_typer(keys_app, name="keys")
console = Console()


@service_app.command()
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
    """Run the reward service (HTTP API on uvicorn, or on Ray Serve with --ray) until interrupted.

    On SIGTERM or Ctrl-C it stops accepting connections, answers /readyz 503 and gives requests in flight
    UNIRG_DRAIN_TIMEOUT_S seconds to finish. A profile that cannot load ends it with exit code 1 and the
    reason. Set UNIRG_API_KEYS (or UNIRG_API_KEY_HASHES_FILE) before binding to anything but 127.0.0.1.
    """
    from reward_service.app import create_app
    from reward_service.auth import ApiKeyFileError
    from reward_service.redaction import install_log_redaction

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
    install_log_redaction()
    _check_profiles(settings)
    if ray:
        from reward_service.ray_cli import serve_on_ray

        scaling = {"max_replicas": max_replicas} if max_replicas else {"num_replicas": replicas}
        serve_on_ray(settings, ray_address, num_gpus=num_gpus, **scaling)
        return
    try:
        application = create_app(settings)
    except ApiKeyFileError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(2) from None
    server = _draining_server(application, settings)
    server.run()
    if application.state.load_error:
        console.print(f"[red]The service stopped: {application.state.load_error}", soft_wrap=True)
        raise typer.Exit(1)


def _draining_server(application: Any, settings: Settings) -> Any:
    """A uvicorn server that drains on shutdown and lets the app load its profiles once it listens."""
    import uvicorn

    from reward_service.app import begin_drain

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            begin_drain(application)
            super().handle_exit(sig, frame)

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            application.state.serving.set()

    serving = asyncio.Event()
    server = DrainingServer(
        uvicorn.Config(
            application,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            timeout_graceful_shutdown=math.ceil(settings.drain_timeout_s),
        )
    )
    application.state.serving = serving
    application.state.stop_server = lambda: setattr(server, "should_exit", True)
    return server


def _check_profiles(settings: Settings) -> None:
    """Fail before binding a port when a profile is missing or invalid (exit 2), or when it needs an extra
    or model weights that are not installed (exit 1), naming everything that is missing at once."""
    problems = []
    for name in [settings.profile, *settings.extra_profiles]:
        try:
            profile = load_profile(name)
        except ProfileError as exc:
            console.print(f"[red]{exc}")
            raise typer.Exit(2) from None
        try:
            for component in profile.components:
                if scorer_class(component.name).kind == ScorerKind.MODEL:
                    check_extra("models", f"the {component.name} component")
        except MissingExtraError as exc:
            problems.append(f"profile {name!r}: {exc}")
            continue
        if not settings.model_download:
            missing = missing_weights(name, settings)
            if missing:
                listed = "\n".join(f"  - {line}" for line in missing)
                problems.append(
                    f"profile {name!r} needs {len(missing)} model weight(s) that are not in "
                    f"{settings.model_cache_dir}:\n{listed}\n"
                    f"Fetch them with `unirg models fetch --profile {name}` (on a machine with hub access; copy "
                    "the cache folder over for offline use), or start with UNIRG_MODEL_DOWNLOAD=true to "
                    "download them at start-up."
                )
    if problems:
        for problem in problems:
            console.print(problem, style="red", soft_wrap=True, markup=False)
        raise typer.Exit(1)


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
    for source, studies in (("FILE", references), ("--candidates", generated)):
        lacking = next((study for study, record in studies.items() if field not in record), None)
        if lacking is not None:
            fields = ", ".join(
                sorted(key for key, value in studies[lacking].items() if isinstance(value, str))
            )
            raise typer.BadParameter(
                f"study {lacking!r} in {source} has no field {field!r}; its text fields are: {fields}",
                param_hint="--field",
            )
    return [
        ScoreItem(id=study, reference=references[study][field] or "", candidate=generated[study][field] or "")
        for study in references
        if study in generated
    ]


@service_app.command()
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

    from reward_service.models.hub import MissingWeightsError

    try:
        batch = asyncio.run(run())
    except ProfileError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(2) from None
    except (MissingExtraError, MissingWeightsError) as exc:
        console.print(str(exc), style="red", soft_wrap=True, markup=False)
        raise typer.Exit(1) from None
    keys = [component.component_key for component in batch.profile.profile.components]
    table = Table(title=f"profile {batch.profile.profile.name} ({batch.profile.hash[:19]}…)")
    table.add_column("id", overflow="fold", min_width=4)
    # Numbers and names are never cut: a narrow terminal gets a wider table instead (its lines wrap).
    for key in ["reward", *keys]:
        table.add_column(key, justify="right", min_width=len(key), no_wrap=True)
    for item in batch.items[:50]:
        row = [item.item.id, _fmt(item.composite.reward)]
        row += [_fmt(_score_of(item, key)) for key in keys]
        table.add_row(*row)
    if len(batch.items) > 50:
        table.add_row(f"… {len(batch.items) - 50} more", *([""] * (len(keys) + 1)))
    table.add_section()
    table.add_row(
        "mean",
        _fmt(_mean(item.composite.reward for item in batch.items)),
        *[_fmt(_mean(_score_of(item, key) for item in batch.items)) for key in keys],
    )
    Console(width=max(console.width, _table_width(keys))).print(table)
    unscored = [item for item in batch.items if not item.components]
    if unscored:
        console.print(
            f"[yellow]{len(unscored)} item(s) not scored, e.g. {unscored[0].item.id}: "
            f"{unscored[0].composite.errors[0]}",
            soft_wrap=True,
        )
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


def _score_of(item: Any, key: str) -> float | None:
    result = item.components.get(key)
    return None if result is None else result.score


def _table_width(keys: list[str]) -> int:
    """Width that shows every column name of the score table whole (and ids of up to 12 characters)."""
    return 12 + 3 + sum(max(len(key), 6) + 3 for key in ["reward", *keys]) + 1


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


@keys_app.command("new")
def keys_new(
    name: Annotated[str, typer.Option(help="Name the key's requests are counted under in /metrics.")] = "",
) -> None:
    """Make a random API key; print it (give it to the client) and its line for the hashes file."""
    import secrets

    from reward_service.auth import key_digest

    key = secrets.token_urlsafe(32)
    console.print(f"key (send as `Authorization: Bearer KEY`, or UNIRG_REWARD_API_KEY in clients): {key}")
    console.print(f"line for UNIRG_API_KEY_HASHES_FILE: {key_digest(key)} {name}".rstrip(), soft_wrap=True)


@keys_app.command("hash")
def keys_hash(
    key: Annotated[str, typer.Argument(help="An existing API key.")],
    name: Annotated[str, typer.Option(help="Name the key's requests are counted under in /metrics.")] = "",
) -> None:
    """Print the UNIRG_API_KEY_HASHES_FILE line of an existing key (its sha256 and a name)."""
    from reward_service.auth import key_digest

    print(f"{key_digest(key)} {name}".rstrip())


@service_app.command("settings")
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
    table = Table()
    # Variable names whole (they are what a user types); the meaning wraps.
    table.add_column("variable", no_wrap=True, min_width=max(len(variable) for variable, _, _ in rows))
    table.add_column("default", overflow="fold", max_width=14)
    table.add_column("meaning", overflow="fold", min_width=20)
    for row in rows:
        table.add_row(*row)
    console.print(table)

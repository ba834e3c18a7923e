"""``unirg models fetch|check``: put every weight a profile needs in the model cache, and see what is there.

``fetch`` runs on a machine with hub access (progress bars on the terminal); copy the cache directory
(``UNIRG_MODEL_CACHE_DIR``, default ``~/.cache/unirg``) into an offline cluster or a Docker image
and ``unirg serve`` finds everything there. ``check`` needs no network.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from reward_service.composite import ProfileError, load_profile, shipped_profiles
from reward_service.models.hub import MissingWeightsError, hub_cache_dir
from reward_service.models.radgraph import MODEL_TYPES
from reward_service.models.weights import Weight
from reward_service.scorers import scorer_class
from reward_service.scorers.model_base import SharedModelScorer
from reward_service.settings import Settings
from unirg.common.extras import MissingExtraError, check_extra

models_app = typer.Typer(
    help="Fetch the model weights profiles need into the model cache, or check which are present.",
    no_args_is_help=True,
)
console = Console()


def component_weights(name: str, options: dict[str, object], settings: Settings) -> list[Weight]:
    """The weights a component loads, as its scorer declares them (none for rule and judge scorers)."""
    cls = scorer_class(name)
    if not issubclass(cls, SharedModelScorer):
        return []
    return cls.weights(cls.Options.model_validate(options), settings)


def weights_of(profile_name: str, settings: Settings) -> list[Weight]:
    """Every weight the model components of a profile load (deduplicated, in profile order)."""
    profile = load_profile(profile_name)
    found = [
        weight
        for component in profile.components
        for weight in component_weights(component.name, component.options, settings)
    ]
    return list(dict.fromkeys(found))


def _present(weight: Weight, settings: Settings) -> tuple[bool, str]:
    """Whether the weight is available offline, and where (or why not)."""
    try:
        return True, str(weight.locate(settings))
    except MissingWeightsError as exc:
        return False, exc.reason or f"not a local path, not in {hub_cache_dir(settings)}"
    except (FileNotFoundError, ValueError) as exc:
        return False, str(exc)


def missing_weights(profile_name: str, settings: Settings) -> list[str]:
    """One line per weight of the profile that is not available offline (empty when all are present)."""
    return [
        f"{weight.what}: {weight.spec} ({where})"
        for weight in weights_of(profile_name, settings)
        for present, where in [_present(weight, settings)]
        if not present
    ]


#: Seconds to wait for the hub's first answer before `fetch` says it cannot be reached.
HUB_PROBE_TIMEOUT_S = 5.0


def hub_unreachable_reason() -> str | None:
    """Why the Hugging Face hub cannot be used from here, or None when it answers.

    One short request instead of huggingface_hub's retries: offline, those take most of a minute per
    weight before failing with a message that does not say the network is the problem.
    """
    import httpx

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set, so nothing may be downloaded (unset it on a machine with hub access)"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    try:
        httpx.head(f"{endpoint}/api/models", timeout=HUB_PROBE_TIMEOUT_S)
    except httpx.TransportError as exc:
        return f"the Hugging Face hub at {endpoint} cannot be reached ({type(exc).__name__}: {exc})"
    return None


def _fetch(weight: Weight, settings: Settings) -> str:
    present, where = _present(weight, settings)
    return f"present at {where}" if present else weight.fetch(settings)


ProfileOption = Annotated[
    list[str] | None,
    typer.Option(
        "--profile",
        "-p",
        help="Profile name or YAML path; repeatable. Default: every shipped profile.",
    ),
]
CacheOption = Annotated[
    Path | None,
    typer.Option(help="Model cache directory [UNIRG_MODEL_CACHE_DIR, default ~/.cache/unirg]."),
]


RadGraphOption = Annotated[
    list[str] | None,
    typer.Option(
        "--radgraph",
        help="Also a RadGraph model no profile names (radgraph, radgraph-xl, ...); repeatable.",
    ),
]


def _collect(
    profiles: list[str] | None, cache_dir: Path | None, radgraph: list[str] | None = None
) -> tuple[Settings, list[tuple[str, Weight]]]:
    settings = Settings() if cache_dir is None else Settings(model_cache_dir=cache_dir)
    names = profiles or sorted(shipped_profiles())
    rows: list[tuple[str, Weight]] = []
    seen: set[Weight] = set()
    for model_type in radgraph or []:
        try:
            weights = component_weights("radgraph", {"model_type": model_type}, settings)
        except ValidationError:
            console.print(f"[red]--radgraph {model_type!r}: choose one of {', '.join(MODEL_TYPES)}")
            raise typer.Exit(2) from None
        for weight in weights:
            seen.add(weight)
            rows.append(("--radgraph", weight))
    for name in names:
        try:
            weights = weights_of(name, settings)
        except ProfileError as exc:
            console.print(f"[red]{exc}")
            raise typer.Exit(2) from None
        for weight in weights:
            if weight not in seen:
                seen.add(weight)
                rows.append((name, weight))
    return settings, rows


def _require_models_extra(command: str) -> None:
    try:
        check_extra("models", command)
    except MissingExtraError as exc:
        console.print(str(exc), style="red", soft_wrap=True, markup=False)
        raise typer.Exit(1) from None


@models_app.command()
def fetch(
    profile: ProfileOption = None, cache_dir: CacheOption = None, radgraph: RadGraphOption = None
) -> None:
    """Download every weight the profiles need (hub ids in DESIGN.md) into the model cache.

    Needs hub access. Example: `unirg models fetch -p unirg-stage1 --radgraph radgraph-xl --cache-dir
    /models`, then run the service with UNIRG_MODEL_CACHE_DIR=/models.
    """
    _require_models_extra("`unirg models fetch`")
    settings, rows = _collect(profile, cache_dir, radgraph)
    missing = [(name, weight) for name, weight in rows if not _present(weight, settings)[0]]
    if missing and (reason := hub_unreachable_reason()):
        listed = ", ".join(weight.spec for _, weight in missing)
        console.print(
            f"[red]cannot fetch {len(missing)} missing weight(s) ({listed}): {reason}.[/red]\n"
            "Run `unirg models fetch` where the hub (or an HF_ENDPOINT mirror) is reachable and copy "
            f"{settings.model_cache_dir} here, or point the profile's options at local paths.",
            soft_wrap=True,
        )
        raise typer.Exit(1)
    failures = 0
    for name, weight in rows:
        console.print(f"[bold]{weight.what}[/] {weight.spec} ({name})")
        try:
            console.print(f"  {_fetch(weight, settings)}")
        except Exception as exc:  # report every weight, then fail once at the end
            failures += 1
            console.print(f"  [red]failed: {type(exc).__name__}: {exc}")
    if failures:
        console.print(f"[red]{failures} weight(s) could not be fetched; the reasons are above")
        raise typer.Exit(1)
    console.print(f"[green]all weights present in {settings.model_cache_dir}")


@models_app.command()
def check(
    profile: ProfileOption = None, cache_dir: CacheOption = None, radgraph: RadGraphOption = None
) -> None:
    """Report which weights the profiles need and whether each is present locally (no network)."""
    _require_models_extra("`unirg models check`")
    settings, rows = _collect(profile, cache_dir, radgraph)
    table = Table(title=f"Model weights (cache: {settings.model_cache_dir})")
    for column in ("profile", "weight", "source", "status", "location"):
        table.add_column(column)
    missing = 0
    for name, weight in rows:
        present, where = _present(weight, settings)
        missing += not present
        status = "[green]present" if present else "[red]missing"
        table.add_row(name, weight.what, weight.spec, status, where)
    console.print(table)
    if not rows:
        console.print("these profiles use no model weights")
    if missing:
        console.print(f"[red]{missing} missing: run `unirg models fetch` with the same --profile/--cache-dir")
        raise typer.Exit(1)

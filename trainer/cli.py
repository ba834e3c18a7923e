"""``unirg train``: run one stage of the UniRG recipe from a YAML config.

Only typer and rich are imported here; TRL, torch and transformers load when the command runs, so
``unirg serve`` and ``unirg --help`` stay light.
"""

from __future__ import annotations

import logging
from dataclasses import MISSING, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from transformers import TrainingArguments

    from trainer.config import UniRGArguments

console = Console()

__all__ = ["train"]


#: The configs shipped with the trainer, named as a command run from the checkout reaches them.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def _shipped_configs() -> list[str]:
    root = Path.cwd()
    found = sorted(CONFIG_DIR.glob("*.yaml"))
    return [str(path.relative_to(root)) if path.is_relative_to(root) else str(path) for path in found]


def _example_config() -> str:
    return next((path for path in _shipped_configs() if path.endswith("tiny-grpo-stage1.yaml")), "FILE.yaml")


def _require_train_extra() -> None:
    from unirg.common.extras import MissingExtraError, check_extra

    try:
        check_extra("train", "`unirg train`")
    except MissingExtraError as exc:
        console.print(str(exc), style="red", soft_wrap=True, markup=False)
        raise typer.Exit(1) from None


def _parse_overrides(pairs: list[str]) -> dict[str, Any]:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(
                f"{pair!r}: write KEY=VALUE, e.g. --set max_steps=10", param_hint="--set"
            )
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def _show_options() -> None:
    from trainer.config import UniRGArguments

    table = Table(title="UniRG options (all other keys go to trl.SFTConfig / trl.GRPOConfig)")
    for column in ("option", "default", "meaning"):
        table.add_column(column, overflow="fold")
    for f in fields(UniRGArguments):
        default = f.default_factory() if f.default is MISSING and callable(f.default_factory) else f.default
        table.add_row(f.name, repr(default), f.metadata.get("help", ""))
    console.print(table)


def _dry_run(ours: UniRGArguments, trl_args: TrainingArguments) -> None:
    from clients import RewardClient
    from trainer.data import build_dataset, load_studies

    studies = load_studies(
        ours.train_file,
        data_format=ours.data_format,
        image_root=ours.image_root,
        split=ours.split,
        max_samples=ours.max_samples,
    )
    dataset = build_dataset(studies, ours)
    console.print(f"{len(dataset)} training studies from {ours.train_file}; first prompt:")
    console.print(dataset[0]["prompt"])
    console.print(f"reference: {dataset[0]['reference']}")
    if ours.stage == "grpo":
        with RewardClient(ours.service_url, profile=ours.profile) as client:
            client.wait_until_ready(timeout=ours.service_wait_s)
            info = client.profile_info(ours.profile)
        console.print(
            f"reward service {ours.service_url} ready; profile {info.name} hash {info.profile_hash}"
        )
    console.print(f"[green]configuration OK[/green]: stage {ours.stage}, output_dir {trl_args.output_dir}")


def train(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="YAML file: UniRG options plus any trl SFTConfig/GRPOConfig field."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override one option, KEY=VALUE (YAML value), e.g. --set max_steps=10."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(help="Check config, data, images and the reward service, print the first prompt, stop."),
    ] = False,
    show_options: Annotated[
        bool, typer.Option(help="List UniRG's own options with their defaults and meaning, then exit.")
    ] = False,
) -> None:
    """Train a report generator with TRL: SFT, or GRPO against the UniRG reward service.

    GRPO first waits for the service, then records profile, hash and URL in OUTPUT_DIR/unirg_reward.json.

    Recipe (docs/training.md), after `unirg serve --profile unirg-stage1 --extra-profile unirg-stage2`:
    1. unirg train -c trainer/configs/unirg-sft.yaml
    2. unirg train -c trainer/configs/unirg-grpo-stage1.yaml   (beta 0: no KL)
    3. unirg train -c trainer/configs/unirg-grpo-stage2.yaml   (beta 0.03; starts from, and stays close to, stage 1)

    Try it on a CPU first: python examples/toy_grpo.py
    """
    from rich.logging import RichHandler

    _require_train_extra()
    if show_options:
        _show_options()
        return
    if config is None:
        raise typer.BadParameter(
            f"give a config file, e.g. --config {_example_config()} (all shipped configs: "
            f"{', '.join(_shipped_configs())})",
            param_hint="-c",
        )
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(console=console)])
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per reward request drowns the metrics

    from clients import RewardClientError
    from trainer.config import ConfigError, load_config
    from trainer.data import DataError

    try:
        ours, trl_args = load_config(config, _parse_overrides(set_ or []))
        if dry_run:
            _dry_run(ours, trl_args)
            return
        from trainer.run import run_training

        next_model = run_training(ours, trl_args)
    except (ConfigError, DataError, RewardClientError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    console.print(f"[green]done[/green]: the next stage starts from model: {next_model}")

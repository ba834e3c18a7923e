"""A CPU toy run of UniRG's recipe: watch a tiny report generator's reward rise in a few minutes.

    python examples/toy_grpo.py                 # text model, starts its own reward service
    python examples/toy_grpo.py --kind vlm      # a tiny Qwen2-VL that also sees the (generated) images
    python examples/toy_grpo.py --service-url http://127.0.0.1:8000   # use a running `unirg serve`

What it does, all under --workdir (default ./toy_run):

1. writes toy normal chest studies (generated images, indications, "Findings: ... Impression: ..."
   reports) and a tiny random-weight Qwen2 / Qwen2-VL with a word-level tokenizer;
2. starts the reward service (``unirg serve``, default profile) in a subprocess unless given a URL;
3. runs a short SFT warm-up (trainer/configs/tiny-sft.yaml) on noisy reports: 80% of them add a
   finding the study does not have (an effusion, an enlarged heart, an opacity), so the warm-up policy
   hallucinates findings most of the time; then GRPO stage 1 against the service
   (trainer/configs/tiny-grpo-stage1.yaml), whose clinical-error component penalises those findings,
   trains the hallucinations away; the reward is shown as it trains;
4. saves the reward curve to <workdir>/reward_curve.png (values in reward_curve.json) and prints how
   much the reward rose.

The stage-2 config (trainer/configs/tiny-grpo-stage2.yaml, KL 0.03 against the stage-1 output) runs
afterwards, from the same directory, with ``unirg serve &`` (port 8000) and
``unirg train -c trainer/configs/tiny-grpo-stage2.yaml``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

CONFIGS = REPO / "trainer" / "configs"
# Share of warm-up reports with a hallucinated finding: the SFT policy starts out repeating them.
HALLUCINATION_RATE = 0.8
console = Console()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _reward_service(url: str | None, log_path: Path):
    """Yield the URL of a ready service: ``url`` itself, or a ``unirg serve`` subprocess we start and stop."""
    from clients import RewardClient

    process = None
    if url is None:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        console.print(f"starting the reward service at {url} (log: {log_path})")
        process = subprocess.Popen(
            [sys.executable, "-m", "unirg", "serve", "--port", str(port), "--profile", "default"],
            cwd=REPO,
            env={**os.environ, "UNIRG_LOG_LEVEL": "warning"},
            stdout=log_path.open("w"),
            stderr=subprocess.STDOUT,
        )
    try:
        with RewardClient(url) as client:
            client.wait_until_ready(timeout=180)
        yield url
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)


def _progress_callback(progress: Progress, label: str, rewards: list[float]):
    from transformers import TrainerCallback

    class RichProgress(TrainerCallback):
        """Shows steps and the latest reward (or loss); collects the reward per step."""

        def on_train_begin(self, args, state, control, **kwargs):
            self.task = progress.add_task(label, total=state.max_steps, status="")

        def on_step_end(self, args, state, control, **kwargs):
            progress.update(self.task, completed=state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "reward" in logs:
                rewards.append(logs["reward"])
                progress.update(self.task, status=f"reward {logs['reward']:.3f}")
            elif "loss" in logs:
                progress.update(self.task, status=f"loss {logs['loss']:.3f}")

    return RichProgress()


def _run_stage(config: Path, overrides: dict, progress: Progress, label: str, rewards: list[float]) -> Path:
    from transformers.trainer_callback import PrinterCallback

    from trainer.config import load_config
    from trainer.run import build_trainer, save_outputs

    ours, trl_args = load_config(config, {"disable_tqdm": True, **overrides})
    trainer = build_trainer(ours, trl_args, callbacks=[_progress_callback(progress, label, rewards)])
    trainer.remove_callback(PrinterCallback)  # the progress bar replaces the per-step dict dumps
    trainer.train()
    return save_outputs(trainer, ours)


def _plot(rewards: list[float], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = list(range(1, len(rewards) + 1))
    window = max(1, len(rewards) // 8)
    smooth = [statistics.fmean(rewards[max(0, i - window + 1) : i + 1]) for i in range(len(rewards))]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    ax.plot(steps, rewards, marker="o", markersize=3, linewidth=1, alpha=0.5, label="mean reward per step")
    ax.plot(steps, smooth, linewidth=2.5, label=f"moving average ({window} steps)")
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("mean reward (default profile)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(
    workdir: Annotated[Path, typer.Option(help="Where the toy data, models and the plot go.")] = Path(
        "toy_run"
    ),
    service_url: Annotated[
        str | None, typer.Option(help="A running reward service; default: start one (default profile).")
    ] = None,
    kind: Annotated[
        str, typer.Option(help="text: tiny Qwen2; vlm: tiny Qwen2-VL that sees the images.")
    ] = "text",
    grpo_steps: Annotated[
        int | None,
        typer.Option(
            help="GRPO steps, 2 prompts x 8 completions each (default 30, from tiny-grpo-stage1.yaml)."
        ),
    ] = None,
    sft_steps: Annotated[
        int | None, typer.Option(help="SFT warm-up steps; 0 skips it (default 30, from tiny-sft.yaml).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the data, the model and training.")] = 0,
) -> None:
    """Train a tiny report generator with SFT + GRPO against the reward service, on a CPU, in minutes."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.WARNING, format="%(message)s", handlers=[RichHandler(console=console)])
    logging.getLogger("trainer").setLevel(logging.INFO)
    import transformers

    from trainer.toy_data import toy_corpus, write_toy_dataset
    from unirg_testing.qwen2 import save_tiny_qwen2, save_tiny_qwen2_vl

    transformers.logging.set_verbosity_error()
    if kind not in ("text", "vlm"):
        raise typer.BadParameter("text or vlm", param_hint="--kind")
    workdir.mkdir(parents=True, exist_ok=True)
    # Normal studies; the warm-up reports often state a finding the study does not have (noisy labels).
    train_file = write_toy_dataset(workdir, n_studies=32, seed=seed, conditions=["normal"])
    warmup_file = write_toy_dataset(
        workdir,
        n_studies=32,
        seed=seed + 1,
        conditions=["normal"],
        hallucination_rate=HALLUCINATION_RATE,
        filename="warmup.jsonl",
    )
    builder = save_tiny_qwen2 if kind == "text" else save_tiny_qwen2_vl
    model = builder(workdir / "model", toy_corpus(), hidden_size=64, seed=seed)
    console.print(f"wrote 32 toy studies to {train_file} and a tiny random {kind} model to {model}")

    common = {"model_kind": kind, "train_file": str(train_file), "seed": seed}
    rewards: list[float] = []
    started = time.monotonic()
    with (
        _reward_service(service_url, workdir / "service.log") as url,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress,
    ):
        if sft_steps != 0:
            sft = {
                **common,
                "model": str(model),
                "train_file": str(warmup_file),
                "output_dir": str(workdir / "sft"),
                **({"max_steps": sft_steps} if sft_steps else {}),
            }
            model = _run_stage(CONFIGS / "tiny-sft.yaml", sft, progress, "SFT warm-up ", [])
        grpo = {
            **common,
            "model": str(model),
            "service_url": url,
            "output_dir": str(workdir / "grpo-stage1"),
            **({"max_steps": grpo_steps} if grpo_steps else {}),
        }
        next_model = _run_stage(CONFIGS / "tiny-grpo-stage1.yaml", grpo, progress, "GRPO stage 1", rewards)

    plot = workdir / "reward_curve.png"
    _plot(rewards, plot, f"Toy GRPO ({kind} model) against the UniRG reward service")
    n = max(1, len(rewards) // 5)
    first, last = sum(rewards[:n]) / n, sum(rewards[-n:]) / n
    summary = {"kind": kind, "rewards": rewards, "first_mean": first, "last_mean": last, "window": n}
    (workdir / "reward_curve.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    colour = "green" if last > first else "red"
    console.print(
        f"[{colour}]mean reward over the first {n} steps {first:.3f} -> last {n} steps {last:.3f}[/{colour}] "
        f"in {time.monotonic() - started:.0f}s"
    )
    console.print(
        f"reward curve: {plot}; policy: {next_model}; reward record: {workdir / 'grpo-stage1'}/unirg_reward.json"
    )


if __name__ == "__main__":
    typer.run(main)

"""What a newcomer meets: commands that need an extra, missing weights, an offline hub, typos, narrow terminals.

Commands run as a user runs them (``python -m unirg ...``). "Without an extra" is reproduced by
marking the extra's modules absent in ``sys.modules`` before the command starts, which makes every
``import torch`` fail exactly as on an install without it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from live_service import free_port

from unirg.common.extras import install_command

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
MODELS_EXTRA = ["torch", "transformers", "huggingface_hub", "bert_score", "radgraph"]
TRAIN_EXTRA = ["trl", "peft", "datasets", "accelerate", *MODELS_EXTRA]

_RUN_WITHOUT = (
    "import runpy, sys\n"
    "for name in sys.argv[1].split(','):\n"
    "    sys.modules[name] = None  # import fails with ModuleNotFoundError, as when not installed\n"
    "sys.argv = ['unirg', *sys.argv[2:]]\n"
    "runpy.run_module('unirg', run_name='__main__')\n"
)


def unirg(*args: str, without: list[str] | None = None, env: dict[str, str] | None = None, cwd: Path = REPO):
    prefix = ["-c", _RUN_WITHOUT, ",".join(without)] if without else ["-m", "unirg"]
    return subprocess.run(
        [sys.executable, *prefix, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", "HF_HUB_OFFLINE": "1", **(env or {})},
    )


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["serve", "--port", "0", "--profile", "unirg-stage1"], "models"),
        (["models", "check", "-p", "unirg-stage1"], "models"),
        (["models", "fetch", "-p", "unirg-stage1"], "models"),
        (["train", "-c", "trainer/configs/tiny-sft.yaml"], "train"),
    ],
    ids=["serve", "models-check", "models-fetch", "train"],
)
def test_command_without_its_extra_names_it_and_the_install_line(args: list[str], extra: str) -> None:
    result = unirg(*args, without=MODELS_EXTRA if extra == "models" else TRAIN_EXTRA)
    assert result.returncode == 1, result.stdout
    assert f"needs the `{extra}` extra" in result.stdout
    assert install_command(extra) in result.stdout
    assert "Traceback" not in result.stdout


def test_missing_weights_are_all_named_with_the_exact_commands(tmp_path: Path) -> None:
    result = unirg(
        "serve", "--port", "0", "--profile", "unirg-stage1", env={"UNIRG_MODEL_CACHE_DIR": str(tmp_path)}
    )
    assert result.returncode == 1, result.stdout
    output = result.stdout
    for weight in ("distilroberta-base", "chexbert.pth", "bert-base-uncased", "RadGraph model"):
        assert weight in output
    assert "needs 4 model weight(s)" in output
    assert "unirg models fetch --profile unirg-stage1" in output and "<profile>" not in output
    assert "UNIRG_MODEL_DOWNLOAD=true" in output
    assert "Uvicorn running" not in output  # it fails before binding a port


def test_models_fetch_fails_fast_when_the_hub_cannot_be_reached(tmp_path: Path) -> None:
    unreachable = {"UNIRG_MODEL_CACHE_DIR": str(tmp_path), "HF_HUB_OFFLINE": "0"}
    unreachable["HF_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = unirg("models", "fetch", "-p", "unirg-stage1", env=unreachable)
    assert result.returncode == 1, result.stdout
    assert "cannot fetch 4 missing weight(s) (" in result.stdout
    assert "cannot be reached" in result.stdout and "ConnectError" in result.stdout
    offline = unirg("models", "fetch", "-p", "unirg-stage1", env={"UNIRG_MODEL_CACHE_DIR": str(tmp_path)})
    assert offline.returncode == 1 and "HF_HUB_OFFLINE is set" in offline.stdout


def test_train_without_a_config_suggests_files_that_exist() -> None:
    result = unirg("train")
    assert result.returncode == 2
    suggested = [word.strip(",()") for word in result.stdout.split() if word.strip(",()").endswith(".yaml")]
    assert suggested and all((REPO / path).is_file() for path in suggested), result.stdout


def test_score_with_an_unknown_field_lists_the_fields(tmp_path: Path) -> None:
    studies = {"s1": {"report": "Findings: normal.", "section_findings": None, "context": "Indication: x"}}
    references = tmp_path / "gt.json"
    references.write_text(json.dumps(studies))
    result = unirg("score", str(references), "--candidates", str(references), "--field", "findings")
    assert result.returncode == 2, result.stdout
    assert "no field 'findings'" in result.stdout and "report" in result.stdout
    assert "Traceback" not in result.stdout


def test_score_reports_items_it_could_not_score() -> None:
    result = unirg("score", "--reference", " ", "--candidate", "No effusion.")
    assert result.returncode == 0, result.stdout
    assert "1 item(s) not scored" in result.stdout and "reference is empty" in result.stdout


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (
            ["score", "--reference", "No effusion.", "--candidate", "Effusion."],
            ["clinical_errors", "chexpert_labels", "report_guard"],
        ),
        (
            ["settings"],
            ["UNIRG_JUDGE_CACHE_NAMESPACE", "UNIRG_MAX_CONTEXT_VALUE_CHARS", "UNIRG_BATCH_TOKEN_BUDGET"],
        ),
    ],
    ids=["score", "settings"],
)
def test_tables_show_whole_column_names_at_80_columns(args: list[str], names: list[str]) -> None:
    result = unirg(*args, env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stdout
    for name in names:
        assert name in result.stdout, name


def test_installs_show_progress_and_extras_have_make_targets() -> None:
    dry_run = subprocess.run(
        ["make", "-n", "-B", "install-test", "install-models", "install-train"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert dry_run.returncode == 0, dry_run.stderr
    installs = [line for line in dry_run.stdout.splitlines() if "pip install" in line]
    assert len(installs) == 4 and not [line for line in installs if "--quiet" in line or " -q" in line]
    assert any('".[models]"' in line for line in installs) and any('".[train]"' in line for line in installs)


def test_toy_example_output_is_ignored_by_git() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "toy_run/reward_curve.png"], cwd=REPO, capture_output=True
    )
    assert ignored.returncode == 0, "examples/toy_grpo.py writes toy_run/ into the checkout"


def test_readme_says_how_to_get_unirg_on_the_path_right_after_the_quick_start() -> None:
    quick_start = README.split("## Quick start", 1)[1]
    after_commands = quick_start.split("```", 2)[2]
    first_paragraph = after_commands.strip().split("\n\n", 1)[0]
    assert "source .venv/bin/activate" in first_paragraph and ".venv/bin/unirg" in first_paragraph
    python_intro = README.split("```python", 1)[0].rstrip().rsplit("\n\n", 1)[1]
    assert ".venv/bin/python" in python_intro


def test_keys_commands_make_lines_the_service_accepts(tmp_path: Path) -> None:
    from reward_service.auth import KeyRing
    from reward_service.settings import Settings

    made = unirg("keys", "new", "--name", "trainer-a")
    assert made.returncode == 0, made.stdout
    key = made.stdout.split("UNIRG_REWARD_API_KEY in clients): ", 1)[1].split()[0]
    line = unirg("keys", "hash", key, "--name", "trainer-a").stdout.strip()
    assert line in made.stdout.replace("\n", " ")
    hashes = tmp_path / "keys"
    hashes.write_text(line + "\n")
    ring = KeyRing.from_settings(Settings(api_key_hashes_file=hashes))
    assert ring.identify(key) == "trainer-a" and ring.identify(key + "x") is None


def test_score_in_process_without_the_extra_or_the_weights_says_what_to_do(tmp_path: Path) -> None:
    args = ("score", "--profile", "unirg-stage1", "--reference", "No effusion.", "--candidate", "Effusion.")
    no_extra = unirg(*args, without=MODELS_EXTRA)
    assert no_extra.returncode == 1 and install_command("models") in no_extra.stdout, no_extra.stdout
    no_weights = unirg(*args, env={"UNIRG_MODEL_CACHE_DIR": str(tmp_path)})
    assert no_weights.returncode == 1, no_weights.stdout
    assert "unirg models fetch" in no_weights.stdout and "Traceback" not in no_weights.stdout

"""`unirg models fetch|check` and loading from hub ids, against a model cache built offline.

The cache is laid out exactly as huggingface_hub lays out its own (``models--owner--name/refs/main``
and ``snapshots/<commit>/``), holding tiny random models under the real hub ids, so the real
lookup code (``snapshot_download``/``hf_hub_download`` with ``local_files_only``) finds them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from hub_cache import hub_snapshot


def unirg(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "unirg", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "250", **(env or {})},
        timeout=300,
    )


def test_check_reports_present_and_missing_weights(model_cache: Path, tmp_path: Path) -> None:
    present = unirg("models", "check", "-p", "unirg-stage1", "--cache-dir", str(model_cache))
    assert present.returncode == 0, present.stdout + present.stderr
    assert present.stdout.count("present") == 4 and "missing" not in present.stdout

    extra = unirg(
        "models", "check", "-p", "unirg-stage1", "--radgraph", "radgraph-xl", "--cache-dir", str(model_cache)
    )
    assert extra.returncode == 1
    assert extra.stdout.count("present") == 4 and "1 missing:" in extra.stdout
    assert "radgraph-xl" in extra.stdout

    empty = unirg("models", "check", "-p", "unirg-stage1", "--cache-dir", str(tmp_path / "empty"))
    assert empty.returncode == 1
    assert empty.stdout.count("missing") >= 4 and "unirg models fetch" in empty.stdout


def test_fetch_offline_says_what_failed(tmp_path: Path) -> None:
    result = unirg("models", "fetch", "-p", "radcliq-v1", "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 1
    assert "cannot fetch" in result.stdout and "distilroberta-base" in result.stdout
    assert "HF_HUB_OFFLINE is set" in result.stdout


def test_fetch_keeps_present_weights_and_local_paths(model_cache: Path, tmp_path: Path) -> None:
    local = tmp_path / "local-encoder"
    shutil.copytree(hub_snapshot(model_cache, "bert-base-uncased"), local)
    profile = tmp_path / "local.yaml"
    profile.write_text(
        f"name: local\ncomponents:\n  - {{name: bertscore, weight: 1, options: {{model: {local}, layer: 1}}}}\n"
        "  - {name: semb, weight: 1}\n",
        encoding="utf-8",
    )
    result = unirg("models", "fetch", "-p", str(profile), "--cache-dir", str(model_cache))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("present at") == 3 and str(local) in result.stdout.replace("\n", "")


def test_unknown_profile_is_a_usage_error(tmp_path: Path) -> None:
    result = unirg("models", "check", "-p", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2 and "no profile" in result.stdout
    unknown = unirg("models", "check", "--radgraph", "radgraph-xxl", "-p", "default")
    assert unknown.returncode == 2 and "radgraph-xl" in unknown.stdout and "Traceback" not in unknown.stderr


def test_service_serves_unirg_stage1_from_the_cache(model_cache: Path, start_service) -> None:
    base_url = start_service(
        profile="unirg-stage1", env={"UNIRG_MODEL_CACHE_DIR": str(model_cache), "UNIRG_DEVICE": "cpu"}
    )
    items = [
        {"id": "same", "reference": "No acute process. Heart size normal.",
         "candidate": "No acute process. Heart size normal."},
        {"id": "other", "reference": "Small left pleural effusion.", "candidate": "Cardiomegaly with edema."},
    ]  # fmt: skip
    body = httpx.post(f"{base_url}/v1/score", json={"items": items}, timeout=120).json()
    assert body["profile"] == "unirg-stage1"
    same, other = body["items"]
    assert set(same["components"]) == {"bertscore", "semb", "radgraph"}
    assert same["reward"] is not None and other["reward"] is not None
    # Identical reports: BERTScore (rescaled) and SembScore are 1 whatever the weights.
    assert same["components"]["bertscore"]["score"] == pytest.approx(1.0, abs=1e-5)
    assert same["components"]["semb"]["score"] == pytest.approx(1.0, abs=1e-5)


def test_missing_weights_stop_start_up_with_the_fetch_command(tmp_path: Path) -> None:
    from live_service import launch_service

    service = launch_service(
        tmp_path,
        "unirg-stage1",
        env={"UNIRG_MODEL_CACHE_DIR": str(tmp_path / "empty")},
        wait_ready=False,
    )
    try:
        service.process.wait(timeout=120)
    finally:
        service.stop()
    assert service.process.returncode != 0
    log = service.log()
    assert "unirg models fetch" in log and "distilroberta-base" in log

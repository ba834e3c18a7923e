"""The README's examples work as written, and its configuration table is complete."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx

from reward_service.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_configuration_table_lists_every_setting() -> None:
    missing = [
        f"UNIRG_{name.upper()}" for name in Settings.model_fields if f"`UNIRG_{name.upper()}`" not in README
    ]
    assert not missing, f"README lacks {missing}: regenerate the table with `unirg settings --markdown`"


def test_curl_example_scores_on_the_default_profile(default_service: str) -> None:
    curl = next(block for block in code_blocks("bash") if "curl" in block)
    body = json.loads(re.search(r"-d '(.*)'", curl, flags=re.DOTALL).group(1))
    response = httpx.post(f"{default_service}/v1/score", json=body, timeout=30)
    assert response.status_code == 200
    faithful, negated = response.json()["items"]
    assert faithful["reward"] > 0.95
    # The second candidate negates the reference's effusion: a clinical error, far below the first.
    assert negated["reward"] < faithful["reward"] - 0.3
    assert negated["components"]["clinical_errors"]["details"]["counts"]["missed_finding"] >= 1


def test_python_example_runs_against_the_service(default_service: str) -> None:
    snippet = next(block for block in code_blocks("python") if "RewardClient" in block)
    snippet = snippet.replace("http://127.0.0.1:8000", default_service)
    result = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rewards_line, scores_line, hash_line = result.stdout.strip().splitlines()
    assert 0 <= float(rewards_line.strip("[]")) < 0.9
    assert "clinical_errors" in scores_line
    assert hash_line.startswith("sha256:")

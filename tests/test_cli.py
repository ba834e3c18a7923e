"""The ``unirg`` command, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reward_service.scorers.rouge import rouge_l

REPO = Path(__file__).resolve().parents[1]


def unirg(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "unirg", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
    )


def rouge_profile(tmp_path: Path) -> str:
    path = tmp_path / "rouge.yaml"
    path.write_text("name: rouge\ncomponents:\n  - {name: rouge_l, weight: 1}\n")
    return str(path)


def test_score_one_pair(tmp_path: Path) -> None:
    result = unirg(
        "score",
        "--profile",
        rouge_profile(tmp_path),
        "--reference",
        "heart normal lungs clear",
        "--candidate",
        "heart normal",
    )
    assert result.returncode == 0, result.stderr
    expected = rouge_l("heart normal lungs clear", "heart normal")[2]
    assert f"{expected:.4f}" in result.stdout


def test_score_jsonl_writes_every_result(tmp_path: Path) -> None:
    rows = [
        {"id": f"s{i}", "reference": "No effusion. Heart normal.", "candidate": text}
        for i, text in enumerate(["No effusion. Heart normal.", "Large effusion.", ""])
    ]
    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    out = tmp_path / "out.jsonl"
    result = unirg("score", str(data), "--output", str(out))
    assert result.returncode == 0, result.stderr
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["id"] for row in written] == ["s0", "s1", "s2"]
    assert written[0]["reward"] > written[1]["reward"]
    assert "mean" in result.stdout


def test_score_jsonl_missing_field_names_the_line(tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"reference": "a", "candidate": "b"}\n{"reference": "a"}\n')
    result = unirg("score", str(data))
    assert result.returncode != 0
    assert "bad.jsonl:2 lacks the field 'candidate'" in result.stderr


def test_score_rexrank_json_files(tmp_path: Path, shared_reports: dict[str, dict]) -> None:
    studies = dict(list(shared_reports.items())[:6])
    references = tmp_path / "gt.json"
    references.write_text(json.dumps(studies))
    studies_ids = list(studies)
    predictions = {study: studies[studies_ids[(i + 1) % 6]] for i, study in enumerate(studies_ids[:5])}
    candidates = tmp_path / "pred.json"
    candidates.write_text(json.dumps(predictions))
    out = tmp_path / "out.jsonl"
    result = unirg(
        "score",
        str(references),
        "--candidates",
        str(candidates),
        "--profile",
        rouge_profile(tmp_path),
        "--output",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "1 studies have no candidate" in result.stdout
    written = {row["id"]: row for row in map(json.loads, out.read_text().splitlines())}
    for study, prediction in predictions.items():
        expected = rouge_l(studies[study]["report"], prediction["report"])[2]
        assert written[study]["reward"] == pytest.approx(expected)


def test_rexrank_json_without_candidates_says_what_to_add(tmp_path: Path) -> None:
    references = tmp_path / "gt.json"
    references.write_text("{}")
    result = unirg("score", str(references))
    assert result.returncode != 0
    assert "--candidates" in result.stderr


def test_profiles_list_and_show() -> None:
    listed = unirg("profiles", "list")
    assert listed.returncode == 0 and "default" in listed.stdout
    shown = unirg("profiles", "show", "default")
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["name"] == "default"
    missing = unirg("profiles", "show", "nope")
    assert missing.returncode == 2 and "no profile 'nope'" in missing.stdout


def test_every_command_has_help() -> None:
    for command in ([], ["serve"], ["score"], ["profiles"], ["settings"], ["keys"], ["keys", "new"]):
        result = unirg(*command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert "Usage" in result.stdout

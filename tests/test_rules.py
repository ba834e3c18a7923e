"""The rule files: they validate, every example sentence they carry is analysed as stated, and they are hashed."""

from __future__ import annotations

import pytest

from reward_service.text.rule_examples import RuleExample, check_example, rule_examples
from reward_service.text.rules import RULES, load_rules

EXAMPLES = list(rule_examples())


def test_context_rules_carry_at_least_100_example_sentences() -> None:
    assert sum(case.source.startswith("context:") for case in EXAMPLES) >= 100
    assert all(rule.examples for rule in RULES.context_rules), "every context rule needs an example"
    assert all(spec.examples for spec in RULES.concept_specs), "every concept needs an example"


@pytest.mark.parametrize("case", EXAMPLES, ids=lambda case: f"{case.source[:30]} {case.example.text[:50]}")
def test_rule_example(case: RuleExample) -> None:
    assert check_example(case) is None, (case.example.text, check_example(case))


def test_a_wrong_example_is_reported() -> None:
    from reward_service.text.rules import Example

    wrong = RuleExample(
        "test",
        Example(
            text="Small left pleural effusion.", finding="pleural_effusion", status="negative", side=["right"]
        ),
    )
    assert check_example(wrong) == "status positive (expected negative); side ['left'] (expected ['right'])"
    assert (
        check_example(RuleExample("test", Example(text="No effusion."), concept="pneumothorax"))
        == "pneumothorax not found"
    )


def test_every_finding_has_a_concept() -> None:
    named = {concept.finding for concept in RULES.concepts}
    assert set(RULES.findings) <= named


def test_rules_hash_follows_the_files(monkeypatch: pytest.MonkeyPatch) -> None:
    from reward_service.text import rules

    assert load_rules().hash == RULES.hash
    original = rules._read

    def edited(name: str):  # a clinician adds one phrase
        raw, data = original(name)
        if name == "findings.yaml":
            data["concepts"][1]["patterns"].append("ptx")
            raw += b"\n# edited"
        return raw, data

    monkeypatch.setattr(rules, "_read", edited)
    assert load_rules().hash != RULES.hash


def test_a_rule_file_with_an_unknown_finding_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from reward_service.text import rules

    original = rules._read

    def broken(name: str):
        raw, data = original(name)
        if name == "findings.yaml":
            data["concepts"][1]["finding"] = "pneumothroax"
        return raw, data

    monkeypatch.setattr(rules, "_read", broken)
    with pytest.raises(ValueError, match="unknown findings"):
        load_rules()


async def test_profile_hash_names_the_rule_files() -> None:
    from reward_service.composite import profile_hash
    from reward_service.engine import RewardEngine
    from reward_service.settings import Settings

    engine = RewardEngine(Settings())
    try:
        loaded = await engine.load("default", default=True)
        fingerprints = {key: scorer.fingerprint() for key, scorer in loaded.scorers.items()}
        assert fingerprints["clinical_errors"] == {"report_rules": RULES.hash}
        assert fingerprints["chexpert_labels"] == {"report_rules": RULES.hash}
        edited = {
            key: ({"report_rules": "sha256:edited"} if value else value)
            for key, value in fingerprints.items()
        }
        assert profile_hash(loaded.profile, edited) != loaded.hash
    finally:
        await engine.close()


def test_unirg_rules_check_and_explain() -> None:
    from typer.testing import CliRunner

    from unirg.cli import app

    runner = CliRunner()
    checked = runner.invoke(app, ["rules", "check"])
    assert checked.exit_code == 0, checked.output
    assert f"{len(EXAMPLES)} passed, 0 failed" in checked.output
    explained = runner.invoke(
        app,
        ["rules", "explain", "Small RLL effusion. ET tube 1 cm above the carina."],
        env={"COLUMNS": "200"},
    )
    assert explained.exit_code == 0, explained.output
    rows = [line for line in explained.output.splitlines() if "│" in line]
    assert any(
        "pleural_effusion" in row and "positive" in row and "right" in row and "lower" in row for row in rows
    )
    assert any("device_malposition" in row and "10 above carina" in row for row in rows)


def test_unirg_rules_check_fails_on_a_broken_example(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from reward_service.text import rule_examples
    from reward_service.text.rules import Example
    from unirg.cli import app

    broken = rule_examples.RuleExample(
        "context:test", Example(text="No effusion.", finding="pleural_effusion", status="positive")
    )
    monkeypatch.setattr(rule_examples, "rule_examples", lambda: iter([broken]))
    result = CliRunner().invoke(app, ["rules", "check"])
    assert result.exit_code == 1
    assert "FAIL context:test" in result.output and "0 passed, 1 failed" in result.output

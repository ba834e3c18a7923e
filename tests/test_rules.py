"""The rule files: they validate, every example sentence they carry is analysed as stated, and they are hashed."""

from __future__ import annotations

import pytest

from reward_service.text.findings import NEGATIVE, POSITIVE, UNCERTAIN, extract_findings
from reward_service.text.rules import RULES, Example, load_rules

_STATUS = {"positive": POSITIVE, "negative": NEGATIVE, "uncertain": UNCERTAIN}
_LEVELS = RULES.attributes.severity_levels


def _context_examples() -> list[Example]:
    return [example for rule in RULES.context_rules for example in rule.examples]


def _concept_examples() -> list[tuple[str, str | Example]]:
    return [(spec.key, example) for spec in RULES.concept_specs for example in spec.examples]


def _summary(text: str, finding: str) -> dict:
    """What the report says about one finding: best status, and attributes of its present mentions."""
    mentions = [m for m in extract_findings(text).mentions if m.concept.finding == finding]
    assert mentions, f"{finding} not found in {text!r}"
    status = max((m.status for m in mentions), key=lambda s: {POSITIVE: 2, UNCERTAIN: 1, NEGATIVE: 0}[s])
    present = [m for m in mentions if m.present] or mentions
    return {
        "status": status,
        "side": set().union(*(m.laterality for m in present)),
        "zone": set().union(*(m.zone for m in present)),
        "severity": set().union(*(m.severity for m in present)),
        "change": set().union(*(m.change for m in mentions)),
    }


def test_context_rules_carry_at_least_100_example_sentences() -> None:
    assert len(_context_examples()) >= 100
    assert all(rule.examples for rule in RULES.context_rules), "every context rule needs an example"


@pytest.mark.parametrize("example", _context_examples(), ids=lambda example: example.text[:60])
def test_context_rule_example(example: Example) -> None:
    _check(example)


@pytest.mark.parametrize(("key", "example"), _concept_examples(), ids=lambda value: str(value)[:60])
def test_concept_example(key: str, example: str | Example) -> None:
    if isinstance(example, str):
        keys = {m.concept.key for m in extract_findings(example).mentions}
        assert key in keys, f"{key} not found in {example!r}: {sorted(keys)}"
    else:
        _check(example)


def _check(example: Example) -> None:
    if example.absent is not None:
        present = {m.concept.finding for m in extract_findings(example.text).mentions if m.present}
        assert example.absent not in present, example.text
    if example.finding is None:
        return
    summary = _summary(example.text, example.finding)
    if example.status is not None:
        assert summary["status"] == _STATUS[example.status], (example.text, summary)
    if example.side is not None:
        assert summary["side"] == set(example.side), (example.text, summary)
    if example.zone is not None:
        assert summary["zone"] == set(example.zone), (example.text, summary)
    if example.severity is not None:
        assert summary["severity"] == {_LEVELS[level] for level in example.severity}, (example.text, summary)
    if example.change is not None:
        assert summary["change"] == set(example.change), (example.text, summary)


def test_every_concept_has_an_example_and_every_finding_a_concept() -> None:
    assert all(spec.examples for spec in RULES.concept_specs)
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

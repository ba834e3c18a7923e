"""Run the example sentences the rule files carry: the check behind ``unirg rules check`` and the tests.

Every concept in ``findings.yaml`` and every context rule in ``context.yaml`` lists sentences it
must analyse as stated (a finding found, with a status and attributes). A clinician who edits a rule
runs ``unirg rules check`` to see at once which of them no longer hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from reward_service.text.findings import NEGATIVE, POSITIVE, STATUS_RANK, UNCERTAIN, extract_findings
from reward_service.text.rules import RULES, Example, Rules

_STATUS = {"positive": POSITIVE, "negative": NEGATIVE, "uncertain": UNCERTAIN}
_STATUS_NAMES = {value: name for name, value in _STATUS.items()}


@dataclass(frozen=True, slots=True)
class RuleExample:
    """One example sentence and the rule that carries it (``concept:KEY`` or ``context:N``)."""

    source: str
    example: Example
    #: For a concept's plain sentence: the concept that must be found in it.
    concept: str | None = None


def rule_examples(rules: Rules = RULES) -> Iterator[RuleExample]:
    """Every example of the rule files, in file order."""
    for spec in rules.concept_specs:
        for example in spec.examples:
            if isinstance(example, str):
                yield RuleExample(f"concept:{spec.key}", Example(text=example), concept=spec.key)
            else:
                yield RuleExample(f"concept:{spec.key}", example)
    for index, rule in enumerate(rules.context_rules):
        for example in rule.examples:
            yield RuleExample(f"context:{index} ({rule.category}: {rule.patterns[0]})", example)


def check_example(case: RuleExample) -> str | None:
    """None when the example holds, else what the analysis got instead."""
    example = case.example
    mentions = extract_findings(example.text).mentions
    if case.concept is not None and case.concept not in {m.concept.key for m in mentions}:
        return f"{case.concept} not found"
    if example.absent is not None and any(
        m.concept.finding == example.absent and m.present for m in mentions
    ):
        return f"{example.absent} reported present"
    if example.finding is None:
        return None
    about = [m for m in mentions if m.concept.finding == example.finding]
    if not about:
        return f"{example.finding} not found"
    status = max((m.status for m in about), key=STATUS_RANK.__getitem__)
    described = [m for m in about if m.present] or about
    got = {
        "status": _STATUS_NAMES[status],
        "side": sorted(set().union(*(m.laterality for m in described))),
        "zone": sorted(set().union(*(m.zone for m in described))),
        "severity": sorted(set().union(*(m.severity for m in described))),
        "change": sorted(set().union(*(m.change for m in about))),
    }
    levels = RULES.attributes.severity_levels
    wanted = {
        "status": example.status,
        "side": None if example.side is None else sorted(example.side),
        "zone": None if example.zone is None else sorted(example.zone),
        "severity": None if example.severity is None else sorted(levels[level] for level in example.severity),
        "change": None if example.change is None else sorted(example.change),
    }
    wrong = [
        f"{key} {got[key]} (expected {value})"
        for key, value in wanted.items()
        if value is not None and got[key] != value
    ]
    return "; ".join(wrong) or None

"""Deterministic clinical-error count between a reference and a candidate report (CheXprompt taxonomy).

Both reports go through the rule-based finding extractor (:mod:`reward_service.text.findings`);
each finding of :data:`~reward_service.text.findings.FINDINGS` gets one summary per report (status
positive > uncertain > negative over its mentions; laterality and severity of its present mentions;
every change word). The summaries are compared:

=====  ==================  =================================================================  ================
cat.   kind                when                                                               weight
=====  ==================  =================================================================  ================
(a)    false_finding       candidate has it (positive or uncertain), reference does not        w (x0.5 hedged)
(b)    missed_finding      reference has it, candidate does not mention it or rules it out     w (x0.5 hedged)
(c)    wrong_location      both have it, both give a side, and the sides differ                w
(d)    wrong_severity      both have it, both grade it, and the grades do not overlap          w x0.5 per step
(e)    false_comparison    candidate states a change the reference does not state              w x0.5 (x0.25
                           (or the candidate compares with a prior and the reference never     for "stable" or
                           does: weight 1)                                                     if the reference
                                                                                               compares at all)
(f)    omitted_comparison  reference states a change the candidate omits or contradicts       w x0.5 (x0.25
                           (or the reference compares with a prior and the candidate never     for "stable")
                           does: weight 0.5)
=====  ==================  =================================================================  ================

``w`` is the finding's clinical significance (:data:`~reward_service.text.findings.FINDINGS`: 2.0
for a pneumothorax, 0.25 for a granuloma). An error is clinically significant when its weight
reaches ``min_weight``; the score is ``1 / (1 + sum of significant weights)``, so a report with no
significant error scores 1 and one missed pneumothorax scores 1/3. A pertinent negative that one
report states and the other leaves out ("no pneumothorax") costs nothing; nor does hedging a
finding the other report states firmly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from reward_service.text.findings import (
    FINDINGS,
    NEGATIVE,
    POSITIVE,
    STATUS_RANK,
    UNCERTAIN,
    extract_findings,
)

CATEGORIES: dict[str, str] = {
    "a": "false_finding",
    "b": "missed_finding",
    "c": "wrong_location",
    "d": "wrong_severity",
    "e": "false_comparison",
    "f": "omitted_comparison",
}
_NOTHING: frozenset = frozenset()
_SAME_ONLY = frozenset({"same"})
_STATUS_NAMES = {POSITIVE: "positive", UNCERTAIN: "uncertain", NEGATIVE: "negative"}
# Weight of a whole-report comparison error (no finding carries the change).
_REPORT_FALSE_COMPARISON = 1.0
_REPORT_OMITTED_COMPARISON = 0.5


@dataclass(frozen=True, slots=True)
class FindingSummary:
    """What one report says about one finding."""

    status: int
    laterality: frozenset[str]
    severity: frozenset[int]
    change: frozenset[str]
    evidence: str

    @property
    def present(self) -> bool:
        return self.status != NEGATIVE


@dataclass(frozen=True, slots=True)
class ReportSummary:
    findings: Mapping[str, FindingSummary]
    comparison_sentence: str | None


@dataclass(frozen=True, slots=True)
class ClinicalError:
    """One error of the candidate against the reference."""

    category: str
    finding: str
    weight: float
    significant: bool
    reference: str | None
    candidate: str | None
    note: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "kind": CATEGORIES[self.category],
            "finding": self.finding,
            "weight": self.weight,
            "significant": self.significant,
            "reference_evidence": self.reference,
            "candidate_evidence": self.candidate,
            "note": self.note,
        }


@lru_cache(maxsize=8192)
def summarize_report(report: str) -> ReportSummary:
    """One :class:`FindingSummary` per finding the report mentions (cached by text)."""
    extracted = extract_findings(report)
    # finding -> [deciding mention, laterality, severity, change] accumulated over its mentions
    merged: dict[str, list] = {}
    for mention in extracted.mentions:
        finding = mention.concept.finding
        if finding is None:
            continue
        entry = merged.get(finding)
        if entry is None:
            entry = merged[finding] = [mention, _NOTHING, _NOTHING, _NOTHING]
        elif STATUS_RANK[mention.status] > STATUS_RANK[entry[0].status]:
            entry[0] = mention
        if mention.status != NEGATIVE:
            entry[1] = entry[1] | mention.laterality
            entry[2] = entry[2] | mention.severity
        entry[3] = entry[3] | mention.change
    findings = {
        finding: FindingSummary(deciding.status, laterality, severity, change, deciding.sentence)
        for finding, (deciding, laterality, severity, change) in merged.items()
    }
    return ReportSummary(findings, extracted.comparison_sentence)


def compare_reports(
    reference: str,
    candidate: str,
    *,
    weights: Mapping[str, float] | None = None,
    min_weight: float = 0.5,
) -> list[ClinicalError]:
    """Every error of ``candidate`` against ``reference``; ``weights`` override finding significance."""
    ref = summarize_report(reference)
    cand = summarize_report(candidate)
    errors: list[ClinicalError] = []

    def add(
        category: str,
        finding: str,
        weight: float,
        r: FindingSummary | None,
        c: FindingSummary | None,
        note: str,
    ) -> None:
        errors.append(
            ClinicalError(
                category,
                finding,
                weight,
                weight >= min_weight,
                None if r is None else r.evidence,
                None if c is None else c.evidence,
                note,
            )
        )

    for finding in ref.findings.keys() | cand.findings.keys():
        base = FINDINGS[finding].weight if weights is None else weights.get(finding, FINDINGS[finding].weight)
        r = ref.findings.get(finding)
        c = cand.findings.get(finding)
        r_present = r is not None and r.present
        c_present = c is not None and c.present
        if c_present and not r_present:
            assert c is not None
            hedge = 0.5 if c.status == UNCERTAIN else 1.0
            said = "rules it out" if r is not None else "does not mention it"
            add(
                "a",
                finding,
                base * hedge,
                r,
                c,
                f"candidate reports {_STATUS_NAMES[c.status]}; reference {said}",
            )
            continue
        if r_present and not c_present:
            assert r is not None
            hedge = 0.5 if r.status == UNCERTAIN else 1.0
            said = "rules it out" if c is not None else "does not mention it"
            add(
                "b",
                finding,
                base * hedge,
                r,
                c,
                f"reference reports {_STATUS_NAMES[r.status]}; candidate {said}",
            )
            continue
        if r is None or c is None:
            continue  # a pertinent negative on one side only
        if r_present and c_present:
            if r.laterality and c.laterality and r.laterality != c.laterality:
                add(
                    "c", finding, base, r, c, f"side {_sides(c.laterality)} instead of {_sides(r.laterality)}"
                )
            if r.severity and c.severity and not r.severity & c.severity:
                steps = min(abs(a - b) for a in r.severity for b in c.severity)
                add(
                    "d",
                    finding,
                    base * min(1.0, 0.5 * steps),
                    r,
                    c,
                    f"grade {sorted(c.severity)} instead of {sorted(r.severity)} (1 mild, 2 moderate, 3 severe)",
                )
        if c.change and not r.change:
            # Half weight for a stated change; a quarter for "stable" alone, or where the reference
            # compares with the prior elsewhere.
            factor = 0.5 if c.change - _SAME_ONLY and ref.comparison_sentence is None else 0.25
            add(
                "e",
                finding,
                base * factor,
                r,
                c,
                f"candidate states change {sorted(c.change)} the reference does not",
            )
        elif r.change and not c.change & r.change:
            note = "omitted" if not c.change else f"stated as {sorted(c.change)}"
            factor = 0.5 if r.change - _SAME_ONLY else 0.25
            add("f", finding, base * factor, r, c, f"reference change {sorted(r.change)} {note}")

    # Whole-report comparison errors, unless a finding already carries a significant one.
    categories = {error.category for error in errors if error.significant}
    if cand.comparison_sentence is not None and ref.comparison_sentence is None and "e" not in categories:
        errors.append(
            ClinicalError(
                "e",
                "comparison",
                _REPORT_FALSE_COMPARISON,
                min_weight <= _REPORT_FALSE_COMPARISON,
                None,
                cand.comparison_sentence,
                "candidate refers to a prior study; the reference makes no comparison",
            )
        )
    if ref.comparison_sentence is not None and cand.comparison_sentence is None and "f" not in categories:
        errors.append(
            ClinicalError(
                "f",
                "comparison",
                _REPORT_OMITTED_COMPARISON,
                min_weight <= _REPORT_OMITTED_COMPARISON,
                ref.comparison_sentence,
                None,
                "reference compares with a prior study; the candidate makes no comparison",
            )
        )
    errors.sort(key=lambda error: (error.category, -error.weight, error.finding))
    return errors


def _sides(laterality: frozenset[str]) -> str:
    return "bilateral" if len(laterality) == 2 else next(iter(laterality))

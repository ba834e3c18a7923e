"""Deterministic clinical errors between a reference and a candidate report, graded like a radiologist would.

Both reports (and, when given, the prior report) go through the rule-based finding extractor
(:mod:`reward_service.text.findings`); each finding gets one summary per report (status positive >
uncertain > negative over its mentions; side, zone, severity, sizes and device positions of its
present mentions; every change word). The summaries are compared, in the CheXprompt categories:

=====  ==================  ==========================================================================
cat.   kind                when (cost, as a share of the finding's urgency weight ``w``)
=====  ==================  ==========================================================================
(a)    false_finding       candidate has it, reference does not (w; x0.5 when hedged; x0.5 when the
                           reference describes it only vaguely: "chest wall abnormality")
(b)    missed_finding      reference has it, candidate does not mention it or rules it out (same
                           shares; a vague description in the candidate earns half the credit)
(c)    wrong_location      both have it: sides contradict (0.5w), one side vs both (0.35w), zones
                           contradict (upper vs lower lobe, 0.5w), the candidate is less specific but
                           compatible (right lung vs right upper lobe: 0.1w, minor); a device tip
                           at another distance from its landmark (grows with the distance)
(d)    wrong_severity      both have it: severity levels apart (0.25w per level), sizes apart (free
                           up to 20% or 2 mm, then growing with the discrepancy), definite vs
                           possible (0.25w)
(e)    false_comparison    the candidate states a change the reference does not (0.5w, half for
                           "stable"), contradicts it (improved vs worsened: 0.5w, always
                           significant), or the prior report contradicts it ("new effusion" when
                           the prior had one; always significant); or it compares with a prior
                           study the reference never mentions (0.5)
(f)    omitted_comparison  the reference states a change the candidate omits (0.15w, minor), or
                           compares with a prior study and the candidate never does (0.25, minor)
=====  ==================  ==========================================================================

Every share lives in ``rules/attributes.yaml`` (``costs``), every ``w`` in ``rules/findings.yaml``
(2.0 for a pneumothorax, 0.25 for a granuloma). The attribute errors of one finding together cost at
most ``attributes_cap`` x w, so a finding with wrong attributes always beats a missed one; two wrong
attributes cost more than one. An error is clinically significant when its cost reaches
``min_weight`` (contradictions of side, zone or change are significant whenever the finding is).
A pertinent negative that one report states and the other leaves out ("no pneumothorax") costs
nothing, and interchangeable terms ("enlarged heart" / "cardiomegaly") are one finding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any, NamedTuple

from reward_service.taxonomy import TAXONOMY
from reward_service.text.findings import (
    FINDINGS,
    NEGATIVE,
    POSITIVE,
    STATUS_RANK,
    UNCERTAIN,
    Mention,
    extract_findings,
)
from reward_service.text.rules import (
    BETTER,
    LEFT,
    LOWER,
    MIDDLE,
    NEW,
    RIGHT,
    RULES,
    SAME,
    UPPER,
    WORSE,
)

#: Error kind by category letter (a-f), from the one taxonomy.
CATEGORIES: dict[str, str] = {category.letter.lower(): category.kind for category in TAXONOMY}
COSTS = RULES.attributes.costs
_STATUS_NAMES = {POSITIVE: "positive", UNCERTAIN: "uncertain", NEGATIVE: "negative"}
_SAME_ONLY = frozenset({"same"})
_IMPROVED = frozenset({"better"})
_WORSENED = frozenset({"worse", "new"})
Span = tuple[int, int]
_RELATED = tuple(RULES.related)
_RELATED_FINDINGS = frozenset().union(*_RELATED)
_ATTRIBUTE_ROLES = {
    "location": LEFT | RIGHT | UPPER | MIDDLE | LOWER,
    "severity": RULES.severity_mask,
    "change": NEW | WORSE | BETTER | SAME,
}


_NO_SPANS: Mapping[str, tuple[Span, ...]] = MappingProxyType({})  # read-only: shared by summaries


class FindingSummary(NamedTuple):
    """What one report says about one finding.

    A named tuple, not a frozen dataclass: a report summarises several findings, and a frozen
    dataclass sets each of its fields through ``object.__setattr__``, several times dearer.
    """

    status: int
    laterality: frozenset[str]
    zone: frozenset[str]
    severity: frozenset[float]
    change: frozenset[str]
    #: Largest dimension (mm) of each size given for it.
    sizes: tuple[float, ...]
    #: Distance (mm) of its tip from each landmark, positive above / proximal.
    positions: Mapping[str, float]
    evidence: str
    #: Character spans of the mentions that decide it (the present ones, else every one).
    spans: tuple[Span, ...]
    #: Spans of the words behind each attribute ("location", "severity", "size", "position",
    #: "change") of its present mentions, for highlighting.
    attribute_spans: Mapping[str, tuple[Span, ...]] = _NO_SPANS

    def spans_for(self, attribute: str) -> tuple[Span, ...]:
        """The finding's spans plus those of the words that carry ``attribute``, in text order."""
        return tuple(sorted({*self.spans, *self.attribute_spans.get(attribute, ())}))

    @property
    def present(self) -> bool:
        return self.status != NEGATIVE


class ReportSummary(NamedTuple):
    """Every finding one report mentions, summarised (a named tuple, cheap to make: see
    :class:`FindingSummary`)."""

    findings: Mapping[str, FindingSummary]
    comparison_sentence: str | None
    comparison_span: Span | None = None
    #: Findings that a vague description ("chest wall abnormality") covers -> its spans.
    vague: Mapping[str, tuple[Span, ...]] = _NO_SPANS
    #: Findings named only as a description that another finding explains ("opacities, likely
    #: atelectasis"): mentioned, so the other report naming them is no error, but not compared.
    explained: frozenset[str] = frozenset()


class ClinicalError(NamedTuple):
    """One error of the candidate against the reference (a named tuple, cheap to make: see
    :class:`FindingSummary`)."""

    category: str
    finding: str
    weight: float
    significant: bool
    reference: str | None
    candidate: str | None
    note: str
    #: What was wrong about a finding both reports have: location, position, severity, size,
    #: certainty, change, specificity; None for a whole finding or comparison.
    attribute: str | None = None
    reference_spans: tuple[Span, ...] = ()
    candidate_spans: tuple[Span, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "kind": CATEGORIES[self.category],
            "finding": self.finding,
            "attribute": self.attribute,
            "weight": self.weight,
            "significant": self.significant,
            "reference_evidence": self.reference,
            "candidate_evidence": self.candidate,
            "reference_spans": [[start, end] for start, end in self.reference_spans],
            "candidate_spans": [[start, end] for start, end in self.candidate_spans],
            "note": self.note,
        }


_EMPTY: frozenset = frozenset()


def _summarize_mentions(mentions: list[Mention]) -> FindingSummary:
    deciding = mentions[0]
    laterality = zone = severity = change = _EMPTY
    sizes: list[float] = []
    positions: dict[str, float] = {}
    spans = []
    present_spans = []
    attribute_spans: dict[str, list[Span]] = {}
    for mention in mentions:
        if STATUS_RANK[mention.status] > STATUS_RANK[deciding.status]:
            deciding = mention
        change = change | mention.change if mention.change else change
        spans.append((mention.start, mention.end))
        if mention.status == NEGATIVE:
            continue
        present_spans.append((mention.start, mention.end))
        laterality = laterality | mention.laterality if mention.laterality else laterality
        zone = zone | mention.zone if mention.zone else zone
        severity = severity | mention.severity if mention.severity else severity
        if mention.modifiers:
            for attribute, roles in _ATTRIBUTE_ROLES.items():
                found = mention.attribute_spans(roles)
                if found:
                    attribute_spans.setdefault(attribute, []).extend(found)
        for measurement in mention.measurements:
            kind = "size" if measurement.landmark is None else "position"
            attribute_spans.setdefault(kind, []).append((measurement.start, measurement.end))
            if measurement.landmark is None:
                sizes.append(measurement.size_mm)
            else:
                below = measurement.direction == "below"
                positions[measurement.landmark] = -measurement.size_mm if below else measurement.size_mm
    return FindingSummary(
        status=deciding.status,
        laterality=laterality,
        zone=zone,
        severity=severity,
        change=change,
        sizes=tuple(sizes),
        positions=positions,
        evidence=deciding.sentence,
        spans=tuple(present_spans or spans),
        attribute_spans={attribute: tuple(found) for attribute, found in attribute_spans.items()}
        if attribute_spans
        else _NO_SPANS,
    )


@lru_cache(maxsize=8192)
def summarize_report(report: str) -> ReportSummary:
    """One :class:`FindingSummary` per finding the report mentions (cached by text)."""
    extracted = extract_findings(report)
    by_finding: dict[str, list[Mention]] = {}
    vague: dict[str, list[Span]] = {}
    explained: set[str] = set()
    for mention in extracted.mentions:
        if mention.concept.vague_for and mention.present:
            for finding in mention.concept.vague_for:
                vague.setdefault(finding, []).append((mention.start, mention.end))
        if mention.concept.finding is None:
            continue
        if mention.explained:
            explained.add(mention.concept.finding)
        else:
            by_finding.setdefault(mention.concept.finding, []).append(mention)
    return ReportSummary(
        {finding: _summarize_mentions(mentions) for finding, mentions in by_finding.items()},
        extracted.comparison_sentence,
        extracted.comparison_span,
        {finding: tuple(spans) for finding, spans in vague.items()},
        frozenset(explained - by_finding.keys()),
    )


class _ErrorList:
    """Collects the errors of one comparison, deciding significance in one place."""

    def __init__(self, min_weight: float) -> None:
        self.min_weight = min_weight
        self.errors: list[ClinicalError] = []

    def add(
        self,
        category: str,
        finding: str,
        cost: float,
        reference: FindingSummary | None,
        candidate: FindingSummary | None,
        note: str,
        *,
        attribute: str | None = None,
        always_significant_for: float | None = None,
        reference_spans: tuple[Span, ...] | None = None,
        candidate_spans: tuple[Span, ...] | None = None,
        reference_evidence: str | None = None,
        candidate_evidence: str | None = None,
    ) -> None:
        """``always_significant_for``: the finding's weight, when any error of this kind is significant."""
        significant = cost >= self.min_weight or (
            always_significant_for is not None and always_significant_for >= self.min_weight
        )
        self.errors.append(
            ClinicalError(
                category,
                finding,
                cost,
                significant,
                reference.evidence if reference is not None else reference_evidence,
                candidate.evidence if candidate is not None else candidate_evidence,
                note,
                attribute,
                reference_spans if reference_spans is not None else (reference.spans if reference else ()),
                candidate_spans if candidate_spans is not None else (candidate.spans if candidate else ()),
            )
        )


def compare_reports(
    reference: str,
    candidate: str,
    *,
    prior: str | None = None,
    weights: Mapping[str, float] | None = None,
    min_weight: float = 0.5,
) -> list[ClinicalError]:
    """Every error of ``candidate`` against ``reference``; ``weights`` override finding significance.

    ``prior`` (the previous study's report) checks the candidate's change claims: "new X" when the
    prior already had X, or "stable X" when it had none, is a false comparison.
    """
    ref = summarize_report(reference)
    cand = summarize_report(candidate)
    before = summarize_report(prior) if prior else None
    found = _ErrorList(min_weight)

    def weight_of(finding: str) -> float:
        return FINDINGS[finding].weight if weights is None else weights.get(finding, FINDINGS[finding].weight)

    characterised = _related_errors(found, ref, cand, weight_of)
    for finding in ref.findings.keys() | cand.findings.keys():  # errors are sorted at the end
        weight = weight_of(finding)
        r = ref.findings.get(finding)
        c = cand.findings.get(finding)
        r_present = r is not None and r.present
        c_present = c is not None and c.present
        if finding in characterised:
            pass
        elif (c_present and not r_present and r is None and finding in ref.explained) or (
            r_present and not c_present and c is None and finding in cand.explained
        ):
            pass  # the other report names it too, as what a finding of its explains
        elif c_present and not r_present:
            assert c is not None
            _presence_error(found, "a", finding, weight, c, r, ref.vague.get(finding), reference_side=False)
        elif r_present and not c_present:
            assert r is not None
            _presence_error(found, "b", finding, weight, r, c, cand.vague.get(finding), reference_side=True)
        elif r_present and c_present:
            assert r is not None and c is not None
            _attribute_errors(found, finding, weight, r, c)
        if r is not None and c is not None:
            _change_errors(found, finding, weight, r, c, ref.comparison_sentence is not None, before)
        elif c is not None and c.change and before is not None:
            _prior_errors(found, finding, weight, c, before)
    _report_comparison_errors(found, ref, cand, before is not None)
    errors = found.errors
    errors.sort(key=lambda error: (error.category, -error.weight, error.finding))
    return errors


def _related_errors(
    found: _ErrorList, ref: ReportSummary, cand: ReportSummary, weight_of: Callable[[str], float]
) -> set[str]:
    """One error for a lesion the candidate calls a related finding (nodule vs mass); the findings it covers."""
    covered: set[str] = set()
    if _RELATED_FINDINGS.isdisjoint(ref.findings) or _RELATED_FINDINGS.isdisjoint(cand.findings):
        return covered
    for pair in _RELATED:
        if pair.isdisjoint(ref.findings) or pair.isdisjoint(cand.findings):
            continue
        for ref_finding in pair:
            (cand_finding,) = pair - {ref_finding}
            r = ref.findings.get(ref_finding)
            c = cand.findings.get(cand_finding)
            if r is None or c is None or not (r.present and c.present) or covered & pair:
                continue
            if (
                ref_finding in cand.findings
                or cand_finding in ref.findings
                or ref_finding in cand.explained
                or cand_finding in ref.explained
            ):
                continue  # a report that speaks of both findings tells them apart: no confusion
            if (r.laterality and c.laterality and not r.laterality & c.laterality) or (
                r.zone and c.zone and not r.zone & c.zone
            ):
                continue  # elsewhere: two lesions, not one described two ways
            covered |= pair
            found.add(
                "a",
                cand_finding,
                max(weight_of(ref_finding), weight_of(cand_finding)) * COSTS.related_finding,
                r,
                c,
                f"the reference's {FINDINGS[ref_finding].name} is called {FINDINGS[cand_finding].name}",
                attribute="characterization",
            )
    return covered


def _presence_error(
    found: _ErrorList,
    category: str,
    finding: str,
    weight: float,
    has: FindingSummary,
    other: FindingSummary | None,
    other_vague: tuple[Span, ...] | None,
    *,
    reference_side: bool,
) -> None:
    """A finding one report has and the other does not (a: only the candidate, b: only the reference)."""
    share = COSTS.hedged_finding if has.status == UNCERTAIN else 1.0
    owner, other_name = ("reference", "candidate") if reference_side else ("candidate", "reference")
    said = "rules it out" if other is not None else "does not mention it"
    attribute = None
    other_spans = other.spans if other is not None else ()
    if other_vague and other is None:
        share *= COSTS.vague_description if reference_side else COSTS.more_specific_than_reference
        said = "only describes it vaguely"
        attribute = "specificity"
        other_spans = other_vague
    note = f"{owner} reports {_STATUS_NAMES[has.status]}; {other_name} {said}"
    reference, candidate = (has, other) if reference_side else (other, has)
    found.add(
        category,
        finding,
        weight * share,
        reference,
        candidate,
        note,
        attribute=attribute,
        reference_spans=has.spans if reference_side else other_spans,
        candidate_spans=other_spans if reference_side else has.spans,
    )


def _attribute_errors(
    found: _ErrorList, finding: str, weight: float, r: FindingSummary, c: FindingSummary
) -> None:
    """Wrong attributes of a finding both reports have; together at most ``attributes_cap`` x w."""
    # (category, attribute, share, note, always significant)
    wrong: list[tuple[str, str, float, str, bool]] = []
    location = _location_error(r, c)
    if location is not None:
        wrong.append(("c", "location", *location))
    position = _position_error(r, c)
    if position is not None:
        wrong.append(("c", "position", *position, False))
    if r.severity and c.severity and not r.severity & c.severity:
        levels = min(abs(a - b) for a in r.severity for b in c.severity)
        wrong.append(
            (
                "d",
                "severity",
                COSTS.severity_per_level * levels,
                f"grade {_levels(c.severity)} instead of {_levels(r.severity)}",
                False,
            )
        )
    size = _size_error(r, c)
    if size is not None:
        wrong.append(("d", "size", *size, False))
    if r.status != c.status:
        wrong.append(
            (
                "d",
                "certainty",
                COSTS.certainty,
                f"stated {_STATUS_NAMES[c.status]} instead of {_STATUS_NAMES[r.status]}",
                False,
            )
        )
    total = sum(share for _, _, share, _, _ in wrong)
    scale = min(1.0, COSTS.attributes_cap / total) if total else 1.0
    for category, attribute, share, note, always in wrong:
        found.add(
            category,
            finding,
            weight * share * scale,
            r,
            c,
            note,
            attribute=attribute,
            always_significant_for=weight if always else None,
            reference_spans=r.spans_for(attribute),
            candidate_spans=c.spans_for(attribute),
        )


def _location_error(r: FindingSummary, c: FindingSummary) -> tuple[float, str, bool] | None:
    """(share, note, always significant) of a location error, walking the hierarchy side > zone."""
    share, notes, contradictory = 0.0, [], False
    if r.laterality and c.laterality and r.laterality != c.laterality:
        contradictory = not r.laterality & c.laterality
        share += COSTS.contradictory_side if contradictory else COSTS.partial_side
        notes.append(f"side {_sides(c.laterality)} instead of {_sides(r.laterality)}")
    if r.zone and c.zone and not r.zone & c.zone:
        contradictory = True
        share += COSTS.contradictory_zone
        notes.append(f"{'/'.join(sorted(c.zone))} zone instead of {'/'.join(sorted(r.zone))}")
    if notes:
        return share, "; ".join(notes), contradictory
    less_specific = (r.laterality and not c.laterality) or (r.zone and not c.zone)
    if less_specific:
        return COSTS.less_specific_location, "location less specific than the reference's", False
    return None


def _position_error(r: FindingSummary, c: FindingSummary) -> tuple[float, str] | None:
    for landmark, distance in r.positions.items():
        other = c.positions.get(landmark)
        if other is None:
            continue
        apart = abs(distance - other)
        if apart <= COSTS.distance_free_mm:
            continue
        share = min(COSTS.distance_max, COSTS.distance_per_10mm * (apart - COSTS.distance_free_mm) / 10)
        return share, f"tip {other / 10:g} cm from the {landmark} instead of {distance / 10:g} cm"
    return None


def _size_error(r: FindingSummary, c: FindingSummary) -> tuple[float, str] | None:
    if not r.sizes or not c.sizes:
        return None
    a, b = max(r.sizes), max(c.sizes)
    ratio = abs(a - b) / max(a, b)
    if ratio <= COSTS.size_free_ratio or abs(a - b) <= 2.0:
        return None
    share = min(COSTS.size_max, ratio - COSTS.size_free_ratio)
    return share, f"size {b:g} mm instead of {a:g} mm"


def _change_errors(
    found: _ErrorList,
    finding: str,
    weight: float,
    r: FindingSummary,
    c: FindingSummary,
    reference_compares: bool,
    before: ReportSummary | None,
) -> None:
    def add(category: str, share: float, note: str, *, always_significant: bool = False) -> None:
        found.add(
            category,
            finding,
            weight * share,
            r,
            c,
            note,
            attribute="change",
            reference_spans=r.spans_for("change"),
            candidate_spans=c.spans_for("change"),
            always_significant_for=weight if always_significant else None,
        )

    if c.change and r.change and not c.change & r.change:
        opposite = bool(
            (c.change <= _IMPROVED and r.change & _WORSENED)
            or (r.change <= _IMPROVED and c.change & _WORSENED)
        )
        share = COSTS.contradictory_change if opposite else COSTS.different_change
        add(
            "e",
            share,
            f"change {sorted(c.change)} instead of {sorted(r.change)}",
            always_significant=opposite,
        )
    elif c.change and not r.change:
        if before is not None and _prior_errors(found, finding, weight, c, before):
            return
        share = COSTS.unstated_change
        if not c.change - _SAME_ONLY or reference_compares:
            share *= 0.5
        if before is not None:  # the prior supports the claim: the reference just did not say it
            share *= 0.5
        add("e", share, f"candidate states change {sorted(c.change)} the reference does not")
    elif r.change and not c.change:
        add("f", COSTS.omitted_change, f"reference change {sorted(r.change)} omitted")
    elif c.change and before is not None:
        _prior_errors(found, finding, weight, c, before)


def _prior_errors(
    found: _ErrorList, finding: str, weight: float, c: FindingSummary, before: ReportSummary
) -> bool:
    """A change claim of the candidate that the prior report contradicts; True if there was one."""
    prior = before.findings.get(finding)
    prior_present = prior is not None and prior.present
    if "new" in c.change and prior_present:
        note = "candidate calls it new; the prior report already had it"
    elif c.change & {"same", "worse", "better"} and not prior_present and "new" not in c.change:
        note = f"candidate states change {sorted(c.change)}; the prior report does not have it"
    else:
        return False
    found.add(
        "e",
        finding,
        weight * COSTS.prior_contradicts_change,
        None,
        c,
        note,
        attribute="change",
        candidate_spans=c.spans_for("change"),
        always_significant_for=weight,
    )
    return True


def _report_comparison_errors(
    found: _ErrorList, ref: ReportSummary, cand: ReportSummary, has_prior: bool
) -> None:
    """Whole-report comparison errors, unless a finding already carries one of the same category."""
    categories = {error.category for error in found.errors}
    if cand.comparison_sentence is not None and ref.comparison_sentence is None and "e" not in categories:
        found.add(
            "e",
            "comparison",
            COSTS.report_false_comparison * (0.5 if has_prior else 1.0),
            None,
            None,
            "candidate refers to a prior study; the reference makes no comparison",
            attribute="comparison",
            candidate_evidence=cand.comparison_sentence,
            candidate_spans=(cand.comparison_span,) if cand.comparison_span else (),
        )
    if ref.comparison_sentence is not None and cand.comparison_sentence is None and "f" not in categories:
        found.add(
            "f",
            "comparison",
            COSTS.report_omitted_comparison,
            None,
            None,
            "reference compares with a prior study; the candidate makes no comparison",
            attribute="comparison",
            reference_evidence=ref.comparison_sentence,
            reference_spans=(ref.comparison_span,) if ref.comparison_span else (),
        )


def _sides(laterality: frozenset[str]) -> str:
    return "bilateral" if len(laterality) == 2 else next(iter(laterality))


_LEVEL_NAMES = {level: name for name, level in RULES.attributes.severity_levels.items()}


def _levels(severity: frozenset[float]) -> str:
    return "/".join(_LEVEL_NAMES.get(level, str(level)) for level in sorted(severity))

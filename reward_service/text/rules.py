"""The vocabulary and rules of the report analysis, loaded from the data files in ``reward_service/rules/``.

``findings.yaml`` (findings, their urgency, the phrases that name them), ``context.yaml`` (negation,
uncertainty, termination and attribute cues, NegEx / medspaCy style, scopes in tokens) and
``attributes.yaml`` (severity scale, units, usual device positions, error costs) are validated here
once, compiled into the tables the scanner and the comparison read, and hashed: :data:`RULES_HASH`
becomes part of the fingerprint of every scorer that reads them, so a changed rule file changes
``profile_hash``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

RULE_FILES: tuple[str, ...] = ("findings.yaml", "context.yaml", "attributes.yaml")

#: Label of findings that are not among the 13 CheXpert observations but still rule out "No Finding".
OTHER = "Other"
#: The 14 CheXpert observations in CheXpert / CheXbert order.
CHEXPERT_OBSERVATIONS: tuple[str, ...] = (
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
    "No Finding",
)
#: Labels a concept may carry: the observations a mention can make present, and OTHER.
CONCEPT_LABELS = frozenset(CHEXPERT_OBSERVATIONS[:-1]) | {OTHER}

# --- cue roles: bit flags, one scan assigns each cue its roles ---------------------------------------
NEG = 1 << 0  # forward negation over the rest of the clause: "no X", "without X"
POST_NEG = 1 << 1  # backward negation: "X is not seen", "X has resolved"
PRE_UNC = 1 << 2  # forward uncertainty that outranks negation: "cannot exclude X"
POST_PRE_UNC = 1 << 3  # backward: "X cannot be excluded"
UNC = 1 << 4  # forward uncertainty over the rest of the clause: "possible X"
POST_UNC = 1 << 5  # backward uncertainty: "X is likely", "X?"
CONJ_UNC = 1 << 6  # "X or Y", "X versus Y": uncertain for the mentions on both sides
TERM = 1 << 7  # ends a clause: "but", "however", ";"
NORMAL = 1 << 8  # descriptor qualifier: "normal"
ABNORMAL = 1 << 9  # descriptor qualifier: "enlarged"
LEFT = 1 << 10
RIGHT = 1 << 11
NEW = 1 << 12
WORSE = 1 << 13
BETTER = 1 << 14
SAME = 1 << 15
COMPARISON = 1 << 16  # refers to a prior study: "compared with", "prior"
UPPER = 1 << 17
MIDDLE = 1 << 18
LOWER = 1 << 19
_SEVERITY_FIRST_BIT = 20  # one bit per level of attributes.yaml's severity scale from here on

SIDE_BITS = {"left": LEFT, "right": RIGHT, "both": LEFT | RIGHT}
ZONE_BITS = {"upper": UPPER, "middle": MIDDLE, "lower": LOWER}
CHANGE_BITS = {"new": NEW, "worse": WORSE, "better": BETTER, "same": SAME}
_DIRECTION_BITS = {
    ("negated", "forward"): NEG,
    ("negated", "backward"): POST_NEG,
    ("negated", "bidirectional"): NEG | POST_NEG,
    ("uncertain_pre", "forward"): PRE_UNC,
    ("uncertain_pre", "backward"): POST_PRE_UNC,
    ("uncertain", "forward"): UNC,
    ("uncertain", "backward"): POST_UNC,
    ("uncertain", "bidirectional"): UNC | POST_UNC,
    ("uncertain", "conjunction"): CONJ_UNC,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Example(_Strict):
    """A sentence a rule must analyse as stated (run by tests/test_rules.py)."""

    text: str
    finding: str | None = None
    status: Literal["positive", "negative", "uncertain"] | None = None
    absent: str | None = Field(default=None, description="A finding that must not be reported present.")
    side: list[Literal["left", "right"]] | None = None
    zone: list[Literal["upper", "middle", "lower"]] | None = None
    severity: list[str] | None = None
    change: list[Literal["new", "worse", "better", "same"]] | None = None


class FindingSpec(_Strict):
    name: str
    urgency: str


class ConceptSpec(_Strict):
    key: str
    finding: str | None = None
    label: str | None = None
    descriptor: bool = False
    hedged: bool = False
    vague_for: tuple[str, ...] = ()
    explained_by: tuple[str, ...] = ()
    patterns: tuple[str, ...] = Field(min_length=1)
    examples: tuple[str | Example, ...] = ()


class FindingsFile(_Strict):
    version: int
    urgency: dict[str, float]
    findings: dict[str, FindingSpec]
    related: tuple[tuple[str, str], ...] = ()
    explanation_cues: tuple[str, ...] = ()
    concepts: tuple[ConceptSpec, ...]

    @model_validator(mode="after")
    def _consistent(self) -> FindingsFile:
        for key, finding in self.findings.items():
            if finding.urgency not in self.urgency:
                raise ValueError(
                    f"finding {key}: unknown urgency {finding.urgency!r}; known: {list(self.urgency)}"
                )
        unknown_related = sorted({name for pair in self.related for name in pair} - set(self.findings))
        if unknown_related:
            raise ValueError(f"related: unknown findings {unknown_related}")
        for concept in self.concepts:
            named = [concept.finding, *concept.vague_for, *concept.explained_by]
            unknown = [name for name in named if name is not None and name not in self.findings]
            if unknown:
                raise ValueError(f"concept {concept.key}: unknown findings {unknown}")
            if concept.label is not None and concept.label not in CONCEPT_LABELS:
                raise ValueError(f"concept {concept.key}: unknown CheXpert label {concept.label!r}")
        return self


class ContextRule(_Strict):
    category: Literal["negated", "uncertain_pre", "uncertain", "terminate", "pseudo", "modifier"]
    direction: Literal["forward", "backward", "bidirectional", "conjunction"] | None = None
    qualifier: Literal["normal", "abnormal"] | None = None
    side: Literal["left", "right", "both"] | None = None
    zone: Literal["upper", "middle", "lower"] | None = None
    severity: str | list[str] | None = None
    change: Literal["new", "worse", "better", "same"] | None = None
    comparison: bool = False
    patterns: tuple[str, ...] = Field(min_length=1)
    examples: tuple[Example, ...] = ()

    @model_validator(mode="after")
    def _direction_fits(self) -> ContextRule:
        needs_direction = self.category in ("negated", "uncertain_pre", "uncertain")
        if needs_direction and (self.category, self.direction) not in _DIRECTION_BITS:
            raise ValueError(f"a {self.category} rule needs a direction; patterns {list(self.patterns)}")
        if not needs_direction and self.direction is not None:
            raise ValueError(f"a {self.category} rule takes no direction; patterns {list(self.patterns)}")
        return self


class Scopes(_Strict):
    backward: int = Field(ge=1)
    attach_forward: int = Field(ge=1)
    attach_backward: int = Field(ge=1)
    qualifier_before: int = Field(ge=1)
    qualifier_after: int = Field(ge=1)


class ContextFile(_Strict):
    version: int
    scopes: Scopes
    rules: tuple[ContextRule, ...]


class DevicePosition(_Strict):
    landmark: str
    direction: Literal["above", "below"]
    min_mm: float
    max_mm: float


class Costs(_Strict):
    contradictory_side: float
    partial_side: float
    contradictory_zone: float
    less_specific_location: float
    severity_per_level: float
    size_free_ratio: float
    size_max: float
    distance_free_mm: float
    distance_per_10mm: float
    distance_max: float
    certainty: float
    hedged_finding: float
    vague_description: float
    more_specific_than_reference: float
    related_finding: float
    contradictory_change: float
    different_change: float
    unstated_change: float
    omitted_change: float
    prior_contradicts_change: float
    report_false_comparison: float
    report_omitted_comparison: float
    attributes_cap: float


class AttributesFile(_Strict):
    version: int
    severity_levels: dict[str, float]
    units_mm: dict[str, float]
    landmarks: tuple[str, ...]
    device_positions: dict[str, DevicePosition]
    costs: Costs


@dataclass(frozen=True, slots=True)
class Finding:
    """A clinical finding the error scorer compares; ``weight`` is the cost of one error about it."""

    name: str
    weight: float
    urgency: str


@dataclass(frozen=True, slots=True)
class Concept:
    """Phrases (one regex alternation) that name one thing; see findings.yaml for the fields."""

    key: str
    finding: str | None
    label: str | None
    pattern: str
    descriptor: bool = False
    hedged: bool = False
    vague_for: frozenset[str] = frozenset()
    explained_by: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Rules:
    """Everything the three rule files define, compiled for the scanner and the comparison."""

    findings: dict[str, Finding]
    #: Pairs of findings one lesion is often called either way (nodule / mass): one error, not two.
    related: frozenset[frozenset[str]]
    #: Regex alternation of the words that introduce what a description is ("likely", "consistent with").
    explanation_cues: str
    concepts: tuple[Concept, ...]
    #: (regex alternation, role bits) per context rule, in file order.
    cues: tuple[tuple[str, int], ...]
    scopes: Scopes
    #: Severity bit -> level.
    severity_bits: dict[int, float]
    attributes: AttributesFile
    concept_specs: tuple[ConceptSpec, ...]
    context_rules: tuple[ContextRule, ...]
    hash: str

    @property
    def severity_mask(self) -> int:
        mask = 0
        for bit in self.severity_bits:
            mask |= bit
        return mask


def _read(name: str) -> tuple[bytes, Any]:
    raw = (resources.files("reward_service") / "rules" / name).read_bytes()
    return raw, yaml.safe_load(raw)


def _alternation(patterns: tuple[str, ...]) -> str:
    return "|".join(patterns)


def _rule_bits(rule: ContextRule, severity_bit: dict[str, int]) -> int:
    bits = _DIRECTION_BITS.get((rule.category, rule.direction or ""), 0)
    if rule.category == "terminate":
        bits |= TERM
    if rule.qualifier is not None:
        bits |= NORMAL if rule.qualifier == "normal" else ABNORMAL
    if rule.side is not None:
        bits |= SIDE_BITS[rule.side]
    if rule.zone is not None:
        bits |= ZONE_BITS[rule.zone]
    if rule.change is not None:
        bits |= CHANGE_BITS[rule.change] | COMPARISON
    if rule.comparison:
        bits |= COMPARISON
    levels = [rule.severity] if isinstance(rule.severity, str) else rule.severity or []
    for level in levels:
        if level not in severity_bit:
            raise ValueError(f"unknown severity {level!r} in context.yaml; known: {list(severity_bit)}")
        bits |= severity_bit[level]
    return bits


def load_rules() -> Rules:
    """Read, validate and compile the rule files shipped in ``reward_service/rules/``."""
    digest = hashlib.sha256()
    parsed = {}
    for name in RULE_FILES:
        raw, data = _read(name)
        digest.update(name.encode() + b"\0" + raw + b"\0")
        parsed[name] = data
    findings_file = FindingsFile.model_validate(parsed["findings.yaml"])
    context_file = ContextFile.model_validate(parsed["context.yaml"])
    attributes_file = AttributesFile.model_validate(parsed["attributes.yaml"])
    severity_bit = {
        level: 1 << (_SEVERITY_FIRST_BIT + index)
        for index, level in enumerate(attributes_file.severity_levels)
    }
    findings = {
        key: Finding(spec.name, findings_file.urgency[spec.urgency], spec.urgency)
        for key, spec in findings_file.findings.items()
    }
    concepts = tuple(
        Concept(
            spec.key,
            spec.finding,
            spec.label,
            _alternation(spec.patterns),
            spec.descriptor,
            spec.hedged,
            frozenset(spec.vague_for),
            frozenset(spec.explained_by),
        )
        for spec in findings_file.concepts
    )
    cues = tuple((_alternation(rule.patterns), _rule_bits(rule, severity_bit)) for rule in context_file.rules)
    return Rules(
        findings=findings,
        related=frozenset(frozenset(pair) for pair in findings_file.related),
        explanation_cues=_alternation(findings_file.explanation_cues),
        concepts=concepts,
        cues=cues,
        scopes=context_file.scopes,
        severity_bits={bit: attributes_file.severity_levels[level] for level, bit in severity_bit.items()},
        attributes=attributes_file,
        concept_specs=findings_file.concepts,
        context_rules=context_file.rules,
        hash="sha256:" + digest.hexdigest(),
    )


#: The shipped rules, loaded once at import.
RULES = load_rules()
RULES_HASH = RULES.hash

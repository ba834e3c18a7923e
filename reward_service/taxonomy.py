"""The CheXprompt error taxonomy, defined once in ``rules/error_taxonomy.yaml``.

Six categories, (a)-(f): false finding, missed finding, wrong location, wrong severity, false
comparison, omitted comparison. The rule-based clinical scorer (:mod:`reward_service.text.clinical_errors`)
names its errors by :attr:`ErrorCategory.kind`, the judge prompts (:mod:`reward_service.judge.prompts`)
state each :attr:`ErrorCategory.description`, and the judge parsers (:mod:`reward_service.judge.parsing`)
read counts keyed by :attr:`ErrorCategory.letter` or CheXprompt's :attr:`ErrorCategory.chexprompt_key`.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import yaml

TAXONOMY_FILE = "error_taxonomy.yaml"


@dataclass(frozen=True, slots=True)
class ErrorCategory:
    """One kind of error a candidate report can make against its reference."""

    #: ``A``-``F``, as judges answer (GREEN writes the lower case, ``(a)``-``(f)``).
    letter: str
    #: Our name, as in the clinical_errors scorer's details (``false_finding``).
    kind: str
    #: CheXprompt's own key for the category (``false_positive_finding``).
    chexprompt_key: str
    #: The category as the judge prompt states it.
    description: str


def parse_taxonomy(text: str, source: str = TAXONOMY_FILE) -> tuple[ErrorCategory, ...]:
    """The categories of a taxonomy file's ``text``, checked: letters A-F in order, names unique."""
    categories = tuple(ErrorCategory(**entry) for entry in yaml.safe_load(text)["categories"])
    letters = tuple(category.letter for category in categories)
    if letters != ("A", "B", "C", "D", "E", "F"):
        raise ValueError(f"{source}: the categories must be A-F in order, found {letters}")
    for field in ("kind", "chexprompt_key"):
        names = [getattr(category, field) for category in categories]
        if len(set(names)) != len(names):
            raise ValueError(f"{source}: {field} names repeat: {names}")
    return categories


#: The six categories, (a) to (f).
TAXONOMY: tuple[ErrorCategory, ...] = parse_taxonomy(
    resources.files("reward_service").joinpath("rules", TAXONOMY_FILE).read_text(encoding="utf-8")
)
#: ``("A", ..., "F")``.
LETTERS: tuple[str, ...] = tuple(category.letter for category in TAXONOMY)

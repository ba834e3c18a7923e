"""Measurements in reports: sizes ("2.5 x 1.8 cm", "8 mm") and distances to a landmark ("3 cm above the carina").

Units are normalised to millimetres (``units_mm`` in rules/attributes.yaml); a size keeps its largest
dimension, the one radiologists compare. A distance names its landmark (rules/attributes.yaml
``landmarks``) and whether the tip lies above or below it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from reward_service.text.rules import RULES

_ATTRIBUTES = RULES.attributes
_UNITS = "|".join(sorted(map(re.escape, _ATTRIBUTES.units_mm), key=len, reverse=True))
_LANDMARKS = "|".join(sorted(map(re.escape, _ATTRIBUTES.landmarks), key=len, reverse=True))
_NUMBER = r"\d+(?:\.\d+)?"
_MEASUREMENT = re.compile(
    rf"(?<![\w.])(?P<first>{_NUMBER})(?:\s*(?:{_UNITS}))?"
    rf"(?P<others>(?:\s*(?:x|by|×)\s*{_NUMBER}(?:\s*(?:{_UNITS}))?){{0,2}})"
    rf"\s*(?P<unit>{_UNITS})(?![\w])"
    rf"(?:\s+(?P<direction>above|below|from|proximal to|distal to)\s+(?:the\s+)?(?:level of the\s+)?"
    rf"(?P<landmark>{_LANDMARKS}))?"
)
_OTHER_NUMBERS = re.compile(_NUMBER)
_ANY_UNIT = re.compile(rf"\d\s*(?:{_UNITS})")


class Measurement(NamedTuple):
    """One measurement; ``landmark`` and ``direction`` only for a distance."""

    size_mm: float
    start: int
    end: int
    landmark: str | None = None
    direction: str | None = None  # "above" / "below"; None for a size or an undirected distance

    @property
    def is_distance(self) -> bool:
        return self.landmark is not None


def find_measurements(text: str) -> list[Measurement]:
    """Every size or distance in lower-cased ``text``, left to right."""
    found: list[Measurement] = []
    if not _ANY_UNIT.search(text):  # most reports measure nothing; this scan is far cheaper
        return found
    for match in _MEASUREMENT.finditer(text):
        scale = _ATTRIBUTES.units_mm[match["unit"]]
        numbers = [float(match["first"])] + [float(n) for n in _OTHER_NUMBERS.findall(match["others"])]
        direction = match["direction"]
        if direction in ("proximal to", "from"):
            direction = "above" if direction == "proximal to" else None
        elif direction == "distal to":
            direction = "below"
        found.append(
            Measurement(max(numbers) * scale, match.start(), match.end(), match["landmark"], direction)
        )
    return found

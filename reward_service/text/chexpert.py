"""CheXpert's 14 observation labels from the rule-based mentions, and label F1 of a report pair.

Labels follow the CheXpert labeler's convention: 1 positive, 0 negative, -1 uncertain, None blank
(not mentioned). Several mentions of one observation resolve positive > uncertain > negative.
"No Finding" is 1 when no observation other than Support Devices is positive or uncertain
(including the findings CheXpert lists only to rule No Finding out: emphysema, scoliosis, hernia,
granuloma, ...), and blank otherwise; it is never 0. "Heart failure" / "CHF" also make
Cardiomegaly uncertain (when not already labelled), as in CheXpert.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

from reward_service.text.findings import NEGATIVE, OTHER, POSITIVE, STATUS_RANK, UNCERTAIN, extract_findings
from reward_service.text.rules import CHEXPERT_OBSERVATIONS

#: The five competition observations ("top 5" / micro-F1-5).
CHEXPERT_TOP5: tuple[str, ...] = ("Cardiomegaly", "Edema", "Consolidation", "Atelectasis", "Pleural Effusion")

Label = int | None
_INDEX = {name: index for index, name in enumerate(CHEXPERT_OBSERVATIONS)}


@lru_cache(maxsize=8192)
def chexpert_labels(report: str) -> tuple[Label, ...]:
    """The 14 labels of ``report`` in :data:`CHEXPERT_OBSERVATIONS` order (1, 0, -1 or None)."""
    labels: list[Label] = [None] * len(CHEXPERT_OBSERVATIONS)
    no_finding = True
    heart_failure: Label = None
    for mention in extract_findings(report).mentions:
        label = mention.concept.label
        if label is None:
            continue
        if label != "Support Devices" and mention.status != NEGATIVE:
            no_finding = False
        if label == OTHER:
            continue
        if mention.concept.key == "heart_failure" and mention.status != NEGATIVE:
            heart_failure = UNCERTAIN
        index = _INDEX[label]
        current = labels[index]
        if current is None or STATUS_RANK[mention.status] > STATUS_RANK[current]:
            labels[index] = mention.status
    cardiomegaly = _INDEX["Cardiomegaly"]
    if heart_failure is not None and labels[cardiomegaly] in (None, NEGATIVE):
        labels[cardiomegaly] = heart_failure
    labels[_INDEX["No Finding"]] = POSITIVE if no_finding else None
    return tuple(labels)


def present_observations(labels: Sequence[Label], *, uncertain_present: bool = True) -> frozenset[str]:
    """Observations counted present: positive, and uncertain too in "rrg" mode (``uncertain_present``)."""
    present = (POSITIVE, UNCERTAIN) if uncertain_present else (POSITIVE,)
    return frozenset(
        name for name, label in zip(CHEXPERT_OBSERVATIONS, labels, strict=True) if label in present
    )


def label_f1(reference: Iterable[str], candidate: Iterable[str], observations: Sequence[str]) -> float:
    """Micro-F1 of one report pair over ``observations``: ``2TP / (2TP + FP + FN)``.

    When neither report has any of the observations present the two agree completely and F1 is
    1.0 (not 0, which would punish a correct normal report, nor undefined).
    """
    ref = set(reference).intersection(observations)
    cand = set(candidate).intersection(observations)
    if not ref and not cand:
        return 1.0
    return 2 * len(ref & cand) / (len(ref) + len(cand))


def label_accuracy(reference: Iterable[str], candidate: Iterable[str], observations: Sequence[str]) -> float:
    """Share of ``observations`` on which the two reports agree (both present or both absent)."""
    ref = set(reference)
    cand = set(candidate)
    return sum((name in ref) == (name in cand) for name in observations) / len(observations)

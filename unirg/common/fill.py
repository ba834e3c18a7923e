"""Stand-ins for missing rewards where a trainer cannot take None (verl, OpenRLHF).

TRL skips None rewards; verl and OpenRLHF put every reward into a tensor (the clients' adapters, and
the service's ``/openrlhf/get_reward``). There a missing reward becomes the mean reward of the scored
items of its group (the other rollouts of the same prompt), which gives the item zero advantage under
GRPO-style group baselines: it neither helps nor hurts the policy. A 0 would punish the completion for
the service's failure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence


class NothingScoredError(ValueError):
    """No item of a batch has a value, so there is nothing to stand in for the missing ones."""


def fill_unscored(values: Sequence[float | None], groups: Sequence[Hashable] | None = None) -> list[float]:
    """``values`` with each None replaced by the mean of the scored values of its group.

    A group with no scored value falls back to the mean of the whole batch. Raises
    :class:`NothingScoredError` when nothing in the batch was scored.
    """
    scored = [value for value in values if value is not None]
    if not scored:
        raise NothingScoredError(
            f"none of the {len(values)} items of the batch could be scored; see the reward service's errors"
        )
    if len(scored) == len(values):
        return [float(value) for value in values if value is not None]
    batch_mean = sum(scored) / len(scored)
    keys = list(groups) if groups is not None else [None] * len(values)
    by_group: dict[Hashable, list[float]] = defaultdict(list)
    for key, value in zip(keys, values, strict=True):
        if value is not None:
            by_group[key].append(value)
    group_mean = {key: sum(members) / len(members) for key, members in by_group.items()}
    return [
        float(value) if value is not None else group_mean.get(key, batch_mean)
        for key, value in zip(keys, values, strict=True)
    ]

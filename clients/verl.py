"""verl reward functions backed by the reward service.

verl loads a custom reward function from a file (``custom_reward_function.path``/``.name``):

* ``compute_score_async`` for verl's Reward Loop, which runs one asyncio task per sample in each
  reward worker and awaits async reward functions: one pooled async client per process and event
  loop, and the calls of one loop turn go out as one request (the service merges requests from
  different workers too), so one sample per call costs about what a batch does;
* ``compute_score`` for verl's default (naive) reward manager, one completion per call;
* ``compute_score_batch`` for ``reward_model.reward_manager=batch``, a whole batch per call and one
  HTTP request per profile (recommended: far fewer requests, and a missing reward can be filled).

All return dicts: ``score`` (the composite reward, what verl trains on), one key per component with
its raw score (verl logs them as reward extra info), and ``unscored`` (1.0 when the service could not
score the item). Every dict has the same keys, as verl requires (it stacks each key of the first
sample over the batch), NaN for a component an unscored item has no score for.

Where the service is, in order of precedence:

1. keyword arguments ``base_url=`` and ``profile=`` (verl's ``custom_reward_function.reward_kwargs``);
2. ``extra_info["reward_service_url"]`` and ``extra_info["reward_profile"]`` per sample;
3. the environment: ``UNIRG_REWARD_URL`` (default ``http://127.0.0.1:8000``), ``UNIRG_REWARD_PROFILE``.

``extra_info`` may also carry ``prior_report``, ``indication`` and ``comparison`` (or a ``context``
dict), which are sent with the item.

A missing reward: verl needs a number. ``compute_score_batch`` uses the mean reward of the scored
items of the same prompt (zero advantage); ``compute_score`` has no group to draw from and raises,
unless ``unscored_score=`` gives an explicit stand-in. Neither ever turns a failure into a silent 0;
the client's failure-rate limit still stops training when the service is broken.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from clients._adapters import shared_async_client, shared_client
from clients._client import ProfileInfo
from clients._errors import RewardClientError
from clients._models import RewardItem, ScoreResult
from clients._settings import AdapterSettings
from unirg.common.fill import NothingScoredError, fill_unscored

_CONTEXT_KEYS = ("indication", "comparison")


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: Mapping[str, Any] | None = None,
    *,
    base_url: str | None = None,
    profile: str | None = None,
    unscored_score: float | None = None,
    **_: Any,
) -> dict[str, float]:
    """The reward of one completion, for verl's default reward manager.

    Returns ``{"score": reward, "<component>": raw score, ..., "unscored": 0.0}``. Raises
    :class:`~clients.RewardClientError` when the service could not score the item, unless
    ``unscored_score`` is given (then ``score`` is that value and ``unscored`` is 1.0).
    """
    settings = AdapterSettings()
    url, chosen = _target(extra_info, base_url, profile, settings)
    client = shared_client(url, settings.reward_timeout)
    result = client.score_items([_item(solution_str, ground_truth, extra_info)], profile=chosen)
    _check_scored(result, unscored_score)
    keys = _profile_keys(client.profile_info(result.profile or chosen)) if _unscored(result) else ()
    return _single_result(result, unscored_score, keys)


def _unscored(result: ScoreResult) -> bool:
    return result.items[0].reward is None


def _check_scored(result: ScoreResult, unscored_score: float | None) -> None:
    if _unscored(result) and unscored_score is None:
        raise RewardClientError(
            f"the reward service could not score this completion ({'; '.join(result.items[0].errors)}); use "
            "compute_score_batch with reward_model.reward_manager=batch to fill sporadic gaps, or pass "
            "unscored_score= in custom_reward_function.reward_kwargs"
        )


def _profile_keys(info: ProfileInfo) -> tuple[str, ...]:
    return tuple(component.key for component in info.components)


def _single_result(
    result: ScoreResult, unscored_score: float | None, profile_keys: Sequence[str]
) -> dict[str, float]:
    # verl stacks each key over the batch from the first sample's keys, so an unscored sample (the
    # service returns no components for it) still needs one key per component of the profile.
    item = result.items[0]
    values = _as_dicts(result, [unscored_score if item.reward is None else item.reward])[0]
    return {**values, **{key: math.nan for key in profile_keys if key not in values}}


async def compute_score_async(
    data_source: str,
    solution_str: str,
    ground_truth: str,
    extra_info: Mapping[str, Any] | None = None,
    *,
    base_url: str | None = None,
    profile: str | None = None,
    unscored_score: float | None = None,
    **_: Any,
) -> dict[str, float]:
    """The reward of one completion, awaited by verl's Reward Loop; same result as :func:`compute_score`.

    With a reward router verl also passes ``reward_router_address`` and ``reward_model_tokenizer``;
    they are not needed.
    """
    settings = AdapterSettings()
    url, chosen = _target(extra_info, base_url, profile, settings)
    client = await shared_async_client(url, settings.reward_timeout)
    result = await client.score_items([_item(solution_str, ground_truth, extra_info)], profile=chosen)
    _check_scored(result, unscored_score)
    keys = _profile_keys(await client.profile_info(result.profile or chosen)) if _unscored(result) else ()
    return _single_result(result, unscored_score, keys)


def compute_score_batch(
    data_sources: Sequence[str],
    solution_strs: Sequence[str],
    ground_truths: Sequence[str],
    extra_infos: Sequence[Mapping[str, Any] | None] | None = None,
    *,
    base_url: str | None = None,
    profile: str | None = None,
    unscored_score: float | None = None,
    **_: Any,
) -> list[dict[str, float]]:
    """The rewards of a batch, for verl's batch reward manager; one dict per completion, in order.

    A completion the service could not score gets the mean reward of the scored completions of the
    same prompt (same data source, ground truth and ``extra_info["index"]``), or ``unscored_score``
    when given, and ``unscored`` = 1.0.
    """
    settings = AdapterSettings()
    count = len(solution_strs)
    infos: list[Mapping[str, Any] | None] = list(extra_infos) if extra_infos is not None else [None] * count
    # Samples may name different services or profiles: one request per (url, profile).
    targets: dict[tuple[str, str | None], list[int]] = defaultdict(list)
    for index, info in enumerate(infos):
        targets[_target(info, base_url, profile, settings)].append(index)
    dicts: list[dict[str, float]] = [{} for _ in range(count)]
    for (url, chosen), indices in targets.items():
        client = shared_client(url, settings.reward_timeout)
        items = [_item(solution_strs[i], ground_truths[i], infos[i]) for i in indices]
        result = client.score_items(items, profile=chosen)
        if unscored_score is not None:
            rewards = [unscored_score if reward is None else reward for reward in result.rewards]
        else:
            groups = [_group(data_sources[i], ground_truths[i], infos[i]) for i in indices]
            try:
                rewards = fill_unscored(result.rewards, groups)
            except NothingScoredError as exc:  # every error of the clients is a RewardClientError
                raise RewardClientError(str(exc)) from exc
        for index, values in zip(indices, _as_dicts(result, rewards), strict=True):
            dicts[index] = values
    # verl stacks each key across the batch, so every dict needs every key.
    keys = {key for values in dicts for key in values}
    return [{key: values.get(key, math.nan) for key in sorted(keys)} for values in dicts]


def _target(
    info: Mapping[str, Any] | None, base_url: str | None, profile: str | None, settings: AdapterSettings
) -> tuple[str, str | None]:
    info = info or {}
    url = base_url or info.get("reward_service_url") or settings.reward_url
    return str(url), profile or info.get("reward_profile") or settings.reward_profile


def _item(solution: str, ground_truth: str, info: Mapping[str, Any] | None) -> RewardItem:
    info = info or {}
    context = {key: value for key, value in (info.get("context") or {}).items() if isinstance(value, str)}
    context.update({key: info[key] for key in _CONTEXT_KEYS if isinstance(info.get(key), str)})
    prior = info.get("prior_report")
    return RewardItem(
        reference=str(ground_truth),
        candidate=solution,
        prior_report=prior if isinstance(prior, str) and prior else None,
        context=context,
    )


def _group(data_source: str, ground_truth: str, info: Mapping[str, Any] | None) -> tuple[Any, ...]:
    return (data_source, ground_truth, (info or {}).get("index"))


def _as_dicts(result: ScoreResult, rewards: Sequence[float | None]) -> list[dict[str, float]]:
    columns = {key: _filled_or_nan(result.component_scores(key)) for key in result.component_keys()}
    return [
        {
            "score": math.nan if reward is None else float(reward),
            **{key: values[index] for key, values in columns.items()},
            "unscored": 1.0 if item.reward is None else 0.0,
        }
        for index, (item, reward) in enumerate(zip(result.items, rewards, strict=True))
    ]


def _filled_or_nan(scores: Sequence[float | None]) -> list[float]:
    # Logged only: a batch mean in the gaps keeps the logged mean of the component unbiased.
    if all(score is None for score in scores):
        return [math.nan] * len(scores)
    return fill_unscored(scores)

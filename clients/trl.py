"""Reward functions for TRL's ``GRPOTrainer`` (TRL 1.16) backed by the reward service.

``make_reward_functions`` returns async reward functions that share **one HTTP request per generation
batch**: the first function TRL awaits sends the batch, the others await the same answer. They are
objects (a class with ``__call__``) that pickle: TRL's ``AsyncGRPOTrainer`` scores in a spawned
CPU-only process, and there each set makes its own HTTP client on first use.

How the profile's weights meet TRL's ``reward_weights`` (the default does the right thing):

* Default, one function per weighted component. Each returns that component's *contribution* to
  the composite reward, as the service computed it: ``weight * transform(score)``, rescaled when an
  optional component failed. Their sum is exactly the service's reward, so keep TRL's default
  ``reward_weights`` (all 1; ``funcs.reward_weights`` says so too). TRL logs
  ``rewards/<component>/mean`` per component, and these means add up to TRL's ``reward``. Do *not*
  set ``reward_weights`` to the profile weights: the weights are already applied.
* ``include_composite=True``: the composite reward alone, as one function named ``composite``.
* Either way each component's raw score is logged as ``unirg/<component>/score_mean`` (via TRL's
  ``log_metric``) and the share of items without a reward as ``unirg/unscored_frac``.

With ``GRPOConfig(multi_objective_aggregation="normalize_then_sum")`` TRL normalises each function
before weighting, which removes the profile weights from contributions: there, either use
``include_composite=True`` or pass ``reward_weights=[c.weight for c in funcs.profile.components ...]``.

An item the service could not score gets None from every function; TRL 1.16 then treats the
completion as unscorable (zero advantage) instead of rewarding it 0.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from clients._client import AsyncRewardClient, ProfileInfo, RewardClient
from clients._config import DEFAULT_CLIENT_CONFIG, ClientConfig
from clients._failures import FailureTracker
from clients._models import RewardItem, ScoreResult
from unirg.common.lru import LRU

logger = logging.getLogger("clients")

COMPOSITE_NAME = "composite"
# Batches kept for functions that have not collected their share yet; more than TRL ever has in flight.
_MAX_PENDING_BATCHES = 8
# Keyword arguments TRL adds to the dataset columns when it calls a reward function.
_TRL_KWARGS = frozenset({"trainer_state", "log_metric", "log_extra", "environments"})


def completion_text(completion: str | Sequence[Mapping[str, Any]]) -> str:
    """The generated text of one TRL completion: a string, or conversational assistant messages.

    Only text parts are read, so images or other content blocks never leave the trainer.
    """
    if isinstance(completion, str):
        return completion
    parts: list[str] = []
    for message in completion:
        if message.get("role", "assistant") != "assistant":
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(
                block.get("text", "")
                for block in content
                if isinstance(block, Mapping) and block.get("type") == "text"
            )
    return "\n".join(part for part in parts if part)


@dataclass(slots=True)
class _Batch:
    task: asyncio.Future[ScoreResult]
    collected: set[str] = field(default_factory=set)


class _SharedScorer:
    """Sends each generation batch once and hands the answer to every reward function of the set."""

    def __init__(
        self,
        base_url: str,
        profile: str,
        config: ClientConfig,
        consumers: Sequence[str],
        columns: _Columns,
    ) -> None:
        self._base_url = base_url
        self._profile = profile
        self._config = config
        self._consumers = frozenset(consumers)
        self._columns = columns
        self._failures = FailureTracker(config.failure_policy)
        self._client: AsyncRewardClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._batches: LRU[tuple[int, str], _Batch] = LRU(_MAX_PENDING_BATCHES)
        self.profile_hash: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        # TRL's AsyncGRPOTrainer pickles the reward functions into a spawned scoring process: only the
        # settings travel; the client, its connections and the pending batches are made again there.
        return {
            "base_url": self._base_url,
            "profile": self._profile,
            "config": self._config,
            "consumers": sorted(self._consumers),
            "columns": self._columns,
            "profile_hash": self.profile_hash,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(
            state["base_url"], state["profile"], state["config"], state["consumers"], state["columns"]
        )
        self.profile_hash = state["profile_hash"]

    def _client_for_running_loop(self) -> AsyncRewardClient:
        # TRL runs async reward functions on one long-lived loop; a client's connections belong to one loop.
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = AsyncRewardClient(self._base_url, profile=self._profile, config=self._config)
            self._client.failures = self._failures
            self._client_loop = loop
        return self._client

    async def result(
        self, consumer: str, completions: Sequence[Any], columns: Mapping[str, Any]
    ) -> ScoreResult:
        items = self._columns.items(completions, columns)
        key = (id(asyncio.get_running_loop()), _fingerprint(items))
        batch = self._batches.get(key)
        if batch is None or consumer in batch.collected:
            # A new batch, or the same texts again in a later step: score it (once for all consumers).
            log_metric = columns.get("log_metric")
            log_extra = columns.get("log_extra")
            batch = _Batch(asyncio.ensure_future(self._score(items, log_metric, log_extra)))
            self._batches.put(key, batch)
        batch.collected.add(consumer)
        if batch.collected >= self._consumers:
            self._batches.pop(key)
        return await asyncio.shield(batch.task)

    async def _score(
        self,
        items: list[RewardItem],
        log_metric: Callable[[str, float], None] | None,
        log_extra: Callable[[str, list[Any]], None] | None,
    ) -> ScoreResult:
        result = await self._client_for_running_loop().score_items(items)
        if result.profile_hash is not None:
            self.profile_hash = result.profile_hash
        if log_metric is not None:
            for component_key in result.component_keys():
                scores = [s for s in result.component_scores(component_key) if s is not None]
                if scores:
                    log_metric(f"unirg/{component_key}/score_mean", sum(scores) / len(scores))
            log_metric("unirg/unscored_frac", result.unscored_count / max(len(result), 1))
        if log_extra is not None:
            log_extra("unirg_errors", ["; ".join(item.errors) for item in result.items])
        return result


@dataclass(frozen=True, slots=True)
class _Columns:
    reference: str
    prior_report: str | None
    context: tuple[str, ...]
    id: str | None

    def items(self, completions: Sequence[Any], columns: Mapping[str, Any]) -> list[RewardItem]:
        if self.reference not in columns:
            available = sorted(k for k in columns if k not in _TRL_KWARGS)
            raise ValueError(
                f"the dataset has no {self.reference!r} column with the reference reports; "
                f"pass reference_column=... (columns seen: {', '.join(available) or 'none'})"
            )
        references = columns[self.reference]
        priors = columns.get(self.prior_report) if self.prior_report else None
        context_values = {name: columns[name] for name in self.context if name in columns}
        ids = columns.get(self.id) if self.id else None
        items = []
        for index, completion in enumerate(completions):
            context = {
                name: values[index]
                for name, values in context_values.items()
                if isinstance(values[index], str)
            }
            prior = priors[index] if priors is not None else None
            items.append(
                RewardItem(
                    reference=str(references[index]),
                    candidate=completion_text(completion),
                    prior_report=prior if isinstance(prior, str) and prior else None,
                    context=context,
                    id=f"{ids[index]}#{index}" if ids is not None else None,
                )
            )
        return items


def _fingerprint(items: Sequence[RewardItem]) -> str:
    canonical = json.dumps([item.to_json() for item in items], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class _RewardFunction:
    """One TRL reward function; ``__name__`` is what TRL logs it as (``rewards/<name>/mean``)."""

    def __init__(self, name: str, shared: _SharedScorer, component: str | None) -> None:
        self.__name__ = name
        self._shared = shared
        self._component = component

    async def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Sequence[Sequence[int]] | None = None,
        **columns: Any,
    ) -> list[float | None]:
        # Prompts are never read: with a vision-language model they hold images.
        result = await self._shared.result(self.__name__, completions, columns)
        if self._component is None:
            return result.rewards
        values: list[float | None] = []
        for item in result.items:
            component = item.components.get(self._component)
            values.append(
                component.contribution if item.reward is not None and component is not None else None
            )
        return values

    def __repr__(self) -> str:
        return f"<UniRG reward function {self.__name__!r}>"


class RewardFunctions(list):  # a list, since TRL checks isinstance(reward_funcs, list)
    """The reward functions for ``GRPOTrainer(reward_funcs=...)``, plus what a run should record."""

    def __init__(
        self, functions: Sequence[_RewardFunction], profile: ProfileInfo, shared: _SharedScorer
    ) -> None:
        super().__init__(functions)
        self.profile = profile
        self._shared = shared

    @property
    def reward_weights(self) -> list[float]:
        """Weights for ``GRPOConfig.reward_weights``: all 1 (TRL's default), as the weights are applied."""
        return [1.0] * len(self)

    @property
    def profile_hash(self) -> str | None:
        """The hash of the reward being optimised (from the service; updated by every batch)."""
        return self._shared.profile_hash or self.profile.profile_hash


def make_reward_functions(
    base_url: str,
    profile: str | None = None,
    *,
    components: Sequence[str] | None = None,
    include_composite: bool = False,
    reference_column: str = "reference",
    prior_report_column: str | None = "prior_report",
    context_columns: Sequence[str] = ("indication", "comparison"),
    id_column: str | None = None,
    config: ClientConfig | None = None,
    wait_timeout: float = 300.0,
) -> RewardFunctions:
    """Reward functions for TRL's ``GRPOTrainer`` that score completions with the reward service.

    Args:
        base_url: The service, e.g. ``"http://127.0.0.1:8000"``.
        profile: A profile the service has loaded; None means the service's default profile.
        components: Component keys to make functions for; None means every weighted component of the
            profile. Each returns the component's contribution to the reward (see the module docs).
        include_composite: Return one function, ``composite``, giving the whole reward instead.
        reference_column: Dataset column with the reference report.
        prior_report_column: Dataset column with the prior study's report (used when present).
        context_columns: Dataset columns sent as context (string values only) when present.
        id_column: Dataset column used to label items in the service's logs.
        config: Timeouts, retries, chunking and the failure-rate limit of the HTTP client.
        wait_timeout: Seconds to wait for the service to be ready (this call reads the profile from it).

    Example::

        from trl import GRPOConfig, GRPOTrainer
        from clients.trl import make_reward_functions

        reward_funcs = make_reward_functions("http://127.0.0.1:8000", "unirg-stage1")
        trainer = GRPOTrainer(model=..., reward_funcs=reward_funcs, args=GRPOConfig(...),
                              train_dataset=dataset)  # dataset has "prompt" and "reference" columns
        # record reward_funcs.profile_hash with the run

    Raises:
        ServiceNotReadyError: the service did not become ready within ``wait_timeout``.
        ValueError: an unknown component, a component with weight 0, or both modes at once.
    """
    config = config or DEFAULT_CLIENT_CONFIG
    with RewardClient(base_url, profile=profile, config=config) as client:
        client.wait_until_ready(timeout=wait_timeout)
        info = client.profile_info(profile)
    if include_composite:
        if components:
            raise ValueError(
                "include_composite=True returns the whole reward; component functions would count it "
                "twice. Drop `components` (their raw scores are still logged as unirg/<key>/score_mean)."
            )
        names = [COMPOSITE_NAME]
    else:
        weights = {component.key: component.weight for component in info.components}
        names = list(components) if components is not None else info.weighted_keys
        for name in names:
            if name not in weights:
                raise ValueError(
                    f"profile {info.name!r} has no component {name!r}; its components: {', '.join(weights)}"
                )
            if not weights[name]:
                raise ValueError(
                    f"component {name!r} has weight 0 in profile {info.name!r}, so it adds nothing to the "
                    f"reward; its raw score is logged as unirg/{name}/score_mean anyway"
                )
        if not names:
            raise ValueError("no reward functions requested: name components or set include_composite=True")
    columns = _Columns(reference_column, prior_report_column, tuple(context_columns), id_column)
    shared = _SharedScorer(base_url, info.name, config, names, columns)
    functions = [_RewardFunction(name, shared, None if include_composite else name) for name in names]
    logger.info(
        "reward functions %s for profile %s (%s)",
        ", ".join(names),
        info.name,
        info.profile_hash or "not loaded",
    )
    return RewardFunctions(functions, info, shared)

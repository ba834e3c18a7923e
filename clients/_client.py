"""``RewardClient`` and ``AsyncRewardClient``: the reward service over pooled HTTP connections."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Self

import httpx
from tenacity import AsyncRetrying, Retrying

from clients._config import DEFAULT_CLIENT_CONFIG, ClientConfig
from clients._errors import FailureRateExceededError, RewardRequestError, ServiceNotReadyError
from clients._failures import FailureTracker
from clients._models import ComponentScore, ItemResult, RewardItem, ScoreResult
from clients._replicas import Replica, ReplicaSet
from clients._retry import describe_response, is_retryable_status, retry_options
from clients._settings import AdapterSettings
from unirg.common.merging import CallMerger

logger = logging.getLogger("clients")

ItemLike = RewardItem | Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ProfileComponent:
    key: str
    scorer: str
    weight: float
    required: bool
    transform: str


@dataclass(frozen=True, slots=True)
class ProfileInfo:
    """A profile as the service defines it; ``profile_hash`` is None when the service has not loaded it."""

    name: str
    version: int
    profile_hash: str | None
    components: tuple[ProfileComponent, ...]

    @property
    def weighted_keys(self) -> list[str]:
        """Keys of the components that enter the reward (non-zero weight), in profile order."""
        return [component.key for component in self.components if component.weight]


@dataclass(frozen=True, slots=True)
class _Split:
    """The service said 413: the chunk is over its item limit and has to be halved."""


class _ClientCore:
    """What the sync and async clients share: payloads, chunking, parsing and failure accounting."""

    def __init__(
        self, base_url: str | Sequence[str], *, profile: str | None, config: ClientConfig | None
    ) -> None:
        self.profile = profile
        self.config = config or DEFAULT_CLIENT_CONFIG
        self.replicas = ReplicaSet(base_url, self.config.replicas)
        self.base_url = ",".join(self.replicas.urls)
        self.failures = FailureTracker(self.config.failure_policy)

    def _record(self, replica: Replica, response: httpx.Response) -> None:
        if response.status_code >= 500:
            self.replicas.failed(replica)
        else:
            self.replicas.succeeded(replica)

    def _client_options(self) -> dict[str, Any]:
        # No base_url: each request names the replica it goes to.
        headers = {"Accept": "application/json"}
        key = self.config.api_key
        if key is None and (configured := AdapterSettings().reward_api_key) is not None:
            key = configured.get_secret_value()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return {
            "timeout": self.config.timeout,
            "limits": self.config.limits,
            "headers": {**headers, **self.config.headers},
        }

    @staticmethod
    def _items(
        candidates: Sequence[str],
        references: Sequence[str],
        prior_reports: Sequence[str | None] | None,
        contexts: Sequence[Mapping[str, str]] | None,
        ids: Sequence[str] | None,
    ) -> list[RewardItem]:
        count = len(candidates)
        for name, values in (
            ("references", references),
            ("prior_reports", prior_reports),
            ("contexts", contexts),
            ("ids", ids),
        ):
            if values is not None and len(values) != count:
                raise ValueError(
                    f"{name} has {len(values)} entries for {count} candidates: give one per candidate"
                )
        return [
            RewardItem(
                candidate=candidates[index],
                reference=references[index],
                prior_report=prior_reports[index] if prior_reports is not None else None,
                context=contexts[index] if contexts is not None else {},
                id=ids[index] if ids is not None else None,
            )
            for index in range(count)
        ]

    @staticmethod
    def _normalise(items: Sequence[ItemLike]) -> list[RewardItem]:
        return [item if isinstance(item, RewardItem) else RewardItem(**item) for item in items]

    def _chunks(self, items: list[RewardItem]) -> list[list[RewardItem]]:
        size = self.config.max_batch_size
        return [items[start : start + size] for start in range(0, len(items), size)]

    def _payload(
        self, items: Sequence[RewardItem], offset: int, profile: str | None, return_details: bool
    ) -> dict[str, Any]:
        # Items without an id are numbered by their place in the whole batch, not in their chunk.
        payload: dict[str, Any] = {
            "items": [{"id": str(offset + index), **item.to_json()} for index, item in enumerate(items)],
            "return_details": return_details,
        }
        chosen = profile or self.profile
        if chosen is not None:
            payload["profile"] = chosen
        return payload

    @staticmethod
    def _failed(chunk: Sequence[RewardItem], offset: int, reason: str) -> list[ItemResult]:
        return [
            ItemResult(
                id=item.id if item.id is not None else str(offset + index),
                reward=None,
                errors=(f"request failed: {reason}",),
                failed=True,
            )
            for index, item in enumerate(chunk)
        ]

    def _interpret(
        self, response: httpx.Response | BaseException, chunk: Sequence[RewardItem], offset: int
    ) -> tuple[str | None, str | None, list[ItemResult]] | _Split:
        """Turn the final outcome of one chunk's request into item results."""
        if isinstance(response, BaseException):
            reason = f"{type(response).__name__}: {response}" if str(response) else type(response).__name__
            logger.error("reward request for %d items failed after retries: %s", len(chunk), reason)
            return None, None, self._failed(chunk, offset, reason)
        if response.status_code == 413 and len(chunk) > 1:
            return _Split()
        if response.is_success:
            try:
                body = response.json()
                items = [self._parse_item(raw) for raw in body["items"]]
                if len(items) != len(chunk):
                    raise ValueError(f"{len(items)} results for {len(chunk)} items")
                return body["profile"], body["profile_hash"], items
            except (ValueError, KeyError, TypeError) as exc:
                reason = f"unreadable response ({type(exc).__name__}: {exc})"
                logger.error("reward request for %d items: %s", len(chunk), reason)
                return None, None, self._failed(chunk, offset, reason)
        reason = describe_response(response)
        if is_retryable_status(response.status_code):
            logger.error("reward request for %d items failed after retries: %s", len(chunk), reason)
            return None, None, self._failed(chunk, offset, reason)
        raise RewardRequestError(response.status_code, _detail(response))

    @staticmethod
    def _parse_item(raw: Mapping[str, Any]) -> ItemResult:
        components = {
            key: ComponentScore(
                score=value.get("score"),
                weight=value.get("weight", 0.0),
                contribution=value.get("contribution"),
                details=value.get("details"),
                error=value.get("error"),
            )
            for key, value in (raw.get("components") or {}).items()
        }
        return ItemResult(
            id=str(raw["id"]),
            reward=raw.get("reward"),
            components=components,
            errors=tuple(raw.get("errors") or ()),
        )

    def _assemble(self, parts: Sequence[tuple[str | None, str | None, list[ItemResult]]]) -> ScoreResult:
        profile = next((name for name, _, _ in parts if name is not None), None)
        hashes = {digest for _, digest, _ in parts if digest is not None}
        if len(hashes) > 1:
            # The service was reconfigured between chunks of one batch: its rewards are not comparable.
            logger.warning("one batch was scored under several profile hashes: %s", ", ".join(sorted(hashes)))
        items = tuple(item for _, _, chunk_items in parts for item in chunk_items)
        result = ScoreResult(profile=profile, profile_hash=min(hashes) if hashes else None, items=items)
        self.failures.record(result.items)
        return result

    @staticmethod
    def _profile_info(body: Mapping[str, Any]) -> ProfileInfo:
        return ProfileInfo(
            name=body["name"],
            version=body.get("version", 1),
            profile_hash=body.get("profile_hash"),
            components=tuple(
                ProfileComponent(
                    key=component.get("key") or component["name"],
                    scorer=component["name"],
                    weight=float(component.get("weight", 0.0)),
                    required=bool(component.get("required", False)),
                    transform=component.get("transform", "identity"),
                )
                for component in body["components"]
            ),
        )

    def _ready_answer(
        self, answers: Sequence[tuple[Replica, httpx.Response | None, str | None]]
    ) -> tuple[bool, str, dict[str, Any]]:
        """Ready when any replica is; replicas that are not sit out until they answer well."""
        verdicts = []
        for replica, response, error in answers:
            ready, status, body = self._readiness(response, error)
            if ready:
                self.replicas.succeeded(replica)
            else:
                self.replicas.failed(replica)
            verdicts.append((ready, status if len(answers) == 1 else f"{replica.url}: {status}", body))
        for verdict in verdicts:
            if verdict[0]:
                return verdict
        failed_start = next((v for v in verdicts if v[2].get("error")), None)
        return failed_start or (False, "; ".join(v[1] for v in verdicts), {})

    @staticmethod
    def _readiness(response: httpx.Response | None, error: str | None) -> tuple[bool, str, dict[str, Any]]:
        if response is None:
            return False, error or "no answer", {}
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code == 200:
            return True, "ready", body
        return False, describe_response(response), body


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("detail") or body)
    return str(body)


class RewardClient(_ClientCore):
    """Synchronous client of the reward service.

    Example::

        from clients import RewardClient

        with RewardClient("http://127.0.0.1:8000", profile="default") as client:
            client.wait_until_ready(timeout=300)
            result = client.score(["Findings: no effusion."], ["Findings: small left effusion."])
            result.rewards          # [0.41]; None where an item could not be scored, never 0
            result.items[0].scores  # {"bleu2": ..., "rouge_l": ...}
            result.profile_hash     # record it with the run

    Requests are retried on transport errors, 408, 429 (honouring ``Retry-After``) and 5xx with
    jittered exponential backoff; batches are split into chunks of ``config.max_batch_size``. When
    retries run out the affected items get ``reward=None`` and ``failed=True``; too many of those
    raise :class:`~clients.FailureRateExceededError` (see :class:`~clients.FailurePolicy`).
    """

    def __init__(
        self,
        base_url: str | Sequence[str],
        *,
        profile: str | None = None,
        config: ClientConfig | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, profile=profile, config=config)
        self._http = httpx.Client(transport=transport, **self._client_options())

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One attempt, on the replica with the fewest requests in flight."""
        replica = self.replicas.pick()
        with self.replicas.in_flight(replica):
            try:
                response = self._http.request(method, replica.url + path, **kwargs)
            except httpx.TransportError:
                self.replicas.failed(replica)
                raise
        self._record(replica, response)
        return response

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def score(
        self,
        candidates: Sequence[str],
        references: Sequence[str],
        *,
        prior_reports: Sequence[str | None] | None = None,
        contexts: Sequence[Mapping[str, str]] | None = None,
        ids: Sequence[str] | None = None,
        profile: str | None = None,
        return_details: bool = True,
    ) -> ScoreResult:
        """Score candidates against references (one each); ``profile`` overrides the client's."""
        items = self._items(candidates, references, prior_reports, contexts, ids)
        return self.score_items(items, profile=profile, return_details=return_details)

    def score_items(
        self, items: Sequence[ItemLike], *, profile: str | None = None, return_details: bool = True
    ) -> ScoreResult:
        """Score :class:`RewardItem` objects (or dicts with the same fields)."""
        normalised = self._normalise(items)
        parts = []
        offset = 0
        for chunk in self._chunks(normalised):
            parts.extend(self._score_chunk(chunk, offset, profile, return_details))
            offset += len(chunk)
        return self._assemble(parts)

    def _score_chunk(
        self, chunk: list[RewardItem], offset: int, profile: str | None, return_details: bool
    ) -> list[tuple[str | None, str | None, list[ItemResult]]]:
        payload = self._payload(chunk, offset, profile, return_details)
        try:
            outcome: httpx.Response | BaseException = Retrying(**retry_options(self.config.retry))(
                self._send, "POST", "/v1/score", json=payload
            )
        except httpx.TransportError as exc:
            outcome = exc
        interpreted = self._interpret(outcome, chunk, offset)
        if isinstance(interpreted, _Split):
            half = len(chunk) // 2
            return self._score_chunk(chunk[:half], offset, profile, return_details) + self._score_chunk(
                chunk[half:], offset + half, profile, return_details
            )
        return [interpreted]

    def wait_until_ready(self, timeout: float = 300.0, interval: float = 1.0) -> dict[str, Any]:
        """Poll ``/readyz`` until the service is ready; returns its readiness report.

        Raises :class:`~clients.ServiceNotReadyError` after ``timeout`` seconds, or at once when the
        service reports that loading its profiles failed.
        """
        deadline = time.monotonic() + timeout
        while True:
            answers = []
            for replica in self.replicas.replicas:
                try:
                    response, error = self._http.get(replica.url + "/readyz"), None
                except httpx.TransportError as exc:
                    response, error = None, f"{type(exc).__name__}: {exc}"
                answers.append((replica, response, error))
            ready, status, body = self._ready_answer(answers)
            if ready:
                return body
            if body.get("error"):
                raise ServiceNotReadyError(f"the reward service failed to start: {body['error']}")
            if time.monotonic() >= deadline:
                raise ServiceNotReadyError(
                    f"reward service at {self.base_url} not ready after {timeout:g}s (last answer: {status})"
                )
            time.sleep(interval)

    def profile_info(self, profile: str | None = None) -> ProfileInfo:
        """The definition of ``profile`` (default: the client's, else the service's default profile)."""
        name = profile or self.profile or self.wait_until_ready(timeout=0).get("default_profile")
        response = self._send("GET", f"/v1/profiles/{name}")
        if not response.is_success:
            raise RewardRequestError(response.status_code, _detail(response))
        return self._profile_info(response.json())


class AsyncRewardClient(_ClientCore):
    """Asynchronous client of the reward service; same behaviour as :class:`RewardClient`.

    Chunks of one large batch are sent concurrently (``config.max_concurrent_requests`` at once).
    An instance belongs to the event loop that first uses it.

    Example::

        async with AsyncRewardClient("http://127.0.0.1:8000") as client:
            await client.wait_until_ready()
            result = await client.score(candidates, references)
    """

    def __init__(
        self,
        base_url: str | Sequence[str],
        *,
        profile: str | None = None,
        config: ClientConfig | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, profile=profile, config=config)
        self._http = httpx.AsyncClient(transport=transport, **self._client_options())
        self._merger: CallMerger[tuple[str | None, bool], RewardItem, ScoreResult] = CallMerger(
            self._score_merged, self.config.max_batch_size
        )

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One attempt, on the replica with the fewest requests in flight."""
        replica = self.replicas.pick()
        with self.replicas.in_flight(replica):
            try:
                response = await self._http.request(method, replica.url + path, **kwargs)
            except httpx.TransportError:
                self.replicas.failed(replica)
                raise
        self._record(replica, response)
        return response

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def score(
        self,
        candidates: Sequence[str],
        references: Sequence[str],
        *,
        prior_reports: Sequence[str | None] | None = None,
        contexts: Sequence[Mapping[str, str]] | None = None,
        ids: Sequence[str] | None = None,
        profile: str | None = None,
        return_details: bool = True,
    ) -> ScoreResult:
        """Score candidates against references (one each); ``profile`` overrides the client's."""
        items = self._items(candidates, references, prior_reports, contexts, ids)
        return await self.score_items(items, profile=profile, return_details=return_details)

    async def score_items(
        self, items: Sequence[ItemLike], *, profile: str | None = None, return_details: bool = True
    ) -> ScoreResult:
        """Score :class:`RewardItem` objects (or dicts with the same fields).

        Calls smaller than ``config.max_batch_size`` made in the same event-loop turn (one task per
        sample, as in verl's Reward Loop) are sent together as one request and each gets its own
        result, so one sample per call costs about what a batch does.
        """
        normalised = self._normalise(items)
        if len(normalised) >= self.config.max_batch_size:
            return await self._score_batch(normalised, profile, return_details)
        return await self._merger.submit((profile, return_details), normalised)

    async def _score_batch(
        self, normalised: list[RewardItem], profile: str | None, return_details: bool
    ) -> ScoreResult:
        chunks = self._chunks(normalised)
        # Per call, not per client: many one-sample calls at once (verl's Reward Loop) must not queue
        # behind each other here; the connection pool (config.limits) bounds the client as a whole.
        gate = asyncio.Semaphore(self.config.max_concurrent_requests)
        offsets = [index * self.config.max_batch_size for index in range(len(chunks))]
        results = await asyncio.gather(
            *(
                self._score_chunk(chunk, offset, profile, return_details, gate)
                for chunk, offset in zip(chunks, offsets, strict=True)
            )
        )
        return self._assemble([part for parts in results for part in parts])

    async def _score_merged(
        self, key: tuple[str | None, bool], calls: list[Sequence[RewardItem]]
    ) -> list[ScoreResult | BaseException]:
        profile, return_details = key
        if len(calls) == 1:
            return [await self._score_batch(list(calls[0]), profile, return_details)]
        merged = [item for items in calls for item in items]
        try:
            parts = await self._score_chunk(merged, 0, profile, return_details, asyncio.Semaphore(1))
        except RewardRequestError:
            # A refused request (one caller's over-long reference) must not fail the other callers.
            return await asyncio.gather(
                *(self._score_batch(list(items), profile, return_details) for items in calls),
                return_exceptions=True,
            )
        name = next((part_name for part_name, _, _ in parts if part_name is not None), None)
        digests = {digest for _, digest, _ in parts if digest is not None}
        scored = [item for _, _, part_items in parts for item in part_items]
        outcomes: list[ScoreResult | BaseException] = []
        offset = 0
        for items in calls:
            own = [
                # Items without an id are numbered within their own call, not the merged request.
                result if item.id is not None else replace(result, id=str(index))
                for index, (item, result) in enumerate(
                    zip(items, scored[offset : offset + len(items)], strict=True)
                )
            ]
            offset += len(items)
            try:
                outcomes.append(self._assemble([(name, min(digests) if digests else None, own)]))
            except FailureRateExceededError as exc:
                outcomes.append(exc)
        return outcomes

    async def _score_chunk(
        self,
        chunk: list[RewardItem],
        offset: int,
        profile: str | None,
        return_details: bool,
        gate: asyncio.Semaphore,
    ) -> list[tuple[str | None, str | None, list[ItemResult]]]:
        payload = self._payload(chunk, offset, profile, return_details)
        async with gate:
            try:
                outcome: httpx.Response | BaseException = await AsyncRetrying(
                    **retry_options(self.config.retry)
                )(self._send, "POST", "/v1/score", json=payload)
            except httpx.TransportError as exc:
                outcome = exc
        interpreted = self._interpret(outcome, chunk, offset)
        if isinstance(interpreted, _Split):
            half = len(chunk) // 2
            first, second = await asyncio.gather(
                self._score_chunk(chunk[:half], offset, profile, return_details, gate),
                self._score_chunk(chunk[half:], offset + half, profile, return_details, gate),
            )
            return first + second
        return [interpreted]

    async def wait_until_ready(self, timeout: float = 300.0, interval: float = 1.0) -> dict[str, Any]:
        """Poll ``/readyz`` until the service is ready; see :meth:`RewardClient.wait_until_ready`."""
        deadline = time.monotonic() + timeout
        while True:
            answers = []
            for replica in self.replicas.replicas:
                try:
                    response, error = await self._http.get(replica.url + "/readyz"), None
                except httpx.TransportError as exc:
                    response, error = None, f"{type(exc).__name__}: {exc}"
                answers.append((replica, response, error))
            ready, status, body = self._ready_answer(answers)
            if ready:
                return body
            if body.get("error"):
                raise ServiceNotReadyError(f"the reward service failed to start: {body['error']}")
            if time.monotonic() >= deadline:
                raise ServiceNotReadyError(
                    f"reward service at {self.base_url} not ready after {timeout:g}s (last answer: {status})"
                )
            await asyncio.sleep(interval)

    async def profile_info(self, profile: str | None = None) -> ProfileInfo:
        """The definition of ``profile`` (default: the client's, else the service's default profile)."""
        name = profile or self.profile or (await self.wait_until_ready(timeout=0)).get("default_profile")
        response = await self._send("GET", f"/v1/profiles/{name}")
        if not response.is_success:
            raise RewardRequestError(response.status_code, _detail(response))
        return self._profile_info(response.json())

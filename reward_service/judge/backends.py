"""Where judge answers come from: an OpenAI-compatible HTTP endpoint, or a local causal LM.

:class:`OpenAIChatBackend` talks to any ``/v1/chat/completions`` endpoint (vLLM, SGLang, Ollama,
OpenAI, Azure OpenAI) over one pooled ``httpx.AsyncClient``:

* at most ``judge_concurrency`` calls in flight (a semaphore held only during the HTTP call, not
  during backoff);
* retries with jittered exponential backoff (``tenacity``) on transport errors, 408, 429 and 5xx,
  waiting at least the ``Retry-After`` of a 429 or 5xx (seconds or an HTTP-date), up to
  ``judge_backoff_max_s``;
* a circuit breaker around each attempt, so a dead judge fails fast and is retried after
  ``judge_breaker_reset_s``; a 429 does not count as a failure (the judge is alive, only busy);
* structured output (``response_format``) where the style has a JSON schema, dropped for good the
  first time the endpoint rejects it with a 400/422.

:class:`TransformersBackend` runs a local causal LM (e.g. ``StanfordAIMI/GREEN-RadLlama2-7b``) with
greedy decoding in a worker thread, one generation at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, cast

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_random_exponential

from reward_service import metrics
from reward_service.judge.breaker import CircuitBreaker, CircuitOpenError
from reward_service.judge.prompts import JudgePrompt
from reward_service.redaction import redact_text, redact_url
from reward_service.settings import Settings
from unirg.common.retry_after import parse_retry_after

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)


class JudgeError(Exception):
    """A judge call failed; the message is what the item's ``error`` says."""


class JudgeConfigError(JudgeError):
    """The judge is not configured well enough to start; the message says which setting to fix."""


class _RetryableError(JudgeError):
    """Worth another attempt: transport error, 408, 429 or 5xx; ``retry_after`` is the wait the
    endpoint asked for (its ``Retry-After``, already bounded), if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _RateLimitedError(_RetryableError):
    """A 429: the judge is alive but busy (not a breaker failure)."""


class _StructuredOutputRejectedError(JudgeError):
    pass


class JudgeBackend(ABC):
    """A source of judge answers for rendered prompts."""

    kind: str

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def load(self) -> None:
        """Open clients or load weights."""

    async def close(self) -> None:
        """Release what ``load`` acquired."""

    @abstractmethod
    async def complete(self, prompt: JudgePrompt) -> str:
        """The judge's answer text; raises :class:`JudgeError` with a reason when there is none."""

    def identity(self) -> dict[str, Any]:
        """What determines the answers besides the prompt: part of the cache key and the profile hash."""
        return {
            "backend": self.kind,
            "model": self.settings.judge_model,
            "temperature": self.settings.judge_temperature,
            "max_tokens": self.settings.judge_max_tokens,
            "seed": self.settings.judge_seed,
        }

    def readiness(self) -> dict[str, Any]:
        return {"backend": self.kind, "model": self.settings.judge_model}


def read_api_key(settings: Settings) -> str | None:
    """The judge API key: ``UNIRG_JUDGE_API_KEY``, else the first line of ``UNIRG_JUDGE_API_KEY_FILE``."""
    if settings.judge_api_key is not None:
        return settings.judge_api_key.get_secret_value()
    if settings.judge_api_key_file is not None:
        try:
            return settings.judge_api_key_file.read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise JudgeConfigError(f"cannot read UNIRG_JUDGE_API_KEY_FILE: {exc}") from exc
    return None


#: Words in a 400/422 body that say the endpoint refused structured output (and not something else).
_STRUCTURED_WORDS = ("response_format", "json", "schema", "guided", "grammar", "structured")

#: GREEN's chat template reads ``from``/``value`` (human/gpt) instead of ``role``/``content``.
_GREEN_ROLES = {"user": "human", "assistant": "gpt", "system": "system"}


class OpenAIChatBackend(JudgeBackend):
    """An OpenAI-compatible chat-completions endpoint."""

    kind = "openai"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        if not settings.judge_base_url or not settings.judge_model:
            raise JudgeConfigError(
                "the judge needs UNIRG_JUDGE_BASE_URL (e.g. http://localhost:8001/v1 for vLLM) and "
                "UNIRG_JUDGE_MODEL (the model name the endpoint serves)"
            )
        self.base_url = settings.judge_base_url.rstrip("/")
        self._response_format = settings.judge_response_format
        self._client: httpx.AsyncClient | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self.breaker = CircuitBreaker(
            f"judge:{settings.judge_model}",
            threshold=settings.judge_breaker_threshold,
            reset_s=settings.judge_breaker_reset_s,
            max_reset_s=settings.judge_breaker_reset_max_s,
            exclude=[_RateLimitedError, _StructuredOutputRejectedError, JudgeConfigError],
        )
        self.last_error: str | None = None

    async def load(self) -> None:
        settings = self.settings
        headers = {}
        key = read_api_key(settings)
        if key:
            headers = (
                {"api-key": key}
                if settings.judge_auth_header == "api-key"
                else {"authorization": f"Bearer {key}"}
            )
        params = {"api-version": settings.judge_api_version} if settings.judge_api_version else None
        self._client = httpx.AsyncClient(
            base_url=self.base_url + "/",
            headers=headers,
            params=params,
            timeout=httpx.Timeout(settings.judge_timeout_s, connect=settings.judge_connect_timeout_s),
            limits=httpx.Limits(
                max_connections=settings.judge_concurrency,
                max_keepalive_connections=settings.judge_concurrency,
            ),
        )
        self._semaphore = asyncio.Semaphore(settings.judge_concurrency)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _wait(self, state: RetryCallState) -> float:
        backoff = wait_random_exponential(
            multiplier=self.settings.judge_backoff_initial_s, max=self.settings.judge_backoff_max_s
        )(state)
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _RetryableError) and error.retry_after is not None:
            return max(backoff, error.retry_after)  # at least what the endpoint asked; both within the max
        return backoff

    def _retry_after(self, response: httpx.Response) -> float | None:
        return parse_retry_after(response.headers.get("retry-after"), max_s=self.settings.judge_backoff_max_s)

    async def complete(self, prompt: JudgePrompt) -> str:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.judge_retries + 1),
            wait=self._wait,
            retry=retry_if_exception_type(_RetryableError),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    try:
                        return await self._attempt(prompt)
                    except _StructuredOutputRejectedError:
                        return await self._attempt(prompt)  # now without response_format
        except _RetryableError as exc:
            raise JudgeError(
                f"judge unavailable after {self.settings.judge_retries + 1} attempts: {exc}"
            ) from exc
        except CircuitOpenError as exc:
            metrics.JUDGE_CALLS.labels(outcome="breaker_open").inc()
            raise JudgeError(str(exc)) from exc
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _body(self, prompt: JudgePrompt) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.settings.judge_model,
            "messages": list(prompt.messages),
            "temperature": self.settings.judge_temperature,
            "max_tokens": self.settings.judge_max_tokens,
        }
        if self.settings.judge_seed is not None:
            body["seed"] = self.settings.judge_seed
        if prompt.json_schema is not None and self._response_format == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": prompt.prompt_id.replace("-", "_"),
                    "schema": prompt.json_schema,
                    "strict": True,
                },
            }
        elif prompt.json_schema is not None and self._response_format == "json_object":
            body["response_format"] = {"type": "json_object"}
        return body

    async def _attempt(self, prompt: JudgePrompt) -> str:
        assert self._client is not None and self._semaphore is not None, "load() was not called"
        body = self._body(prompt)
        async with self.breaker.guard(), self._semaphore:
            metrics.JUDGE_IN_FLIGHT.inc()
            started = time.perf_counter()
            try:
                response = await self._client.post("chat/completions", json=body)
            except httpx.TransportError as exc:
                metrics.JUDGE_CALLS.labels(outcome="transport_error").inc()
                self.last_error = f"{type(exc).__name__}: {exc}"
                raise _RetryableError(
                    f"cannot reach the judge at {redact_url(self.base_url)}: {redact_text(self.last_error)}"
                ) from exc
            finally:
                metrics.JUDGE_IN_FLIGHT.dec()
                metrics.JUDGE_CALL_LATENCY.observe(time.perf_counter() - started)
            return self._answer(response, structured="response_format" in body)

    def _answer(self, response: httpx.Response, *, structured: bool) -> str:
        status = response.status_code
        detail = response.text[:300]
        if status == 429:
            metrics.JUDGE_CALLS.labels(outcome="rate_limited").inc()
            raise _RateLimitedError(
                f"judge rate-limited the call (429): {detail}", self._retry_after(response)
            )
        if status >= 500 or status == 408:
            metrics.JUDGE_CALLS.labels(outcome="server_error").inc()
            self.last_error = f"HTTP {status}: {detail}"
            raise _RetryableError(f"judge answered HTTP {status}: {detail}", self._retry_after(response))
        if status in (400, 422) and structured and any(word in detail.lower() for word in _STRUCTURED_WORDS):
            logger.warning(
                "judge endpoint rejected response_format (HTTP %s); asking without it from now on", status
            )
            self._response_format = "none"
            raise _StructuredOutputRejectedError(detail)
        if status >= 400:
            metrics.JUDGE_CALLS.labels(outcome="bad_request").inc()
            raise JudgeConfigError(f"judge refused the call with HTTP {status}: {detail}")
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, LookupError, TypeError) as exc:
            metrics.JUDGE_CALLS.labels(outcome="bad_response").inc()
            raise JudgeError(f"judge response is not a chat completion: {detail!r}") from exc
        if not isinstance(content, str):
            metrics.JUDGE_CALLS.labels(outcome="bad_response").inc()
            raise JudgeError(f"judge response has no text content: {detail!r}")
        metrics.JUDGE_CALLS.labels(outcome="ok").inc()
        self.last_error = None
        return content

    def identity(self) -> dict[str, Any]:
        identity = super().identity()
        identity["response_format"] = self.settings.judge_response_format
        return identity

    def readiness(self) -> dict[str, Any]:
        return {
            **super().readiness(),
            "base_url": redact_url(self.base_url),
            "concurrency": self.settings.judge_concurrency,
            "breaker": self.breaker.readiness(),
            "last_error": redact_text(self.last_error) if self.last_error else None,
        }


class TransformersBackend(JudgeBackend):
    """A local causal LM, e.g. a GREEN model, with greedy decoding in a worker thread."""

    kind = "transformers"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        if not settings.judge_model:
            raise JudgeConfigError(
                "the transformers judge backend needs UNIRG_JUDGE_MODEL: a hub id or a local model directory"
            )
        self._model: Any = None
        self._tokenizer: Any = None
        self._device = "cpu"
        self._model_sha256: str | None = None
        # One generation at a time: generate() holds the whole device. An asyncio lock (not a thread
        # lock) so that waiting items do not park worker threads of the shared default executor.
        self._lock: asyncio.Lock | None = None

    async def load(self) -> None:
        self._lock = asyncio.Lock()
        await asyncio.to_thread(self._load_sync)

    def _load_sync(self) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from reward_service.models.hub import dir_sha256, resolve_model_dir, select_device

        assert self.settings.judge_model is not None
        path = resolve_model_dir(self.settings.judge_model, self.settings, what="judge model")
        self._device = select_device(self.settings)
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        # Typed as a torch Module: transformers decorates PreTrainedModel.to with functools.wraps, which
        # pyright does not bind to the instance.
        model = cast("torch.nn.Module", AutoModelForCausalLM.from_pretrained(path, torch_dtype="auto"))
        self._model = model.to(self._device).eval()
        self._model_sha256 = dir_sha256(path)

    async def close(self) -> None:
        self._model = None
        self._tokenizer = None

    def _render(self, prompt: JudgePrompt) -> str:
        tokenizer = self._tokenizer
        if getattr(tokenizer, "chat_template", None):
            # Both key conventions, so that GREEN's from/value template and role/content ones both work.
            messages = [
                {**m, "from": _GREEN_ROLES.get(m["role"], m["role"]), "value": m["content"]}
                for m in prompt.messages
            ]
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return (
            "\n\n".join(f"{m['role'].upper()}:\n{m['content']}" for m in prompt.messages) + "\n\nASSISTANT:\n"
        )

    def _generate(self, prompt: JudgePrompt) -> str:
        import torch

        text = self._render(prompt)
        bos = self._tokenizer.bos_token
        # Add BOS unless the chat template already wrote it (Llama 3 templates do, GREEN's does not).
        add_bos = bool(bos) and not text.startswith(bos)
        inputs = self._tokenizer(text, return_tensors="pt", add_special_tokens=add_bos).to(self._device)
        limit = getattr(self._model.config, "max_position_embeddings", None)
        length = int(inputs["input_ids"].shape[1])
        if limit is not None and length + self.settings.judge_max_tokens > limit:
            raise JudgeError(
                f"judge prompt is {length} tokens; with {self.settings.judge_max_tokens} new tokens it exceeds "
                f"the model's {limit} positions (lower UNIRG_JUDGE_MAX_REPORT_CHARS or UNIRG_JUDGE_MAX_TOKENS)"
            )
        pad = self._tokenizer.pad_token_id
        if pad is None:
            pad = self._tokenizer.eos_token_id
        with torch.inference_mode():
            output = self._model.generate(
                **inputs,
                do_sample=False,
                max_new_tokens=self.settings.judge_max_tokens,
                pad_token_id=pad,
            )
        return self._tokenizer.decode(output[0, length:], skip_special_tokens=True)

    async def complete(self, prompt: JudgePrompt) -> str:
        if self._model is None or self._lock is None:
            raise JudgeError("the judge model is not loaded")
        metrics.JUDGE_IN_FLIGHT.inc()
        started = time.perf_counter()
        try:
            async with self._lock:
                answer = await asyncio.to_thread(self._generate, prompt)
        except JudgeError:
            raise
        except Exception as exc:
            metrics.JUDGE_CALLS.labels(outcome="server_error").inc()
            raise JudgeError(f"local judge model failed: {type(exc).__name__}: {exc}") from exc
        finally:
            metrics.JUDGE_IN_FLIGHT.dec()
            metrics.JUDGE_CALL_LATENCY.observe(time.perf_counter() - started)
        metrics.JUDGE_CALLS.labels(outcome="ok").inc()
        return answer

    def identity(self) -> dict[str, Any]:
        # Greedy decoding: temperature and seed do not change the answer here.
        return {
            "backend": self.kind,
            "model": self.settings.judge_model,
            "model_sha256": self._model_sha256,
            "max_tokens": self.settings.judge_max_tokens,
        }

    def readiness(self) -> dict[str, Any]:
        return {**super().readiness(), "device": self._device, "loaded": self._model is not None}


BACKENDS: dict[str, type[JudgeBackend]] = {"openai": OpenAIChatBackend, "transformers": TransformersBackend}


def build_backend(settings: Settings) -> JudgeBackend:
    """The backend named by ``UNIRG_JUDGE_BACKEND``."""
    return BACKENDS[settings.judge_backend](settings)

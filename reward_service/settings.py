"""The one settings object of the reward service.

Every knob is read here, from ``UNIRG_*`` environment variables or a ``.env`` file, and nowhere else.
Fields are grouped by the part of the service they steer; each has a description that the README's
configuration table repeats.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="UNIRG_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- HTTP server ---------------------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address the service binds to.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port the service listens on.")
    log_level: str = Field(default="info", description="Log level of the service and uvicorn.")
    drain_timeout_s: float = Field(
        default=20.0,
        gt=0,
        description="On SIGTERM the service stops accepting connections, answers /readyz 503 and gives "
        "requests in flight this many seconds to finish before it cancels them; keep it below the "
        "container's stop grace period.",
    )

    # --- authentication ------------------------------------------------------------------------
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="API keys clients must send as `Authorization: Bearer KEY` (comma-separated); with "
        "neither this nor `UNIRG_API_KEY_HASHES_FILE` set, the service needs no key.",
    )
    api_key_hashes_file: Path | None = Field(
        default=None,
        description="File of accepted keys as sha256 hex digests, one per line, each optionally followed "
        "by a name shown in /metrics (`unirg keys hash` prints a key's line); `#` starts a comment.",
    )
    metrics_public: bool = Field(
        default=False,
        description="Serve /metrics without an API key (for a Prometheus scraper inside the network).",
    )

    # --- profiles ------------------------------------------------------------------------------
    profile: str = Field(
        default="default",
        description="Profile served when a request names none: a shipped profile name or a YAML path.",
    )
    extra_profiles: list[str] = Field(
        default_factory=list,
        description="More profiles (names or paths) loaded at start-up so requests may select them "
        "(JSON list in the environment).",
    )

    # --- request limits ------------------------------------------------------------------------
    max_items_per_request: int = Field(
        default=1024, ge=1, description="Most items one /v1/score request may hold."
    )
    max_report_chars: int = Field(
        default=20_000, ge=1, description="Most characters in one reference, candidate or prior report."
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Most bytes in one request body, checked before it is read; larger bodies get 413.",
    )
    max_context_keys: int = Field(default=32, ge=0, description="Most keys in one item's `context`.")
    max_context_value_chars: int = Field(
        default=4000, ge=1, description="Most characters in one `context` value (e.g. an indication)."
    )
    max_concurrent_requests: int = Field(
        default=256,
        ge=1,
        description="Score requests in flight at once; beyond this the service answers 429 with Retry-After.",
    )
    playground: bool = Field(
        default=True,
        description="Serve the playground page at /ui (and redirect / there); false leaves those routes out.",
    )

    # --- model scorers (batching, caches, weights) ---------------------------------------------
    model_cache_dir: Path = Field(
        default=Path.home() / ".cache" / "unirg",
        description="Where `unirg models fetch` puts weights and model scorers look for them.",
    )
    device: str = Field(
        default="auto", description="Torch device for model scorers: auto, cpu, cuda, cuda:N."
    )
    model_download: bool = Field(
        default=False,
        description="Let model scorers download missing weights from the Hugging Face hub at start-up; off, "
        "weights come only from local paths and model_cache_dir (fill it with `unirg models fetch`).",
    )
    batch_token_budget: int = Field(
        default=16384,
        ge=1,
        description="Most padded tokens (items x longest item) in one model forward batch; lower it if the "
        "device runs out of memory, raise it on a large GPU.",
    )
    batch_max_wait_ms: float = Field(
        default=2.0,
        ge=0,
        description="How long an idle model waits for more items before starting a batch (0: start at once). "
        "While a batch runs, new items queue anyway.",
    )
    batch_pad_multiple: int = Field(
        default=16,
        ge=1,
        description="Model inputs are padded to a multiple of this many tokens and batched only with inputs "
        "of the same padded length, so a report's scores do not depend on what shares its batch "
        "(bit-identical on CPU). Larger: fuller batches, more padding.",
    )
    batch_window: int = Field(
        default=256, ge=1, description="Queued items sorted by length together before being cut into batches."
    )
    batch_queue_size: int = Field(
        default=4096,
        ge=1,
        description="Most distinct items waiting per model; a request that does not fit gets 429.",
    )
    reference_cache_size: int = Field(
        default=8192,
        ge=0,
        description="Distinct references whose model outputs (embeddings, labels, graphs) are kept per "
        "model, least recently used evicted first; 0 disables the cache.",
    )

    # --- LLM judge -----------------------------------------------------------------------------
    redis_url: str | None = Field(
        default=None, description="Redis URL for the judge cache; unset means an in-process LRU cache."
    )
    judge_api_key: SecretStr | None = Field(default=None, description="API key of the judge endpoint.")
    judge_api_key_file: Path | None = Field(
        default=None,
        description="File holding the judge API key (e.g. a mounted secret); used when "
        "`UNIRG_JUDGE_API_KEY` is unset.",
    )
    judge_backend: Literal["openai", "transformers"] = Field(
        default="openai",
        description="`openai`: any OpenAI-compatible chat-completions endpoint (vLLM, SGLang, Ollama, OpenAI, "
        "Azure OpenAI); `transformers`: a local causal LM loaded in-process (e.g. the GREEN model).",
    )
    judge_base_url: str | None = Field(
        default=None,
        description="Base URL of the OpenAI-compatible endpoint, up to and including `/v1` "
        "(requests go to `{base_url}/chat/completions`).",
    )
    judge_model: str | None = Field(
        default=None,
        description="Judge model: the `model` field sent to the endpoint, or a hub id / local directory for "
        "the transformers backend. Part of the cache key and the profile hash.",
    )
    judge_auth_header: Literal["bearer", "api-key"] = Field(
        default="bearer",
        description="How the key is sent: `Authorization: Bearer` or Azure's `api-key` header.",
    )
    judge_api_version: str | None = Field(
        default=None, description="Sent as the `api-version` query parameter (Azure OpenAI deployments)."
    )
    judge_temperature: float = Field(
        default=0.0, ge=0.0, le=2.0, description="Sampling temperature of the judge."
    )
    judge_max_tokens: int = Field(
        default=1024, ge=1, description="Most tokens the judge may generate per answer."
    )
    judge_seed: int | None = Field(
        default=None, description="Sampling seed sent to endpoints that accept one."
    )
    judge_response_format: Literal["json_schema", "json_object", "none"] = Field(
        default="json_schema",
        description="Structured output requested for CheXprompt-style JSON answers; dropped automatically "
        "when the endpoint rejects it.",
    )
    judge_timeout_s: float = Field(
        default=120.0, gt=0, description="Read timeout of one judge HTTP call, seconds."
    )
    judge_connect_timeout_s: float = Field(
        default=5.0, gt=0, description="Connect timeout of the judge, seconds."
    )
    judge_concurrency: int = Field(
        default=16,
        ge=1,
        description="Most judge calls in flight at once (per judge component of the service).",
    )
    judge_retries: int = Field(
        default=3,
        ge=0,
        description="Retries of one judge call on transport errors, 429 and 5xx (jittered backoff).",
    )
    judge_backoff_initial_s: float = Field(
        default=0.5, gt=0, description="First retry backoff, seconds (doubles)."
    )
    judge_backoff_max_s: float = Field(
        default=20.0,
        gt=0,
        description="Longest wait between retries, seconds; a longer `Retry-After` from the judge is cut to it.",
    )
    judge_parse_retries: int = Field(
        default=1,
        ge=0,
        description="Times an answer that cannot be parsed is asked for again before the item is null.",
    )
    judge_breaker_threshold: int = Field(
        default=5,
        ge=1,
        description="Consecutive failed judge calls that open the circuit breaker (calls then fail fast).",
    )
    judge_breaker_reset_s: float = Field(
        default=1.0,
        gt=0,
        description="Seconds an open breaker first waits before letting trial calls through (half-open); "
        "each failed trial doubles the wait, up to `UNIRG_JUDGE_BREAKER_RESET_MAX_S`.",
    )
    judge_breaker_reset_max_s: float = Field(
        default=30.0, gt=0, description="Longest wait of an open judge breaker between trials, seconds."
    )
    judge_max_report_chars: int = Field(
        default=6000,
        ge=100,
        description="Reports longer than this are truncated in the judge prompt (flagged).",
    )
    judge_cache_namespace: str = Field(
        default="unirg:judge", description="Prefix of judge cache keys; change it to start a fresh cache."
    )
    judge_cache_ttl_s: int = Field(
        default=30 * 24 * 3600,
        ge=1,
        description="Lifetime of a cached judge verdict (Redis or the in-process LRU), seconds.",
    )
    judge_cache_timeout_s: float = Field(
        default=0.25, gt=0, description="Timeout of one Redis operation; slower means a miss, never an error."
    )
    judge_cache_retry_s: float = Field(
        default=5.0,
        gt=0,
        description="After `UNIRG_JUDGE_CACHE_BYPASS_AFTER` Redis failures in a row, seconds to bypass "
        "Redis before trying it again.",
    )
    judge_cache_bypass_after: int = Field(
        default=3,
        ge=1,
        description="Redis failures in a row after which the judge cache bypasses Redis for "
        "`UNIRG_JUDGE_CACHE_RETRY_S` (a dead Redis then costs a few fast failures, not a timeout per "
        "request).",
    )
    judge_cache_lru_size: int = Field(
        default=100_000,
        ge=0,
        description="Entries of the in-process LRU used when `UNIRG_REDIS_URL` is unset.",
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        # One variable, comma-separated: easier to write in a shell or an .env file than a JSON list.
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()

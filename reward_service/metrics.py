"""Prometheus metrics of the service, all under the ``unirg_`` prefix, served at ``/metrics``."""

from __future__ import annotations

from typing import TypeVar, cast

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

MetricT = TypeVar("MetricT", bound=MetricWrapperBase)

_children: dict[tuple[MetricWrapperBase, tuple[str, ...]], MetricWrapperBase] = {}


def labelled(metric: MetricT, *values: str) -> MetricT:
    """``metric.labels(*values)``, remembered: ``labels()`` validates and takes a lock on every call,
    which the per-request paths pay several times. A child is created on first use, as ``labels()``
    does, so ``/metrics`` lists the same series; nothing removes children, so a remembered one stays
    the one ``labels()`` returns. Label values here are few (routes, status codes, profiles,
    components, models, caches)."""
    key = (metric, values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return cast(MetricT, child)  # the child of a MetricT is a MetricT


REQUESTS = Counter("unirg_requests_total", "HTTP requests by route and status code.", ["route", "status"])
ITEMS = Counter("unirg_items_total", "Items scored, by profile.", ["profile"])
REQUEST_LATENCY = Histogram(
    "unirg_request_latency_seconds",
    "Latency of HTTP requests by route.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
COMPONENT_LATENCY = Histogram(
    "unirg_component_latency_seconds",
    "Time one component takes to score one request's batch.",
    ["component"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
COMPONENT_ERRORS = Counter(
    "unirg_component_errors_total", "Items a component failed to score.", ["component"]
)
IN_FLIGHT = Gauge("unirg_requests_in_flight", "Score requests being processed.")
REJECTED = Counter("unirg_requests_rejected_total", "Requests refused with 429 because the service was full.")

# --- model scorers: dynamic batching and the reference cache ----------------------------------
BATCH_SIZE = Histogram(
    "unirg_batch_size",
    "Distinct items in one model forward batch.",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
BATCH_TOKENS = Histogram(
    "unirg_batch_padded_tokens",
    "Padded tokens (items x longest item) in one model forward batch.",
    ["model"],
    buckets=(64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536),
)
BATCH_SECONDS = Histogram(
    "unirg_batch_seconds",
    "Time one model batch takes in the worker thread.",
    ["model"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_RETRIES = Counter(
    "unirg_batch_retries_total", "Batches that failed as a whole and were retried item by item.", ["model"]
)
BATCHER_QUEUE_DEPTH = Gauge("unirg_batcher_queue_depth", "Items waiting for a model batch.", ["model"])
BATCHER_REJECTED = Counter(
    "unirg_batcher_rejected_items_total", "Items refused because a model queue was full.", ["model"]
)
CACHE_HITS = Counter("unirg_reference_cache_hits_total", "Reference cache hits.", ["cache"])
CACHE_MISSES = Counter("unirg_reference_cache_misses_total", "Reference cache misses.", ["cache"])
CACHE_ENTRIES = Gauge("unirg_reference_cache_entries", "Entries held in a reference cache.", ["cache"])

# --- LLM judge (reward_service/judge) ---------------------------------------------------------------
JUDGE_CALLS = Counter(
    "unirg_judge_calls_total",
    "Judge HTTP/model calls by outcome: ok, server_error, rate_limited, transport_error, bad_request, "
    "bad_response, breaker_open.",
    ["outcome"],
)
JUDGE_CALL_LATENCY = Histogram(
    "unirg_judge_call_latency_seconds",
    "Latency of one judge call (one attempt), seconds.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
JUDGE_IN_FLIGHT = Gauge("unirg_judge_calls_in_flight", "Judge calls in flight.")
JUDGE_PARSE_FAILURES = Counter(
    "unirg_judge_parse_failures_total", "Judge answers that could not be parsed (each attempt).", ["style"]
)
JUDGE_CACHE_HITS = Counter("unirg_judge_cache_hits_total", "Judge verdicts served from the cache.", ["cache"])
JUDGE_CACHE_MISSES = Counter("unirg_judge_cache_misses_total", "Judge cache lookups that missed.", ["cache"])
JUDGE_CACHE_ERRORS = Counter(
    "unirg_judge_cache_errors_total",
    "Cache operations that failed or timed out (the judge is called instead): get, set, bypassed.",
    ["operation"],
)
JUDGE_SHARED = Counter(
    "unirg_judge_shared_total", "Items that waited for an identical judge call already in flight."
)
JUDGE_BREAKER_STATE = Gauge(
    "unirg_judge_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open.", ["circuit"]
)
JUDGE_INJECTION_FLAGS = Counter(
    "unirg_judge_injection_flags_total",
    "Candidates flagged for instruction-like content, by pattern.",
    ["flag"],
)

# --- authentication (reward_service/auth.py) --------------------------------------------------------
REQUESTS_BY_KEY = Counter(
    "unirg_requests_by_key_total", "Authenticated requests by API key name (never the key itself).", ["key"]
)
AUTH_FAILURES = Counter(
    "unirg_auth_failures_total", "Requests refused with 401: missing, malformed or invalid key.", ["reason"]
)

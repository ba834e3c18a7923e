"""The LLM clinical-error judge: prompts, backends, parsers and the verdict cache.

Used by the ``judge`` scorer (:mod:`reward_service.scorers.judge`); see docs/judge.md. Nothing here
imports torch or transformers at import time (only the transformers backend does, when it loads).
"""

from reward_service.judge.backends import (
    JudgeBackend,
    JudgeConfigError,
    JudgeError,
    OpenAIChatBackend,
    TransformersBackend,
    build_backend,
)
from reward_service.judge.cache import (
    LruVerdictCache,
    RedisVerdictCache,
    build_cache,
    cache_key,
)
from reward_service.judge.parsing import ErrorCounts, JudgeParseError, parse_chexprompt, parse_green
from reward_service.judge.prompts import PROMPT_IDS, JudgePrompt, build_prompt, detect_injection
from reward_service.judge.verdicts import Judge, JudgeOutcome

__all__ = [
    "PROMPT_IDS",
    "ErrorCounts",
    "Judge",
    "JudgeBackend",
    "JudgeConfigError",
    "JudgeError",
    "JudgeOutcome",
    "JudgeParseError",
    "JudgePrompt",
    "LruVerdictCache",
    "OpenAIChatBackend",
    "RedisVerdictCache",
    "TransformersBackend",
    "build_backend",
    "build_cache",
    "build_prompt",
    "cache_key",
    "detect_injection",
    "parse_chexprompt",
    "parse_green",
]

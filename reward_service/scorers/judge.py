"""``judge``: an LLM counts the candidate's clinical errors against the reference.

Two styles (``options.style``):

* ``chexprompt`` (default): six error categories A-F (CheXprompt taxonomy), each counted as clinically
  significant or insignificant; the judge answers JSON (structured output where the endpoint has it).
* ``green``: GREEN's answer sections (errors (a)-(f) significant/insignificant, matched findings).

Score (``options.score``): ``significant`` = 1/(1 + significant errors) (UniRG stage 2's
``1/(1 + n_errors)``), ``all`` = 1/(1 + all errors), ``green`` = matched / (matched + significant errors).
Per item, ``details`` holds the counts by category, ``cached``, and any instruction-like content found
in the candidate (``injection``). An answer that cannot be parsed leaves the score null with the raw
answer in ``details["answer"]``, never 0.

The endpoint, model, cache and fault handling come from the ``UNIRG_JUDGE_*`` settings (docs/judge.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import Field, model_validator

from reward_service import metrics
from reward_service.judge import Judge, JudgeOutcome, JudgePrompt, build_prompt
from reward_service.judge.prompts import PROMPT_IDS
from reward_service.scorers.base import (
    ScoreItem,
    Scorer,
    ScoreResult,
    ScorerKind,
    ScorerOptions,
    describe_exception,
)


class JudgeOptions(ScorerOptions):
    style: Literal["chexprompt", "green"] = Field(
        default="chexprompt",
        description="Prompt and answer format: CheXprompt JSON counts or GREEN sections.",
    )
    score: Literal["significant", "all", "green"] | None = Field(
        default=None,
        description="significant: 1/(1+significant errors); all: 1/(1+all errors); green: GREEN. "
        "Default: significant for chexprompt, green for green.",
    )
    injection_penalty: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Subtracted from the score (floored at 0) when the candidate holds instruction-like text.",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_score(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("score") is None:
            data = {**data, "score": "green" if data.get("style") == "green" else "significant"}
        return data

    @model_validator(mode="after")
    def _score_fits_style(self) -> JudgeOptions:
        if self.score == "green" and self.style != "green":
            raise ValueError("score 'green' needs matched findings, which only style 'green' asks for")
        return self


class JudgeScorer(Scorer[JudgeOptions]):
    kind = ScorerKind.JUDGE
    description = (
        "LLM judge counting clinical errors (CheXprompt categories A-F, significant/insignificant, or GREEN); "
        "score 1/(1+errors) or GREEN."
    )
    _judge: Judge | None = None

    async def load(self) -> None:
        judge = Judge(self.settings, self.options.style)
        await judge.load()
        self._judge = judge

    async def close(self) -> None:
        if self._judge is not None:
            await self._judge.close()
            self._judge = None

    def fingerprint(self) -> dict[str, Any]:
        identity = self._judge.backend.identity() if self._judge is not None else {}
        return {"prompt_id": PROMPT_IDS[self.options.style], **identity}

    def readiness(self) -> dict[str, Any]:
        if self._judge is None:
            return {"loaded": False}
        return {"style": self.options.style, **self._judge.readiness()}

    async def score_batch(
        self, items: Sequence[ScoreItem], upstream: Mapping[str, Sequence[ScoreResult]]
    ) -> list[ScoreResult]:
        assert self._judge is not None, "load() was not called"
        results: list[ScoreResult | None] = [None] * len(items)
        prompts: list[JudgePrompt] = []
        positions: list[int] = []
        for index, item in enumerate(items):
            try:
                prompt = build_prompt(
                    self.options.style,
                    item.reference,
                    item.candidate,
                    max_chars=self.settings.judge_max_report_chars,
                )
            except Exception as exc:  # one unrenderable item fails alone
                results[index] = ScoreResult.failed(describe_exception(exc))
                continue
            for flag in prompt.injection_flags:
                metrics.JUDGE_INJECTION_FLAGS.labels(flag=flag).inc()
            prompts.append(prompt)
            positions.append(index)
        outcomes = await self._judge.judge(prompts)
        for index, prompt, outcome in zip(positions, prompts, outcomes, strict=True):
            results[index] = self._result(prompt, outcome)
        return [result for result in results if result is not None]

    def _result(self, prompt: JudgePrompt, outcome: JudgeOutcome) -> ScoreResult:
        details: dict[str, Any] = {
            "style": prompt.style,
            "prompt_id": prompt.prompt_id,
            "cached": outcome.cached,
        }
        if prompt.injection_flags:
            details["injection"] = list(prompt.injection_flags)
        if prompt.truncated:
            details["truncated"] = list(prompt.truncated)
        counts = outcome.counts
        if counts is None:
            if outcome.answer is not None:
                details["answer"] = outcome.answer
            return ScoreResult(score=None, details=details, error=outcome.error or "no verdict")
        details.update(
            n_significant=counts.n_significant,
            n_insignificant=counts.n_insignificant,
            errors={"significant": counts.significant, "insignificant": counts.insignificant},
        )
        if counts.matched_findings is not None:
            details["matched_findings"] = counts.matched_findings
        if self.options.score == "green":
            score = counts.green()
            if score is None:
                return ScoreResult(
                    score=None, details=details, error="judge answer has no matched-findings count"
                )
        else:
            n_errors = counts.n_significant if self.options.score == "significant" else counts.n_all
            details["n_errors"] = n_errors
            score = 1.0 / (1.0 + n_errors)
        if prompt.injection_flags and self.options.injection_penalty:
            details["injection_penalty"] = self.options.injection_penalty
            score = max(0.0, score - self.options.injection_penalty)
        return ScoreResult(score=score, details=details)

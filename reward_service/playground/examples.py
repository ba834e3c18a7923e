"""The playground's examples: real reports shipped in ``sample_reports.json``, each with its variants.

The variants are generated when the examples are first asked for (:mod:`.variants`), not stored, so a
change to the rewrite tables shows at once and cannot drift from the code.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from pydantic import BaseModel, Field

from reward_service.playground.variants import make_variants

SAMPLE_FILE = "sample_reports.json"


class ExampleCandidate(BaseModel):
    kind: str = Field(description="identical, paraphrase, negation_flip, side_swap or dropped_finding.")
    text: str
    note: str = Field(description="What was changed from the reference.")


class Example(BaseModel):
    id: str = Field(description="The study id in the source data set.")
    context: str = Field(description="Indication and comparison, as the source gives them.")
    reference: str
    candidates: list[ExampleCandidate]


class Examples(BaseModel):
    source: str
    license: str
    note: str
    examples: list[Example]


@lru_cache(maxsize=1)
def playground_examples() -> Examples:
    """Every shipped study as an example: the report itself and each variant that applies to it."""
    sample = json.loads(
        resources.files("reward_service.playground").joinpath(SAMPLE_FILE).read_text(encoding="utf-8")
    )
    examples = []
    for study_id, study in sample["studies"].items():
        report = study["report"]
        candidates = [ExampleCandidate(kind="identical", text=report, note="the reference itself")]
        candidates += [
            ExampleCandidate(kind=variant.kind, text=variant.text, note=variant.note)
            for variant in make_variants(report)
        ]
        examples.append(
            Example(id=study_id, context=study["context"], reference=report, candidates=candidates)
        )
    return Examples(
        source=sample["source"], license=sample["license"], note=sample["note"], examples=examples
    )

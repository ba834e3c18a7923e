"""RadCliQ-v1 (``radcliq``): a linear combination of RadGraph F1, BERTScore, SembScore and BLEU-2.

As defined by Yu et al. (2023) and used by the ReXrank leaderboard, from the features of one item
``x = [radgraph, bertscore, semb, bleu2]``::

    z = (x - mu) / sigma
    RadCliQ = z . w + b

with the published normaliser and coefficients below. RadCliQ estimates the number of errors a
radiologist would find: lower is better, a perfect match scores about -1.44, and leaderboards print
``1 / mean(RadCliQ)`` over a test set.

The features are the results of the profile's components keyed ``radgraph``, ``bertscore``,
``semb`` and ``bleu2``, which must use the ReXrank settings for the number to be RadCliQ-v1
(RadGraph: mean of entity and relation F1 on RadGraph v1; BERTScore: distilroberta-base layer 5,
rescaled; SembScore: CheXbert; BLEU-2: ReXrank tokenisation); the ``radcliq-v1`` profile sets them.

A reward must grow with quality, so the scorer's ``score`` is ``-RadCliQ`` (a perfect match gives
about +1.44; equivalent to the profile transform ``negate`` on the raw value, and unlike
``1/RadCliQ`` it has no pole where RadCliQ crosses 0). The details carry the raw ``radcliq``, the
per-item ``inverse`` ``1/RadCliQ`` (ReXrank's printed form, only meaningful as the inverse of a mean)
and the features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from reward_service.scorers.base import ScoreItem, Scorer, ScoreResult, ScorerKind, ScorerOptions

FEATURES = ("radgraph", "bertscore", "semb", "bleu2")
MU = (0.53792312, 0.61757256, 0.76479421, 0.44738335)
SIGMA = (0.30282584, 0.22430938, 0.25394391, 0.29892717)
WEIGHTS = (-0.3770837, -0.3703001, -0.2526162, 4.3e-12)
BIAS = 2.47e-10


def radcliq_v1(radgraph: float, bertscore: float, semb: float, bleu2: float) -> float:
    """RadCliQ-v1 of one report pair from its four features (lower is better)."""
    features = (radgraph, bertscore, semb, bleu2)
    return sum(w * (x - m) / s for x, m, s, w in zip(features, MU, SIGMA, WEIGHTS, strict=True)) + BIAS


class RadCliQScorer(Scorer[ScorerOptions]):
    kind = ScorerKind.MODEL
    description = (
        "RadCliQ-v1 from the radgraph, bertscore, semb and bleu2 components; score = -RadCliQ "
        "(higher is better), raw RadCliQ and 1/RadCliQ in the details."
    )
    requires = FEATURES

    async def score_batch(
        self, items: Sequence[ScoreItem], upstream: Mapping[str, Sequence[ScoreResult]]
    ) -> list[ScoreResult]:
        results = []
        for index in range(len(items)):
            features = {name: upstream[name][index].score for name in FEATURES}
            values = {name: score for name, score in features.items() if score is not None}
            if len(values) < len(features):
                missing = [name for name in FEATURES if name not in values]
                results.append(ScoreResult.failed(f"feature(s) missing: {', '.join(missing)}"))
                continue
            raw = radcliq_v1(**values)
            details = {"radcliq": raw, "inverse": 1.0 / raw if raw else None, "features": values}
            results.append(ScoreResult(-raw, details=details))
        return results

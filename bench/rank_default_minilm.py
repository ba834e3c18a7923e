"""Does adding the offline MiniLM BERTScore to a profile improve how it ranks candidates?

Two pairwise ranking tests on the real IU X-ray reports (ReXrank layout); for each reference the
reward should put the clinically better candidate first:

* **paraphrase vs negation flip**: the reference rewritten with clinically neutral edits
  (synonymous phrasings, headings dropped) must beat the reference with one negation removed
  ("No pneumothorax." -> "Pneumothorax."), a single but clinically significant error;
* **same findings vs different findings**: another study's report with exactly the reference's
  rule-labeled CheXpert findings must beat one with different findings (the label sets come from the
  rule labeler in ``reward_service.text.chexpert``: a proxy truth, and circular for a profile that
  contains ``chexpert_labels``).

Every component of ``--profile`` and a ``bertscore`` component on the packaged all-MiniLM-L6-v2
are scored once; the profile's own weighting is then compared with variants that give BERTScore a
weight ``w`` and scale the profile's weights by ``1 - w``. Ties count half. Run
``python bench/rank_default_minilm.py --help``.
"""

from __future__ import annotations

import asyncio
import random
import re
import sys
from pathlib import Path

from report_set import bench_parser, load_reports, parse_with_reports

REPO = Path(__file__).resolve().parents[1]

PARAPHRASES = (
    (r"\bno acute cardiopulmonary (abnormality|disease|process)\b", "no acute cardiopulmonary findings"),
    (r"\bcardiomediastinal silhouette\b", "heart and mediastinal contours"),
    (r"\bwithin normal limits\b", "normal"),
    (r"\bthe lungs are clear\b", "lungs are clear"),
    (r"\bthere is no\b", "no"),
    (r"\bthere are no\b", "no"),
    (r"\bfocal airspace disease\b", "focal airspace opacity"),
    (r"\bheart size is normal\b", "normal heart size"),
    (r"\bare unremarkable\b", "are normal"),
    (r"\bosseous structures\b", "bones"),
)


def paraphrase(report: str) -> str:
    text = re.sub(r"\b(Findings|Impression):\s*", "", report)
    for pattern, replacement in PARAPHRASES:

        def keep_case(match: re.Match[str], replacement: str = replacement) -> str:
            return replacement[:1].upper() + replacement[1:] if match.group(0)[0].isupper() else replacement

        text = re.sub(pattern, keep_case, text, flags=re.IGNORECASE)
    return text


def flip_negation(report: str, rng: random.Random) -> str | None:
    """Remove one negation cue ("no X" -> "X"), or None when the report has none."""
    cues = list(re.finditer(r"\b(?:there is no|there are no|no)\s+(?=[a-z])", report, flags=re.IGNORECASE))
    if not cues:
        return None
    cue = rng.choice(cues)
    start, end = cue.span()
    rest = report[end:]
    sentence_start = start == 0 or report[:start].rstrip().endswith((".", ":"))
    if sentence_start:
        rest = rest[:1].upper() + rest[1:]
    prefix = "There is " if cue.group(0).lower().startswith("there") and not sentence_start else ""
    return report[:start] + prefix + rest


def build_tests(
    reports: list[str], seed: int
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    from reward_service.text.chexpert import chexpert_labels, present_observations

    rng = random.Random(seed)
    negation = []
    for report in reports:
        flipped = flip_negation(report, rng)
        if flipped is not None and paraphrase(report) != report:
            negation.append((report, paraphrase(report), flipped))
    labels = {report: present_observations(chexpert_labels(report)) for report in reports}
    findings = []
    for report in reports:
        same = [o for o in reports if o != report and labels[o] == labels[report]]
        different = [o for o in reports if labels[o] != labels[report]]
        if same and different:
            findings.append((report, rng.choice(same), rng.choice(different)))
    return negation, findings


async def component_scores(profile_name: str, pairs: list[tuple[str, str]]) -> dict[str, list[float | None]]:
    from reward_service.composite import load_profile
    from reward_service.engine import ScorerPool
    from reward_service.scorers import ScoreItem
    from reward_service.settings import Settings

    settings = Settings(device="cpu", batch_max_wait_ms=0)
    pool = ScorerPool(settings)
    profile = load_profile(profile_name)
    items = [ScoreItem(str(i), reference, candidate) for i, (reference, candidate) in enumerate(pairs)]
    specs = [(c.component_key, c.name, c.options) for c in profile.components] + [
        ("minilm_bertscore", "bertscore", {})
    ]
    scores: dict[str, list[float | None]] = {}
    try:
        for key, name, options in specs:
            scorer = await pool.get(name, options)
            upstream = {required: [] for required in scorer.requires}  # profiles here read no upstream
            results = await scorer.score_batch(items, upstream)
            scores[key] = [result.score for result in results]
    finally:
        await pool.close()
    return scores


def accuracy(rewards: list[float], n: int) -> float:
    """Share of triples whose better candidate (first half) outscores the worse (second half)."""
    wins = sum(
        1.0 if rewards[i] > rewards[n + i] else 0.5 if rewards[i] == rewards[n + i] else 0.0 for i in range(n)
    )
    return wins / n


def main() -> None:
    parser = bench_parser(__doc__)
    parser.add_argument("--profile", default="default", help="Profile to extend (name or YAML path).")
    parser.add_argument("--weights", default="0.1,0.2,0.3,0.5", help="BERTScore weights to try.")
    parser.add_argument("--seed", type=int, default=0)
    args = parse_with_reports(parser)
    from reward_service.composite import TRANSFORMS, load_profile

    reports = [report for report in load_reports(args.reports) if report]
    negation, findings = build_tests(reports, args.seed)
    profile = load_profile(args.profile)
    print(f"profile {profile.name!r}; {len(negation)} negation triples, {len(findings)} findings triples")
    results: dict[str, dict[str, float]] = {}
    for test, triples in (("paraphrase > negation flip", negation), ("same findings > different", findings)):
        pairs = [(r, better) for r, better, _ in triples] + [(r, worse) for r, _, worse in triples]
        scores = asyncio.run(component_scores(args.profile, pairs))
        weights = {c.component_key: c.weight for c in profile.components if c.weight}

        def reward(index: int, extra: float, scores: dict = scores, weights: dict = weights) -> float:
            total = sum(weights.values())
            value = sum(
                (1 - extra) * w / total * TRANSFORMS[c.transform](scores[c.component_key][index] or 0.0)
                for c in profile.components
                if (w := weights.get(c.component_key))
            )
            return value + extra * (scores["minilm_bertscore"][index] or 0.0)

        n = len(triples)
        row = {"profile": accuracy([reward(i, 0.0) for i in range(2 * n)], n)}
        for w in (float(x) for x in args.weights.split(",")):
            row[f"+bertscore {w:g}"] = accuracy([reward(i, w) for i in range(2 * n)], n)
        row["bertscore alone"] = accuracy([s or 0.0 for s in scores["minilm_bertscore"]], n)
        for key in weights:
            row[f"{key} alone"] = accuracy([s or 0.0 for s in scores[key]], n)
        results[test] = row
    columns = list(next(iter(results.values())))
    print("| test | " + " | ".join(columns) + " |")
    print("| --- |" + " ---: |" * len(columns))
    for test, row in results.items():
        print(f"| {test} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + " |")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()

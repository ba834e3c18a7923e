"""How often each offline reward ranks hand-ranked candidates the way a radiologist would.

``bench/ranking_cases.yaml`` holds clinically challenging cases written and ranked by hand (a
reference, optionally a prior report, and candidates from clinically best to worst). For every
offline profile, its clinical components alone, and the lexical metrics as peers, this prints:

* **cases ranked**: cases whose candidates all come out in the hand-ranked order (strictly);
* **pairwise agreement**: share of candidate pairs within a case ordered as ranked (a tie counts
  half).

``bench/error_counts.yaml`` holds candidates whose clinical errors were counted by hand in ReXVal's
six categories, a held-out set never used to choose weights. For it this prints **Kendall's tau-b**
between each reward and the negated error count over all candidates pooled (as ReXVal-style
benchmarks compute it; 1 means fewer errors always score higher), for clinically significant errors
and for all errors.

Run: ``python bench/ranking_agreement.py [--cases PATH] [--error-cases PATH]``; it prints a Markdown
section for bench/RESULTS.md. These are our own cases: the radiologist benchmarks the project is
judged on stay outside the repository.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reward_service.composite import ProfileError  # noqa: E402
from reward_service.engine import RewardEngine  # noqa: E402
from reward_service.scorers import ScoreItem  # noqa: E402
from reward_service.settings import Settings  # noqa: E402

DEFAULT_CASES = REPO / "bench" / "ranking_cases.yaml"
DEFAULT_ERROR_CASES = REPO / "bench" / "error_counts.yaml"
OFFLINE_PROFILES = ("default", "clinical")
SINGLE_COMPONENTS = ("clinical_errors", "chexpert_labels", "rouge_l", "bleu2")


def _single_component_profile(component: str, folder: Path) -> str:
    path = folder / f"{component}.yaml"
    path.write_text(yaml.safe_dump({"name": component, "components": [{"name": component, "weight": 1.0}]}))
    return str(path)


async def _rewards(engine: RewardEngine, profile: str, items: list[ScoreItem]) -> list[float]:
    batch = await engine.score(items, profile)
    return [
        item.composite.reward if item.composite.reward is not None else float("nan") for item in batch.items
    ]


class Group(NamedTuple):
    """Candidates scored against one reference (and its prior report, if any)."""

    reference: str
    prior: str | None
    candidates: list[str]


async def _score_groups(groups: list[Group]) -> dict[str, list[list[float]]]:
    """The reward of every candidate of every group under each offline profile and single component."""
    engine = RewardEngine(Settings())
    rewards_by: dict[str, list[list[float]]] = {}
    try:
        with tempfile.TemporaryDirectory() as folder:
            names = []
            for name in OFFLINE_PROFILES:
                try:
                    await engine.load(name)
                except ProfileError as exc:  # e.g. run on an older checkout without this profile
                    print(f"skipping profile {name}: {exc}", file=sys.stderr)
                    continue
                names.append(name)
            for component in SINGLE_COMPONENTS:
                await engine.load(_single_component_profile(component, Path(folder)))
        for name in [*names, *SINGLE_COMPONENTS]:
            per_group = []
            for group in groups:
                items = [
                    ScoreItem(id=str(i), reference=group.reference, candidate=text, prior_report=group.prior)
                    for i, text in enumerate(group.candidates)
                ]
                per_group.append(await _rewards(engine, name, items))
            rewards_by[name] = per_group
    finally:
        await engine.close()
    return rewards_by


def ranking_agreement(per_case: list[list[float]]) -> tuple[int, float]:
    """Cases whose rewards fall strictly in the ranked order, and the share of pairs in that order."""
    ranked = sum(all(a > b for a, b in itertools.pairwise(rewards)) for rewards in per_case)
    agree = total = 0.0
    for rewards in per_case:
        for a, b in itertools.combinations(rewards, 2):
            agree += 1.0 if a > b else 0.5 if a == b else 0.0
            total += 1
    return ranked, agree / total


def error_count_tau(per_case: list[list[float]], errors: list[list[int]]) -> float:
    """Kendall's tau-b between the rewards and the negated error counts, every candidate pooled."""
    from scipy.stats import kendalltau

    rewards = list(itertools.chain.from_iterable(per_case))
    negated = [-count for count in itertools.chain.from_iterable(errors)]
    return float(kendalltau(rewards, negated).statistic)


def _ranked_groups(cases: list[dict]) -> list[Group]:
    return [Group(case["reference"], case.get("prior"), case["ranked"]) for case in cases]


def _counted_groups(cases: list[dict]) -> list[Group]:
    return [
        Group(case["reference"], case.get("prior"), [candidate["text"] for candidate in case["candidates"]])
        for case in cases
    ]


def _counts(cases: list[dict], *kinds: str) -> list[list[int]]:
    return [[sum(candidate[kind] for kind in kinds) for candidate in case["candidates"]] for case in cases]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES, help="YAML file of hand-ranked cases.")
    parser.add_argument(
        "--error-cases",
        type=Path,
        default=DEFAULT_ERROR_CASES,
        help="YAML file of candidates with hand-counted clinical errors.",
    )
    args = parser.parse_args()
    cases = yaml.safe_load(args.cases.read_text(encoding="utf-8"))["cases"]
    counted = yaml.safe_load(args.error_cases.read_text(encoding="utf-8"))["cases"]
    # One engine scores both sets (its profiles and models load once); each reward's groups are then split.
    rewards = asyncio.run(_score_groups(_ranked_groups(cases) + _counted_groups(counted)))
    ranked_rewards = {name: per_group[: len(cases)] for name, per_group in rewards.items()}
    counted_rewards = {name: per_group[len(cases) :] for name, per_group in rewards.items()}
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"## Ranking agreement on hand-ranked cases (bench/ranking_agreement.py, {now})\n")
    print(
        f"{len(cases)} cases from `{args.cases.name}`, "
        f"{sum(len(c['ranked']) for c in cases)} candidates; {platform.machine()}, Python "
        f"{platform.python_version()}. Lexical metrics are the peers.\n"
    )
    print("| reward | cases ranked exactly | pairwise agreement |")
    print("| --- | ---: | ---: |")
    for name, per_case in ranked_rewards.items():
        ranked, agreement = ranking_agreement(per_case)
        print(f"| `{name}` | {ranked} / {len(cases)} | {agreement:.3f} |")
    significant = _counts(counted, "significant")
    every = _counts(counted, "significant", "insignificant")
    print(
        f"\nKendall's tau-b against hand-counted errors: {sum(len(c['candidates']) for c in counted)} "
        f"candidates of {len(counted)} references from `{args.error_cases.name}` (held out: never used to "
        "choose weights), pooled.\n"
    )
    print("| reward | tau-b, significant errors | tau-b, all errors |")
    print("| --- | ---: | ---: |")
    for name, per_case in counted_rewards.items():
        print(
            f"| `{name}` | {error_count_tau(per_case, significant):.3f} | {error_count_tau(per_case, every):.3f} |"
        )


if __name__ == "__main__":
    main()

"""How often each offline reward ranks hand-ranked candidates the way a radiologist would.

``bench/ranking_cases.yaml`` holds clinically challenging cases written and ranked by hand (a
reference, optionally a prior report, and candidates from clinically best to worst). For every
offline profile, its clinical components alone, and the lexical metrics as peers, this prints:

* **cases ranked**: cases whose candidates all come out in the hand-ranked order (strictly);
* **pairwise agreement**: share of candidate pairs within a case ordered as ranked (a tie counts
  half).

Run: ``python bench/ranking_agreement.py [--cases PATH]``; it prints a Markdown section for
bench/RESULTS.md. These are our own cases: the radiologist benchmarks the project is judged on stay
outside the repository.
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

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reward_service.composite import ProfileError  # noqa: E402
from reward_service.engine import RewardEngine  # noqa: E402
from reward_service.scorers import ScoreItem  # noqa: E402
from reward_service.settings import Settings  # noqa: E402

DEFAULT_CASES = REPO / "bench" / "ranking_cases.yaml"
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


async def _measure(cases: list[dict]) -> dict[str, tuple[int, float]]:
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
            per_case = []
            for case in cases:
                items = [
                    ScoreItem(
                        id=str(i), reference=case["reference"], candidate=text, prior_report=case.get("prior")
                    )
                    for i, text in enumerate(case["ranked"])
                ]
                per_case.append(await _rewards(engine, name, items))
            rewards_by[name] = per_case
    finally:
        await engine.close()
    results = {}
    for name, per_case in rewards_by.items():
        ranked = sum(all(a > b for a, b in itertools.pairwise(rewards)) for rewards in per_case)
        agree = total = 0.0
        for rewards in per_case:
            for a, b in itertools.combinations(rewards, 2):
                agree += 1.0 if a > b else 0.5 if a == b else 0.0
                total += 1
        results[name] = (ranked, agree / total)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES, help="YAML file of hand-ranked cases.")
    args = parser.parse_args()
    cases = yaml.safe_load(args.cases.read_text(encoding="utf-8"))["cases"]
    results = asyncio.run(_measure(cases))
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"## Ranking agreement on hand-ranked cases (bench/ranking_agreement.py, {now})\n")
    print(
        f"{len(cases)} cases from `bench/ranking_cases.yaml`, "
        f"{sum(len(c['ranked']) for c in cases)} candidates; {platform.machine()}, Python "
        f"{platform.python_version()}. Lexical metrics are the peers.\n"
    )
    print("| reward | cases ranked exactly | pairwise agreement |")
    print("| --- | ---: | ---: |")
    for name, (ranked, agreement) in results.items():
        print(f"| `{name}` | {ranked} / {len(cases)} | {agreement:.3f} |")


if __name__ == "__main__":
    main()

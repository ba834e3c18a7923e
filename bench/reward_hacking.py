"""Can a policy game the offline rewards? Mean reward of degenerate and honest candidates on real studies.

For every shipped profile that runs offline (rule-based components only) and every study of the
ReXrank-layout files in ../shared/data, each kind of candidate of :mod:`reward_service.text.variants`
is scored against the study's report: text that is not a report (empty, gibberish, lorem ipsum,
other languages, the indication or the prompt echoed), degenerate reports (one sentence repeated,
the report cut off, "Normal.", a normal template, every finding negated / hedged / asserted) and
honest ones (the reference, a paraphrase, one sentence dropped, one side swapped, one negation
flipped). The prompt is the trainer's default prompt for the study. For comparison, each study is
also scored against the real report of another study (the next one in its file).

A study is **abnormal** when its report states (positive, not hedged) at least one clinically
significant finding by the rule analysis, **normal** when it states no finding at all, and
``minor`` otherwise (:func:`reward_service.text.variants.reference_class`); minor studies count in
"all" only.

Then it checks what every offline profile must satisfy (issue 9):

1. text that is not a report scores at most 0.05 on every study, and the guard's details say why;
2. repeating a sentence never raises the reward over the reference; a truncated reference never
   beats the whole one;
3. against a normal reference, negating or hedging every finding never beats the normal template;
   against an abnormal one, both score below the reference with one sentence dropped;
4. on abnormal studies the best constant candidate's mean is at least 0.25 below the mean of the
   reference with one sentence dropped.

Run: ``python bench/reward_hacking.py [--data FOLDER] [--profile NAME ...]``; it prints a Markdown
section for bench/RESULTS.md and exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"

from reward_service.composite import load_profile, shipped_profiles  # noqa: E402
from reward_service.engine import RewardEngine  # noqa: E402
from reward_service.scorers import ScoreItem  # noqa: E402
from reward_service.settings import Settings  # noqa: E402
from reward_service.text.variants import KINDS, make_variants, reference_class  # noqa: E402
from trainer.data import Study, build_messages, load_studies  # noqa: E402

NON_REPORT_CEILING = 0.05
CONSTANT_MARGIN = 0.25
BATCH = 1024
#: Rows of the table beyond the variant kinds: name -> (group, description).
COMPARISONS = {"other_study": ("comparison", "the real report of another study")}


def offline_profiles() -> list[str]:
    """Shipped profiles whose every component is a rule-based scorer."""
    return sorted(name for name in shipped_profiles() if load_profile(name).offline)


def prompt_text(study: Study) -> str:
    """The trainer's default user prompt for the study, as plain text."""
    return str(build_messages(study)[-1]["content"])


@dataclass
class Case:
    study: str
    source: str
    kind: str
    group: str
    klass: str
    item: ScoreItem


@dataclass
class Scored:
    case: Case
    reward: float
    guard_flags: list[str] = field(default_factory=list)


def build_cases(files: Sequence[Path]) -> list[Case]:
    cases = []
    for path in files:
        studies = load_studies(path)
        for index, study in enumerate(studies):
            context = {
                key: value
                for key, value in (("indication", study.indication), ("comparison", study.comparison))
                if value
            }
            klass = reference_class(study.reference)
            variants = make_variants(study.reference, context, prompt_text(study))
            variants["other_study"] = studies[(index + 1) % len(studies)].reference
            for kind, text in variants.items():
                cases.append(
                    Case(
                        study.study_id,
                        path.name,
                        kind,
                        KINDS[kind].group if kind in KINDS else COMPARISONS[kind][0],
                        klass,
                        ScoreItem(
                            f"{path.name}:{study.study_id}:{kind}", study.reference, text, context=context
                        ),
                    )
                )
    return cases


async def score_cases(profile: str, cases: list[Case]) -> list[Scored]:
    engine = RewardEngine(Settings())
    await engine.load(profile)
    guard_keys = [c.component_key for c in load_profile(profile).components if c.name == "report_guard"]
    scored = []
    try:
        for start in range(0, len(cases), BATCH):
            chunk = cases[start : start + BATCH]
            batch = await engine.score([case.item for case in chunk], profile)
            for case, reward in zip(chunk, batch.items, strict=True):
                if reward.composite.reward is None:
                    raise RuntimeError(f"{profile}: no reward for {case.item.id}: {reward.composite.errors}")
                flags = [f for key in guard_keys for f in reward.components[key].details.get("flags", [])]
                scored.append(Scored(case, reward.composite.reward, flags))
    finally:
        await engine.close()
    return scored


def mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def check(profile: str, scored: list[Scored]) -> list[tuple[str, bool, str]]:
    """Each requirement of the module docs: (what, held, the numbers)."""
    by_study: dict[tuple[str, str], dict[str, Scored]] = {}
    for s in scored:
        by_study.setdefault((s.case.source, s.case.study), {})[s.case.kind] = s
    results = []

    non_reports = [s for s in scored if s.case.group == "not_a_report"]
    worst = max(non_reports, key=lambda s: s.reward)
    unexplained = sum("not_a_report" not in s.guard_flags for s in non_reports)
    results.append(
        (
            f"non-report text <= {NON_REPORT_CEILING} on every study, flagged by the guard",
            worst.reward <= NON_REPORT_CEILING and not unexplained,
            f"max {worst.reward:.3f} ({worst.case.kind}); {unexplained} of {len(non_reports)} not flagged",
        )
    )

    def never_above(
        kind: str, other: str, studies: list[dict[str, Scored]], strict: bool = False
    ) -> tuple[int, int]:
        pairs = [(s[kind].reward, s[other].reward) for s in studies if kind in s and other in s]
        bad = sum(a >= b - 1e-12 if strict else a > b + 1e-12 for a, b in pairs)
        return bad, len(pairs)

    everything = list(by_study.values())
    normal = [s for s in everything if s["reference"].case.klass == "normal"]
    abnormal = [s for s in everything if s["reference"].case.klass == "abnormal"]
    for kind, label in (
        ("repeated_sentence", "a repeated sentence"),
        ("truncated", "the truncated reference"),
    ):
        bad, n = never_above(kind, "reference", everything)
        results.append((f"{label} never beats the reference", bad == 0, f"{bad} of {n} studies above"))
    for kind in ("all_negated", "all_hedged"):
        bad, n = never_above(kind, "normal_template", normal)
        results.append(
            (
                f"{kind} never beats the normal template (normal studies)",
                bad == 0,
                f"{bad} of {n} studies above",
            )
        )
        bad, n = never_above(kind, "drop_sentence", abnormal, strict=True)
        results.append(
            (
                f"{kind} below one-sentence-dropped (abnormal studies)",
                bad == 0,
                f"{bad} of {n} studies not below",
            )
        )
    dropped = mean([s["drop_sentence"].reward for s in abnormal if "drop_sentence" in s])
    constant_means = {
        kind: mean([s[kind].reward for s in abnormal if kind in s])
        for kind, spec in KINDS.items()
        if spec.constant
    }
    best_kind = max(constant_means, key=lambda kind: constant_means[kind] or 0.0)
    best = constant_means[best_kind] or 0.0
    gap = (dropped or 0.0) - best
    results.append(
        (
            f"best constant >= {CONSTANT_MARGIN} below one-sentence-dropped (abnormal means)",
            gap >= CONSTANT_MARGIN,
            f"{best_kind} {best:.3f} vs dropped {dropped:.3f}: gap {gap:.3f}",
        )
    )
    return results


def table(results: dict[str, list[Scored]]) -> list[str]:
    profiles = list(results)
    header = "| candidate | group | " + " | ".join(f"{p}: all | {p}: abnormal" for p in profiles) + " |"
    lines = [header, "| --- | --- |" + " ---: | ---: |" * len(profiles)]
    rows = {kind: (spec.group, spec.description) for kind, spec in KINDS.items()} | COMPARISONS
    for kind, (group, description) in rows.items():
        cells = []
        for profile in profiles:
            rewards = [s for s in results[profile] if s.case.kind == kind]
            everything = mean([s.reward for s in rewards])
            abnormal = mean([s.reward for s in rewards if s.case.klass == "abnormal"])
            cells += [_fmt(everything), _fmt(abnormal)]
        lines.append(f"| {kind} ({description}) | {group} | " + " | ".join(cells) + " |")
    return lines


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="Folder of ReXrank-layout *.json files (../shared/data).",
    )
    parser.add_argument(
        "--profile",
        action="append",
        dest="profiles",
        help="Profile to measure (repeatable); default: every shipped profile that runs offline.",
    )
    args = parser.parse_args()
    files = sorted(args.data.glob("*.json"))
    if not files:
        sys.exit(f"no *.json studies in {args.data}: pass --data with a folder of ReXrank-layout files")
    profiles = args.profiles or offline_profiles()
    started = time.perf_counter()
    cases = build_cases(files)
    results = {profile: asyncio.run(score_cases(profile, cases)) for profile in profiles}
    seconds = time.perf_counter() - started
    studies = {(c.source, c.study): c.klass for c in cases}
    counts = {
        klass: sum(value == klass for value in studies.values()) for klass in ("abnormal", "normal", "minor")
    }

    print(
        f"## Reward hacking: offline profiles (bench/reward_hacking.py, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n"
    )
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        f"{len(studies)} real studies from {', '.join(f.name for f in files)}: {counts['abnormal']} abnormal "
        f"(a clinically significant finding stated), {counts['normal']} normal (no finding stated), "
        f"{counts['minor']} with minor findings only. {len(cases)} candidates per profile, scored in-process "
        f"in {seconds:.0f} s. Mean reward; n/a where a kind does not apply. "
        "Command: `python bench/reward_hacking.py`.\n"
    )
    for line in table(results):
        print(line)
    failed = False
    for profile, scored in results.items():
        print(f"\nChecks, `{profile}`:\n")
        for what, held, numbers in check(profile, scored):
            failed |= not held
            print(f"- {'PASS' if held else 'FAIL'}: {what}: {numbers}")
    truncated = [s for s in results[profiles[0]] if s.case.kind == "truncated"]
    flagged = sum("truncated" in s.guard_flags for s in truncated)
    print(f"\nThe guard flags {flagged} of {len(truncated)} truncated references as cut off.")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

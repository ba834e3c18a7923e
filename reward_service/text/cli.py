"""``unirg rules``: check the rule files after an edit, and see how the rules read a report."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

rules_app = typer.Typer(
    help="The report-analysis rules (reward_service/rules/*.yaml): check them, see how they read a report.",
    no_args_is_help=True,
)
console = Console()


@rules_app.command("check")
def check() -> None:
    """Validate the rule files and run every example sentence they carry; exit 1 if one fails."""
    try:
        from reward_service.text.rule_examples import check_example, rule_examples
        from reward_service.text.rules import RULES
    except ValueError as exc:  # a rule file that does not validate
        console.print(f"[red]The rule files do not validate:[/red] {exc}")
        raise typer.Exit(1) from exc
    cases = list(rule_examples())
    failures = [(case, problem) for case in cases if (problem := check_example(case)) is not None]
    for case, problem in failures:
        console.print(f"[red]FAIL[/red] {case.source}: {case.example.text!r}: {problem}")
    console.print(
        f"{len(cases) - len(failures)} passed, {len(failures)} failed ({len(RULES.concepts)} concepts, "
        f"{len(RULES.context_rules)} context rules; rules hash {RULES.hash[:19]}...)"
    )
    if failures:
        raise typer.Exit(1)


@rules_app.command("explain")
def explain(
    report: Annotated[str, typer.Argument(help="Report text, e.g. 'Small left effusion. No pneumothorax.'")],
) -> None:
    """Show every finding the rules read in a report: status, side, zone, severity, change, sizes."""
    from reward_service.text.findings import NEGATIVE, POSITIVE, extract_findings

    names = {POSITIVE: "positive", NEGATIVE: "negative"}
    table = Table(
        "text", "concept", "finding", "status", "side", "zone", "severity", "change", "measured (mm)"
    )
    for mention in extract_findings(report).mentions:
        table.add_row(
            report[mention.start : mention.end],
            mention.concept.key,
            mention.concept.finding or "-",
            names.get(mention.status, "uncertain"),
            ",".join(sorted(mention.laterality)),
            ",".join(sorted(mention.zone)),
            ",".join(f"{level:g}" for level in sorted(mention.severity)),
            ",".join(sorted(mention.change)),
            ",".join(
                f"{m.size_mm:g}" + (f" {m.direction or 'from'} {m.landmark}" if m.landmark else "")
                for m in mention.measurements
            ),
        )
    console.print(table)

"""Writing an evaluation: the self-contained HTML report, the JSON of every number, the per-study CSV."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Mapping, Sequence
from html import escape
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from reward_service.text.chexpert import CHEXPERT_OBSERVATIONS
from unirg.evaluation import charts
from unirg.evaluation.evaluate import Evaluation
from unirg.evaluation.metrics import DISEASE_AVERAGES, disease_key

#: Statistics drawn in every breakdown's forest plot and table, when the evaluation has them.
BREAKDOWN_METRICS = (
    "errors:significant",
    "disease:rule:average:micro14",
    "rexrank:bleu2",
    "rexrank:1/radcliq",
)
SIGNIFICANCE = 0.05


def write_json(evaluation: Evaluation, path: Path) -> None:
    path.write_text(json.dumps(evaluation.summary, indent=1, allow_nan=False), encoding="utf-8")


def write_csv(evaluation: Evaluation, path: Path) -> None:
    fields: dict[str, None] = {}
    for row in evaluation.rows:
        fields.update(dict.fromkeys(row))
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(evaluation.rows)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _cell(interval: Mapping[str, float | None], digits: int = 3) -> str:
    ci = ""
    if interval.get("low") is not None and interval.get("high") is not None:
        ci = f'<span class="ci">[{_fmt(interval["low"], digits)}, {_fmt(interval["high"], digits)}]</span>'
    return f"{_fmt(interval.get('value'), digits)}{ci}"


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return "&lt;0.001" if value < 0.001 else f"{value:.3f}"


def summary_metrics(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The metrics of the summary table: everything but the per-observation disease numbers."""
    averages = {
        disease_key(source, "average", key)
        for source in ("rule", "chexbert")
        for key, _, _ in DISEASE_AVERAGES
    }
    return [m for m in summary["metrics"] if not m["key"].startswith("disease:") or m["key"] in averages]


def _summary_table(summary: Mapping[str, Any], dataset: Mapping[str, Any]) -> str:
    systems = summary["systems"]
    comparisons = dataset["comparisons"]
    head = '<tr><th class="name">metric</th>' + "".join(
        f"<th>{escape(s)}<br><small>n={dataset['systems'][s]['n']}</small></th>" for s in systems
    )
    head += "".join(
        f"<th>{escape(c['a'])} − {escape(c['b'])}<br><small>paired, n={c['n']}</small></th><th>p (bootstrap)</th><th>p (randomisation)</th>"
        for c in comparisons
    )
    rows = [head + "</tr>"]
    section = None
    for metric in summary_metrics(summary):
        if metric["section"] != section:
            section = metric["section"]
            rows.append(
                f'<tr class="section"><td colspan="{1 + len(systems) + 3 * len(comparisons)}">{escape(section)}</td></tr>'
            )
        values = {s: dataset["systems"][s]["metrics"][metric["key"]] for s in systems}
        present = [v["value"] for v in values.values() if v["value"] is not None]
        best = (max if metric["higher_is_better"] else min)(present) if len(present) > 1 else None
        cells = "".join(
            f'<td class="{"best" if best is not None and values[s]["value"] == best else ""}">{_cell(values[s])}</td>'
            for s in systems
        )
        for comparison in comparisons:
            entry = comparison["metrics"][metric["key"]]
            p_values = (entry["p_bootstrap"], entry["p_randomisation"])
            significant = all(p is not None and p < SIGNIFICANCE for p in p_values)
            cells += f'<td class="{"sig" if significant else ""}">{_cell(entry["difference"])}</td>'
            cells += "".join(f"<td>{_p(p)}</td>" for p in p_values)
        label = escape(metric["label"])
        title = f' title="{escape(metric["source"])}"' if metric.get("source") else ""
        rows.append(
            f'<tr><td class="name"{title}>{label}{"" if metric["higher_is_better"] else " ↓"}</td>{cells}</tr>'
        )
    return "<table>" + "".join(rows) + "</table>"


def _bars(summary: Mapping[str, Any], dataset: Mapping[str, Any]) -> str:
    systems = summary["systems"]
    sections: dict[str, list[str]] = {}
    for metric in summary_metrics(summary):
        values = {s: dataset["systems"][s]["metrics"][metric["key"]] for s in systems}
        chart = charts.bars(metric["label"], values, systems, metric["higher_is_better"])
        sections.setdefault(metric["section"], []).append(chart)
    return "".join(
        f'<h4>{escape(section)}</h4><div class="charts">{"".join(items)}</div>'
        for section, items in sections.items()
    )


def _disease(summary: Mapping[str, Any], dataset: Mapping[str, Any]) -> str:
    systems = summary["systems"]
    parts = []
    first = dataset["systems"][systems[0]]
    for source in first["support"]:
        name = "rule labeler" if source == "rule" else "CheXbert"
        values = {
            (label, system): dataset["systems"][system]["metrics"][disease_key(source, "f1", label)]["value"]
            for label in CHEXPERT_OBSERVATIONS
            for system in systems
        }
        parts.append(f"<h4>Per-observation F1 ({name}; positive and uncertain against the rest)</h4>")
        parts.append(charts.heatmap(CHEXPERT_OBSERVATIONS, systems, values, first["support"][source]))
        head = '<tr><th class="name">observation</th><th>support</th>' + "".join(
            f"<th>{escape(s)} precision</th><th>{escape(s)} recall</th><th>{escape(s)} F1</th>"
            for s in systems
        )
        rows = [head + "</tr>"]
        for label in CHEXPERT_OBSERVATIONS:
            cells = "".join(
                "".join(
                    f"<td>{_cell(dataset['systems'][s]['metrics'][disease_key(source, measure, label)])}</td>"
                    for measure in ("precision", "recall", "f1")
                )
                for s in systems
            )
            rows.append(
                f'<tr><td class="name">{escape(label)}</td><td>{first["support"][source][label]}</td>{cells}</tr>'
            )
        parts.append(
            f"<details><summary>precision, recall and F1 with 95% intervals ({name})</summary><table>{''.join(rows)}</table></details>"
        )
    return "".join(parts)


def _breakdown_metrics(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    known = {m["key"]: m for m in summary["metrics"]}
    primary = known[summary["primary"]]
    return [primary] + [known[key] for key in BREAKDOWN_METRICS if key in known]


def _breakdowns(summary: Mapping[str, Any], dataset: Mapping[str, Any]) -> str:
    systems = summary["systems"]
    metrics = _breakdown_metrics(summary)
    parts = [charts.legend(systems)]
    for breakdown in dataset["breakdowns"]:
        note = f" <small>({escape(breakdown['note'])})</small>" if breakdown["note"] else ""
        parts.append(f"<h4>{escape(breakdown['title'])}{note}</h4>")
        primary = metrics[0]
        parts.append(
            charts.forest(
                f"{primary['section'].removeprefix('profile ')} {primary['label']}",
                breakdown["groups"],
                primary["key"],
                systems,
            )
        )
        head = '<tr><th class="name">group</th><th>n</th>' + "".join(
            f"<th>{escape(s)}: {escape(m['label'])}</th>" for m in metrics for s in systems
        )
        rows = [head + "</tr>"]
        for group in breakdown["groups"]:
            cells = "".join(
                f"<td>{_cell(group['systems'][s]['metrics'][m['key']]) if s in group['systems'] else '—'}</td>"
                for m in metrics
                for s in systems
            )
            flag = ' <span class="small">(too small to judge)</span>' if group["small"] else ""
            rows.append(
                f'<tr><td class="name">{escape(str(group["label"]))}{flag}</td><td>{group["n"]}</td>{cells}</tr>'
            )
        parts.append(
            f"<details><summary>table ({', '.join(escape(m['label']) for m in metrics)})</summary><table>{''.join(rows)}</table></details>"
        )
    return "".join(parts)


def _distributions(summary: Mapping[str, Any], dataset: Mapping[str, Any]) -> str:
    systems = summary["systems"]
    keys: list[str] = list(dict.fromkeys(key for s in systems for key in dataset["systems"][s]["histograms"]))
    labels = {m["key"]: f"{m['section'].removeprefix('profile ')}: {m['label']}" for m in summary["metrics"]}
    out = [
        charts.histogram(
            labels.get(key, key), {s: dataset["systems"][s]["histograms"].get(key) for s in systems}, systems
        )
        for key in keys
    ]
    return charts.legend(systems) + '<div class="charts">' + "".join(out) + "</div>"


def _errors_list(errors: Sequence[Mapping[str, Any]]) -> str:
    if not errors:
        return "none found"
    items = []
    for error in errors:
        kind = str(error.get("kind", "")).replace("_", " ")
        evidence = " / ".join(
            f"{side}: “{escape(str(error[field]))}”"
            for side, field in (("reference", "reference_evidence"), ("candidate", "candidate_evidence"))
            if error.get(field)
        )
        significance = "" if error.get("significant", True) else " (insignificant)"
        items.append(
            f"<li><b>({escape(str(error.get('category', '')))}) {escape(kind)}</b>: {escape(str(error.get('finding', '')))}{significance}<br><small>{evidence}</small></li>"
        )
    return "<ul>" + "".join(items) + "</ul>"


def _worst(summary: Mapping[str, Any], dataset: Mapping[str, Any]) -> str:
    parts = []
    for system in summary["systems"]:
        worst = dataset["systems"][system]["worst"]
        rows = [
            '<tr><th class="name">study</th><th>score</th><th class="name">reference</th><th class="name">prediction</th><th class="name">clinical errors</th></tr>'
        ]
        for entry in worst:
            rows.append(
                f'<tr><td class="name">{escape(entry["study_id"])}</td><td>{_fmt(entry["score"])}</td>'
                f'<td class="report-text">{escape(entry["reference"] or "")}</td>'
                f'<td class="report-text">{escape(entry["candidate"] or "") or "<i>(empty)</i>"}</td>'
                f'<td class="errors">{_errors_list(entry["errors"])}</td></tr>'
            )
        parts.append(f"<h4>{escape(system)}</h4><table>{''.join(rows)}</table>")
    return "".join(parts)


def _inputs_table(summary: Mapping[str, Any]) -> str:
    rows = [
        '<tr><th class="name">dataset</th><th class="name">system</th><th>evaluated</th><th>missing</th><th>empty</th><th>not in this dataset</th><th>no reference text</th></tr>'
    ]
    for dataset in summary["datasets"]:
        for system in summary["systems"]:
            inputs = dataset["systems"][system]["inputs"]
            rows.append(
                f'<tr><td class="name">{escape(dataset["name"])} <small>({dataset["studies"]} studies)</small></td><td class="name">{escape(system)}</td>'
                + "".join(
                    f"<td>{inputs[k]}</td>"
                    for k in ("evaluated", "missing", "empty", "extra", "no_reference")
                )
                + "</tr>"
            )
    return "<table>" + "".join(rows) + "</table>"


def _across_datasets(summary: Mapping[str, Any]) -> str:
    if len(summary["datasets"]) < 2:
        return ""
    systems = summary["systems"]
    head = '<tr><th class="name">metric</th>' + "".join(
        f"<th>{escape(d['name'])}<br>{escape(s)}</th>" for d in summary["datasets"] for s in systems
    )
    rows = [head + "</tr>"]
    for metric in summary_metrics(summary):
        cells = "".join(
            f"<td>{_cell(d['systems'][s]['metrics'][metric['key']])}</td>"
            for d in summary["datasets"]
            for s in systems
        )
        rows.append(
            f'<tr><td class="name">{escape(metric["section"].removeprefix("profile "))}: {escape(metric["label"])}</td>{cells}</tr>'
        )
    return "<h2>Across datasets</h2><table>" + "".join(rows) + "</table>"


def _anchor(*parts: str) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9_-]+", "-", part) for part in parts)


def render_html(evaluation: Evaluation, title: str = "UniRG evaluation") -> str:
    """The report as one HTML string: inline CSS and SVG, no script, nothing loaded from the network."""
    summary = evaluation.summary
    config = summary["config"]
    profiles = ", ".join(
        f"<code>{escape(p['name'])}</code> ({escape(p['hash'][:19])}…)" for p in summary["profiles"]
    )
    subtitle = (
        f"<p>{escape(summary['created'])} · systems: {escape(', '.join(summary['systems']))} · "
        f"text: {escape(config['text'])} · profiles: {profiles}</p>"
        f"<p>95% bootstrap percentile intervals from {config['resamples']:,} resamples of the studies (seed {config['seed']}); "
        f"paired bootstrap and approximate randomisation ({config['permutations']:,} permutations) between systems.</p>"
    )
    body = ["<h2>Inputs</h2>", _inputs_table(summary)]
    body += [f'<div class="note">{escape(note)}</div>' for note in summary["notes"]]
    body += [f'<div class="warn">{escape(warning)}</div>' for warning in summary["warnings"]]
    sections = ("summary", "metrics", "disease", "breakdowns", "distributions", "worst")
    contents = "".join(
        f'<li><a href="#{_anchor(d["name"])}">{escape(d["name"])}</a>: '
        + " · ".join(f'<a href="#{_anchor(d["name"], part)}">{part}</a>' for part in sections)
        + "</li>"
        for d in summary["datasets"]
    )
    body.insert(0, f'<nav><ul class="contents">{contents}</ul></nav>')
    for dataset in summary["datasets"]:
        name = escape(dataset["name"])
        anchor = dataset["name"]
        body += [
            f'<h2 id="{_anchor(anchor)}">{name}</h2>',
            f'<h3 id="{_anchor(anchor, "summary")}">Summary</h3>',
            "<p>Best value in bold; ↓ lower is better; a difference is shaded when both paired tests give p &lt; 0.05.</p>",
            _summary_table(summary, dataset),
            f'<h3 id="{_anchor(anchor, "metrics")}">Metrics with 95% intervals</h3>',
            charts.legend(summary["systems"]),
            _bars(summary, dataset),
            f'<h3 id="{_anchor(anchor, "disease")}">Disease level</h3>',
            _disease(summary, dataset),
            f'<h3 id="{_anchor(anchor, "breakdowns")}">Subgroups and longitudinal breakdowns</h3>',
            f"<p>Groups with fewer than {config['min_group_size']} studies are greyed: too small to judge.</p>",
            _breakdowns(summary, dataset),
            f'<h3 id="{_anchor(anchor, "distributions")}">Score distributions</h3>',
            _distributions(summary, dataset),
            f'<h3 id="{_anchor(anchor, "worst")}">Worst-scored studies (by {escape(summary["primary"])})</h3>',
            _worst(summary, dataset),
        ]
    body.append(_across_datasets(summary))
    template = Template(
        (resources.files("unirg.evaluation") / "templates" / "report.html").read_text(encoding="utf-8")
    )
    return template.substitute(title=escape(title), subtitle=subtitle, body="\n".join(body))


def write_html(evaluation: Evaluation, path: Path, title: str = "UniRG evaluation") -> None:
    path.write_text(render_html(evaluation, title), encoding="utf-8")

"""Eval reports: the console (rich), the JSON contract, JUnit XML and a one-file HTML page.

The JSON shape is docs/architecture.md section 4 and other people's tooling reads it: keys may be added
(``support``, ``confusion``, ``gates``, per-case ``file``/``tags``/``final``...), never removed or
renamed. The HTML page is static (inline CSS, ``<details>`` instead of JavaScript) so it can be
attached to a CI run or mailed as is.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from rich.console import Console
from rich.table import Table

from evals.metrics import EXTRA, LOWER_IS_BETTER, METRICS, Gate, Metrics, compute
from evals.runner import CaseOutcome, TurnOutcome, fmt_tools
from textdesk.settings import Settings

__all__ = ["Run", "fmt_metric", "print_run", "run_json", "write_html", "write_junit"]


@dataclass
class Run:
    """One configuration's results: outcomes, metrics, gates."""

    label: str
    settings: Settings
    cases: list[CaseOutcome]
    gates: Sequence[Gate] = ()
    overrides: dict[str, Any] = field(default_factory=dict)
    metrics: Metrics = field(init=False)
    gate_results: list[tuple[Gate, bool, str]] = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = compute(self.cases, self.settings.clarify_threshold)
        self.gate_results = [(g, *g.check(self.metrics.values)) for g in self.gates]

    @property
    def failed(self) -> int:
        return sum(1 for c in self.cases if not c.passed)

    @property
    def passed(self) -> bool:
        return self.failed == 0 and all(ok for _, ok, _ in self.gate_results)


def fmt_metric(name: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if name.endswith("_ms"):
        return f"{value:.1f} ms"
    if name in LOWER_IS_BETTER:
        return f"{value:.2f}"
    return f"{value * 100:.1f}%"


# -- JSON -----------------------------------------------------------------------------------------

def _turn_json(t: TurnOutcome) -> dict[str, Any]:
    return {"user": t.user, "passed": t.passed, "failures": t.failures, "actual": t.actual,
            "expect": t.expect, "at": t.at.isoformat()}


def run_json(run: Run) -> dict[str, Any]:
    """The docs/architecture.md section 4 report for one run."""
    m = run.metrics
    summary: dict[str, Any] = {
        "cases": len(run.cases), "passed": len(run.cases) - run.failed, "failed": run.failed,
        "provider": run.settings.llm_provider, "prompt": run.settings.prompt,
        "metrics": {k: m.values[k] for k in METRICS + EXTRA},
        "support": m.support, "confusion": m.confusion, "groups": m.groups,
        "gates": [{"metric": g.metric, "kind": g.kind, "bound": g.bound, "passed": ok, "message": msg}
                  for g, ok, msg in run.gate_results],
        "errors": sum(1 for c in run.cases if c.error), "label": run.label, "overrides": run.overrides,
    }
    cases = [{"id": c.id, "passed": c.passed, "turns": [_turn_json(t) for t in c.turns],
              "file": c.file, "suite": c.suite, "tags": c.tags, "error": c.error, "failures": c.failures,
              "final": {"actual": c.final_actual,
                        "failures": [x.message for x in c.final_checks if not x.passed]}}
             for c in run.cases]
    return {"summary": summary, "cases": cases}


# -- console --------------------------------------------------------------------------------------

def metrics_table(runs: Sequence[Run]) -> Table:
    table = Table(title="metrics", title_justify="left")
    table.add_column("metric")
    for r in runs:
        table.add_column(r.label if len(runs) > 1 else "value", justify="right")
    table.add_column("n", justify="right", style="dim")
    for name in METRICS + EXTRA:
        support = runs[-1].metrics.support
        n = support.get("slot_f1" if name in EXTRA else name, support["turns"])
        table.add_row(name, *(fmt_metric(name, r.metrics.values[name]) for r in runs), str(n))
    return table


def confusion_table(m: Metrics, width: int = 120) -> Table | None:
    """Expected x actual when it fits the screen, else one row per (expected, actual) pair."""
    if not m.confusion:
        return None
    actual = sorted({a for row in m.confusion.values() for a in row})
    if 24 + 24 * len(actual) > width:
        table = Table(title="intent confusion", title_justify="left")
        for name in ("expected", "actual", "turns"):
            table.add_column(name, justify="right" if name == "turns" else "left")
        for e, row in m.confusion.items():
            for a, n in row.items():
                table.add_row(e, a if a == e else f"[red]{a}[/]", str(n))
        return table
    table = Table(title="intent confusion (rows expected, columns actual)", title_justify="left")
    table.add_column("expected \\ actual")
    for a in actual:
        table.add_column(a, justify="right")
    for e, row in m.confusion.items():
        cells = [("" if a not in row else f"[green]{row[a]}[/]" if a == e else f"[red]{row[a]}[/]")
                 for a in actual]
        table.add_row(e, *cells)
    return table


def print_run(console: Console, run: Run, *, quiet: bool = False, verbose: bool = False) -> None:
    for c in run.cases:
        if c.passed and quiet:
            continue
        mark = "[green]PASS[/]" if c.passed else "[red]FAIL[/]"
        console.print(f"{mark} {c.id} [dim]({c.suite})[/]", highlight=False)
        for f in c.failures:
            console.print(f"     {f}", style="red", highlight=False, markup=False, soft_wrap=True)
        if verbose:
            for t in c.turns:
                a = t.actual
                console.print(f"     {t.index}. {t.user!r} -> {a['route']} {a['rule'] or a['intent'] or '-'} "
                              f"{fmt_tools(a['tools'])} {a['reply']!r}", style="dim", highlight=False,
                              markup=False, soft_wrap=True)
    if not quiet:
        console.print(metrics_table([run]))
        conf = confusion_table(run.metrics, console.width)
        if conf is not None:
            console.print(conf)
    for _, ok, msg in run.gate_results:
        console.print(f"gate {'[green]ok[/]' if ok else '[red]FAILED[/]'}: {msg}", highlight=False)
    style = "green" if run.passed else "red"
    console.print(f"[{style}]{len(run.cases)} cases: {len(run.cases) - run.failed} passed, "
                  f"{run.failed} failed[/] [dim](provider {run.settings.llm_provider}, "
                  f"prompt {run.settings.prompt})[/]", highlight=False)


# -- JUnit ----------------------------------------------------------------------------------------

def write_junit(path: Path, runs: Sequence[Run]) -> None:
    """One <testcase> per case (per configuration in compare mode), plus one per gate."""
    root = ET.Element("testsuites", name="textdesk eval")
    for run in runs:
        prefix = f"{run.label}: " if len(runs) > 1 else ""
        suites: dict[str, list[CaseOutcome]] = {}
        for c in run.cases:
            suites.setdefault(c.suite, []).append(c)
        for name, cases in suites.items():
            el = ET.SubElement(root, "testsuite", name=prefix + name, tests=str(len(cases)),
                               failures=str(sum(1 for c in cases if not c.passed and not c.error)),
                               errors=str(sum(1 for c in cases if c.error)))
            for c in cases:
                secs = sum(float(t.actual.get("ms") or 0) for t in c.turns) / 1000
                tc = ET.SubElement(el, "testcase", classname=prefix + name, name=c.id, file=c.file,
                                   time=f"{secs:.3f}")
                if c.error:
                    ET.SubElement(tc, "error", message=c.error, type="error").text = "\n".join(c.failures)
                elif not c.passed:
                    ET.SubElement(tc, "failure", message=c.failures[0], type="expectation").text = \
                        "\n".join(c.failures)
        if run.gate_results:
            el = ET.SubElement(root, "testsuite", name=prefix + "gates", tests=str(len(run.gate_results)),
                               failures=str(sum(1 for _, ok, _ in run.gate_results if not ok)), errors="0")
            for g, ok, msg in run.gate_results:
                tc = ET.SubElement(el, "testcase", classname=prefix + "gates", name=f"{g.kind} {g.metric}")
                if not ok:
                    ET.SubElement(tc, "failure", message=msg, type="gate")
    tree = ET.ElementTree(root)
    ET.indent(tree)
    path.parent.mkdir(parents=True, exist_ok=True)
    tree.write(path, encoding="utf-8", xml_declaration=True)


# -- HTML -----------------------------------------------------------------------------------------

_ACTUAL_KEY = {"reply_contains": "reply", "reply_not_contains": "reply", "max_segments": "segments",
               "max_llm_calls": "llm_calls"}


def _show(value: Any) -> str:
    if isinstance(value, list) and value and isinstance(value[0], dict) and "name" in value[0]:
        return fmt_tools(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "{}"
    return "—" if value is None else str(value)


def _turn_view(t: TurnOutcome) -> dict[str, Any]:
    passed = {c.key: c.passed for c in t.checks}
    rows = [(k, _show(v), _show(t.actual.get(_ACTUAL_KEY.get(k, k))), passed.get(k, True))
            for k, v in t.expect.items()]
    a = t.actual
    facts = (f"{a['route']} · {a.get('rule') or a.get('intent') or '—'} · "
             f"tools {fmt_tools(a['tools'])} · {a['ms']} ms")
    return {"t": t, "rows": rows, "facts": facts}


def write_html(path: Path, runs: Sequence[Run], title: str = "textdesk eval") -> None:
    """A single static page; two runs are shown side by side."""
    ids = list(dict.fromkeys(c.id for r in runs for c in r.cases))
    by_id = [{c.id: c for c in r.cases} for r in runs]
    rows = []
    for cid in ids:
        cols = [(r, m.get(cid)) for r, m in zip(runs, by_id, strict=True)]
        views = [(r, c, [_turn_view(t) for t in c.turns] if c else []) for r, c in cols]
        rows.append({"id": cid, "cols": views, "ok": all(c is not None and c.passed for _, c in cols)})
    metrics = [(n, [fmt_metric(n, r.metrics.values[n]) for r in runs]) for n in METRICS + EXTRA]
    env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    html = env.from_string(_TEMPLATE).render(title=title, runs=runs, rows=rows, metrics=metrics,
                                             generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2rem;color:#1b1f24;max-width:1400px}
h1{margin:0 0 .2rem}.dim{color:#667}.pass{color:#17803d}.fail{color:#c0262d}
table{border-collapse:collapse;margin:.6rem 0}
td,th{border:1px solid #d5d9de;padding:.2rem .5rem;text-align:left}
th{background:#f3f4f6}td.num{text-align:right}
details{border:1px solid #d5d9de;border-radius:6px;margin:.5rem 0;padding:.3rem .7rem}
summary{cursor:pointer;font-weight:600}.cols{display:flex;gap:1rem}.col{flex:1;min-width:0}
.user,.bot{border-radius:10px;padding:.35rem .6rem;margin:.4rem 0;max-width:85%;white-space:pre-wrap}
.user{background:#e8f0fe;margin-left:auto}.bot{background:#f1f3f4}.none{color:#889;font-style:italic}
.facts{font-size:12px;color:#556}tr.bad td{background:#fdecec}ul.err{color:#c0262d;margin:.3rem 0}
</style></head><body>
<h1>{{ title }}</h1><p class="dim">generated {{ generated }}</p>
<table>
<tr><th></th>{% for r in runs %}<th>{{ r.label }}</th>{% endfor %}</tr>
<tr><td>provider / prompt</td>
{% for r in runs %}<td>{{ r.settings.llm_provider }} / {{ r.settings.prompt }}</td>{% endfor %}
</tr>
<tr><td>cases passed</td>
{% for r in runs %}
<td class="{{ 'pass' if r.passed else 'fail' }}">{{ r.cases|length - r.failed }} / {{ r.cases|length }}</td>
{% endfor %}
</tr>
{% for name, vals in metrics %}
<tr><td>{{ name }}</td>{% for v in vals %}<td class="num">{{ v }}</td>{% endfor %}</tr>
{% endfor %}
{% for r in runs %}{% for g, ok, msg in r.gate_results %}
<tr><td>gate ({{ r.label }})</td>
<td colspan="{{ runs|length }}" class="{{ 'pass' if ok else 'fail' }}">{{ msg }}</td></tr>
{% endfor %}{% endfor %}
</table>
{% for row in rows %}
<details{% if not row.ok %} open{% endif %}><summary>{{ row.id }}
{% for r, c, _ in row.cols %}
 <span class="{{ 'pass' if c and c.passed else 'fail' }}">
{{- r.label }}: {{ 'PASS' if c and c.passed else ('FAIL' if c else 'absent') }}</span>
{% endfor %}
</summary>
<div class="cols">
{% for r, c, turns in row.cols %}
<div class="col">
{% if runs|length > 1 %}<h4>{{ r.label }}</h4>{% endif %}
{% if c %}
<p class="dim">{{ c.suite }} · {{ c.file }} · tags {{ c.tags|join(", ") or "—" }}</p>
{% for v in turns %}
<div class="user">{{ v.t.user }}</div>
{% if v.t.actual.reply %}
<div class="bot">{{ v.t.actual.reply }}</div>
{% else %}
<div class="bot none">(no reply)</div>
{% endif %}
<div class="facts">{{ v.facts }}</div>
{% if v.rows %}
<table><tr><th>turn {{ v.t.index }}</th><th>expected</th><th>actual</th></tr>
{% for k, e, a, ok in v.rows %}
<tr class="{{ '' if ok else 'bad' }}"><td>{{ k }}</td><td>{{ e }}</td><td>{{ a }}</td></tr>
{% endfor %}
</table>
{% endif %}
{% endfor %}
{% if c.failures %}
<ul class="err">{% for f in c.failures %}<li>{{ f }}</li>{% endfor %}</ul>
{% endif %}
{% endif %}
</div>
{% endfor %}
</div></details>
{% endfor %}
</body></html>
"""

"""Smoke run of the load benchmark (bench/run.py, plan "smoke"): the bare endpoint and the rule
path on SQLite, 20 signed webhooks each at concurrency 2, through real subprocess servers.

It checks that the machinery works end to end: zero errors, the expected table rows, the result
files, and that every process it started is gone. No timing assertions: numbers come from
`make bench`, never from a unit test.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench import run as bench


def test_bench_smoke(tmp_path: Path) -> None:
    lines: list[str] = []
    result = bench.run_benchmark(bench.PLANS["smoke"], tmp_path, log=lines.append)

    assert result["failure"] is None
    rows = {(r["path"], r["db"], r["concurrency"]): r for r in result["rows"]}
    assert set(rows) == {("bare", "-", 2), ("rule", "sqlite", 2)}
    for r in rows.values():
        assert r["requests"] == 20 and r["ok"] == 20, r
        assert r["errors"] == 0 and r["error_kinds"] == {}, r
        assert r["unexpected"] == 0, r  # every answer was TwiML with a <Message>
        assert r["peak_rss_mib"] > 0
        assert r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"]
    assert rows[("bare", "-", 2)]["ratio_to_bare"] == 1.0
    assert rows[("rule", "sqlite", 2)]["ratio_to_bare"] is not None
    assert result["targets"]["zero_errors"]["met"]
    assert "pipeline_overhead_p95_under_20ms" in result["targets"]

    table = result["table"].splitlines()
    assert table[0].split()[:3] == ["path", "db", "conc"]
    body = [line.split() for line in table[2:]]
    expected = [("bare", "-", "2", "20"), ("rule", "sqlite", "2", "20")]
    assert [(c[0], c[1], c[2], c[3]) for c in body] == expected
    assert result["table"] in "\n".join(lines)

    saved = json.loads((tmp_path / "results.json").read_text())
    assert [(r["path"], r["db"]) for r in saved["rows"]] == [("bare", "-"), ("rule", "sqlite")]
    md = (tmp_path / "results.md").read_text()
    assert "| rule | sqlite | 2 | 20 |" in md and "| bare | - | 2 | 20 |" in md
    assert "nproc" in md

    assert bench._children == []  # servers and load generators were all stopped

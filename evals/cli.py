"""``textdesk eval``, ``textdesk replay`` and ``textdesk export-case``.

``register(app)`` adds the three commands to the main typer app. Settings are built here, at the
entry point, from the environment plus ``--set key=value,...`` / ``--provider`` / ``--record``;
nothing below reads the environment.

Exit status of ``eval``: 0 when every case passes and every gate holds, 1 otherwise (also when
the filters select no case), 2 for a malformed case file or bad options. In ``--compare`` mode
the status is that of configuration B, the candidate; A is the baseline being compared against.
``replay`` exits 0 when nothing changed, 1 when a turn changed or a conversation failed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import fnmatch
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError

from textdesk.business import load_business
from textdesk.errors import ConfigurationError, EvalFileError
from textdesk.settings import Settings

if TYPE_CHECKING:
    from evals.loader import LoadedCase
    from evals.runner import CaseOutcome
    from textdesk.business import Business

# The harness (pipeline, NLU, store) is imported inside the commands: registering them must not
# make `textdesk serve` or `textdesk --help` pay for, or depend on, the eval code path.

__all__ = ["parse_overrides", "register"]

_err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    _err.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def parse_overrides(text: str) -> dict[str, str]:
    """``"prompt=understand@v2,clarify_threshold=0.7"`` -> a dict of Settings overrides."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{part!r}: expected key=value")
        if key not in Settings.model_fields:
            raise ValueError(f"{key!r} is not a setting (see textdesk.settings.Settings)")
        out[key] = value.strip()
    return out


def _settings(overrides: dict[str, Any]) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise _fail(f"setting {'.'.join(map(str, err['loc']))}: {err['msg']}") from exc


def _base(sets: list[str], provider: str | None, record: bool) -> dict[str, Any]:
    try:
        overrides: dict[str, Any] = {k: v for s in sets for k, v in parse_overrides(s).items()}
    except ValueError as exc:
        raise _fail(f"--set {exc}") from exc
    if provider:
        overrides["llm_provider"] = provider
    if record:
        if "cassette_mode" not in Settings.model_fields:
            raise _fail("--record: this build has no cassette recording (no cassette_mode setting)")
        overrides["cassette_mode"] = "record"
    return overrides


def _select(cases: list[LoadedCase], tags: list[str], globs: list[str]) -> list[LoadedCase]:
    """``--tag`` keeps cases with any of the tags; ``--case`` keeps ids matching any glob."""
    if tags:
        cases = [c for c in cases if set(c.tags) & set(tags)]
    if globs:
        cases = [c for c in cases if any(fnmatch.fnmatchcase(c.id, g) for g in globs)]
    return cases


def _run(cases: list[LoadedCase], settings: Settings, concurrency: int, label: str,
         quiet: bool) -> list[CaseOutcome]:
    from evals.runner import run_cases

    show = not quiet and _err.is_terminal
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=_err, transient=True, disable=not show) as progress:
        task = progress.add_task(label, total=len(cases))
        return asyncio.run(run_cases(cases, settings, concurrency,
                                     on_done=lambda _: progress.advance(task)))


def _wrote(what: str, path: Path) -> None:
    """Say where a report went, on stderr: stdout carries the human report."""
    _err.print(f"wrote {what} to {escape(str(path.resolve()))}", highlight=False, soft_wrap=True)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


_Paths = Annotated[list[Path], typer.Argument(help="Case files or folders (*.yaml, *.yml, *.jsonl).")]
_Tags = Annotated[list[str] | None, typer.Option("--tag", metavar="TAG", help="Only cases with this tag.")]
_Cases = Annotated[list[str] | None, typer.Option("--case", metavar="GLOB", help="Only ids matching GLOB.")]
_Under = Annotated[list[str] | None, typer.Option(
    "--fail-under", metavar="METRIC=VALUE", help="Exit 1 when a quality metric is below VALUE.")]
_Over = Annotated[list[str] | None, typer.Option(
    "--fail-over", metavar="METRIC=VALUE", help="Exit 1 when a cost metric is above VALUE.")]
_Json = Annotated[Path | None, typer.Option("--json", help="Write the JSON report here.")]
_Junit = Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here.")]
_Html = Annotated[Path | None, typer.Option("--html", help="Write a static HTML report here.")]
_Compare = Annotated[tuple[str, str] | None, typer.Option(
    "--compare", metavar="A B", help='Run twice: --compare "prompt=understand@v1" "prompt=understand@v2".')]
_Sets = Annotated[list[str] | None, typer.Option("--set", metavar="K=V,...", help="Settings overrides.")]
_Provider = Annotated[str | None, typer.Option(help="Understanding provider (llm_provider).")]
_Record = Annotated[bool, typer.Option("--record", help="Record provider cassettes.")]
_Concurrency = Annotated[int | None, typer.Option(help="Cases at a time (default 1 offline, 4 otherwise).")]
_Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Only failures and the summary.")]
_Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show every turn.")]
_DbUrl = Annotated[str | None, typer.Option(help="SQLAlchemy async URL (default: TEXTDESK_DATABASE_URL).")]
_BusinessFile = Annotated[Path | None, typer.Option(help="Business file (default: TEXTDESK_BUSINESS_FILE).")]


def eval_command(paths: _Paths, tag: _Tags = None, case: _Cases = None, fail_under: _Under = None,
                 fail_over: _Over = None, json_out: _Json = None, junit: _Junit = None, html: _Html = None,
                 compare: _Compare = None, sets: _Sets = None, provider: _Provider = None,
                 record: _Record = False, concurrency: _Concurrency = None, quiet: _Quiet = False,
                 verbose: _Verbose = False) -> None:
    """Run eval cases through the real pipeline and check every expectation.

    Each case runs in its own in-memory store with a frozen clock.
    Rate limits are lifted unless a case is tagged `ratelimit`.
    Exit 0: every case passes and every gate holds; 1: otherwise; 2: a malformed case file.
    With --compare, the exit status is that of configuration B (the candidate).
    """
    from evals.compare import compare_json, print_diff
    from evals.loader import load_cases
    from evals.metrics import Gate
    from evals.report import Run, print_run, run_json, write_html, write_junit

    base = _base(sets or [], provider, record)
    try:
        gates = [Gate.parse(g, "under") for g in fail_under or []]
        gates += [Gate.parse(g, "over") for g in fail_over or []]
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    configs: list[tuple[str, dict[str, Any]]] = [("run", {})]
    if compare is not None:
        try:
            configs = [(f"A ({compare[0]})", parse_overrides(compare[0])),
                       (f"B ({compare[1]})", parse_overrides(compare[1]))]
        except ValueError as exc:
            raise _fail(f"--compare {exc}") from exc
    try:
        cases = _select(load_cases(paths), tag or [], case or [])
    except EvalFileError as exc:
        raise _fail(str(exc)) from exc
    if not cases:
        raise _fail("no cases selected", 1)
    out = Console()
    runs = []
    for label, over in configs:
        settings = _settings({**base, **over})
        n = concurrency or (1 if settings.llm_provider == "offline" else 4)
        outcomes = _run(cases, settings, n, f"eval {label}" if compare else "eval", quiet)
        runs.append(Run(label, settings, outcomes, gates, {**base, **over}))
    if compare is None:
        print_run(out, runs[0], quiet=quiet, verbose=verbose)
    else:
        for r in runs:
            out.rule(r.label)
            print_run(out, r, quiet=True, verbose=verbose)
        print_diff(out, runs[0], runs[1])
    if json_out:
        _write_json(json_out, run_json(runs[0]) if compare is None else compare_json(runs[0], runs[1]))
        _wrote("JSON report", json_out)
    if junit:
        write_junit(junit, runs)
        _wrote("JUnit XML", junit)
    if html:
        write_html(html, runs)
        _wrote("HTML report", html)
    raise typer.Exit(0 if runs[-1].passed else 1)


def _business(path: Path | None, settings: Settings) -> tuple[Business, Path]:
    target = path or settings.business_file
    try:
        return load_business(target), target.resolve()
    except ConfigurationError as exc:
        raise _fail(str(exc)) from exc


def _day(text: str | None, end: bool = False) -> dt.datetime | None:
    """``2026-03-02`` (a UTC day; ``--until`` includes it) or a full ISO date-time."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.UTC)
            return day + dt.timedelta(days=1) if end else day
        value = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise _fail(f"{text!r} is not a date (YYYY-MM-DD) or ISO date-time") from exc
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def replay_command(
    database_url: _DbUrl = None,
    since: Annotated[str | None, typer.Option(help="Conversations started on/after this date.")] = None,
    until: Annotated[str | None, typer.Option(help="Conversations started on/before this date.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Conversation or contact tag.")] = None,
    escalated: Annotated[bool, typer.Option("--escalated", help="Only escalated conversations.")] = False,
    business: _BusinessFile = None, sets: _Sets = None, provider: _Provider = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the changes as JSON here.")] = None,
) -> None:
    """Replay stored conversations through the current pipeline and show what changed."""
    from evals.compare import print_replay, replay

    settings = _settings(_base(sets or [], provider, False))
    biz, _ = _business(business, settings)
    url = database_url or settings.database_url
    try:
        results = asyncio.run(replay(url, settings, biz, since=_day(since), until=_day(until, end=True),
                                     tags=tag or [], escalated=escalated))
    except SQLAlchemyError as exc:  # the source database, not a replayed turn (those are caught per case)
        shown = make_url(url).render_as_string(hide_password=True)
        raise _fail(f"database {shown}: {getattr(exc, 'orig', None) or exc}") from exc
    print_replay(Console(), results)
    if json_out:
        _write_json(json_out, {"conversations": [dataclasses.asdict(r) for r in results]})
        _wrote("JSON changes", json_out)
    raise typer.Exit(1 if any(r.changes or r.error for r in results) else 0)


def export_command(
    conversation_id: Annotated[int, typer.Argument(help="The stored conversation to export.")],
    out: Annotated[Path | None, typer.Option("--out", help="Case file to write (default: stdout).")] = None,
    database_url: _DbUrl = None,
    business: _BusinessFile = None,
) -> None:
    """Write a stored conversation as an eval case file that `textdesk eval` runs unchanged."""
    from evals.fixtures import conversation_to_case
    from store.db import make_engine, make_sessionmaker

    settings = _settings({})
    biz, biz_path = _business(business, settings)
    ref = os.path.relpath(biz_path, out.resolve().parent) if out else str(biz_path)

    async def export() -> dict[str, Any]:
        engine = make_engine(database_url or settings.database_url)
        try:
            async with make_sessionmaker(engine)() as session:
                return await conversation_to_case(session, conversation_id, biz, business_ref=ref)
        finally:
            await engine.dispose()

    try:
        case = asyncio.run(export())
    except (LookupError, ValueError) as exc:
        raise _fail(str(exc), 1) from exc
    except SQLAlchemyError as exc:
        raise _fail(f"database: {getattr(exc, 'orig', None) or exc}") from exc
    text = yaml.safe_dump({"suite": "exported", "cases": [case]}, sort_keys=False, allow_unicode=True)
    if out is None:
        sys.stdout.write(text)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        _err.print(f"wrote {out}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``eval``, ``replay`` and ``export-case`` to the main CLI."""
    app.command("eval")(eval_command)
    app.command("replay")(replay_command)
    app.command("export-case")(export_command)

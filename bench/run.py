"""The load benchmark (issue 8, part 4): ``make bench`` runs this end to end.

For every (path, database) it starts ``textdesk serve`` as a subprocess on a free loopback port
with a fresh database (a temporary SQLite file, or a PostgreSQL schema created for the run and
dropped after it), warms it up, then drives it with ``bench/load.py`` (a separate process) at
rising concurrency. The baseline, ``bench/bare_app.py``, is served by uvicorn the same way in
the same run. See bench/README.md for the definitions and what the numbers mean.

Paths:
  bare      fixed TwiML from a bare Litestar endpoint (the baseline; no database)
  rule      Body "HELP": signature, store, hard rule, outbox, trace, TwiML
  agent     a booking turn through the offline understanding + policy; a fresh sender (new
            conversation) per request
  llm       the same turn with TEXTDESK_LLM_PROVIDER=openai against bench/fakes.py (800 ms), and
            TEXTDESK_TURN_BUDGET_S=0.5: the webhook answers at once and the reply follows over
            REST to the fake Twilio, counted within a grace period
  llm-wait  informational: the same with TURN_BUDGET_S=2.5 (model budget 1.0 s), so the webhook
            waits for the model and answers with TwiML

Everything binds 127.0.0.1, every load is bounded in count and time, and every process,
temporary file and PostgreSQL schema is cleaned up on the way out, also on failure or Ctrl-C.

    python -m bench.run                 # the full benchmark (writes bench/results.{md,json})
    python -m bench.run --plan smoke --out /tmp/x   # a tiny run (tests/bench/test_bench_smoke.py)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
AUTH_TOKEN = "bench-auth-token"
ACCOUNT_SID = "AC" + "be" * 16
BOOKING_TEXT = "can i get a haircut tomorrow at 3"
PG_DSN: dict[str, Any] = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "test"}
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
MIB = 1024 * 1024

__all__ = ["PLANS", "main", "run_benchmark"]


# -- the plan ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PathSpec:
    name: str
    body: str
    senders: str  # see bench/load.py: user | request | pool:N
    expect: str  # message | empty | any
    requests: dict[int, int]  # concurrency -> requests at that level
    dbs: tuple[str, ...] = ("sqlite", "postgres")
    env: dict[str, str] = field(default_factory=dict)
    max_seconds: float = 60.0  # per level
    timeout: float = 10.0  # per request
    rest_grace_s: float = 0.0  # > 0: count REST sends at the fake Twilio for this long after the level


@dataclass(frozen=True)
class SoakSpec:
    db: str
    requests: int
    concurrency: int
    senders: str
    max_seconds: float
    sample_every: int
    warmup: int  # messages before the reference sample


@dataclass(frozen=True)
class Plan:
    name: str
    paths: tuple[PathSpec, ...]
    soak: SoakSpec | None
    workers: int = 1


_LLM_ENV = {"TEXTDESK_LLM_PROVIDER": "openai", "TEXTDESK_LLM_MODEL": "gpt-4o-mini",
            "OPENAI_API_KEY": "sk-bench-not-a-real-key", "TEXTDESK_LLM_MAX_RETRIES": "0"}

PLANS: dict[str, Plan] = {
    "full": Plan("full", (
        PathSpec("bare", "HELP", "user", "message", {1: 3000, 10: 4000, 50: 4000}, dbs=("-",)),
        PathSpec("rule", "HELP", "user", "message", {1: 400, 10: 600, 50: 600}, max_seconds=30),
        PathSpec("agent", BOOKING_TEXT, "request", "message", {1: 150, 10: 300, 50: 300}, max_seconds=30),
        PathSpec("llm", BOOKING_TEXT, "request", "empty", {1: 20, 10: 150, 50: 300}, max_seconds=30,
                 env={**_LLM_ENV, "TEXTDESK_TURN_BUDGET_S": "0.5"}, rest_grace_s=30),
        PathSpec("llm-wait", BOOKING_TEXT, "request", "message", {1: 8, 10: 60, 50: 150}, max_seconds=30,
                 env={**_LLM_ENV, "TEXTDESK_TURN_BUDGET_S": "2.5"}, rest_grace_s=10),
    ), SoakSpec("sqlite", 20_000, 1, "pool:1000", max_seconds=300, sample_every=1000, warmup=2000)),
    "smoke": Plan("smoke", (
        PathSpec("bare", "HELP", "user", "message", {2: 20}, dbs=("-",), max_seconds=30),
        PathSpec("rule", "HELP", "user", "message", {2: 20}, dbs=("sqlite",), max_seconds=30),
    ), None),
}


# -- processes ------------------------------------------------------------------------------------

_children: list[subprocess.Popen[Any]] = []  # every process this run started (killed in finally)
_schemas: set[str] = set()  # PostgreSQL schemas this run created (dropped in finally)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _http(method: str, url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never a proxy
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TEXTDESK_") and k.lower() not in {"http_proxy", "https_proxy", "all_proxy"}}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _start(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[Any]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    _children.append(proc)
    return proc


def _stop(proc: subprocess.Popen[Any], grace: float = 30.0) -> None:
    """SIGTERM the process group this run started (its own session), then SIGKILL."""
    if proc.poll() is None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    else:  # the leader is gone; make sure nothing it started lingers in its group
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    if proc in _children:
        _children.remove(proc)


def _wait_ready(proc: subprocess.Popen[Any], url: str, log: Path, limit_s: float = 120.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready:\n{_tail(log)}")
        with suppress(OSError):
            if _http("GET", url, timeout=2)[0] == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"server not ready after {limit_s:.0f}s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (uvicorn workers, if any)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def _status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_kib(pid: int, key: str) -> int:
    """Sum of ``key`` (VmHWM, VmRSS) over the server process and its children, in KiB."""
    return sum(_status_kib(p, key) for p in _tree(pid))


def tree_cpu_s(pid: int) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total / ticks


# -- databases ------------------------------------------------------------------------------------

def _pg(sql: str, fetch: bool = False) -> list[Any]:
    import asyncpg

    async def go() -> list[Any]:
        conn = await asyncpg.connect(**PG_DSN, timeout=5)
        try:
            if fetch:
                return list(await conn.fetch(sql))
            await conn.execute(sql)
            return []
        finally:
            await conn.close()

    return asyncio.run(go())


def pg_available() -> bool:
    try:
        with socket.create_connection((PG_DSN["host"], PG_DSN["port"]), timeout=1):
            pass
        _pg("SELECT 1")
        return True
    except Exception:
        return False


def _drop_schema(schema: str) -> None:
    with suppress(Exception):
        _pg(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    _schemas.discard(schema)


@dataclass
class Database:
    kind: str  # sqlite | postgres | -
    url: str | None
    sqlite_path: Path | None = None
    schema: str | None = None

    def trace_steps(self) -> list[list[dict[str, Any]]] | None:
        """Every stored trace's steps (to tell LLM answers from offline fallbacks)."""
        try:
            if self.sqlite_path is not None:
                import sqlite3

                con = sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True, timeout=10)
                try:
                    rows = [r[0] for r in con.execute("SELECT steps FROM trace")]
                finally:
                    con.close()
            elif self.schema is not None:
                rows = [r[0] for r in _pg(f'SELECT steps FROM "{self.schema}".trace', fetch=True)]
            else:
                return None
            return [json.loads(r) if isinstance(r, str) else r for r in rows]
        except Exception:
            return None


@contextmanager
def database(kind: str, name: str, tmp: Path) -> Iterator[Database]:
    if kind == "-":
        yield Database("-", None)
    elif kind == "sqlite":
        path = tmp / f"{name}.db"
        try:
            yield Database("sqlite", f"sqlite+aiosqlite:///{path}", sqlite_path=path)
        finally:
            for suffix in ("", "-wal", "-shm"):
                with suppress(OSError):
                    Path(f"{path}{suffix}").unlink()
    elif kind == "postgres":
        schema = f"bench_{os.getpid()}_{name}".replace("-", "_").lower()
        _drop_schema(schema)
        _schemas.add(schema)
        _pg(f'CREATE SCHEMA "{schema}"')
        try:
            yield Database("postgres", f"{PG_URL}?search_path={schema}", schema=schema)
        finally:
            _drop_schema(schema)
    else:
        raise ValueError(kind)


# -- servers ----------------------------------------------------------------------------------------

@dataclass
class Server:
    proc: subprocess.Popen[Any]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def hwm_mib(self) -> float:
        return round(tree_kib(self.proc.pid, "VmHWM") / 1024, 1)

    def rss_mib(self) -> float:
        return round(tree_kib(self.proc.pid, "VmRSS") / 1024, 1)

    def cpu_s(self) -> float:
        return tree_cpu_s(self.proc.pid)


@contextmanager
def server(kind: str, db: Database, tmp: Path, workers: int, fakes_url: str | None,
           env_extra: dict[str, str]) -> Iterator[Server]:
    port = free_port()
    log = tmp / f"server-{kind}-{db.kind}-{port}.log"
    if kind == "bare":
        cmd = [sys.executable, "-m", "bench.bare_app", "--host", HOST, "--port", str(port),
               "--workers", str(workers)]
        env = _child_env({})
    else:
        script = Path(sys.executable).with_name("textdesk")
        prefix = ([str(script)] if script.exists()
                  else [sys.executable, "-c", "from textdesk.cli import app; app()"])
        cmd = [*prefix, "serve", "--host", HOST, "--port", str(port), "--workers", str(workers)]
        big = str(10**9)
        env = _child_env({
            "TEXTDESK_DATABASE_URL": db.url or "",
            "TEXTDESK_PUBLIC_URL": f"http://{HOST}:{port}",
            "TEXTDESK_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TEXTDESK_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TEXTDESK_TWILIO_API_BASE": fakes_url or f"http://{HOST}:9",  # never the real Twilio
            "TEXTDESK_LLM_BASE_URL": f"{fakes_url or f'http://{HOST}:9'}/v1",
            "TEXTDESK_RATE_LIMIT_PER_MINUTE": big,
            "TEXTDESK_RATE_LIMIT_PER_HOUR": big,
            "TEXTDESK_GLOBAL_RATE_LIMIT_PER_MINUTE": big,
            "TEXTDESK_LLM_DAILY_TOKENS_PER_CONTACT": big,
            "TEXTDESK_LLM_DAILY_TOKENS_TOTAL": big,
            "TEXTDESK_LOG_LEVEL": "WARNING",
            "TEXTDESK_AUTO_REPLIES_FILE": str(tmp / "auto_replies.json"),
            "TEXTDESK_SAVED_CASES_DIR": str(tmp / "saved"),
            **env_extra,
        })
    proc = _start(cmd, env, tmp, log)
    try:
        _wait_ready(proc, f"http://{HOST}:{port}/healthz", log)
        yield Server(proc, port, log)
    finally:
        _stop(proc)


@contextmanager
def fakes(tmp: Path, llm_latency_s: float = 0.8) -> Iterator[str]:
    port = free_port()
    log = tmp / "fakes.log"
    cmd = [sys.executable, "-m", "bench.fakes", "--port", str(port), "--llm-latency", str(llm_latency_s)]
    proc = _start(cmd, _child_env({}), tmp, log)
    try:
        _wait_ready(proc, f"http://{HOST}:{port}/healthz", log, limit_s=60)
        yield f"http://{HOST}:{port}"
    finally:
        _stop(proc)


def fake_stats(url: str) -> dict[str, Any]:
    stats: dict[str, Any] = json.loads(_http("GET", f"{url}/stats")[1])
    return stats


def fake_reset(url: str) -> None:
    _http("POST", f"{url}/reset")


# -- load -----------------------------------------------------------------------------------------

def run_load(srv: Server, tmp: Path, *, body: str, concurrency: int, requests: int, senders: str,
             sender_offset: int, expect: str, max_seconds: float, timeout: float,
             progress_every: int = 0, on_progress: Callable[[int], None] | None = None,
             on_start: Callable[[], None] | None = None) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.load", "--url", srv.url, "--token", AUTH_TOKEN,
           "--account-sid", ACCOUNT_SID, "--body", body, "--concurrency", str(concurrency),
           "--requests", str(requests), "--senders", senders, "--sender-offset", str(sender_offset),
           "--expect", expect, "--max-seconds", str(max_seconds), "--timeout", str(timeout),
           "--progress-every", str(progress_every)]
    proc = subprocess.Popen(cmd, cwd=tmp, env=_child_env({}), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    _children.append(proc)
    limit_s = max_seconds + timeout + 120  # bounded even if the generator hangs
    hard_limit = time.monotonic() + limit_s
    watchdog = threading.Timer(limit_s, lambda: _stop(proc, grace=1))
    watchdog.daemon = True
    watchdog.start()
    last = ""
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.strip()
            if line == "started":
                if on_start is not None:
                    on_start()
            elif line.startswith("progress "):
                if on_progress is not None:
                    on_progress(int(line.split()[1]))
            elif line:
                last = line
        proc.wait(timeout=max(1.0, hard_limit - time.monotonic()))
        if time.monotonic() >= hard_limit:
            raise RuntimeError("load generator overran its time limit and was stopped")
        if proc.returncode != 0:
            err = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"load generator failed ({proc.returncode}): {err[-2000:]}")
        report: dict[str, Any] = json.loads(last)
        return report
    finally:
        watchdog.cancel()
        _stop(proc, grace=5)


# -- one path on one database -------------------------------------------------------------------------

_offsets = iter(range(1, 10_000))


def _offset() -> int:
    """A fresh block of sender numbers (100,000 per load) so no two loads share a contact."""
    return next(_offsets) * 100_000


def _llm_counts(db: Database) -> tuple[int, int] | None:
    """(turns whose understanding came from the model, turns that fell back to offline)."""
    steps = db.trace_steps()
    if steps is None:
        return None
    used = fallback = 0
    for turn in steps:
        for s in turn or []:
            if isinstance(s, dict) and s.get("step") == "understand":
                if (s.get("data") or {}).get("fallback"):
                    fallback += 1
                else:
                    used += 1
    return used, fallback


def bench_path(spec: PathSpec, dbkind: str, tmp: Path, workers: int, fakes_url: str | None,
               log: Callable[[str], None]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    kind = "bare" if spec.name == "bare" else "textdesk"
    with database(dbkind, spec.name, tmp) as db, server(kind, db, tmp, workers, fakes_url, spec.env) as srv:
        # Warm-up (not measured): imports, caches, first connections, prepared statements.
        warm = 4 if spec.rest_grace_s else 40
        run_load(srv, tmp, body=spec.body, concurrency=2, requests=warm, senders=spec.senders,
                 sender_offset=_offset(), expect="any", max_seconds=30, timeout=spec.timeout)
        if spec.rest_grace_s and fakes_url:
            _settle(fakes_url, warm, 15)  # let the warm-up turns finish before counting traces
        llm_before = _llm_counts(db) if spec.rest_grace_s else None
        for conc, n in spec.requests.items():
            if fakes_url:
                fake_reset(fakes_url)
            cpu0 = [srv.cpu_s()]

            def mark(cpu0: list[float] = cpu0) -> None:
                cpu0[0] = srv.cpu_s()

            res = run_load(srv, tmp, body=spec.body, concurrency=conc, requests=n, senders=spec.senders,
                           sender_offset=_offset(), expect=spec.expect, max_seconds=spec.max_seconds,
                           timeout=spec.timeout, on_start=mark)
            cpu = srv.cpu_s() - cpu0[0]
            row: dict[str, Any] = {
                "path": spec.name, "db": dbkind, "concurrency": conc, "planned": n, **res,
                "peak_rss_mib": srv.hwm_mib(), "server_cpu_pct": round(100 * cpu / res["wall_s"], 1)
                if res["wall_s"] else 0.0, "notes": "",
            }
            if spec.rest_grace_s and fakes_url:
                expected_sends = res["ok"]
                t0 = time.monotonic()
                st = _settle(fakes_url, expected_sends, spec.rest_grace_s)
                row["rest_sends"] = st["twilio_sends"]
                row["rest_expected"] = expected_sends
                row["rest_duplicates"] = st["duplicate_to"]
                row["rest_wait_s"] = round(time.monotonic() - t0, 2)
                row["llm_requests_at_mock"] = st["llm_requests"]
                row["peak_rss_mib"] = srv.hwm_mib()  # background turns ran after the load
                counts = _llm_counts(db)
                if counts is not None and llm_before is not None:
                    row["llm_used"] = counts[0] - llm_before[0]
                    row["llm_fallback"] = counts[1] - llm_before[1]
                    llm_before = counts
                if spec.expect == "empty":
                    row["notes"] = (f"REST {row['rest_sends']}/{expected_sends} in {row['rest_wait_s']}s; "
                                    f"model answer used {row.get('llm_used', '?')}, "
                                    f"offline fallback {row.get('llm_fallback', '?')}")
                else:
                    row["notes"] = (f"REST {row['rest_sends']}; "
                                    f"model answer used {row.get('llm_used', '?')}, "
                                    f"offline fallback {row.get('llm_fallback', '?')}")
            if res["unexpected"]:
                what = "an empty <Response/> (the turn outlived its budget; reply by REST)" \
                    if spec.expect == "message" else "a body other than the expected TwiML"
                row["notes"] = "; ".join(filter(None, [row["notes"], f"{res['unexpected']} answered {what}"]))
            if res["errors"]:
                row["notes"] = "; ".join(filter(None, [row["notes"], f"errors: {res['error_kinds']}"]))
            rows.append(row)
            log(_fmt_row(row))
    return rows


def _settle(fakes_url: str, expected: int, grace_s: float) -> dict[str, Any]:
    """Wait until the fake Twilio got ``expected`` sends and no new one for 2 s, or grace runs out."""
    deadline = time.monotonic() + grace_s
    last_n, last_change = -1, time.monotonic()
    st = fake_stats(fakes_url)
    while time.monotonic() < deadline:
        st = fake_stats(fakes_url)
        if st["twilio_sends"] != last_n:
            last_n, last_change = st["twilio_sends"], time.monotonic()
        if st["twilio_sends"] >= expected and time.monotonic() - last_change >= 2.0:
            break
        time.sleep(0.25)
    return st


# -- memory soak -----------------------------------------------------------------------------------

def soak(spec: SoakSpec, tmp: Path, workers: int, log: Callable[[str], None]) -> dict[str, Any]:
    with database(spec.db, "soak", tmp) as db, server("textdesk", db, tmp, workers, None, {}) as srv:
        run_load(srv, tmp, body="HELP", concurrency=2, requests=40, senders="user", sender_offset=_offset(),
                 expect="any", max_seconds=30, timeout=10)
        samples: list[dict[str, Any]] = [{"messages": 0, "rss_mib": srv.rss_mib(), "t_s": 0.0}]
        t0 = time.monotonic()

        def sample(n: int) -> None:
            samples.append({"messages": n, "rss_mib": srv.rss_mib(), "t_s": round(time.monotonic() - t0, 1)})
            if n % (spec.sample_every * 5) == 0:
                log(f"  soak: {n} messages, RSS {samples[-1]['rss_mib']} MiB")

        res = run_load(srv, tmp, body="HELP", concurrency=spec.concurrency, requests=spec.requests,
                       senders=spec.senders, sender_offset=_offset(), expect="message",
                       max_seconds=spec.max_seconds, timeout=10, progress_every=spec.sample_every,
                       on_progress=sample)
        if samples[-1]["messages"] != res["requests"]:
            sample(res["requests"])
        hwm = srv.hwm_mib()
    ref = next((s for s in samples if s["messages"] >= spec.warmup), samples[-1])
    end = samples[-1]
    growth = (end["rss_mib"] - ref["rss_mib"]) / ref["rss_mib"] if ref["rss_mib"] else 0.0
    return {
        "db": spec.db, "concurrency": spec.concurrency, "senders": spec.senders, "planned": spec.requests,
        "max_seconds": spec.max_seconds, "messages": res["requests"], "errors": res["errors"],
        "error_kinds": res["error_kinds"], "unexpected": res["unexpected"], "wall_s": res["wall_s"],
        "throughput": res["throughput"], "p50_ms": res["p50_ms"], "p95_ms": res["p95_ms"],
        "p99_ms": res["p99_ms"],
        "start_rss_mib": samples[0]["rss_mib"], "warm_rss_mib": ref["rss_mib"], "warm_at": ref["messages"],
        "end_rss_mib": end["rss_mib"], "max_rss_mib": max(s["rss_mib"] for s in samples), "hwm_mib": hwm,
        "growth_after_warmup_pct": round(100 * growth, 1), "flat": growth < 0.10,
        "complete": res["requests"] >= spec.requests, "samples": samples,
    }


# -- reporting --------------------------------------------------------------------------------------

COLUMNS = [("path", 8), ("db", 8), ("conc", 4), ("reqs", 5), ("req/s", 8), ("p50 ms", 8), ("p95 ms", 8),
           ("p99 ms", 8), ("errors", 6), ("peak RSS MiB", 12), ("srv CPU%", 8), ("x bare", 6)]


def _cells(r: dict[str, Any]) -> list[str]:
    ratio = r.get("ratio_to_bare")
    return [r["path"], r["db"], str(r["concurrency"]), str(r["requests"]), f"{r['throughput']:.1f}",
            f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}", f"{r['p99_ms']:.1f}",
            str(r["errors"]), f"{r['peak_rss_mib']:.1f}", f"{r['server_cpu_pct']:.0f}",
            "-" if ratio is None else f"{ratio:.3f}"]


def _fmt_row(r: dict[str, Any]) -> str:
    cells = zip(_cells(r), COLUMNS, strict=True)
    return "  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, (_, w)) in enumerate(cells))


def text_table(rows: list[dict[str, Any]]) -> str:
    head = "  ".join(h.rjust(w) if i > 1 else h.ljust(w) for i, (h, w) in enumerate(COLUMNS))
    return "\n".join([head, "-" * len(head), *(_fmt_row(r) for r in rows)])


def md_table(rows: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(h for h, _ in COLUMNS) + " | notes |"
    sep = "|" + "|".join("---" if i < 2 else "---:" for i in range(len(COLUMNS))) + "|---|"
    body = ["| " + " | ".join(_cells(r)) + f" | {r.get('notes', '')} |" for r in rows]
    return "\n".join([head, sep, *body])


def add_ratios(rows: list[dict[str, Any]]) -> None:
    bare = {r["concurrency"]: r["throughput"] for r in rows if r["path"] == "bare"}
    for r in rows:
        b = bare.get(r["concurrency"])
        r["ratio_to_bare"] = round(r["throughput"] / b, 4) if b else None


def evaluate(rows: list[dict[str, Any]], soak_res: dict[str, Any] | None) -> dict[str, Any]:
    """The issue's targets, each with its evidence. Nothing is rounded in our favour."""
    out: dict[str, Any] = {}
    bare = {r["concurrency"]: r for r in rows if r["path"] == "bare"}
    rule = [r for r in rows if r["path"] == "rule"]
    if rule and bare:
        worst = min(rule, key=lambda r: r["ratio_to_bare"] or 0)
        out["rule_throughput_half_of_bare"] = {
            "met": all((r["ratio_to_bare"] or 0) >= 0.5 for r in rule),
            "detail": "; ".join(f"{r['db']} c={r['concurrency']}: {r['ratio_to_bare']:.3f}" for r in rule),
            "worst": f"{worst['db']} c={worst['concurrency']}: {worst['throughput']:.1f} vs "
                     f"{bare[worst['concurrency']]['throughput']:.1f} req/s",
        }
    top = max((r["concurrency"] for r in rows), default=0)
    if top in bare:
        over = {r["db"]: round(r["p95_ms"] - bare[top]["p95_ms"], 2)
                for r in rule if r["concurrency"] == top}
        low = min(bare)
        at_low = [r for r in rule if r["concurrency"] == low]
        single50 = {r["db"]: round(r["p50_ms"] - bare[low]["p50_ms"], 2) for r in at_low}
        single95 = {r["db"]: round(r["p95_ms"] - bare[low]["p95_ms"], 2) for r in at_low}
        out["pipeline_overhead_p95_under_20ms"] = {
            "met": bool(over) and all(v < 20 for v in over.values()), "concurrency": top,
            "overhead_ms": over, "bare_p95_ms": bare[top]["p95_ms"],
            f"p50_overhead_at_c{low}_ms": single50, f"p95_overhead_at_c{low}_ms": single95,
        }
    errs = sum(r["errors"] for r in rows) + (soak_res["errors"] if soak_res else 0)
    odd = sum(r.get("unexpected", 0) for r in rows) + (soak_res["unexpected"] if soak_res else 0)
    out["zero_errors"] = {"met": errs == 0, "errors": errs, "unexpected_bodies": odd,
                          "where": [f"{r['path']}/{r['db']}/c={r['concurrency']}: {r['error_kinds']}"
                                    for r in rows if r["errors"]]}
    if soak_res:
        out["flat_memory"] = {"met": bool(soak_res["flat"] and soak_res["complete"]),
                              "messages": soak_res["messages"], "planned": soak_res["planned"],
                              "growth_after_warmup_pct": soak_res["growth_after_warmup_pct"],
                              "complete": soak_res["complete"]}
    llm = [r for r in rows if r["path"] == "llm"]
    if llm:
        out["llm_webhook_under_1s"] = {
            "met": all(r["max_ms"] < 1000 and r["errors"] == 0 for r in llm),
            "detail": "; ".join(f"{r['db']} c={r['concurrency']}: p99 {r['p99_ms']:.0f} ms, "
                                f"max {r['max_ms']:.0f} ms" for r in llm),
        }
        out["llm_replies_delivered_over_rest (not an issue target)"] = {
            "met": all(r.get("rest_sends") == r.get("rest_expected") and not r.get("rest_duplicates")
                       for r in llm),
            "detail": "; ".join(f"{r['db']} c={r['concurrency']}: {r.get('rest_sends')}/"
                                f"{r.get('rest_expected')} within {r.get('rest_wait_s')} s" for r in llm),
            "model_answer_used": sum(r.get("llm_used") or 0 for r in llm),
            "offline_fallback": sum(r.get("llm_fallback") or 0 for r in llm),
        }
    return out


def _cmd(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return "?"


def _busy_ticks() -> int:
    """Busy jiffies over all CPUs (everything but idle and iowait), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0
    return sum(vals[:8]) - vals[3] - (vals[4] if len(vals) > 4 else 0)


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


class Contention:
    """How busy the machine was during the run, and how much of that was this benchmark's processes
    (servers, load generators, fakes: all our children; PostgreSQL's backends are not counted as ours)."""

    def __init__(self) -> None:
        self.load_before = _loadavg()
        self.busy0 = _busy_ticks()
        t = os.times()
        self.own0 = t.children_user + t.children_system + t.user + t.system
        self.wall0 = time.monotonic()

    def result(self) -> dict[str, Any]:
        busy = _busy_ticks()
        t = os.times()
        own = t.children_user + t.children_system + t.user + t.system - self.own0
        wall = time.monotonic() - self.wall0
        ticks = os.sysconf("SC_CLK_TCK")
        busy_cores = (busy - self.busy0) / ticks / wall if wall else 0.0
        own_cores = own / wall if wall else 0.0
        return {"load_before": self.load_before, "load_after": _loadavg(),
                "busy_cores_avg": round(busy_cores, 2), "bench_cores_avg": round(own_cores, 2),
                "other_cores_avg": round(max(0.0, busy_cores - own_cores), 2)}


def machine(workers: int, pg: bool) -> dict[str, Any]:
    import sqlite3

    import uvicorn

    cpu = "?"
    with suppress(OSError), open("/proc/cpuinfo") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    pg_version = "unavailable"
    if pg:
        with suppress(Exception):
            pg_version = _pg("SELECT version()", fetch=True)[0][0].split(" on ")[0]
    return {"nproc": _cmd(["nproc"]), "cpu": cpu, "free_h": _cmd(["free", "-h"]),
            "python": platform.python_version(), "uvicorn": uvicorn.__version__, "workers": workers,
            "sqlite": sqlite3.sqlite_version, "postgres": pg_version, "kernel": platform.release()}


def write_markdown(path: Path, res: dict[str, Any]) -> None:
    m, t, s, c = res["machine"], res["targets"], res.get("soak"), res["contention"]
    lines = [
        "# textdesk load benchmark", "",
        f"Generated by `make bench` (`python -m bench.run --plan {res['plan']}`) on {res['started']} "
        f"in {res['duration_s']:.0f} s. Methodology and definitions: `bench/README.md`.", "",
        *([f"**Incomplete run: it stopped with `{res['failure'][:500]}`. Rows below are what was measured "
             "before that.**", ""] if res.get("failure") else []),
        "## Machine", "",
        f"- `nproc`: {m['nproc']} ({m['cpu']}); kernel {m['kernel']}",
        f"- Python {m['python']}, uvicorn {m['uvicorn']} with **{m['workers']} worker(s)** "
        "(the load generator and PostgreSQL share the same 2 cores)",
        f"- databases: SQLite {m['sqlite']} (file, WAL), {m['postgres']} (127.0.0.1, one schema per run)",
        f"- machine load during the run: load average {c['load_before']} before, {c['load_after']} after; "
        f"on average {c['busy_cores_avg']} of {m['nproc']} cores busy, {c['bench_cores_avg']} of them this "
        f"benchmark's own processes (servers, load generators, fakes), {c['other_cores_avg']} everything "
        "else (PostgreSQL, and any other work on the machine: results from a shared machine are noisier)",
        "- `free -h`:", "", "```", m["free_h"], "```", "",
        "## Results", "",
        "Closed loop: each of `conc` virtual users sends its next signed webhook when the previous answer "
        "arrived. `errors` = non-200 answers + timeouts + connection errors; 200 answers whose body was not "
        "the expected TwiML are counted in `notes`. Latency percentiles include failed requests at the "
        "time they failed. `peak RSS` = VmHWM summed over the server process tree, "
        "read after the level (peak since that server started: levels run 1 -> 10 -> 50 on one server). "
        "`srv CPU%` = server CPU seconds / wall seconds (100 = one core). `x bare` = throughput / bare "
        "endpoint throughput at the same concurrency.", "",
        md_table(res["rows"]), "",
        "## Targets", "",
        "| target | met | evidence |", "|---|---|---|",
    ]
    for name, v in t.items():
        ev = {k: val for k, val in v.items() if k != "met"}
        lines.append(f"| {name} | {'yes' if v['met'] else '**no**'} | `{json.dumps(ev)}` |")
    lines += ["", "Pipeline overhead = p95(rule path, db, 50 concurrent senders) - p95(bare endpoint, "
              "50 concurrent senders), same run, same machine, same uvicorn setup. "
              "`p50_overhead_at_c1_ms` / `p95_overhead_at_c1_ms` are the same differences at concurrency 1 "
              "(the pipeline's own cost per message, without queueing). Profiling findings for the missed "
              "targets: `bench/README.md`.", ""]
    if s:
        lines += [
            "## Memory soak", "",
            f"{s['messages']} of {s['planned']} HELP messages (bounded at {s['max_seconds']:.0f} s) "
            f"on {s['db']}, "
            f"{s['concurrency']} concurrent sender(s) cycling through {s['senders'].removeprefix('pool:')} "
            "numbers: "
            f"{s['throughput']:.1f} req/s, p95 {s['p95_ms']:.1f} ms, errors {s['errors']}.", "",
            f"RSS (server process tree, VmRSS): start {s['start_rss_mib']} MiB, after warm-up "
            f"({s['warm_at']} messages) {s['warm_rss_mib']} MiB, end {s['end_rss_mib']} MiB, max "
            f"{s['max_rss_mib']} MiB (VmHWM {s['hwm_mib']} MiB). Growth after warm-up: "
            f"{s['growth_after_warmup_pct']}% -> **{'flat' if s['flat'] else 'NOT flat'}** (flat = < 10%)"
            + ("" if s["complete"] else "; **the soak did not reach its planned count in the time bound**")
            + ".",
            "", "| messages | RSS MiB | t (s) |", "|---:|---:|---:|",
            *(f"| {x['messages']} | {x['rss_mib']} | {x['t_s']} |" for x in s["samples"]), "",
        ]
    if res.get("skipped"):
        lines += ["## Skipped", "", *(f"- {x}" for x in res["skipped"]), ""]
    path.write_text("\n".join(lines))


# -- main -------------------------------------------------------------------------------------------

def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def cleanup() -> None:
    for proc in list(_children):
        _stop(proc, grace=10)
    for schema in list(_schemas):
        _drop_schema(schema)


def run_benchmark(plan: Plan, out: Path | None, log: Callable[[str], None] = print,
                  keep_tmp: bool = False) -> dict[str, Any]:
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="textdesk-bench-"))
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    soak_res: dict[str, Any] | None = None
    needs_pg = (any("postgres" in p.dbs for p in plan.paths)
                or (plan.soak is not None and plan.soak.db == "postgres"))
    pg = pg_available() if needs_pg else False
    contention = Contention()
    ok = False
    failure: str | None = None
    try:
        log(f"textdesk bench ({plan.name}): temp dir {tmp}")
        log(text_table([]).splitlines()[0])
        need_fakes = any(p.rest_grace_s for p in plan.paths)
        with (fakes(tmp) if need_fakes else _nothing()) as fakes_url:
            for spec in plan.paths:
                for dbkind in spec.dbs:
                    if dbkind == "postgres" and not pg:
                        skipped.append(f"{spec.name} on postgres: no PostgreSQL at 127.0.0.1:5432")
                        continue
                    rows.extend(bench_path(spec, dbkind, tmp, plan.workers, fakes_url, log))
        if plan.soak is not None:
            if plan.soak.db == "postgres" and not pg:
                skipped.append("memory soak: no PostgreSQL")
            else:
                log(f"memory soak: {plan.soak.requests} HELP messages on {plan.soak.db} "
                    f"(<= {plan.soak.max_seconds:.0f} s)")
                soak_res = soak(plan.soak, tmp, plan.workers, log)
                log(f"  soak: {soak_res['messages']} messages, RSS {soak_res['warm_rss_mib']} -> "
                    f"{soak_res['end_rss_mib']} MiB ({soak_res['growth_after_warmup_pct']}%), "
                    f"{'flat' if soak_res['flat'] else 'NOT flat'}")
        ok = True
    except Exception as exc:  # keep what was measured; Ctrl-C and SIGTERM still just clean up and stop
        failure = f"{type(exc).__name__}: {exc}"
        log(f"bench failed: {failure}")
    finally:
        cleanup()
        if not ok:
            log(f"bench failed; server logs kept in {tmp}")
        elif not keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    add_ratios(rows)
    result: dict[str, Any] = {
        "plan": plan.name, "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - started, 1), "machine": machine(plan.workers, pg),
        "rows": rows, "soak": soak_res, "skipped": skipped, "targets": evaluate(rows, soak_res),
        "contention": contention.result(), "failure": failure,
    }
    targets: dict[str, dict[str, Any]] = result["targets"]
    table = text_table(rows)
    result["table"] = table
    log("")
    log(table)
    log("")
    for name, v in targets.items():
        evidence = json.dumps({k: x for k, x in v.items() if k != "met"})
        log(f"target {name}: {'MET' if v['met'] else 'NOT MET'}  {evidence}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(result, indent=2))
        write_markdown(out / "results.md", result)
        log(f"wrote {out / 'results.md'} and {out / 'results.json'}")
    return result


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="textdesk load benchmark (loopback only).")
    ap.add_argument("--plan", choices=sorted(PLANS), default="full")
    ap.add_argument("--out", type=Path, default=ROOT / "bench", help="Where results.md/json go")
    ap.add_argument("--workers", type=int, default=None, help="uvicorn workers (default: the plan's, 1)")
    ap.add_argument("--keep-tmp", action="store_true", help="Keep the temp dir (server logs)")
    args = ap.parse_args(argv)
    plan = PLANS[args.plan]
    if args.workers:
        plan = Plan(plan.name, plan.paths, plan.soak, args.workers)
    previous = {s: signal.signal(s, _terminate) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        result = run_benchmark(plan, args.out, keep_tmp=args.keep_tmp)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return 1 if result["failure"] else 0


if __name__ == "__main__":
    sys.exit(main())

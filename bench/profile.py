"""Where does a webhook's time go? A per-stage wall-clock breakdown of ``textdesk serve``.

``python -m bench.profile`` starts the real server (same env as bench/run.py) through this
module's ``serve`` mode, which wraps timing probes around the pipeline steps, the webhook's own
work and the database calls (monkeypatched in the server process only: no textdesk code is
changed), drives it with bench/load.py at each concurrency, then prints, per stage: calls per
webhook, wall ms per webhook, and the share of the server-side request time (ASGI call). With
``--py-spy`` it also samples the server with py-spy (``--gil``: only the thread holding the GIL,
i.e. Python CPU) and prints CPU self-time by package and the hottest frames.

Stages nest (the indentation shows it); DB rows overlap the pipeline rows that issue them. At
concurrency > 1 a stage's wall time includes waiting for the event loop, a lock or a pooled
connection while other requests run: that is the point (it shows where requests queue).

    python -m bench.profile --db sqlite --concurrency 1,50 --requests 300 [--path rule] [--py-spy]
"""

from __future__ import annotations

import argparse
import collections
import functools
import importlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

__all__ = ["PROBES", "main"]

# (module, attribute path, label). Missing ones are skipped (the code under test moves).
PROBES: list[tuple[str, str, str]] = [
    ("channels.twilio_routes", "verified_form", "webhook: read form + check signature"),
    ("channels.twilio_routes", "_form", "  form parse"),
    ("channels.twilio", "TwilioChannel.verify", "  signature (RequestValidator)"),
    ("textdesk.pipeline", "Pipeline.handle", "pipeline.handle"),
    ("textdesk.pipeline", "Pipeline._store", "  step 2 store inbound (own session + commit)"),
    ("textdesk.pipeline", "Pipeline._contact_lock", "  step 3 per-contact lock: acquire"),
    ("textdesk.pipeline", "Pipeline._process_in_order", "  process_in_order (earlier unanswered + this)"),
    ("textdesk.pipeline", "Pipeline._process", "    process (own session)"),
    ("textdesk.pipeline", "Pipeline._run_steps", "      steps 4-10"),
    ("textdesk.pipeline", "Pipeline._rate_limit", "        4 rate limit"),
    ("textdesk.pipeline", "Pipeline._rules", "        5 hard rules"),
    ("textdesk.pipeline", "Pipeline._handoff", "        6 handoff"),
    ("textdesk.pipeline", "Pipeline._screen", "        7 injection screen"),
    ("textdesk.pipeline", "Pipeline._agent", "        8-10 understand + policy + tools"),
    ("agent.providers.offline", "OfflineProvider.understand", "          understand (offline)"),
    ("agent.providers.openai_provider", "OpenAIProvider.understand", "          understand (openai)"),
    ("textdesk.pipeline", "decide", "          policy.decide"),
    ("textdesk.pipeline", "Pipeline._finish", "      steps 11-13 guard, outbox, trace"),
    ("textdesk.pipeline", "Pipeline._after_commit", "      after-commit hooks"),
    ("textdesk.delivery", "Dispatcher.mark_twiml", "webhook: mark replies sent as TwiML (own session)"),
    ("sqlalchemy.pool.base", "Pool.connect", "db: pool checkout (incl. pre-ping, waiting)"),
    ("sqlmodel.ext.asyncio.session", "AsyncSession.exec", "db: session.exec"),
    ("sqlalchemy.ext.asyncio.session", "AsyncSession.execute", "db: session.execute"),
    ("sqlalchemy.ext.asyncio.session", "AsyncSession.get", "db: session.get"),
    ("sqlalchemy.ext.asyncio.session", "AsyncSession.flush", "db: session.flush"),
    ("sqlalchemy.ext.asyncio.session", "AsyncSession.commit", "db: session.commit"),
    ("sqlalchemy.ext.asyncio.session", "AsyncSession.rollback", "db: session.rollback"),
    ("sqlalchemy.ext.asyncio.session", "AsyncSession.close", "db: session.close (return conn)"),
    ("sqlalchemy.ext.asyncio.engine", "AsyncConnection.start", "db: engine.connect (advisory-lock conn)"),
    ("sqlalchemy.ext.asyncio.engine", "AsyncConnection.execute", "db: conn.execute (advisory lock/unlock)"),
]

ASGI = "ASGI call (server-side time of POST /twilio/sms)"


# -- serve mode: the probes -------------------------------------------------------------------------

class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0.0])

    def add(self, label: str, seconds: float) -> None:
        with self.lock:
            d = self.data[label]
            d[0] += 1
            d[1] += seconds
            d[2] = max(d[2], seconds)

    def take(self) -> dict[str, list[float]]:
        with self.lock:
            out, self.data = dict(self.data), collections.defaultdict(lambda: [0, 0.0, 0.0])
        return out


STATS = Stats()


def _probe(owner: Any, attr: str, label: str) -> bool:
    import inspect

    orig = getattr(owner, attr)
    raw = inspect.unwrap(orig) if not isinstance(orig, staticmethod) else orig
    if getattr(orig, "__bench_probe__", False):
        return True
    if inspect.isasyncgenfunction(getattr(raw, "__wrapped__", raw)) or attr == "_contact_lock":
        # an @asynccontextmanager: time entering it (waiting for the lock)
        @functools.wraps(orig)
        def cm(*a: Any, **k: Any) -> Any:
            inner = orig(*a, **k)

            @asynccontextmanager
            async def timed() -> Any:
                t = time.perf_counter()
                async with inner as value:
                    STATS.add(label, time.perf_counter() - t)
                    yield value
            return timed()
        wrapper: Any = cm
    elif inspect.iscoroutinefunction(orig):
        @functools.wraps(orig)
        async def wrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return await orig(*a, **k)
            finally:
                STATS.add(label, time.perf_counter() - t)
    else:
        @functools.wraps(orig)
        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return orig(*a, **k)
            finally:
                STATS.add(label, time.perf_counter() - t)
    wrapper.__bench_probe__ = True
    setattr(owner, attr, wrapper)
    return True


def install_probes() -> list[str]:
    installed = []
    for module, dotted, label in PROBES:
        try:
            owner: Any = importlib.import_module(module)
            *path, attr = dotted.split(".")
            for p in path:
                owner = getattr(owner, p)
            if not hasattr(owner, attr):
                continue
            if _probe(owner, attr, label):
                installed.append(label)
        except Exception as exc:  # a probe that does not fit any more is skipped, not fatal
            print(f"bench.profile: probe {module}.{dotted} skipped: {exc}", file=sys.stderr)
    return installed


def serve(port: int, workers: int) -> None:
    """Run textdesk like ``textdesk serve`` does, with the probes and a stats endpoint."""
    import uvicorn

    from store.db import migrate
    from textdesk.settings import Settings

    settings = Settings()
    migrate(settings.database_url)
    installed = install_probes()
    print(f"bench.profile: {len(installed)} probes installed", file=sys.stderr, flush=True)

    def factory() -> Any:
        from web.factory import app as make_app

        inner: Any = make_app()

        async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"] == "/__bench/stats":
                raw = json.dumps(STATS.take()).encode()
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": raw})
                return
            if scope["type"] == "http" and scope["path"] == "/twilio/sms":
                t = time.perf_counter()
                try:
                    await inner(scope, receive, send)
                finally:
                    STATS.add(ASGI, time.perf_counter() - t)
                return
            await inner(scope, receive, send)

        return asgi

    uvicorn.run(factory, factory=True, host="127.0.0.1", port=port, workers=workers,
                log_level=settings.log_level.lower(), timeout_graceful_shutdown=20)


# -- orchestrate ------------------------------------------------------------------------------------

def _py_spy() -> str | None:
    return shutil.which("py-spy") or next(
        (str(p) for p in [Path.home() / ".local/bin/py-spy"] if p.exists()), None)


def _spy_summary(raw: Path, top: int = 25) -> list[str]:
    """CPU self-time by package and inclusive time of the hottest frames, from py-spy raw output."""
    by_pkg: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        total += count
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        m = re.search(r"\(([^)]*)\)$", frames[-1])
        path = m.group(1) if m else "?"
        parts = path.split("/")
        pkg = "site-packages/" + parts[parts.index("site-packages") + 1] if "site-packages" in parts else (
            parts[0] if len(parts) > 1 else path)
        by_pkg[pkg] += count
        for f in set(frames):
            incl[f] += count
    if not total:
        return ["(no samples)"]
    lines = [f"py-spy --gil: {total} samples (Python CPU only). Self time by package:"]
    lines += [f"  {100 * c / total:5.1f}%  {p}" for p, c in by_pkg.most_common(15)]
    lines.append("Inclusive time, hottest textdesk frames (stacks stop at greenlet/thread boundaries):")
    ours = [(f, c) for f, c in incl.most_common() if _PROJECT.search(f)]
    lines += [f"  {100 * c / total:5.1f}%  {f}" for f, c in ours[:top]]
    return lines


_PROJECT = re.compile(r"\((?:textdesk|channels|store|agent|guardrails|tools|web)/")


def profile(db_kind: str, path: str, levels: list[int], requests: int, use_spy: bool, workers: int) -> str:
    from bench import run as bench

    body = "HELP" if path == "rule" else bench.BOOKING_TEXT
    senders = "user" if path == "rule" else "request"
    tmp = Path(tempfile.mkdtemp(prefix="textdesk-profile-"))
    out: list[str] = []
    spy = _py_spy() if use_spy else None
    if use_spy and spy is None:
        out.append("(py-spy not found: install it with `uv tool install py-spy` for the CPU profile)")
    try:
        with bench.database(db_kind, f"profile_{path}", tmp) as db:
            port = bench.free_port()
            env = bench._child_env({
                "TEXTDESK_DATABASE_URL": db.url or "", "TEXTDESK_PUBLIC_URL": f"http://127.0.0.1:{port}",
                "TEXTDESK_TWILIO_AUTH_TOKEN": bench.AUTH_TOKEN,
                "TEXTDESK_TWILIO_ACCOUNT_SID": bench.ACCOUNT_SID,
                "TEXTDESK_TWILIO_API_BASE": "http://127.0.0.1:9", "TEXTDESK_LOG_LEVEL": "WARNING",
                "TEXTDESK_RATE_LIMIT_PER_MINUTE": str(10**9), "TEXTDESK_RATE_LIMIT_PER_HOUR": str(10**9),
                "TEXTDESK_GLOBAL_RATE_LIMIT_PER_MINUTE": str(10**9),
                "TEXTDESK_AUTO_REPLIES_FILE": str(tmp / "auto_replies.json"),
            })
            log = tmp / "server.log"
            proc = bench._start([sys.executable, "-m", "bench.profile", "serve", "--port", str(port),
                                 "--workers", str(workers)], env, tmp, log)
            try:
                bench._wait_ready(proc, f"http://127.0.0.1:{port}/healthz", log)
                srv = bench.Server(proc, port, log)
                bench.run_load(srv, tmp, body=body, concurrency=2, requests=40, senders=senders,
                               sender_offset=bench._offset(), expect="any", max_seconds=30, timeout=10)
                bench._http("GET", f"{srv.url}/__bench/stats")
                for conc in levels:
                    spy_proc = None
                    raw = tmp / f"spy-{conc}.raw"
                    if spy:
                        spy_proc = subprocess.Popen(
                            [spy, "record", "--gil", "-r", "200", "-f", "raw", "-o", str(raw), "-p",
                             str(proc.pid), "-d", "120", "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
                        time.sleep(1.0)
                    cpu0 = srv.cpu_s()
                    res = bench.run_load(srv, tmp, body=body, concurrency=conc, requests=requests,
                                         senders=senders, sender_offset=bench._offset(), expect="message",
                                         max_seconds=60, timeout=30)
                    cpu = srv.cpu_s() - cpu0
                    if spy_proc is not None:
                        with suppress(ProcessLookupError):
                            os.killpg(spy_proc.pid, signal.SIGINT)  # py-spy writes its output on SIGINT
                        try:
                            spy_proc.wait(30)
                        except subprocess.TimeoutExpired:
                            os.killpg(spy_proc.pid, signal.SIGKILL)
                    stats = json.loads(bench._http("GET", f"{srv.url}/__bench/stats")[1])
                    out += _report(db_kind, path, conc, res, stats, cpu)
                    if spy_proc is not None and raw.exists():
                        out += _spy_summary(raw)
                    out.append("")
            finally:
                bench._stop(proc)
    finally:
        bench.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    return "\n".join(out)


def _report(db: str, path: str, conc: int, res: dict[str, Any], stats: dict[str, list[float]],
            cpu_s: float) -> list[str]:
    n = max(1, int(stats.get(ASGI, [0])[0]) or res["requests"])
    asgi_ms = 1000 * stats.get(ASGI, [0, 0.0])[1] / n
    lines = [f"== {path} path on {db}, {conc} concurrent senders: {res['requests']} webhooks, "
             f"{res['throughput']:.1f} req/s, client p50 {res['p50_ms']:.1f} / p95 {res['p95_ms']:.1f} ms, "
             f"errors {res['errors']}; server CPU {cpu_s:.1f} s = {1000 * cpu_s / n:.1f} ms per webhook "
             f"({100 * cpu_s / res['wall_s']:.0f}% of one core)",
             f"   {'stage':<58} {'calls/req':>9} {'ms/req':>8} {'share':>6} {'max ms':>8}",
             f"   {ASGI[:58]:<58} {1:>9} {asgi_ms:>8.2f} {100:>5.0f}% "
             f"{1000 * stats.get(ASGI, [0, 0, 0])[2]:>8.1f}"]
    order = [label for _, _, label in PROBES]
    for label in order:
        if label not in stats:
            continue
        count, total, worst = stats[label]
        ms = 1000 * total / n
        share = 100 * ms / asgi_ms if asgi_ms else 0.0
        lines.append(f"   {label[:58]:<58} {count / n:>9.2f} {ms:>8.2f} {share:>5.0f}% {1000 * worst:>8.1f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode")
    s = sub.add_parser("serve", help="(internal) the probed server")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--workers", type=int, default=1)
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--path", choices=["rule", "agent"], default="rule")
    ap.add_argument("--concurrency", default="1,50", help="comma-separated levels")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--py-spy", action="store_true", help="also sample Python CPU with py-spy --gil")
    args = ap.parse_args(argv)
    if args.mode == "serve":
        serve(args.port, args.workers)
        return 0
    print(profile(args.db, args.path, [int(x) for x in args.concurrency.split(",")], args.requests,
                  args.py_spy, args.workers))
    return 0


if __name__ == "__main__":
    sys.exit(main())

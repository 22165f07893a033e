"""Fault: a worker is SIGKILLed in the middle of a turn (issue 8.3).

A real ``textdesk serve`` subprocess on a PostgreSQL schema of the shared test server, with
its LLM pointed at a loopback OpenAI-compatible server that holds the request (the turn is in
flight, the inbound already committed) and its Twilio REST base pointed at a loopback fake
that records every send. The worker is killed with SIGKILL (no shutdown hooks run), then a new
one starts: ``Services.start()`` -> ``Pipeline.recover()`` must answer the stored inbound once,
over REST. Twilio's retry of the same MessageSid then gets a 200 with nothing new stored or sent.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import make_url

from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PHONE = "+12125550170"


class Worker:
    """One ``textdesk serve`` process in its own process group (so a kill reaches uvicorn too)."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env, self.port, self.log_path = env, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        exe = Path(sys.executable).with_name("textdesk")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from textdesk.cli import app; app()"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([*cmd, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, cwd=self.log_path.parent)

    async def wait_ready(self, within_s: float = 60.0) -> None:
        deadline = time.monotonic() + within_s
        async with httpx.AsyncClient(base_url=self.base, timeout=1.0) as c:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise AssertionError(f"textdesk serve exited ({self.proc.returncode}):\n{self.tail()}")
                try:
                    if (await c.get("/healthz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(f"textdesk serve not ready in {within_s}s:\n{self.tail()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=25)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""


@pytest.fixture
def worker_env(pg_url: str, tmp_path: Path, twilio_server: Any, slow_llm: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTDESK_") and k != "OPENAI_API_KEY"}
    env.update({
        "TEXTDESK_DATABASE_URL": pg_url,
        "TEXTDESK_PUBLIC_URL": PUBLIC_URL,
        "TEXTDESK_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TEXTDESK_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TEXTDESK_TWILIO_API_BASE": twilio_server.base,
        "TEXTDESK_LLM_PROVIDER": "openai",
        "TEXTDESK_LLM_BASE_URL": f"{slow_llm.base}/v1",
        "TEXTDESK_LLM_API_KEY": "sk-test",
        "TEXTDESK_TURN_BUDGET_S": "30",  # the turn is slow on purpose: keep it inside its webhook
        "TEXTDESK_LLM_TOTAL_BUDGET_S": "20",
        "TEXTDESK_LLM_TIMEOUT_S": "20",
        "TEXTDESK_SCHEDULER_POLL_S": "0.5",
        "TEXTDESK_LOG_LEVEL": "WARNING",
        "TEXTDESK_AUTO_REPLIES_FILE": str(tmp_path / "autoreplies.json"),
        "TEXTDESK_SAVED_CASES_DIR": str(tmp_path / "saved"),
    })
    return env


@pytest.fixture
def workers(worker_env: dict[str, str], tmp_path: Path, kit: Any) -> Iterator[Any]:
    made: list[Worker] = []

    def make() -> Worker:
        w = Worker(worker_env, kit.pg_cluster_module.free_port(), tmp_path / f"worker{len(made) + 1}.log")
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop()


async def db_rows(pg_url: str, sid: str) -> dict[str, Any]:
    url = make_url(pg_url)
    schema = url.query["search_path"]
    conn = await asyncpg.connect(f"postgresql://postgres@{url.host}:{url.port}/{url.database}",
                                 server_settings={"search_path": str(schema)}, timeout=10)
    try:
        inbound = await conn.fetch("SELECT id, processed_at FROM message WHERE provider_message_id = $1", sid)
        ids = [r["id"] for r in inbound]
        outbound = await conn.fetch("SELECT id, status, delivery, provider_message_id, kind FROM message "
                                    "WHERE direction = 'out' AND in_reply_to = ANY($1::int[])", ids)
        traces = await conn.fetchval("SELECT count(*) FROM trace WHERE message_id = ANY($1::int[])", ids)
    finally:
        await conn.close()
    return {"inbound": list(inbound), "outbound": list(outbound), "traces": traces}


async def test_worker_killed_mid_turn_is_recovered_once_on_restart(
        pg_url: str, workers: Any, twilio_server: Any, slow_llm: Any, kit: Any) -> None:
    slow_llm.hold.set()  # the first model request hangs: the turn is in flight
    first = workers()
    first.start()
    await first.wait_ready()

    params = kit.sms_params(PHONE, "where are you located?")
    async with httpx.AsyncClient(base_url=first.base) as c1:
        hooks = kit.Webhooks(c1)
        inflight = asyncio.ensure_future(hooks.post(params, timeout=40))
        for _ in range(200):  # bounded: up to 20 s for the turn to reach the model
            if slow_llm.received.is_set() or inflight.done():
                break
            await asyncio.sleep(0.1)
        assert slow_llm.received.is_set(), f"the turn never reached the LLM: {first.tail()}"
        rows = await db_rows(pg_url, params["MessageSid"])
        assert len(rows["inbound"]) == 1 and rows["inbound"][0]["processed_at"] is None

        first.kill()  # SIGKILL mid-turn: no lifespan shutdown, no finally blocks
        attempt = await asyncio.wait_for(inflight, timeout=10)
    assert attempt.status is None, f"the killed worker cannot have answered: {attempt}"
    assert twilio_server.sends == []

    slow_llm.hold.clear()  # the model answers at once from now on
    slow_llm.release.set()
    second = workers()
    second.start()
    await second.wait_ready()  # lifespan start-up ran Services.start() -> Pipeline.recover()
    for _ in range(100):  # bounded: 10 s for the recovered reply to go out over REST
        if twilio_server.sends:
            break
        await asyncio.sleep(0.1)
    rows = await db_rows(pg_url, params["MessageSid"])
    assert twilio_server.sends, (
        "the recovered inbound was never answered: "
        f"inbound processed_at={[r['processed_at'] for r in rows['inbound']]}, "
        f"outbox={[(r['status'], r['delivery']) for r in rows['outbound']]}\n{second.tail()}")

    # Twilio retries the webhook the killed worker never answered: same MessageSid.
    async with httpx.AsyncClient(base_url=second.base) as c2:
        retry = await kit.Webhooks(c2).post(params)
        await asyncio.sleep(1.0)  # would a second REST send follow? (bounded settle)
        again = await kit.Webhooks(c2).post(params)
    assert retry.status == 200 and again.status == 200
    assert retry.messages == [] and again.messages == [], "the answer already went out over REST"

    rows = await db_rows(pg_url, params["MessageSid"])
    assert len(rows["inbound"]) == 1, "stored once"
    assert rows["inbound"][0]["processed_at"] is not None and rows["traces"] == 1, "processed once"
    live = [r for r in rows["outbound"] if r["status"] != "blocked"]
    assert len(live) == 1 and live[0]["delivery"] == "rest", rows["outbound"]
    assert live[0]["provider_message_id"], rows["outbound"]
    sends = [s for s in twilio_server.sends if s.to == PHONE]
    assert len(sends) == 1 and sends[0].message_id == live[0]["id"], sends
    assert "12 Maple St" in sends[0].body
    assert slow_llm.requests == 2, "one request died with the worker, one answered the recovery"


async def test_startup_recovery_does_not_wait_on_a_hung_twilio(pg_url: str, kit: Any) -> None:
    """Two inbound messages were stored by a worker that died before answering them, and
    Twilio's REST API hangs. A restarting worker runs ``Services.start()`` inside its lifespan
    start-up, before it accepts a single webhook: that must not wait for every recovered reply's
    REST send to time out (4 attempts each), or a Twilio incident keeps every restarted worker
    from serving at all. (In-process with a 0.4 s client timeout; production's is 10 s.)"""
    from channels.twilio import TwilioChannel
    from channels.twilio_http import HttpxTwilioClient
    from store import repo
    from store.models import Message
    from tests.conftest import make_settings
    from textdesk.clock import SystemClock
    from textdesk.services import build_services

    async with kit.HangingServer() as hung:
        settings = make_settings(pg_url, scheduler_enabled=True, scheduler_poll_s=0.2)
        http = HttpxTwilioClient(httpx.AsyncClient(timeout=httpx.Timeout(0.4, connect=0.4)), timeout=0.4)
        channel = TwilioChannel(settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value(),
                                settings.twilio_from, settings.public_url, http=http, api_base=hung.base)
        services = build_services(settings, clock=SystemClock(), twilio=channel)
        try:
            async with services.sessions() as s:  # what the dead worker left behind
                for i in range(2):
                    contact = await repo.get_or_create_contact(s, f"+1212555{180 + i:04d}")
                    conv = await repo.open_conversation(s, contact, services.clock.now())
                    s.add(Message(conversation_id=conv.id or 0, contact_id=contact.id or 0, direction="in",
                                  body="where are you located?", provider_message_id=f"SMdead{i}",
                                  author="customer",
                                  created_at=services.clock.now()))
                await s.commit()
            started = time.monotonic()
            await asyncio.wait_for(services.start(), timeout=60)
            took = time.monotonic() - started
        finally:
            await asyncio.wait_for(services.close(), timeout=30)
    assert took < 2.0, (
        f"Services.start() took {took:.1f}s: recovery sends every recovered reply over REST, with "
        f"retries, before start-up completes ({hung.connections} REST attempts hung meanwhile)")

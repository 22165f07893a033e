"""Fault: PostgreSQL stops and restarts under webhook traffic (issue 8.3).

Why in-process: the app runs in this process (build_services + create_app) on a PRIVATE
cluster, driven by httpx's ASGITransport on the test's own event loop, so many senders post
concurrently and REST sends are captured by an in-process fake Twilio transport. (Litestar's
AsyncTestClient would serialize the requests through its blocking portal.) The database fault
itself is real: ``pg_ctl stop -m fast`` kills every backend and refuses new connections until
``pg_ctl start``.

After every fault, and after re-sending (as Twilio would retry) each webhook that did not get
a 200: each MessageSid is stored once, each inbound is processed once (one Trace), at most one
reply goes out per inbound, and nothing reaches an opted-out number but its one confirmation.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from store.db import migrate_async
from tests.conftest import make_settings
from textdesk.clock import SystemClock
from textdesk.services import Services, build_services
from web.app import create_app

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

QUESTIONS = ["hi", "where are you located?", "what are your hours?", "how much is a haircut?",
             "thanks!", "do you do color?"]
NO_LIMITS = dict(rate_limit_per_minute=10_000, rate_limit_per_hour=100_000,
                 global_rate_limit_per_minute=100_000)


def phone(n: int) -> str:
    return f"+1212555{n:04d}"


async def build(cluster: Any, fake_twilio: Any, **over: Any) -> Services:
    await migrate_async(cluster.url)
    settings = make_settings(cluster.url, **{**NO_LIMITS, **over})
    # The system clock (not a frozen one): consent-event and trace times must be comparable with
    # the wall-clock times at which the fakes saw each message leave. The traffic is FAQ-only,
    # so nothing depends on the day or the hour.
    return build_services(settings, clock=SystemClock(), twilio=fake_twilio.channel(settings))


@dataclass
class Db:
    inbound: list[asyncpg.Record]
    outbound: list[asyncpg.Record]
    traces: Counter[int]
    contacts: dict[str, asyncpg.Record]
    opted_out_at: dict[int, float]  # contact id -> wall-clock time of the opt-out


async def read_db(cluster: Any) -> Db:
    conn = await asyncpg.connect(cluster.dsn, timeout=10)
    try:
        inbound = await conn.fetch("SELECT id, provider_message_id, contact_id, processed_at, created_at, "
                                   "body FROM message WHERE direction = 'in' ORDER BY id")
        outbound = await conn.fetch("SELECT id, in_reply_to, contact_id, status, delivery, kind, body "
                                    "FROM message WHERE direction = 'out' ORDER BY id")
        traces = Counter(r["message_id"] for r in await conn.fetch("SELECT message_id FROM trace"))
        contacts = {r["phone"]: r for r in await conn.fetch("SELECT id, phone, consent FROM contact")}
        events = await conn.fetch("SELECT contact_id, min(at) AS at FROM consentevent "
                                  "WHERE new = 'opted_out' GROUP BY contact_id")
    finally:
        await conn.close()
    return Db(list(inbound), list(outbound), traces, contacts,
              {r["contact_id"]: r["at"].replace(tzinfo=dt.UTC).timestamp()
               if r["at"].tzinfo is None else r["at"].timestamp() for r in events})


async def settle_sends(services: Services, within_s: float = 10.0) -> None:
    """Wait (bounded) until no outbound message is still being handed to the REST API."""
    from textdesk import tasks

    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not tasks.pending():
            return
        await asyncio.sleep(0.05)


async def resend_until_ok(hooks: Any, kit: Any, rounds: int = 8) -> None:
    """Twilio's retry of every webhook whose last attempt got no 200: same MessageSid, same
    parameters, in each sender's original order (senders in parallel)."""
    for _ in range(rounds):
        last: dict[str, Any] = {}
        for a in hooks.log:
            last[a.sid] = a
        pending = [a for a in last.values() if a.status != 200]
        if not pending:
            return
        by_sender: dict[str, list[Any]] = defaultdict(list)
        for a in pending:
            by_sender[a.sender].append(a)

        async def one(items: list[Any]) -> None:
            for a in items:
                await hooks.post(kit.sms_params(a.sender, a.body, a.sid))

        await asyncio.gather(*(one(v) for v in by_sender.values()))
        await asyncio.sleep(0.3)


@dataclass(frozen=True)
class Out:
    """One message that actually left: TwiML in the 200 answer Twilio acted on, or a 201 from
    the REST API."""

    to: str
    body: str
    at: float  # wall clock
    outbox_id: int | None
    inbound_sid: str
    how: str  # twiml | rest


def left(hooks: Any, fake_twilio: Any, db: Db) -> list[Out]:
    sid_of_inbound = {r["id"]: r["provider_message_id"] for r in db.inbound}
    reply_to = {r["id"]: r["in_reply_to"] for r in db.outbound}
    # Twilio acts on the 200 answer it received; a webhook is re-sent only when no 200 came
    # back, so a later 200 for the same MessageSid (a replay) replaces an earlier one.
    answered: dict[str, Any] = {}
    for a in hooks.log:
        if a.status == 200:
            answered[a.sid] = a
    out = [Out(a.sender, body, a.at, mid, a.sid, "twiml")
           for a in answered.values() for body, mid in zip(a.messages, a.ids, strict=True)]
    out += [Out(s.to, s.body, s.at, s.message_id,
                sid_of_inbound.get(reply_to.get(s.message_id), f"unlinked-{s.message_id}"), "rest")
            for s in fake_twilio.delivered]
    return out


def history(hooks: Any, sid: str) -> str:
    """The webhook answers one MessageSid got, in order, e.g. '500,200'."""
    return ",".join(str(a.status) for a in hooks.log if a.sid == sid) or "no webhook"


def check_invariants(hooks: Any, fake_twilio: Any, db: Db, sids: list[str], opted_out_phones: list[str],
                     *, every_reply_leaves: bool = True) -> list[str]:
    problems: list[str] = []
    ids = {r["provider_message_id"]: r["id"] for r in db.inbound}
    sid_of = {r["id"]: r["provider_message_id"] for r in db.inbound}
    stored = Counter(r["provider_message_id"] for r in db.inbound)
    for sid in sids:
        if stored[sid] != 1:
            problems.append(f"MessageSid {sid} stored {stored[sid]} times")
    for r in db.inbound:
        if r["processed_at"] is None:
            problems.append(f"inbound {r['id']} ({history(hooks, r['provider_message_id'])}) never processed")
        if db.traces[r["id"]] != 1:
            problems.append(f"inbound {r['id']} has {db.traces[r['id']]} traces")
    live = Counter(r["in_reply_to"] for r in db.outbound if r["status"] != "blocked")
    problems += [f"inbound {mid} has {n} unblocked replies stored" for mid, n in live.items() if n > 1]

    sent = left(hooks, fake_twilio, db)
    for sid, n in Counter(o.inbound_sid for o in sent).items():
        if n > 1:
            problems.append(f"inbound {ids.get(sid)} ({history(hooks, sid)}) answered {n} times: "
                            + "; ".join(f"{o.how} #{o.outbox_id}" for o in sent if o.inbound_sid == sid))
    if every_reply_leaves:  # a stored, unblocked reply that never left leaves a customer unanswered
        gone = {o.outbox_id for o in sent}
        for r in db.outbound:
            if r["status"] != "blocked" and r["id"] not in gone:
                rt = r["in_reply_to"]
                problems.append(f"reply {r['id']} to inbound {rt} ({history(hooks, sid_of.get(rt, ''))}) "
                                f"never left (status {r['status']!r}, delivery {r['delivery']!r})")
    for number in opted_out_phones:
        contact = db.contacts.get(number)
        if contact is None or contact["consent"] != "opted_out":
            problems.append(f"{number}: not opted out ({contact and contact['consent']})")
            continue
        since = db.opted_out_at[contact["id"]]
        mine = [o for o in sent if o.to == number]
        confirmations = [o for o in mine if "unsubscribed" in o.body.lower()]
        if len(confirmations) != 1:
            problems.append(f"{number}: {len(confirmations)} opt-out confirmations sent")
        problems += [f"{number}: {o.how} reply to inbound {ids.get(o.inbound_sid)} "
                     f"({history(hooks, o.inbound_sid)}) left {o.at - since:+.3f}s after the opt-out: "
                     f"{o.body[:30]!r}"
                     for o in mine if o.at > since and "unsubscribed" not in o.body.lower()]
    return problems


# -- 1. stop and restart under traffic ------------------------------------------------------------

async def test_postgres_stop_and_restart_under_traffic(pg_cluster: Any, fake_twilio: Any, kit: Any,
                                                       asgi_client_factory: Any) -> None:
    """12 senders text concurrently (each one message at a time, like a phone); 0.8 s in, the
    cluster is stopped for 2 s, then restarted; the senders keep texting throughout. Every
    webhook without a 200 is then re-sent with its MessageSid until it gets one.

    Until the post-commit bug below is fixed this fails in roughly half the runs: whenever the
    outage lands between a turn's commit and its webhook answer (see
    test_outage_after_the_turn_commits_still_delivers_the_reply_once, which pins it down)."""
    services = await build(pg_cluster, fake_twilio)
    client = asgi_client_factory(create_app(services))
    hooks = kit.Webhooks(client)
    regular = [phone(100 + i) for i in range(8)]
    stoppers = [phone(200 + i) for i in range(2)]  # texted STOP before the traffic
    mid_stoppers = [phone(300 + i) for i in range(2)]  # text STOP during the traffic
    try:
        # Seed: the STOP senders opt out while everything is healthy.
        for number in stoppers:
            a = await hooks.post(kit.sms_params(number, "STOP"))
            assert a.status == 200 and len(a.messages) == 1, a

        outage = {"down": 0.0, "up": 0.0}
        chaos_done = asyncio.Event()

        async def chaos() -> None:
            await asyncio.sleep(0.8)
            outage["down"] = time.time()
            await pg_cluster.astop("fast")
            await asyncio.sleep(2.0)
            await pg_cluster.astart()
            outage["up"] = time.time()
            chaos_done.set()

        async def sender(number: str, script: list[str]) -> None:
            i = 0
            while i < 60:  # bounded; each sender keeps texting until after the database is back
                body = script[i] if i < len(script) else QUESTIONS[i % len(QUESTIONS)]
                await hooks.post(kit.sms_params(number, body), timeout=20)
                i += 1
                if chaos_done.is_set() and i >= len(script) and time.time() > outage["up"] + 0.8:
                    return
                await asyncio.sleep(0.12)

        scripts = {n: [QUESTIONS[(k + j) % len(QUESTIONS)] for j in range(4)] for k, n in enumerate(regular)}
        scripts.update({n: ["where are you located?", "how much is a haircut?"] for n in stoppers})
        for k, n in enumerate(mid_stoppers):
            # STOP lands right around the outage; more questions follow it.
            scripts[n] = ["hi", "what are your hours?", "where are you located?", "hi", "STOP",
                          "how much is a haircut?", "hi", "do you do color?"][k:]
        await asyncio.wait_for(asyncio.gather(chaos(), *(sender(n, s) for n, s in scripts.items())),
                               timeout=60)

        first = {}
        for a in hooks.log:
            first.setdefault(a.sid, a)
        failed = [a for a in first.values() if a.status != 200]
        during = [a for a in hooks.log if outage["down"] <= a.at <= outage["up"] + 0.5]
        assert failed, "the outage should have made some webhooks fail (else it did not hit the traffic)"
        # A failure is a clean 5xx/connection error, never a 200 that silently dropped the turn,
        # and it comes at once: nothing hangs on the dead database.
        assert {a.status for a in failed} <= {500, 503, None}, Counter(a.status for a in failed)
        slowest = max(a.seconds for a in hooks.log)
        assert slowest < services.settings.turn_budget_s, f"a webhook took {slowest:.1f}s"

        await resend_until_ok(hooks, kit)
        await settle_sends(services)

        db = await read_db(pg_cluster)
        sids = list(first)
        problems = check_invariants(hooks, fake_twilio, db, sids, stoppers + mid_stoppers)
        last = {a.sid: a for a in hooks.log}
        problems += [f"{sid} never got a 200 after retries" for sid, a in last.items() if a.status != 200]
        # "5xx only if nothing was stored": list the 5xx answers whose inbound WAS stored by that
        # very attempt; the invariants above already require each to be answered exactly once.
        stored_at = {r["provider_message_id"]: r["created_at"].timestamp() for r in db.inbound}
        stored_on_5xx = [a.sid for a in failed if stored_at.get(a.sid, float("inf")) <= a.at]
        summary = (f"{len(sids)} webhooks, {len(failed)} failed first time "
                   f"({Counter(a.status for a in failed)}), {len(during)} during the outage, "
                   f"{len(stored_on_5xx)} of the 5xx had stored the inbound")
        print(summary)
        assert not problems, summary + "\n" + "\n".join(problems)
    finally:
        await services.close()


# -- deterministic outage points --------------------------------------------------------------------

async def test_outage_before_the_inbound_is_stored_fails_cleanly_and_retry_answers_once(
        pg_cluster: Any, fake_twilio: Any, kit: Any, asgi_client_factory: Any) -> None:
    """Database down when the webhook arrives: nothing stored, a 5xx (Twilio retries), and the
    retry gets the one answer."""
    services = await build(pg_cluster, fake_twilio)
    hooks = kit.Webhooks(asgi_client_factory(create_app(services)))
    try:
        await pg_cluster.astop("fast")
        params = kit.sms_params(phone(400), "where are you located?")
        a = await hooks.post(params)
        assert a.status is not None and a.status >= 500, a
        await pg_cluster.astart()
        db = await read_db(pg_cluster)
        assert [r for r in db.inbound if r["provider_message_id"] == params["MessageSid"]] == []
        b = await hooks.post(params)
        assert b.status == 200 and len(b.messages) == 1 and "Maple" in b.messages[0], b
        c = await hooks.post(params)  # one more retry: the same answer, nothing new
        assert c.status == 200
        db = await read_db(pg_cluster)
        assert check_invariants(hooks, fake_twilio, db, [params["MessageSid"]], []) == []
        assert len(db.outbound) == 1 and fake_twilio.calls == []
    finally:
        await services.close()


async def test_outage_mid_turn_after_store_is_answered_once_by_the_retry(
        pg_cluster: Any, fake_twilio: Any, kit: Any, asgi_client_factory: Any) -> None:
    """The inbound is committed, then the database dies while the turn runs: a 5xx, the stored
    inbound stays unprocessed, and Twilio's retry processes it exactly once."""
    services = await build(pg_cluster, fake_twilio)
    hooks = kit.Webhooks(asgi_client_factory(create_app(services)))
    real = services.pipeline.provider.understand
    fired: list[bool] = []

    async def understand_during_outage(req: Any) -> Any:
        if not fired:
            fired.append(True)
            await pg_cluster.astop("fast")
        return await real(req)

    services.pipeline.provider.understand = understand_during_outage  # type: ignore[method-assign]
    try:
        params = kit.sms_params(phone(401), "where are you located?")
        a = await hooks.post(params)
        assert fired and a.status is not None and a.status >= 500, a
        await pg_cluster.astart()
        db = await read_db(pg_cluster)
        (row,) = [r for r in db.inbound if r["provider_message_id"] == params["MessageSid"]]
        assert row["processed_at"] is None and db.outbound == []
        b = await hooks.post(params)
        assert b.status == 200 and len(b.messages) == 1, b
        c = await hooks.post(params)
        assert c.status == 200 and c.messages == b.messages, "a retry replays the first answer"
        db = await read_db(pg_cluster)
        problems = check_invariants(hooks, fake_twilio, db, [params["MessageSid"]], [])
        assert problems == []
        assert [r["status"] for r in db.outbound] == ["sent"]
    finally:
        await services.close()


@pytest.mark.parametrize("fault_point", ["claim_for_twiml", "advisory_unlock"])
async def test_outage_after_the_turn_commits_still_delivers_the_reply_once(
        pg_cluster: Any, fake_twilio: Any, kit: Any, asgi_client_factory: Any, fault_point: str) -> None:
    """The turn commits (inbound processed, reply queued), then the database dies before the
    webhook answers: while claiming the reply for TwiML (Dispatcher.claim_for_twiml), or while
    releasing the per-contact advisory lock (Pipeline._contact_lock). The webhook answers 5xx,
    so Twilio retries: that retry must deliver the stored reply exactly once (TwiML or REST),
    not an empty answer that leaves it queued forever."""
    services = await build(pg_cluster, fake_twilio)
    hooks = kit.Webhooks(asgi_client_factory(create_app(services)))
    fired: list[bool] = []

    async def outage() -> None:
        if not fired:
            fired.append(True)
            await pg_cluster.astop("fast")

    if fault_point == "claim_for_twiml":
        real_claim = services.dispatcher.claim_for_twiml

        async def claim(ids: list[int]) -> list[int]:
            await outage()
            return await real_claim(ids)

        services.dispatcher.claim_for_twiml = claim  # type: ignore[method-assign]
    else:
        real_after = services.pipeline._after_commit

        async def after_commit(t: Any) -> None:  # runs after the turn's commit, inside the lock
            await real_after(t)
            await outage()

        services.pipeline._after_commit = after_commit  # type: ignore[method-assign]
    try:
        params = kit.sms_params(phone(402), "where are you located?")
        a = await hooks.post(params)
        assert fired and a.status is not None and a.status >= 500, a
        await pg_cluster.astart()
        b = await hooks.post(params)
        assert b.status == 200, b
        await settle_sends(services)
        db = await read_db(pg_cluster)
        assert [r["processed_at"] is not None for r in db.inbound] == [True]
        n = sum(1 for o in left(hooks, fake_twilio, db) if o.inbound_sid == params["MessageSid"])
        out = [(r["status"], r["delivery"]) for r in db.outbound]
        assert n == 1, (f"the stored reply left {n} times; Twilio's retry got {b.messages!r}; "
                        f"outbox rows (status, delivery) = {out}")
        assert check_invariants(hooks, fake_twilio, db, [params["MessageSid"]], []) == []
    finally:
        await services.close()


# -- many contacts at once: the connection pool -----------------------------------------------------

async def test_many_concurrent_contacts_are_all_answered(pg_url: str, fake_twilio: Any, kit: Any,
                                                         asgi_client_factory: Any) -> None:
    """40 different customers text at the same moment while the model takes 0.3 s a turn (one
    process, the default pool of 10 + 20 connections). Every one of them gets exactly one reply,
    in TwiML or, past the turn budget, over REST, within a few seconds."""
    settings = make_settings(pg_url, turn_budget_s=3.0, **NO_LIMITS)
    services = build_services(settings, clock=SystemClock(), twilio=fake_twilio.channel(settings))
    real = services.pipeline.provider.understand

    async def llm_latency(req: Any) -> Any:
        await asyncio.sleep(0.3)
        return await real(req)

    services.pipeline.provider.understand = llm_latency  # type: ignore[method-assign]
    hooks = kit.Webhooks(asgi_client_factory(create_app(services)))
    senders = [phone(500 + i) for i in range(40)]
    try:
        started = time.monotonic()
        posts = (hooks.post(kit.sms_params(n, "where are you located?"), timeout=20) for n in senders)
        results = await asyncio.wait_for(asyncio.gather(*posts), timeout=30)
        assert all(a.status == 200 for a in results), Counter(a.status for a in results)
        in_twiml = {a.sender for a in results if a.messages}
        for _ in range(50):  # bounded: 5 s more for the REST replies of turns past the budget
            if in_twiml | {s.to for s in fake_twilio.delivered} >= set(senders):
                break
            await asyncio.sleep(0.1)
        answered = Counter([a.sender for a in results for _ in a.messages]
                           + [s.to for s in fake_twilio.delivered])
        missing = [n for n in senders if answered[n] == 0]
        assert not missing and max(answered.values()) == 1, (
            f"{len(missing)} of {len(senders)} customers got no reply after "
            f"{time.monotonic() - started:.1f}s "
            f"({len(in_twiml)} in TwiML, {len(fake_twilio.delivered)} over REST); duplicates: "
            f"{[n for n, c in answered.items() if c > 1]}")
    finally:
        # Turns stuck waiting for a pool connection would otherwise outlive the test (30 s timeout).
        current = asyncio.current_task()
        leftovers = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        for t in leftovers:
            t.cancel()
        if leftovers:
            await asyncio.wait(leftovers, timeout=5)
        await asyncio.wait_for(services.close(), timeout=15)

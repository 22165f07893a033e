"""The soak checker (issue 15.5): many customers, two workers, faults, then the invariants.

`make soak` (``python -m bench.soak``) starts ``textdesk serve --workers 2`` on PostgreSQL (a
fresh schema) on a loopback port, with a fake Twilio REST API that fails or stalls some sends.
Many senders then run randomised conversations for a bounded time: bookings that fight over the
same few slots, picks from new offers, reschedules, cancels, questions, HELP, STOP (and START),
a request for a person. Some webhooks are delivered twice at once, as Twilio retries are; midway
one worker process is killed with SIGKILL (uvicorn starts a new one) and the webhooks it was
answering are retried. Reminders are planned to fall due during the run.

After a drain, the invariants are read from the database (and the fake's log) and printed as a
table; the exit status is 1 on any violation:

- bookings per provider and time: active bookings of one provider that overlap
- contacts per phone number
- turns per inbound message (an inbound answered twice) and replies per inbound
- unanswered inbound messages, and inbound answered out of arrival order per contact
- sends to opted-out contacts: a message handed to Twilio after that contact's opt-out
  confirmation left (and before any opt-in), other than HELP answers
- reminders per booking and offset, and provider sends per outbox message (a message sent twice)
- webhook answers that were 5xx

Loopback only: everything binds 127.0.0.1; the schema, processes and temp files are removed.

    python -m bench.soak [--seconds 150] [--senders 40] [--seed 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

import httpx
import yaml
from twilio.request_validator import RequestValidator

from bench.run import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    HOST,
    _child_env,
    _start,
    _stop,
    _tree,
    _wait_ready,
    database,
    free_port,
    pg_available,
)

ROOT = Path(__file__).resolve().parents[1]
# (zone, a fictional number prefix that phonenumbers places in that zone, digits to append)
ZONES = [
    ("America/New_York", "+1212555", 4), ("America/Los_Angeles", "+1415555", 4),
    ("Europe/London", "+4420794600", 2), ("Australia/Sydney", "+6125550", 4),
    ("Asia/Tokyo", "+81355501", 4), ("Asia/Kolkata", "+912255501", 3),
    ("America/Sao_Paulo", "+55115550", 4), ("Pacific/Auckland", "+6495550", 3),
]


# -- the fake Twilio REST API -----------------------------------------------------------------------

@dataclass
class TwilioFake:
    """Twilio's Messages.json on loopback: ~12% of sends fail (500/503/429), ~3% stall 4 s."""

    rng: random.Random
    lock: threading.Lock = field(default_factory=threading.Lock)
    accepted: Counter[int] = field(default_factory=Counter)  # outbox message id -> 201s
    failed: int = 0
    stalled: int = 0

    def serve(self) -> tuple[ThreadingHTTPServer, int]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                q = parse_qs(urlsplit(form.get("StatusCallback", "")).query)
                mid = int((q.get("m") or ["0"])[0] or 0)
                with owner.lock:
                    roll = owner.rng.random()
                if roll < 0.03:
                    with owner.lock:
                        owner.stalled += 1
                    time.sleep(4)
                if 0.03 <= roll < 0.15:
                    status = owner.rng.choice([500, 503, 429])
                    with owner.lock:
                        owner.failed += 1
                    self._json(status, {"code": 20500 if status != 429 else 20429, "message": "injected",
                                        "status": status})
                    return
                with owner.lock:
                    owner.accepted[mid] += 1
                sid = "SM" + uuid.uuid4().hex
                self._json(201, {"sid": sid, "status": "queued", "account_sid": ACCOUNT_SID,
                                 "to": form.get("To"), "body": form.get("Body"), "num_segments": "1"})

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        httpd = ThreadingHTTPServer((HOST, 0), Handler)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return httpd, int(httpd.server_address[1])


# -- the business the soak books against ----------------------------------------------------------

def pick_zone(now: dt.datetime) -> tuple[str, str, int]:
    """A zone where it is 10:00-15:00 now, so the business is open and quiet hours don't defer."""
    for zone, prefix, digits in ZONES:
        if 10 <= now.astimezone(ZoneInfo(zone)).hour < 15:
            return zone, prefix, digits
    return ZONES[0]


def business_file(tmp: Path, zone: str) -> Path:
    open_all = dict.fromkeys(("mon", "tue", "wed", "thu", "fri", "sat", "sun"), "08:00-20:00")
    data = {
        "name": "Soak Street Salon", "timezone": zone, "support": "Call (212) 555-0100",
        "hours": open_all, "providers": ["Kim", "Luis"], "quiet_hours": "21:00-08:00",
        "services": [{"name": "haircut", "minutes": 30, "price": "$45", "aliases": ["cut", "trim"]},
                     {"name": "manicure", "minutes": 30, "price": "$30", "aliases": ["nails"]}],
        "faq": [{"q": "Where are you located?", "a": "12 Soak St."}],
        "escalate_topics": ["billing", "refund", "complaint"],
    }
    path = tmp / "business.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _clock(t: dt.datetime) -> str:
    return t.strftime("%I:%M%p").lstrip("0").lower().replace(":00", "")


# -- the customers ----------------------------------------------------------------------------------

@dataclass
class Load:
    url: str
    validator: RequestValidator
    rng: random.Random
    slots: list[dt.datetime]  # the popular times, business-local
    deadline: float
    stats: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)

    async def post(self, client: httpx.AsyncClient, phone: str, body: str, sid: str) -> str:
        params = {"MessageSid": sid, "AccountSid": ACCOUNT_SID, "From": phone, "To": "+15005550006",
                  "Body": body, "NumMedia": "0"}
        headers = {"X-Twilio-Signature": self.validator.compute_signature(f"{self.url}/twilio/sms", params),
                   "Content-Type": "application/x-www-form-urlencoded"}
        for attempt in range(4):  # a dropped connection (the killed worker) is retried, as Twilio would
            try:
                r = await client.post(f"{self.url}/twilio/sms", content=urlencode(params), headers=headers,
                                      timeout=30)
                self.statuses[r.status_code] += 1
                return r.text
            except httpx.HTTPError:
                self.stats["webhook_retried"] += 1
                await asyncio.sleep(0.5 * (attempt + 1))
        self.stats["webhook_gave_up"] += 1
        return ""

    async def text(self, phone: str, body: str) -> str:
        sid = "SM" + uuid.uuid4().hex
        self.stats["inbound"] += 1
        # A fresh connection per delivery, so a duplicate may well land on the other worker.
        async with httpx.AsyncClient() as a, httpx.AsyncClient() as b:
            if self.rng.random() < 0.25:
                self.stats["duplicated"] += 1
                both = await asyncio.gather(self.post(a, phone, body, sid), self.post(b, phone, body, sid))
                return both[0]
            return await self.post(a, phone, body, sid)

    async def pause(self) -> None:
        await asyncio.sleep(self.rng.uniform(0.2, 1.5))

    async def customer(self, phone: str) -> None:
        booked = False
        while time.monotonic() < self.deadline:
            script = self.rng.choices(
                ["book", "book_open", "faq", "move", "cancel", "stop", "help", "human"],
                weights=[30, 10, 10, 12, 8, 10, 4, 1])[0]
            if script in ("move", "cancel") and not booked:
                script = "book"
            self.stats[f"script_{script}"] += 1
            if script == "book":
                slot = self.rng.choice(self.slots)
                r = await self.text(phone, f"can i book a haircut today at {_clock(slot)}")
                await self.pause()
                r = await self.text(phone, self.rng.choice(["yes", "yes please", "YES"]))
                for _ in range(3):
                    if "just taken" not in r and "Open times" not in r:
                        break
                    await self.pause()
                    await self.text(phone, self.rng.choice(["1", "2"]))
                    await self.pause()
                    r = await self.text(phone, "yes")
                booked = booked or "booked" in r
            elif script == "book_open":
                await self.text(phone, "any time tomorrow for a manicure?")
                await self.pause()
                await self.text(phone, "1")
                await self.pause()
                r = await self.text(phone, "yes")
                booked = booked or "booked" in r
            elif script == "faq":
                await self.text(phone, self.rng.choice(["where are you located?", "how much is a haircut?"]))
            elif script == "move":
                slot = self.rng.choice(self.slots) + dt.timedelta(hours=self.rng.choice([1, 2]))
                await self.text(phone, f"can i move my appointment to today at {_clock(slot)}")
                await self.pause()
                await self.text(phone, "yes")
            elif script == "cancel":
                await self.text(phone, "i need to cancel my appointment")
                await self.pause()
                await self.text(phone, "yes")
                booked = False
            elif script == "stop":
                await self.text(phone, self.rng.choice(["STOP", "stop texting me please", "unsubscribe"]))
                await self.pause()
                await self.text(phone, "hello?")  # must get no answer
                if self.rng.random() < 0.6:
                    await self.pause()
                    await self.text(phone, "START")
                else:
                    return  # stays opted out
            elif script == "help":
                await self.text(phone, "HELP")
            elif script == "human":
                await self.text(phone, "HUMAN")
                return  # a person holds the conversation now
            await self.pause()


# -- the invariants ---------------------------------------------------------------------------------

async def check(db_url: str, fake: TwilioFake, load: Load) -> list[tuple[str, int, str]]:
    """(invariant, violations, detail) rows, read from the database."""
    from sqlmodel import select

    from store.db import make_engine, make_sessionmaker
    from store.models import Booking, ConsentEvent, Contact, Message, Trace

    engine = make_engine(db_url)
    try:
        async with make_sessionmaker(engine)() as s:
            bookings = list(await s.exec(select(Booking).where(Booking.status == "active")))
            contacts = list(await s.exec(select(Contact)))
            messages = list(await s.exec(select(Message)))
            traces = list(await s.exec(select(Trace)))
            consent = list(await s.exec(select(ConsentEvent)))
    finally:
        await engine.dispose()
    rows: list[tuple[str, int, str]] = []

    by_provider: dict[str | None, list[Booking]] = defaultdict(list)
    for b in bookings:
        by_provider[b.provider].append(b)
    overlaps = 0
    for rows_p in by_provider.values():
        rows_p.sort(key=lambda b: b.start)
        overlaps += sum(1 for a, b in itertools.pairwise(rows_p) if b.start < a.end)
    rows.append(("bookings overlapping per provider-slot", overlaps, f"{len(bookings)} active bookings"))

    phones = Counter(c.phone for c in contacts)
    rows.append(("contacts per phone > 1", sum(1 for n in phones.values() if n > 1),
                 f"{len(contacts)} contacts"))

    inbound = [m for m in messages if m.direction == "in"]
    per_inbound = Counter(t.message_id for t in traces)
    twice = sum(1 for n in per_inbound.values() if n > 1)
    rows.append(("inbound answered twice (turns per inbound > 1)", twice, f"{len(inbound)} inbound"))
    replies: Counter[int] = Counter(m.in_reply_to for m in messages if m.direction == "out" and m.in_reply_to)
    rows.append(("replies per inbound > 1", sum(1 for n in replies.values() if n > 1),
                 f"{sum(replies.values())} replies"))
    unanswered = [m for m in inbound if m.processed_at is None]
    rows.append(("unanswered inbound", len(unanswered), ""))

    order = 0
    trace_of = {t.message_id: t.id or 0 for t in traces}
    for cid in {m.contact_id for m in inbound}:
        mine = sorted((m.id or 0) for m in inbound if m.contact_id == cid and m.id in trace_of)
        processed = [trace_of[mid] for mid in mine]
        order += sum(1 for a, b in itertools.pairwise(processed) if b < a)
    rows.append(("inbound answered out of arrival order", order, ""))

    to_opted_out = 0
    opt_ins: dict[int, list[dt.datetime]] = defaultdict(list)
    for e in consent:
        if e.new == "opted_in":
            opt_ins[e.contact_id].append(e.at)
    for cid in {m.contact_id for m in messages}:
        out = [m for m in messages if m.contact_id == cid and m.direction == "out" and m.sent_at is not None
               and m.status not in ("blocked", "queued")]
        for conf in (m for m in out if m.kind == "opt_out_confirmation"):
            assert conf.sent_at is not None
            until = min((t for t in opt_ins[cid] if t > conf.sent_at), default=None)
            to_opted_out += sum(1 for m in out if m.kind not in ("opt_out_confirmation", "help")
                                and m.sent_at is not None and m.sent_at > conf.sent_at
                                and (until is None or m.sent_at < until))
    rows.append(("sends to opted-out contacts", to_opted_out,
                 f"{sum(1 for e in consent if e.new == 'opted_out')} opt-outs"))

    reminders = Counter(m.dedupe_key for m in messages if m.kind == "notification" and m.dedupe_key)
    rows.append(("reminders per booking and offset > 1", sum(1 for n in reminders.values() if n > 1),
                 f"{sum(reminders.values())} reminders"))
    rows.append(("provider sends per outbox message > 1", sum(1 for n in fake.accepted.values() if n > 1),
                 f"{sum(fake.accepted.values())} accepted, {fake.failed} failed, {fake.stalled} stalled"))
    fives = sum(n for code, n in load.statuses.items() if code >= 500)
    seen = ", ".join(f"{k}: {v}" for k, v in sorted(load.statuses.items()))
    rows.append(("webhook answers 5xx", fives, seen))
    return rows


# -- orchestration ----------------------------------------------------------------------------------

def _workers_of(pid: int) -> list[int]:
    return [p for p in _tree(pid) if p != pid]


async def run(args: argparse.Namespace, tmp: Path, db_url: str
              ) -> tuple[list[tuple[str, int, str]], dict[str, Any]]:
    rng = random.Random(args.seed)
    fake = TwilioFake(random.Random(args.seed + 1))
    httpd, twilio_port = fake.serve()
    now = dt.datetime.now(dt.UTC)
    zone, prefix, digits = pick_zone(now)
    local = now.astimezone(ZoneInfo(zone))
    first = (local + dt.timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    slots = [first + dt.timedelta(minutes=30 * i) for i in range(3)]
    # Reminder offsets that make bookings at the popular slots fall due every ~30 s of the run.
    dues = [now + dt.timedelta(seconds=t) for t in range(30, int(args.seconds), 30)]
    offsets = [round((s - due).total_seconds() / 3600, 4) for s in slots for due in dues]
    try:
        if True:  # the database (a fresh PostgreSQL schema) is made by main(), outside the event loop
            port = free_port()
            url = f"http://{HOST}:{port}"
            env = _child_env({
                "TEXTDESK_DATABASE_URL": db_url,
                "TEXTDESK_PUBLIC_URL": url,
                "TEXTDESK_BUSINESS_FILE": str(business_file(tmp, zone)),
                "TEXTDESK_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "TEXTDESK_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                "TEXTDESK_TWILIO_API_BASE": f"http://{HOST}:{twilio_port}",
                "TEXTDESK_REMINDER_OFFSETS_H": json.dumps(offsets),
                "TEXTDESK_SCHEDULER_POLL_S": "2",
                "TEXTDESK_RATE_LIMIT_PER_MINUTE": "30",
                "TEXTDESK_LOG_LEVEL": "WARNING",
                "TEXTDESK_AUTO_REPLIES_FILE": str(tmp / "auto_replies.json"),
                "TEXTDESK_SAVED_CASES_DIR": str(tmp / "saved"),
            })
            script = Path(sys.executable).with_name("textdesk")
            cmd = [str(script) if script.exists() else sys.executable, *([] if script.exists() else
                   ["-c", "from textdesk.cli import app; app()"]),
                   "serve", "--host", HOST, "--port", str(port), "--workers", "2"]
            log = tmp / "server.log"
            proc = _start(cmd, env, tmp, log)
            try:
                _wait_ready(proc, f"{url}/healthz", log)
                await asyncio.sleep(3)  # both workers up (the second answers /healthz a bit later)
                load = Load(url, RequestValidator(AUTH_TOKEN), rng, slots, time.monotonic() + args.seconds)
                phones = [f"{prefix}{i:0{digits}d}" for i in range(args.senders)]
                killed: dict[str, Any] = {}

                async def kill_one() -> None:
                    await asyncio.sleep(args.seconds * 0.4)
                    workers = _workers_of(proc.pid)
                    if workers:
                        victim = rng.choice(workers)
                        os.kill(victim, signal.SIGKILL)
                        killed.update(pid=victim, at_s=round(args.seconds * 0.4, 1), workers_before=workers)

                started = time.monotonic()
                await asyncio.gather(kill_one(), *(load.customer(p) for p in phones))
                load_s = time.monotonic() - started
                killed["workers_after"] = _workers_of(proc.pid)
                drained = await drain(db_url, limit_s=args.drain)
                rows = await check(db_url, fake, load)
            finally:
                _stop(proc)
    finally:
        httpd.shutdown()
    info = {"seconds": args.seconds, "load_s": round(load_s, 1), "senders": args.senders, "seed": args.seed,
            "zone": zone, "slots": [s.strftime("%H:%M") for s in slots], "reminder_offsets_h": offsets,
            "killed": killed, "drained": drained, "load": dict(load.stats)}
    return rows, info


async def drain(db_url: str, limit_s: float) -> bool:
    """Wait until every stored inbound message is answered (recovery included), bounded."""
    from sqlalchemy import func
    from sqlmodel import col, select

    from store.db import make_engine, make_sessionmaker
    from store.models import Message

    engine = make_engine(db_url)
    try:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            async with make_sessionmaker(engine)() as s:
                left = (await s.exec(select(func.count()).select_from(Message).where(
                    Message.direction == "in", col(Message.processed_at).is_(None)))).one()
                queued = (await s.exec(select(func.count()).select_from(Message).where(
                    Message.direction == "out", col(Message.status) == "queued"))).one()
            if left == 0 and queued == 0:
                await asyncio.sleep(3)  # a last REST retry in flight
                return True
            await asyncio.sleep(1)
        return False
    finally:
        await engine.dispose()


def table(rows: list[tuple[str, int, str]]) -> str:
    width = max(len(r[0]) for r in rows)
    lines = [f"| {'invariant':<{width}} | violations | seen |", f"|{'-' * (width + 2)}|-----------:|------|"]
    lines += [f"| {name:<{width}} | {n:>10} | {detail} |" for name, n, detail in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=150.0, help="load duration (default 150)")
    ap.add_argument("--senders", type=int, default=40)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--drain", type=float, default=120.0, help="max seconds to wait for answers after")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if not pg_available():
        print("soak: PostgreSQL is not reachable at 127.0.0.1:5432", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="textdesk-soak-"))
    try:
        with database("postgres", "soak", tmp) as db:
            rows, info = asyncio.run(run(args, tmp, db.url or ""))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    killed = info["killed"]
    print(f"soak: {info['senders']} senders for {info['load_s']} s, 2 workers on PostgreSQL, "
          f"zone {info['zone']}, popular slots {', '.join(info['slots'])}; killed worker "
          f"{killed.get('pid')} at {killed.get('at_s')} s; drained: {info['drained']}")
    print("load: " + ", ".join(f"{k} {v}" for k, v in sorted(info["load"].items())))
    print(table(rows))
    bad = sum(n for _, n, _ in rows) + (0 if info["drained"] else 1)
    if args.json:
        report = {"info": info, "rows": rows, "violations": bad}
        args.json.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    print("OK: no violations" if bad == 0 else f"FAILED: {bad} violation(s)")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

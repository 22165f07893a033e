"""Report figures over a date range: containment, escalations, drop-offs, response times,
delivery, opt-outs, volume. Days are counted in the business time zone.

Rows are aggregated in Python after a narrow column select, which keeps the SQL portable
between SQLite and PostgreSQL; fine for a small business's volume (tens of thousands of
messages a month). A bigger deployment would push the per-day grouping into SQL.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from store.models import ConsentEvent, Contact, Conversation, Message
from textdesk.clock import as_aware

__all__ = ["DayRow", "Report", "RuleHits", "build_report", "rule_hits"]

QUIET = dt.timedelta(hours=24)
REACHED = ("delivered", "read")  # what counts as a reply the customer got
FAILED = ("failed", "undelivered")


@dataclass
class DayRow:
    day: dt.date
    inbound: int = 0
    outbound: int = 0
    segments: int = 0
    opt_outs: int = 0


@dataclass
class Report:
    since: dt.datetime
    until: dt.datetime
    conversations: int = 0
    escalated: int = 0
    escalations: list[tuple[str, int]] = field(default_factory=list)
    dropoffs: list[tuple[str, int, str]] = field(default_factory=list)  # key, count, example question
    first_response_s: list[float] = field(default_factory=list)
    unanswered: int = 0
    delivery: list[tuple[str, int]] = field(default_factory=list)
    # Failed and undelivered messages by (provider, code); code None when the provider gave none.
    error_codes: list[tuple[tuple[str, int | None], int]] = field(default_factory=list)
    channels: list[tuple[str, int, int]] = field(default_factory=list)  # channel, conversations, escalated
    opt_out_sources: list[tuple[str, int]] = field(default_factory=list)
    days: list[DayRow] = field(default_factory=list)

    @property
    def containment(self) -> float | None:
        """Share of conversations the bot finished without handing them to a person."""
        return None if not self.conversations else (self.conversations - self.escalated) / self.conversations

    @property
    def first_response_median(self) -> float | None:
        return statistics.median(self.first_response_s) if self.first_response_s else None

    @property
    def first_response_p90(self) -> float | None:
        xs = sorted(self.first_response_s)
        return xs[min(len(xs) - 1, int(0.9 * len(xs)))] if xs else None

    @property
    def opt_outs(self) -> int:
        return sum(d.opt_outs for d in self.days)


def _dropoff_key(text: str) -> str:
    short = re.sub(r"\d", "#", " ".join(text.split()))
    return short if len(short) <= 70 else short[:69] + "…"


async def _dropoffs(
    session: AsyncSession, since: dt.datetime, until: dt.datetime, now: dt.datetime
) -> list[tuple[str, int, str]]:
    """Conversations left with the bot that went quiet for a day after the bot asked something."""
    quiet = list(
        await session.exec(
            select(Conversation, Contact)
            .join(Contact, col(Contact.id) == col(Conversation.contact_id))
            .where(
                Conversation.status == "bot",
                col(Conversation.started_at) >= since,
                col(Conversation.started_at) < until,
                col(Conversation.last_message_at) < now - QUIET,
            )
        )
    )
    if not quiet:
        return []
    ids = [c.id for c, _ in quiet]
    newest = (
        select(func.max(Message.id))
        .where(col(Message.conversation_id).in_(ids))
        .group_by(col(Message.conversation_id))
    )
    last = {
        m.conversation_id: m for m in await session.exec(select(Message).where(col(Message.id).in_(newest)))
    }
    latest_conv: dict[int, int] = {}
    for conv, _ in quiet:
        latest_conv[conv.contact_id] = max(latest_conv.get(conv.contact_id, 0), conv.id or 0)
    counts: Counter[str] = Counter()
    example: dict[str, str] = {}
    for conv, contact in quiet:
        m = last.get(conv.id or 0)
        if m is None or m.direction != "out":
            continue  # the customer spoke last: not a drop-off at a question of ours
        state = contact.state or {}
        if latest_conv[contact.id or 0] == conv.id and state.get("pending") and state.get("task"):
            key = f"{state['task']}: waiting for {state['pending']}"
            sample = str(state.get("last_question") or m.body)
        elif "?" in m.body:  # the bot asked something and never heard back
            key, sample = _dropoff_key(m.body), m.body
        else:
            continue  # the bot answered and the customer was done: not a drop-off
        counts[key] += 1
        example.setdefault(key, sample)
    return [(k, n, example[k]) for k, n in counts.most_common(10)]


async def build_report(
    session: AsyncSession, since: dt.datetime, until: dt.datetime, now: dt.datetime, tz: ZoneInfo
) -> Report:
    rep = Report(since=since, until=until)
    day0 = since.astimezone(tz).date()
    n_days = max(1, (until.astimezone(tz).date() - day0).days + 1)
    days = {day0 + dt.timedelta(days=i): DayRow(day0 + dt.timedelta(days=i)) for i in range(n_days)}

    convs = list(
        await session.exec(
            select(
                Conversation.id,
                Conversation.escalation_reason,
                Conversation.escalated_at,
                Conversation.channel,
            ).where(col(Conversation.started_at) >= since, col(Conversation.started_at) < until)
        )
    )
    rep.conversations = len(convs)
    per_channel: Counter[str] = Counter(ch for *_, ch in convs)
    escalated_on: Counter[str] = Counter(ch for _, _, at, ch in convs if at is not None)
    rep.channels = [(ch, n, escalated_on[ch]) for ch, n in per_channel.most_common()]
    escalated = [(cid, reason or "other", at) for cid, reason, at, _ in convs if at is not None]
    rep.escalated = len(escalated)
    rep.escalations = Counter(r for _, r, _ in escalated).most_common()

    if escalated:
        ids = [cid for cid, _, _ in escalated]
        firsts = dict(
            list(
                await session.exec(
                    select(Message.conversation_id, func.min(Message.created_at))
                    .where(
                        col(Message.conversation_id).in_(ids),
                        col(Message.author).like("agent:%"),
                        # A reply still retrying, or failed, has not reached anyone yet.
                        col(Message.status).in_(REACHED),
                    )
                    .group_by(col(Message.conversation_id))
                )
            )
        )
        for cid, _, at in escalated:
            first = firsts.get(cid or 0)
            if first is None:
                rep.unanswered += 1
            elif at is not None:
                rep.first_response_s.append(max(0.0, (as_aware(first) - as_aware(at)).total_seconds()))

    columns = (
        Message.created_at, Message.direction, Message.segments, Message.status, Message.error_code,
        Message.provider,
    )
    msgs = await session.exec(
        select(*columns).where(col(Message.created_at) >= since, col(Message.created_at) < until)  # type: ignore[call-overload]
    )
    delivery: Counter[str] = Counter()
    codes: Counter[tuple[str, int | None]] = Counter()
    for created, direction, segments, status, code, provider in msgs:
        row = days.get(as_aware(created).astimezone(tz).date())
        if direction == "in":
            if row:
                row.inbound += 1
            continue
        delivery[status] += 1
        if status in FAILED:  # every failure is listed, with or without a provider code
            codes[(provider or "–", int(code) if code else None)] += 1
        if row:
            row.outbound += 1
            row.segments += segments
    rep.delivery, rep.error_codes = delivery.most_common(), codes.most_common()

    sources: Counter[str] = Counter()
    for at, source in await session.exec(
        select(ConsentEvent.at, ConsentEvent.source).where(
            ConsentEvent.new == "opted_out", col(ConsentEvent.at) >= since, col(ConsentEvent.at) < until
        )
    ):
        sources[source] += 1
        row = days.get(as_aware(at).astimezone(tz).date())
        if row:
            row.opt_outs += 1
    rep.opt_out_sources = sources.most_common()
    rep.dropoffs = await _dropoffs(session, since, until, now)
    rep.days = list(days.values())
    return rep



@dataclass
class RuleHits:
    by_rule: Counter[str] = field(default_factory=Counter)
    by_word: Counter[str] = field(default_factory=Counter)  # keyword hits, e.g. "STOP"
    natural_language: int = 0  # opt-outs matched by phrase ("please stop texting me")
    auto_replies: Counter[str] = field(default_factory=Counter)


async def rule_hits(session: AsyncSession, since: dt.datetime | None = None) -> RuleHits:
    """Hard-rule hits from the traces: per rule, per keyword, and phrase-matched opt-outs."""
    from store.models import Trace

    q = select(Trace.rule, Trace.steps).where(col(Trace.route).in_(("rule", "limited", "agent")))
    if since is not None:
        q = q.where(col(Trace.created_at) >= since)
    hits = RuleHits()
    for rule, steps in await session.exec(q):
        if rule:
            hits.by_rule[rule] += 1
        for step in steps or []:
            name, reason = step.get("step"), str(step.get("reason") or "")
            if name == "rules" and step.get("outcome") in {"opt_out", "opt_in", "help", "human"}:
                how, _, matched = reason.partition(":")
                if how == "keyword":
                    hits.by_word[matched.upper()] += 1
                elif how == "natural_language":
                    hits.natural_language += 1
            elif name == "auto_reply" and reason:
                hits.auto_replies[reason.upper()] += 1
    return hits

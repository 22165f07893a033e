"""Delivery: sending queued outbound messages over a channel, and closing the loop with
status callbacks. The consent gate is checked again right before the send."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Protocol

from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, wait_random_exponential

from store import jobs, repo
from store.models import Contact, Conversation, Message
from store.outbox import consent_gate
from textdesk.clock import Clock

__all__ = ["STATUS_RANK", "Dispatcher", "Sender"]

log = logging.getLogger("textdesk.delivery")

# Callbacks arrive out of order; a status never moves backwards.
STATUS_RANK = {
    "queued": 0,
    "accepted": 0,
    "sending": 1,
    "sent": 2,
    "delivered": 3,
    "undelivered": 3,
    "failed": 3,
    "read": 4,
}
OPT_OUT_ERROR = 21610


class SendResult(Protocol):
    @property
    def ok(self) -> bool: ...
    @property
    def sid(self) -> str | None: ...
    @property
    def status(self) -> str | None: ...
    @property
    def error_code(self) -> int | None: ...
    @property
    def retryable(self) -> bool: ...


class _Blocked:
    """The consent gate stopped a send between attempts."""

    ok, sid, status, error_code, retryable = False, None, "blocked", None, False


class Sender(Protocol):
    async def send(self, to: str, body: str, status_callback: str | None = None) -> SendResult: ...

    def status_url(self, message_id: int) -> str: ...


class Dispatcher:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], sender: Sender, clock: Clock, max_attempts: int = 4
    ) -> None:
        self.sessions, self.sender, self.clock, self.max_attempts = sessions, sender, clock, max_attempts
        # One sender per channel; a conversation's channel picks it (SMS is the default).
        self.senders: dict[str, Sender] = {"sms": sender}

    async def _claim(self, s: AsyncSession, message_id: int, status: str, delivery: str) -> bool:
        """Atomically move a queued, never-sent message on; False when someone else got it."""
        values: dict[str, object] = {"status": status, "delivery": delivery}
        if status in ("sent", "sending"):
            values["sent_at"] = dt.datetime.now(dt.UTC)  # wall clock: when it really left
        res = await s.exec(
            update(Message)
            .where(
                col(Message.id) == message_id,
                col(Message.status) == "queued",
                col(Message.twilio_sid).is_(None),
            )
            .values(**values)
        )
        await s.commit()
        return bool(res.rowcount == 1)

    async def _gate_and_claim(self, s: AsyncSession, msg: Message, status: str, delivery: str) -> bool:
        """The consent gate and the claim in one transaction (see store.outbox.consent_gate):
        True when the message is ours to send, False when it was blocked or taken by another."""
        if not await consent_gate(s, msg.contact_id, msg.kind):
            await self._claim(s, msg.id or 0, "blocked", delivery)
            return False
        return await self._claim(s, msg.id or 0, status, delivery)

    async def claim_for_twiml(self, ids: list[int]) -> list[int]:
        """Queued replies that will leave inside the webhook's TwiML answer. A retried webhook
        uses this too, so a reply whose first answer was lost still goes out exactly once."""
        claimed: list[int] = []
        async with self.sessions() as s:
            for mid in ids:
                msg = await s.get(Message, mid)
                if msg is None:
                    continue
                if await self._gate_and_claim(s, msg, "sent", "twiml"):
                    claimed.append(mid)
        return claimed

    async def send(self, message_id: int, plan_retry: bool = True) -> Message | None:
        """Send one queued message via REST, with jittered retries on 429/5xx/network errors.

        The queued -> sending step is an atomic claim, so two callers never both send it; consent
        is re-checked, under the contact row's lock, before every attempt, so a STOP during a
        retry backoff is honoured and a STOP racing an attempt is ordered with it."""
        async with self.sessions() as s:
            msg = await s.get(Message, message_id)
            if msg is None or msg.status != "queued" or msg.twilio_sid:
                return msg
            contact = await s.get(Contact, msg.contact_id)
            conv = await s.get(Conversation, msg.conversation_id)
            if contact is None:
                return msg
            sender = self.senders.get(conv.channel if conv else "sms", self.sender)
            to, body, cb, kind, contact_id = (
                contact.phone,
                msg.body,
                sender.status_url(message_id),
                msg.kind,
                contact.id or 0,
            )
            if not await self._gate_and_claim(s, msg, "sending", "rest"):
                return await s.get(Message, message_id)
        first = True

        async def attempt() -> SendResult:
            nonlocal first
            if not first:  # the first attempt was gated by the claim itself
                async with self.sessions() as s2:
                    if not await consent_gate(s2, contact_id, kind):
                        await s2.commit()
                        return _Blocked()
                    await s2.exec(
                        update(Message)
                        .where(col(Message.id) == message_id)
                        .values(sent_at=dt.datetime.now(dt.UTC))
                    )
                    await s2.commit()
            first = False
            return await sender.send(to, body, cb)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_random_exponential(multiplier=0.2, max=4),
            retry=retry_if_result(lambda r: (not r.ok) and r.retryable),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        result: SendResult | None = await retrying(attempt)
        attempts = int(retrying.statistics.get("attempt_number", 1))
        assert result is not None
        now = self.clock.now()
        async with self.sessions() as s:
            msg2 = await s.get(Message, message_id)
            assert msg2 is not None
            msg2.attempts += attempts
            if result.ok:
                # Twilio calls an accepted message "queued"; in the outbox that means "not sent yet".
                msg2.twilio_sid = result.sid
                msg2.status = result.status if result.status in ("sent", "delivered") else "sent"
            elif isinstance(result, _Blocked):
                msg2.status = "blocked"
            else:
                msg2.status, msg2.error_code = "failed", result.error_code
                if result.error_code == OPT_OUT_ERROR:
                    contact = await s.get(Contact, msg2.contact_id)
                    if contact is not None:
                        await repo.set_consent(
                            s, contact, "opted_out", "carrier_21610", detail=str(message_id), at=now
                        )
                elif result.retryable and msg2.attempts < 5 * self.max_attempts:
                    # Twilio is down for longer than the inline retries: try again later, once.
                    msg2.next_attempt_at = now + dt.timedelta(
                        seconds=30 * 2 ** (msg2.attempts // self.max_attempts)
                    )
                    if plan_retry:
                        await jobs.schedule(
                            s,
                            "send",
                            msg2.next_attempt_at,
                            {"message_id": message_id},
                            dedupe_key=f"send:{message_id}:{msg2.attempts}",
                        )
            s.add(msg2)
            await s.commit()
            return msg2

    async def status_callback(
        self, message_id: int | None, sid: str | None, status: str, error_code: int | None
    ) -> bool:
        """Apply a delivery callback. Returns False when the message is unknown."""
        async with self.sessions() as s:
            msg = await s.get(Message, message_id) if message_id else None
            if msg is None and sid:
                msg = (await s.exec(select(Message).where(Message.twilio_sid == sid))).first()
            if msg is None:
                return False
            if sid and not msg.twilio_sid:
                msg.twilio_sid = sid
            if STATUS_RANK.get(status, 0) >= STATUS_RANK.get(msg.status, 0):
                msg.status = status
            if error_code:
                msg.error_code = error_code
            s.add(msg)
            if error_code == OPT_OUT_ERROR:
                contact = await s.get(Contact, msg.contact_id)
                if contact is not None:
                    await repo.set_consent(
                        s,
                        contact,
                        "opted_out",
                        "carrier_21610",
                        detail=f"status callback for {sid or message_id}",
                        at=self.clock.now(),
                    )
                    await repo.audit(
                        s, "consent.carrier_opt_out", contact_id=contact.id, at=self.clock.now(), sid=sid
                    )
            await s.commit()
            return True

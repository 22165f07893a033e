"""Delivery: sending queued outbound messages over a channel, and closing the loop with
status callbacks. The consent gate is checked again right before the send."""

from __future__ import annotations


import logging
from typing import Protocol

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, wait_random_exponential

from store import repo
from store.models import Contact, Conversation, Message
from store.outbox import may_send
from textdesk.clock import Clock

__all__ = ["STATUS_RANK", "Dispatcher", "Sender"]

log = logging.getLogger("textdesk.delivery")

# Callbacks arrive out of order; a status never moves backwards.
STATUS_RANK = {"queued": 0, "accepted": 0, "sending": 1, "sent": 2, "delivered": 3, "undelivered": 3,
               "failed": 3, "read": 4}
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


class Sender(Protocol):
    async def send(self, to: str, body: str, status_callback: str | None = None) -> SendResult: ...

    def status_url(self, message_id: int) -> str: ...


class Dispatcher:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], sender: Sender, clock: Clock,
                 max_attempts: int = 4) -> None:
        self.sessions, self.sender, self.clock, self.max_attempts = sessions, sender, clock, max_attempts
        # One sender per channel; a conversation's channel picks it (SMS is the default).
        self.senders: dict[str, Sender] = {"sms": sender}

    async def mark_twiml(self, ids: list[int]) -> None:
        """Replies that left inside the webhook's TwiML answer."""
        if not ids:
            return
        async with self.sessions() as s:
            for m in await s.exec(select(Message).where(col(Message.id).in_(ids))):
                if m.status == "queued":
                    m.status, m.delivery = "sent", "twiml"
                    s.add(m)
            await s.commit()

    async def send(self, message_id: int) -> Message | None:
        """Send one queued message via REST, with jittered retries on 429/5xx/network errors."""
        async with self.sessions() as s:
            msg = await s.get(Message, message_id)
            if msg is None or msg.status != "queued":
                return msg
            contact = await s.get(Contact, msg.contact_id)
            if contact is None or not may_send(contact, msg.kind):
                msg.status = "blocked"
                s.add(msg)
                await s.commit()
                return msg
            conv = await s.get(Conversation, msg.conversation_id)
            sender = self.senders.get(conv.channel if conv else "sms", self.sender)
            msg.status, msg.delivery = "sending", "rest"
            s.add(msg)
            await s.commit()
            to, body, cb = contact.phone, msg.body, sender.status_url(message_id)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_random_exponential(multiplier=0.2, max=4),
            retry=retry_if_result(lambda r: (not r.ok) and r.retryable),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        result: SendResult | None = await retrying(sender.send, to, body, cb)
        attempts = int(retrying.statistics.get("attempt_number", 1))
        assert result is not None
        async with self.sessions() as s:
            msg2 = await s.get(Message, message_id)
            assert msg2 is not None
            msg2.attempts += attempts
            if result.ok:
                msg2.twilio_sid, msg2.status = result.sid, result.status or "sent"
                if msg2.status not in STATUS_RANK:
                    msg2.status = "sent"
            else:
                msg2.status, msg2.error_code = "failed", result.error_code
                if result.error_code == OPT_OUT_ERROR:
                    contact = await s.get(Contact, msg2.contact_id)
                    if contact is not None:
                        await repo.set_consent(s, contact, "opted_out", "carrier_21610", detail=str(message_id),
                                               at=self.clock.now())
            s.add(msg2)
            await s.commit()
            return msg2

    async def status_callback(self, message_id: int | None, sid: str | None, status: str,
                              error_code: int | None) -> bool:
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
                    await repo.set_consent(s, contact, "opted_out", "carrier_21610",
                                           detail=f"status callback for {sid or message_id}", at=self.clock.now())
                    await repo.audit(s, "consent.carrier_opt_out", contact_id=contact.id,
                                     at=self.clock.now(), sid=sid)
            await s.commit()
            return True



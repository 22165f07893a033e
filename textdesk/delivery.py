"""Delivery: sending queued outbound messages over a channel, and closing the loop with
status callbacks. The consent gate is checked again right before the send.

Channels speak ``channels.base``'s vocabulary to this module: a ``SendResult`` or a
``StatusUpdate`` says ``opted_out`` or ``invalid_number``, never a provider's error code.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, wait_random_exponential

from channels.base import Sender, SendResult, StatusUpdate
from store import jobs, repo
from store.models import Contact, Conversation, Message
from store.outbox import consent_gate
from textdesk.clock import Clock

__all__ = ["STATUS_RANK", "Dispatcher"]

log = logging.getLogger("textdesk.delivery")

# Callbacks arrive out of order; a status never moves backwards.
STATUS_RANK = {
    "queued": 0,
    "accepted": 0,
    "sending": 1,
    "retrying": 1,
    "sent": 2,
    "delivered": 3,
    "undelivered": 3,
    "failed": 3,
    "cancelled": 3,
    "read": 4,
}


# The consent gate stopped a send between attempts (compared by identity).
_BLOCKED = SendResult(False, detail="blocked by the consent gate")


class Dispatcher:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        senders: dict[tuple[str, str], Sender],
        clock: Clock,
        default_providers: dict[str, str] | None = None,
        max_attempts: int = 4,
    ) -> None:
        self.sessions, self.clock, self.max_attempts = sessions, clock, max_attempts
        # One sender per (channel, provider): a reply leaves through the provider the customer
        # wrote to; a conversation with none yet (textdesk wrote first) takes the channel's default.
        self.senders = senders
        self.default_providers = default_providers or {}

    @property
    def attempt_limit(self) -> int:
        """Attempts over every retry burst before a retryable failure is final."""
        return 5 * self.max_attempts

    async def _move_unsent(self, message_id: int, from_: tuple[str, ...], to: str, *when: Any) -> bool:
        """Atomically move an outbound message that never left from one of ``from_`` to ``to``
        (and clear its planned retry). False when it is in no such state any more."""
        async with self.sessions() as s:
            res = await s.exec(
                update(Message)
                .where(
                    col(Message.id) == message_id,
                    col(Message.direction) == "out",
                    col(Message.status).in_(from_),
                    col(Message.provider_message_id).is_(None),
                    *when,
                )
                .values(status=to, next_attempt_at=None)
            )
            await s.commit()
        return bool(res.rowcount == 1)

    async def retry_now(self, message_id: int) -> bool:
        """Staff's "retry now": a retrying (or failed, but not opted-out) message goes back to the
        queue at once. False when it is no longer retryable (sent, cancelled, opted out)."""
        not_opted_out = or_(col(Message.error).is_(None), col(Message.error) != "opted_out")
        return await self._move_unsent(message_id, ("retrying", "failed"), "queued", not_opted_out)

    async def cancel(self, message_id: int) -> bool:
        """Staff's "cancel": a message that has not left yet never will (its retry job finds it
        cancelled). False when it already left or is not pending."""
        return await self._move_unsent(message_id, ("queued", "retrying"), "cancelled")

    def sender_for(self, conv: Conversation | None) -> Sender | None:
        channel = conv.channel if conv else "sms"
        provider = (conv.provider if conv else None) or self.default_providers.get(channel, "")
        return self.senders.get((channel, provider))

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
                col(Message.provider_message_id).is_(None),
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
            if msg is None or msg.status != "queued" or msg.provider_message_id:
                return msg
            contact = await s.get(Contact, msg.contact_id)
            conv = await s.get(Conversation, msg.conversation_id)
            if contact is None:
                return msg
            sender = self.sender_for(conv)
            if sender is None:  # a misconfiguration, not a transient fault: staff see why
                log.error("delivery.no_sender", extra={"message_id": message_id})
                msg.status, msg.error = "failed", "unknown"
                s.add(msg)
                await s.commit()
                return msg
            to, body, kind, contact_id = contact.phone, msg.body, msg.kind, contact.id or 0
            from_ = conv.reply_from if conv else None
            if not await self._gate_and_claim(s, msg, "sending", "rest"):
                return await s.get(Message, message_id)
        first = True

        async def attempt() -> SendResult:
            nonlocal first
            if not first:  # the first attempt was gated by the claim itself
                async with self.sessions() as s2:
                    if not await consent_gate(s2, contact_id, kind):
                        await s2.commit()
                        return _BLOCKED
                    await s2.exec(
                        update(Message)
                        .where(col(Message.id) == message_id)
                        .values(sent_at=dt.datetime.now(dt.UTC))
                    )
                    await s2.commit()
            first = False
            return await sender.send(to, body, message_id, from_)

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
            msg2.provider = sender.provider
            if result.ok:
                # A provider's "accepted" is not the outbox's "queued" (that means "not sent yet").
                msg2.provider_message_id = result.provider_message_id
                msg2.status = result.status if result.status in ("sent", "delivered") else "sent"
                msg2.error = None
            elif result is _BLOCKED:
                msg2.status = "blocked"
            else:
                msg2.status, msg2.error, msg2.error_code = "failed", result.error, result.error_code
                msg2.next_attempt_at = None
                if result.error == "opted_out":
                    contact = await s.get(Contact, msg2.contact_id)
                    if contact is not None:
                        detail = f"{sender.provider} error {result.error_code} on message {message_id}"
                        await repo.set_consent(
                            s, contact, "opted_out", "carrier_opt_out", detail=detail, at=now
                        )
                elif result.retryable and msg2.attempts < self.attempt_limit:
                    # The provider is down for longer than the inline retries: try again later. Not
                    # "failed": staff would give up on a message that is still going to leave.
                    msg2.status = "retrying"
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

    async def apply_status(self, update: StatusUpdate) -> bool:
        """Apply a delivery receipt. False when the message is unknown, or was sent by another
        provider (a receipt only ever speaks for its own provider's messages)."""
        async with self.sessions() as s:
            msg = await s.get(Message, update.message_id) if update.message_id else None
            if msg is None and update.provider_message_id:
                msg = (
                    await s.exec(
                        select(Message).where(
                            Message.provider == update.provider,
                            Message.provider_message_id == update.provider_message_id,
                        )
                    )
                ).first()
            if msg is None or (msg.provider is not None and msg.provider != update.provider):
                return False
            msg.provider = update.provider
            if update.provider_message_id and not msg.provider_message_id:
                msg.provider_message_id = update.provider_message_id
            if STATUS_RANK.get(update.status, 0) >= STATUS_RANK.get(msg.status, 0):
                msg.status = update.status
            if update.error:
                msg.error = update.error
            if update.error_code:
                msg.error_code = update.error_code
            s.add(msg)
            if update.error == "opted_out":
                contact = await s.get(Contact, msg.contact_id)
                if contact is not None:
                    now = self.clock.now()
                    ref = update.provider_message_id or update.message_id
                    await repo.set_consent(
                        s,
                        contact,
                        "opted_out",
                        "carrier_opt_out",
                        detail=f"{update.provider} receipt {update.error_code or ''} for {ref}",
                        at=now,
                    )
                    await repo.audit(
                        s,
                        "consent.carrier_opt_out",
                        contact_id=contact.id,
                        at=now,
                        provider=update.provider,
                        provider_message_id=update.provider_message_id,
                    )
            await s.commit()
            return True

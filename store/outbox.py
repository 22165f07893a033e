"""The outbox: every outgoing message is stored here first, and the consent gate lives here.

Nothing may be sent to an opted-out contact except the single opt-out confirmation and
answers to HELP. The check is made when a message is queued and again by the sender right
before it goes out, because consent can change while a message waits.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlmodel import select

from store.models import Contact, Conversation, Message, utcnow
from textdesk.segments import count_segments

__all__ = ["ALLOWED_WHEN_OPTED_OUT", "Kind", "consent_gate", "may_send", "queue_outbound"]

Kind = Literal["reply", "opt_out_confirmation", "help", "agent", "notification"]
ALLOWED_WHEN_OPTED_OUT: frozenset[str] = frozenset({"opt_out_confirmation", "help"})


def may_send(contact: Contact, kind: str) -> bool:
    return contact.consent != "opted_out" or kind in ALLOWED_WHEN_OPTED_OUT


async def consent_gate(session: Any, contact_id: int, kind: str) -> bool:
    """May a message of ``kind`` go to this contact now? Read under a share lock on the contact
    row (PostgreSQL; SQLite's writers are serialised anyway), so the caller's claim and an opt-out
    are ordered: an opt-out that committed first blocks the message, and one still in flight waits
    until the caller's transaction (the claim) commits. Call it in the claiming transaction."""
    q = select(Contact.consent).where(Contact.id == contact_id)
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        q = q.with_for_update(read=True)
    consent = (await session.exec(q)).first()
    return consent is not None and (consent != "opted_out" or kind in ALLOWED_WHEN_OPTED_OUT)


def queue_outbound(
    session: object,
    contact: Contact,
    conversation: Conversation,
    body: str,
    *,
    kind: Kind = "reply",
    author: str = "bot",
    in_reply_to: int | None = None,
    now: object = None,
    dedupe_key: str | None = None,
) -> Message:
    """Store an outbound message. Blocked by the consent gate -> stored with status 'blocked'."""
    info = count_segments(body)
    msg = Message(
        conversation_id=conversation.id or 0,
        contact_id=contact.id or 0,
        direction="out",
        channel=conversation.channel,
        body=body,
        status="queued" if may_send(contact, kind) else "blocked",
        segments=info.segments,
        encoding=info.encoding,
        author=author,
        kind=kind,
        in_reply_to=in_reply_to,
        created_at=now or utcnow(),  # type: ignore[arg-type]
        dedupe_key=dedupe_key,
    )
    session.add(msg)  # type: ignore[attr-defined]
    return msg

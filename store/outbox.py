"""The outbox: every outgoing message is stored here first, and the consent gate lives here.

Nothing may be sent to an opted-out contact except the single opt-out confirmation and
answers to HELP. The check is made when a message is queued and again by the sender right
before it goes out, because consent can change while a message waits.
"""

from __future__ import annotations

from typing import Literal

from store.models import Contact, Conversation, Message, utcnow
from textdesk.segments import count_segments

__all__ = ["ALLOWED_WHEN_OPTED_OUT", "Kind", "may_send", "queue_outbound"]

Kind = Literal["reply", "opt_out_confirmation", "help", "agent", "notification"]
ALLOWED_WHEN_OPTED_OUT: frozenset[str] = frozenset({"opt_out_confirmation", "help"})


def may_send(contact: Contact, kind: str) -> bool:
    return contact.consent != "opted_out" or kind in ALLOWED_WHEN_OPTED_OUT


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
) -> Message:
    """Store an outbound message. Blocked by the consent gate -> stored with status 'blocked'."""
    info = count_segments(body)
    msg = Message(
        conversation_id=conversation.id or 0,
        contact_id=contact.id or 0,
        direction="out",
        body=body,
        status="queued" if may_send(contact, kind) else "blocked",
        segments=info.segments,
        encoding=info.encoding,
        author=author,
        kind=kind,
        in_reply_to=in_reply_to,
        created_at=now or utcnow(),  # type: ignore[arg-type]
    )
    session.add(msg)  # type: ignore[attr-defined]
    return msg

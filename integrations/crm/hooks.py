"""Ready-made pipeline hooks that turn pipeline notifications into CRM events.

``Pipeline.escalation_hooks`` already runs after the turn's commit with (conversation id,
reason, summary); ``escalation_hook`` loads the contact and emits ``conversation.escalated``.
Hooks run off the customer's turn and must not raise, so failures are logged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from integrations.crm.events import escalation_event
from integrations.crm.sink import EventSink
from store.models import Contact, Conversation
from textdesk.clock import Clock

__all__ = ["escalation_hook"]

log = logging.getLogger("textdesk.integrations.crm")


def escalation_hook(
    sessions: async_sessionmaker[AsyncSession], sink: EventSink, clock: Clock
) -> Callable[[int, str, str], Awaitable[None]]:
    async def hook(conversation_id: int, reason: str, summary: str) -> None:
        try:
            async with sessions() as s:
                conv = await s.get(Conversation, conversation_id)
                contact = await s.get(Contact, conv.contact_id) if conv is not None else None
            if contact is None:
                log.warning("crm.escalation_without_contact", extra={"conversation_id": conversation_id})
                return
            sink.emit(
                escalation_event(contact, reason, summary, clock.now(), conversation_id=conversation_id)
            )
        except Exception:
            log.exception("crm.escalation_hook_failed")

    return hook

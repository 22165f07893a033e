"""Live helpers for the inbox pages: the reply box's SMS segment counter (an htmx fragment, from
the one segment implementation in ``textdesk.segments``) and the feed of new escalations the
browser turns into desktop notifications (web/static/notify.js)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.params import FromQuery as Q
from litestar.response import Template
from sqlalchemy import func
from sqlmodel import col, select

from store.models import AuditEvent, Contact, Conversation
from textdesk.segments import count_segments, non_gsm7
from web.deps import CurrentStaff, Db
from web.guards import INBOX, requires
from web.routes.common import MAX_ID, page
from web.templating import REASON_LABELS, address

__all__ = ["DeskController", "Escalation", "EscalationFeed"]

Form = Body(media_type=RequestEncodingType.URL_ENCODED)
SHOWN_CHARS = 5  # offending characters named under the reply box
FEED_BATCH = 20


@dataclass
class SegmentForm:
    body: str = ""


@dataclass
class Escalation:
    event_id: int
    conversation_id: int
    title: str
    body: str
    url: str


@dataclass
class EscalationFeed:
    cursor: int  # pass back as ``since`` to get only escalations after these
    escalations: list[Escalation] = field(default_factory=list)


def _visible(ch: str) -> str:
    """A character as staff can read it: invisible ones (controls, odd spaces) by code point."""
    return f"U+{ord(ch):04X}" if unicodedata.category(ch)[0] in "CZ" else ch


class DeskController(Controller):
    path = "/inbox"
    guards = [requires(*INBOX)]  # noqa: RUF012 (Litestar reads class attributes)
    include_in_schema = False

    @post("/segments", status_code=200)
    async def segments(self, staff: CurrentStaff, data: Annotated[SegmentForm, Form]) -> Template:
        """What the reply box's text costs as SMS; POST so drafts stay out of URLs and logs."""
        text = data.body.strip()  # the reply handler sends it stripped
        offenders = non_gsm7(text)
        return page(
            "inbox/_segments.html",
            staff,
            chars=len(text),
            info=count_segments(text),
            offenders=[_visible(ch) for ch in offenders[:SHOWN_CHARS]],
            more=len(offenders) > SHOWN_CHARS,
        )

    @get("/escalations.json")
    async def escalations(self, db: Db, since: Q[int | None] = None) -> Response[EscalationFeed]:
        """Conversations that escalated after event ``since`` and still need a person, oldest first,
        at most FEED_BATCH at a time. Without ``since`` only the cursor: a fresh page starts from now."""
        kind = AuditEvent.kind == "conversation.escalated"
        headers = {"Cache-Control": "no-store"}
        if since is None or not 0 <= since <= MAX_ID:
            newest = (await db.exec(select(func.max(AuditEvent.id)).where(kind))).one()
            return Response(EscalationFeed(cursor=newest or 0), headers=headers)
        events = list(
            await db.exec(
                select(AuditEvent.id, AuditEvent.conversation_id)
                .where(kind, col(AuditEvent.id) > since)
                .order_by(col(AuditEvent.id))
                .limit(FEED_BATCH)
            )
        )
        cursor = (events[-1][0] or since) if events else since
        latest = {cid: eid or 0 for eid, cid in events if cid is not None}  # one per conversation
        found: list[Escalation] = []
        if latest:
            rows = await db.exec(
                select(Conversation, Contact)
                .join(Contact, col(Contact.id) == col(Conversation.contact_id))
                .where(col(Conversation.id).in_(latest), Conversation.status == "waiting")
            )
            for conv, contact in rows:
                cid = conv.id or 0
                reason = conv.escalation_reason
                found.append(
                    Escalation(
                        event_id=latest[cid],
                        conversation_id=cid,
                        title=f"Needs a person: {contact.name or address(contact.phone)}",
                        body=REASON_LABELS.get(reason or "", reason or "Escalated"),
                        url=f"/inbox/{cid}",
                    )
                )
        found.sort(key=lambda e: e.event_id)
        return Response(EscalationFeed(cursor=cursor, escalations=found), headers=headers)

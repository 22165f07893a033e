"""The provider seam: one small Protocol, like Litestar's stores."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol

from agent.state import DialogueState
from agent.types import BookingView, Understanding
from textdesk.business import Business

__all__ = ["Provider", "UnderstandRequest"]


@dataclass(frozen=True)
class UnderstandRequest:
    """Everything a provider may see for one turn. The contact's phone is deliberately absent."""

    text: str
    business: Business
    now: dt.datetime  # aware UTC
    state: DialogueState
    history: list[tuple[str, str]] = field(default_factory=list)  # (role, text), oldest first
    bookings: list[str] = field(default_factory=list)  # the sender's own bookings, as lines
    booked: tuple[BookingView, ...] = ()  # the same bookings, structured

    @property
    def local_now(self) -> dt.datetime:
        return self.now.astimezone(self.business.tz)


class Provider(Protocol):
    name: str

    async def understand(self, req: UnderstandRequest) -> Understanding: ...

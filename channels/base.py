"""The channel seam: what every transport hands the core, and the one vocabulary it speaks.

A channel (an SMS provider, WhatsApp, web chat) authenticates its own webhooks, turns them into
``textdesk.pipeline.Inbound``, sends replies through a ``Sender`` and maps its own delivery
statuses and error codes into ``DeliveryStatus`` and ``DeliveryError`` before anything outside
``channels/`` sees them. The core stores ``provider`` + ``provider_message_id`` and never
interprets a provider's codes (see docs/architecture.md section 8, "A channel").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, get_args

__all__ = [
    "DELIVERY_ERRORS",
    "DELIVERY_STATUSES",
    "DeliveryError",
    "DeliveryStatus",
    "SendResult",
    "Sender",
    "StatusUpdate",
]

# Where an outbound message is. Callbacks arrive out of order; the outbox never moves a status back.
DeliveryStatus = Literal["queued", "sending", "sent", "delivered", "undelivered", "failed", "read"]
DELIVERY_STATUSES: tuple[str, ...] = get_args(DeliveryStatus)

# Why a send failed, in words staff and the outbox act on. ``opted_out`` changes consent (the
# carrier's STOP list); ``invalid_number`` and ``carrier_filtered`` are permanent for that text;
# ``rate_limited`` and ``unreachable`` are worth another try.
DeliveryError = Literal[
    "opted_out",
    "invalid_number",
    "carrier_filtered",
    "rate_limited",
    "unreachable",
    "rejected",
    "auth",
    "unknown",
]
DELIVERY_ERRORS: tuple[str, ...] = get_args(DeliveryError)


@dataclass(frozen=True)
class SendResult:
    """What a send attempt came to, already in textdesk's vocabulary."""

    ok: bool
    provider_message_id: str | None = None
    status: DeliveryStatus | None = None
    error: DeliveryError | None = None
    error_code: int | None = None  # the provider's own code, kept for staff and reports
    detail: str | None = None  # the provider's reason in words
    retryable: bool = False


@dataclass(frozen=True)
class StatusUpdate:
    """A delivery receipt, mapped by the channel that received it."""

    provider: str
    provider_message_id: str | None
    status: DeliveryStatus
    message_id: int | None = None  # ours, when the callback URL carried it
    error: DeliveryError | None = None
    error_code: int | None = None
    detail: str | None = None


class Sender(Protocol):
    """Sends one message over one provider. ``message_id`` lets the sender put textdesk's id in
    its delivery-receipt URL or reference field, so receipts find the row even before the
    provider's id is stored."""

    @property
    def provider(self) -> str: ...

    async def send(self, to: str, body: str, message_id: int, from_: str | None = None) -> SendResult:
        """``from_`` is the number the customer wrote to (None: the sender's configured one)."""
        ...

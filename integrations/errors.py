"""Errors raised by integrations, split by what the caller should do about them.

    TextdeskError                      (textdesk.errors)
    ├── IntegrationError
    │   ├── CalendarError
    │   │   ├── CalendarConflict       the slot was taken meanwhile: make a new offer, never double-book
    │   │   ├── CalendarNotFound       the external event is gone (deleted by staff in the calendar)
    │   │   └── CalendarUnavailable    transport, auth, rate limit or 5xx that outlasted the retries
    │   ├── DeliveryFailed             a CRM/webhook delivery gave up (``permanent``: do not retry)
    │   └── PaymentError
    │       ├── PaymentUnavailable     Stripe could not be reached or refused after retries
    │       └── LinkNotAllowed         a payment URL whose host is not on the business allow-list
    └── ChannelError                   (textdesk.errors)
        └── SignatureError
            └── WebhookSignatureError  a Stripe or textdesk webhook signature is bad, stale or missing

Callers catch at the level they mean: a booking tool catches ``CalendarConflict`` to re-offer and
``CalendarUnavailable`` to apologise or escalate; the web edge maps ``WebhookSignatureError`` to 400.
"""

from __future__ import annotations

from textdesk.errors import SignatureError, TextdeskError

__all__ = [
    "CalendarConflict",
    "CalendarError",
    "CalendarNotFound",
    "CalendarUnavailable",
    "DeliveryFailed",
    "IntegrationError",
    "LinkNotAllowed",
    "PaymentError",
    "PaymentUnavailable",
    "WebhookSignatureError",
]


class IntegrationError(TextdeskError):
    """Base of errors raised while talking to a calendar, CRM or payment provider."""


class CalendarError(IntegrationError):
    """A calendar adapter could not do what was asked."""


class CalendarConflict(CalendarError):
    """The requested slot is no longer free (someone else took it between offer and write)."""

    def __init__(self, message: str, *, provider: str | None = None) -> None:
        super().__init__(message)
        self.provider = provider


class CalendarNotFound(CalendarError):
    """The external event does not exist (any more)."""


class CalendarUnavailable(CalendarError):
    """The calendar could not be reached or refused us, after bounded retries."""


class DeliveryFailed(IntegrationError):
    """An outbound CRM event could not be delivered.

    ``permanent`` is True when retrying cannot help (4xx other than 408/429, bad config).
    """

    def __init__(self, message: str, *, permanent: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.status = status


class PaymentError(IntegrationError):
    """A payment link could not be made or used."""


class PaymentUnavailable(PaymentError):
    """Stripe could not be reached, rate-limited us past the budget, or rejected the request."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class LinkNotAllowed(PaymentError):
    """The link's host is not on the business's ``allowed_link_hosts``; it must not be sent."""


class WebhookSignatureError(SignatureError):
    """An inbound webhook signature is missing, malformed, wrong or outside the time tolerance."""

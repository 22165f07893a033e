"""The business's link allow-list, applied to payment URLs before they are ever put in a message.

Same rule as the output guard: a host is allowed when it equals an allowed host or is a
subdomain of one. Payment links must also be ``https``. A Stripe business lists
``checkout.stripe.com`` (Checkout Sessions) and/or ``buy.stripe.com`` (Payment Links) in
``allowed_link_hosts``; until it does, textdesk refuses to send the link.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from integrations.errors import LinkNotAllowed

__all__ = ["ensure_allowed", "host_allowed"]


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == h.lower() or host.endswith("." + h.lower()) for h in allowed if h)


def ensure_allowed(url: str, allowed: Iterable[str]) -> str:
    """Return ``url`` if it may be sent; raise LinkNotAllowed otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise LinkNotAllowed(f"payment links must be https URLs: {url!r}")
    if parts.username or parts.password:
        raise LinkNotAllowed("payment links must not carry credentials")
    if not host_allowed(parts.hostname, allowed):
        raise LinkNotAllowed(f"{parts.hostname} is not in the business's allowed_link_hosts")
    return url

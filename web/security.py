"""Security headers on every response, 404s and error pages included: a ``before_send`` hook
(it wraps the app's send for every request, unlike route middleware or ``after_request``)."""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

__all__ = ["CSP", "security_headers"]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def security_headers(message: Message, scope: Scope) -> None:
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    for key, value in _HEADERS.items():
        if key not in headers:
            headers[key] = value
    if not str(scope.get("path", "")).startswith("/schema"):  # the API docs page loads its own viewer
        headers.setdefault("Content-Security-Policy", CSP)

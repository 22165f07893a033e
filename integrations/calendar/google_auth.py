"""Access tokens for the Google Calendar API.

Three sources, one interface (``token()``, and ``refresh(rejected)`` after a 401):

* ``StaticToken`` — a pre-issued access token (tests, short demos). It cannot be refreshed.
* ``RefreshingToken`` — the OAuth 2.0 "installed app / web server" flow done once by the
  operator (see docs/integrations.md); textdesk keeps the refresh token and exchanges it at
  ``https://oauth2.googleapis.com/token`` whenever the access token expires or is rejected.
* ``ServiceAccountToken`` — a service-account key (JSON); signs an RS256 JWT assertion
  (RFC 7523). Needs ``pyjwt`` *and* ``cryptography``; without ``cryptography`` it refuses to
  start with a ``ConfigurationError`` instead of failing at the first booking.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import httpx

from integrations._http import RetryableStatus, RetryPolicy
from integrations.errors import CalendarUnavailable
from textdesk.clock import Clock, SystemClock
from textdesk.errors import ConfigurationError

__all__ = ["GOOGLE_TOKEN_URI", "RefreshingToken", "ServiceAccountToken", "StaticToken", "TokenSource"]

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
CALENDAR_SCOPE = "https://www.googleapis.com/auth/calendar"
_EARLY = dt.timedelta(seconds=60)  # refresh a minute before expiry


class TokenSource(Protocol):
    async def token(self) -> str:
        """A bearer token believed to be valid now."""
        ...

    async def refresh(self, rejected: str) -> str:
        """The API rejected ``rejected`` (HTTP 401): return a fresh token or raise CalendarUnavailable."""
        ...


class StaticToken:
    def __init__(self, access_token: str) -> None:
        self._token = access_token

    async def token(self) -> str:
        return self._token

    async def refresh(self, rejected: str) -> str:
        raise CalendarUnavailable("Google rejected the access token and no refresh token is configured")


class _CachedToken:
    """Caches an access token until shortly before it expires; one refresh at a time."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        clock: Clock | None,
        retry: RetryPolicy | None,
        token_uri: str,
        access_token: str | None = None,
    ) -> None:
        self.http, self.clock = http, clock or SystemClock()
        self.retry = retry or RetryPolicy()
        self.token_uri = token_uri
        self._token = access_token
        # A pre-issued token is used until the API rejects it (its expiry is unknown).
        self._expires: dt.datetime | None = None
        self._lock = asyncio.Lock()

    def _valid(self) -> bool:
        return self._token is not None and (
            self._expires is None or self.clock.now() < self._expires - _EARLY
        )

    async def token(self) -> str:
        if self._valid():
            assert self._token is not None
            return self._token
        async with self._lock:
            if not self._valid():
                await self._exchange()
            assert self._token is not None
            return self._token

    async def refresh(self, rejected: str) -> str:
        async with self._lock:
            if self._token is None or self._token == rejected:  # nobody refreshed it meanwhile
                await self._exchange()
            assert self._token is not None
            return self._token

    def _form(self) -> dict[str, str]:
        raise NotImplementedError

    async def _exchange(self) -> None:
        try:
            async for attempt in self.retry.retrying():
                with attempt:
                    resp = await self.http.post(self.token_uri, data=self._form())
                    if resp.status_code == 429 or resp.status_code >= 500:
                        raise RetryableStatus(resp.status_code, detail="token endpoint")
        except (RetryableStatus, httpx.TransportError) as exc:
            raise CalendarUnavailable(f"Google token endpoint unavailable: {exc}") from exc
        body = _json(resp)
        if resp.status_code != 200 or "access_token" not in body:
            reason = body.get("error_description") or body.get("error") or f"HTTP {resp.status_code}"
            raise CalendarUnavailable(f"Google refused to issue an access token: {reason}")
        self._token = str(body["access_token"])
        expires_in = int(body.get("expires_in", 3600))
        self._expires = self.clock.now() + dt.timedelta(seconds=expires_in)


class RefreshingToken(_CachedToken):
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        access_token: str | None = None,
        token_uri: str = GOOGLE_TOKEN_URI,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(http, clock, retry, token_uri, access_token)
        self._client_id, self._client_secret, self._refresh = client_id, client_secret, refresh_token

    def _form(self) -> dict[str, str]:
        return {
            "grant_type": "refresh_token",
            "refresh_token": self._refresh,
            "client_id": self._client_id,
            "client_secret": self._client_secret,
        }


class ServiceAccountToken(_CachedToken):
    """Service-account credentials (the JSON key file's mapping); ``subject`` for domain-wide delegation."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        info: Mapping[str, Any],
        *,
        scopes: Sequence[str] = (CALENDAR_SCOPE,),
        subject: str | None = None,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        try:
            import jwt
            from jwt.algorithms import has_crypto
        except ImportError as exc:  # pragma: no cover - pyjwt ships with the environment
            raise ConfigurationError("a Google service account needs the 'pyjwt' package") from exc
        if not has_crypto:
            raise ConfigurationError(
                "a Google service account needs RS256 signing: install 'cryptography', or configure "
                "TEXTDESK_GOOGLE_REFRESH_TOKEN / TEXTDESK_GOOGLE_TOKEN instead (docs/integrations.md)"
            )
        missing = [k for k in ("client_email", "private_key") if not info.get(k)]
        if missing:
            raise ConfigurationError(f"service account key is missing {', '.join(missing)}")
        super().__init__(http, clock, retry, str(info.get("token_uri") or GOOGLE_TOKEN_URI))
        self._jwt, self._info, self._scopes, self._subject = jwt, dict(info), tuple(scopes), subject

    def _form(self) -> dict[str, str]:
        now = int(self.clock.now().timestamp())
        claims: dict[str, Any] = {
            "iss": self._info["client_email"],
            "scope": " ".join(self._scopes),
            "aud": self.token_uri,
            "iat": now,
            "exp": now + 3600,
        }
        if self._subject:
            claims["sub"] = self._subject
        headers = {"kid": self._info["private_key_id"]} if self._info.get("private_key_id") else None
        assertion = self._jwt.encode(claims, self._info["private_key"], algorithm="RS256", headers=headers)
        return {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}

"""An httpx-backed HTTP client for the twilio SDK, so one client serves REST sends and respx
can intercept them in tests (the SDK's async default is aiohttp)."""

from __future__ import annotations

import logging

import httpx
from twilio.http import AsyncHttpClient
from twilio.http.response import Response

__all__ = ["HttpxTwilioClient"]

_log = logging.getLogger("textdesk.twilio.http")


class HttpxTwilioClient(AsyncHttpClient):  # type: ignore[misc]  # twilio's http base class is untyped
    def __init__(self, client: httpx.AsyncClient | None = None, timeout: float = 10.0) -> None:
        super().__init__(_log, True, timeout)
        self.client = client or httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=5.0))

    # The twilio HttpClient interface passes a timeout argument; we hand it to httpx.
    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
        allow_redirects: bool = False,
    ) -> Response:
        resp = await self.client.request(
            method.upper(), url, params=params, data=data, headers=headers,  # type: ignore[arg-type]
            auth=auth, timeout=timeout or self.timeout, follow_redirects=allow_redirects,
        )
        return Response(resp.status_code, resp.text, resp.headers)

    async def close(self) -> None:
        await self.client.aclose()

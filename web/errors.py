"""Exception handlers: exceptions are data, the response is chosen here at the edge.

Staff pages get an HTML error page (and a redirect to /login when the session is missing),
``/api`` gets JSON, provider webhooks and health checks get plain text. Every handler is total: a
failure while rendering the error page falls back to plain text instead of escaping.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException

from channels.registry import WEBHOOK_PREFIXES

__all__ = ["EXCEPTION_HANDLERS", "is_htmx"]

log = logging.getLogger("textdesk.web")
_PLAIN_PREFIXES = (*WEBHOOK_PREFIXES, "/healthz", "/readyz", "/metrics", "/static")
TITLES = {
    400: "Bad request",
    401: "Please log in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "Conflict",
    429: "Too many attempts",
    500: "Something went wrong",
}


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true"


def _kind(request: Request[Any, Any, Any]) -> str:
    path = request.url.path
    if path.startswith("/api") or path.startswith("/schema"):
        return "api"
    if path.startswith(_PLAIN_PREFIXES):
        return "plain"
    return "page"


def _page(request: Request[Any, Any, Any], status: int, detail: str) -> Response[Any]:
    headers = {}
    if is_htmx(request) and request.headers.get("hx-boosted") != "true":
        headers["HX-Reswap"] = "none"  # a failed poll or fragment must not replace the page
    try:
        engine: Any = request.app.template_engine
        html = engine.get_template("error.html").render(
            request=request,
            status=status,
            title=TITLES.get(status, "Error"),
            detail=detail,
            staff=request.scope.get("user"),
            csrf_input="",
        )
    except Exception:  # the error page itself failed: plain text, never a second exception
        log.exception("web.error_page_failed")
        return Response(f"{status} {detail}", status_code=status, media_type=MediaType.TEXT, headers=headers)
    return Response(html, status_code=status, media_type=MediaType.HTML, headers=headers)


def _respond(
    request: Request[Any, Any, Any], status: int, detail: str, headers: dict[str, str] | None = None
) -> Response[Any]:
    kind = _kind(request)
    if kind == "api":
        return Response({"status_code": status, "detail": detail}, status_code=status, headers=headers)
    if kind == "plain":
        return Response(detail, status_code=status, media_type=MediaType.TEXT, headers=headers)
    resp = _page(request, status, detail)
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def _not_authorized(request: Request[Any, Any, Any], exc: NotAuthorizedException) -> Response[Any]:
    if _kind(request) != "page":
        return _respond(request, 401, "login required")
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    login = f"/login?next={quote(target, safe='')}" if request.method == "GET" else "/login"
    if is_htmx(request):  # htmx follows redirects inside XHR; make the whole page go to /login
        return Response("", status_code=401, headers={"HX-Redirect": login}, media_type=MediaType.TEXT)
    return Response("", status_code=303, headers={"Location": login}, media_type=MediaType.TEXT)


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    headers = {k: str(v) for k, v in (exc.headers or {}).items()}
    return _respond(request, exc.status_code, str(exc.detail), headers)


def _internal(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("web.unhandled", exc_info=exc)
    return _respond(request, 500, "internal error")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    NotAuthorizedException: _not_authorized,
    HTTPException: _http,
    Exception: _internal,
}

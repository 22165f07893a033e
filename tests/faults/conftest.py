"""Fixtures for the fault suite (issue 8.3): a private PostgreSQL cluster that can be stopped,
fake Twilio REST APIs (in-process transport and a real loopback HTTP server), a fake
OpenAI-compatible server that can hang, and a concurrent webhook client.

Everything binds to 127.0.0.1 only; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from twilio.request_validator import RequestValidator

from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, require

_HERE = Path(__file__).parent


def _load_pg_cluster() -> Any:
    """tests/faults has no __init__.py: load the helper module by path, under a unique name."""
    name = "textdesk_faults_pg_cluster"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _HERE / "pg_cluster.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


pg_cluster_module = _load_pg_cluster()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a fault test that takes seconds (still runs in CI)")
    config.addinivalue_line("markers", "faults: fault-injection tests (issue 8.3)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/faults/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.faults)


# -- a private PostgreSQL cluster -----------------------------------------------------------------

@pytest.fixture
def pg_cluster() -> Iterator[Any]:
    """A started private cluster (its own port and data dir); always destroyed afterwards."""
    reason = pg_cluster_module.why_unavailable()
    require(reason is None, reason or "")
    cluster = pg_cluster_module.PgCluster().init()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


# -- Twilio: the wire format ------------------------------------------------------------------------

def twilio_created(form: dict[str, str]) -> dict[str, Any]:
    sid = "SM" + uuid.uuid4().hex
    return {"sid": sid, "account_sid": ACCOUNT_SID, "to": form.get("To"), "from": form.get("From"),
            "body": form.get("Body"), "status": "queued", "num_segments": "1", "direction": "outbound-api",
            "api_version": "2010-04-01", "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json"}


def twilio_error(status: int, code: int) -> dict[str, Any]:
    return {"code": code, "message": f"fake failure {status}", "more_info": "", "status": status}


def message_id_of(form: dict[str, str]) -> int | None:
    """The outbox id a REST send carries in its StatusCallback (``...?m=<id>``)."""
    cb = form.get("StatusCallback", "")
    q = parse_qs(urlsplit(cb).query)
    raw = (q.get("m") or [""])[0]
    return int(raw) if raw.isdigit() else None


@dataclass
class Send:
    to: str
    body: str
    message_id: int | None
    status: int  # the HTTP status the fake answered
    at: float = field(default_factory=time.time)  # wall clock, comparable with DB timestamps


class FakeTwilioTransport:
    """In-process Twilio REST API (an httpx transport). ``script`` decides each answer:
    a callable ``(form, n) -> (status, code) | None`` (None = 201 Created); may be async."""

    def __init__(self) -> None:
        self.calls: list[Send] = []
        self.script: Callable[[dict[str, str], int], Any] | None = None

    @property
    def delivered(self) -> list[Send]:
        return [c for c in self.calls if c.status == 201]

    async def handler(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        n = len(self.calls)
        outcome = self.script(form, n) if self.script else None
        if asyncio.iscoroutine(outcome):
            outcome = await outcome
        status, code = outcome if outcome else (201, 0)
        self.calls.append(Send(form.get("To", ""), form.get("Body", ""), message_id_of(form), status))
        if status == 201:
            return httpx.Response(201, json=twilio_created(form))
        return httpx.Response(status, json=twilio_error(status, code))

    def channel(self, settings: Any, timeout: float = 10.0) -> Any:
        from channels.twilio import TwilioChannel
        from channels.twilio_http import HttpxTwilioClient

        transport = httpx.MockTransport(self.handler)
        http = HttpxTwilioClient(httpx.AsyncClient(transport=transport), timeout=timeout)
        return TwilioChannel(settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value(),
                             settings.twilio_from, settings.public_url, http=http,
                             validate=settings.validate_signatures)


@pytest.fixture
def fake_twilio() -> FakeTwilioTransport:
    return FakeTwilioTransport()


# -- loopback HTTP servers (for subprocess tests and real timeouts) -------------------------------

class _Server:
    """A ThreadingHTTPServer on 127.0.0.1:<free port> in a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> _Server:
        self.thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client (a killed worker) is gone


class TwilioServer(_Server):
    """Twilio's REST API on loopback: records every POST .../Messages.json, answers 201."""

    def __init__(self) -> None:
        self.sends: list[Send] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(_Quiet):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if not self.path.endswith("/Messages.json"):
                    self._json(404, twilio_error(404, 20404))
                    return
                with owner.lock:
                    owner.sends.append(Send(form.get("To", ""), form.get("Body", ""), message_id_of(form),
                                            201))
                self._json(201, twilio_created(form))

        super().__init__(Handler)


class HangingServer:
    """Accepts TCP connections and reads, but never answers (a hung upstream)."""

    def __init__(self) -> None:
        self.connections = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def __aenter__(self) -> HangingServer:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            self._writers.append(writer)
            try:
                await asyncio.wait_for(reader.read(65536), timeout=30)
                await asyncio.sleep(30)  # bounded: the test cancels it on exit
            except (TimeoutError, asyncio.CancelledError, ConnectionError):
                pass

        self._server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aexit__(self, *exc: object) -> None:
        for w in self._writers:
            w.close()
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), timeout=5)


@pytest.fixture
def twilio_server() -> Iterator[TwilioServer]:
    srv = TwilioServer()
    srv.start()
    try:
        yield srv
    finally:
        srv.close()


# -- the OpenAI wire format -------------------------------------------------------------------------

def completion(arguments: dict[str, Any]) -> dict[str, Any]:
    """A chat.completion body with one forced ``understand`` tool call, as the API returns it."""
    message = {"role": "assistant", "content": None, "refusal": None,
               "tool_calls": [{"id": "call_fault1", "type": "function",
                               "function": {"name": "understand", "arguments": json.dumps(arguments)}}]}
    return {"id": "chatcmpl-fault", "object": "chat.completion", "created": 1772550000,
            "model": "gpt-4o-mini", "system_fingerprint": "fp_test",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 700, "completion_tokens": 30, "total_tokens": 730}}


FAQ_TURN = {"intent": "ask_question", "confidence": 0.93, "slots": {}, "tool_calls": []}


class SlowLLMServer(_Server):
    """An OpenAI-compatible /v1/chat/completions on loopback. While ``hold`` is set, a request
    waits (bounded by ``max_hold_s``) before answering; ``received`` is set on each request."""

    def __init__(self, max_hold_s: float = 15.0) -> None:
        self.requests = 0
        self.received = threading.Event()
        self.hold = threading.Event()
        self.release = threading.Event()
        self.max_hold_s = max_hold_s
        owner = self

        class Handler(_Quiet):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                owner.requests += 1
                owner.received.set()
                if owner.hold.is_set():
                    owner.release.wait(timeout=owner.max_hold_s)
                self._json(200, completion(FAQ_TURN))

        super().__init__(Handler)


@pytest.fixture
def slow_llm() -> Iterator[SlowLLMServer]:
    srv = SlowLLMServer()
    srv.start()
    try:
        yield srv
    finally:
        srv.release.set()
        srv.close()


# -- signed webhooks --------------------------------------------------------------------------------

def sms_params(sender: str, body: str, sid: str | None = None) -> dict[str, str]:
    return {"MessageSid": sid or f"SM{uuid.uuid4().hex}", "AccountSid": ACCOUNT_SID, "From": sender,
            "To": "+15005550006", "Body": body, "NumMedia": "0"}


def signed_headers(params: dict[str, str], path: str = "/twilio/sms") -> dict[str, str]:
    sig = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_URL + path, params)
    return {"X-Twilio-Signature": sig, "Content-Type": "application/x-www-form-urlencoded"}


def twiml_messages(text: str) -> list[str]:
    """The <Message> bodies of a TwiML answer ([] for an empty <Response/>)."""
    root = ET.fromstring(text)
    return [m.text or "" for m in root.iter("Message")]


def twiml_ids(text: str) -> list[int | None]:
    """The outbox id of each <Message> (its status-callback ``action`` carries ``?m=<id>``)."""
    root = ET.fromstring(text)
    return [message_id_of({"StatusCallback": m.get("action", "")}) for m in root.iter("Message")]


@dataclass
class Attempt:
    sid: str
    sender: str
    body: str
    status: int | None  # None: the connection failed (no HTTP answer at all)
    messages: list[str] = field(default_factory=list)
    ids: list[int | None] = field(default_factory=list)  # outbox ids of the TwiML messages
    seconds: float = 0.0
    error: str | None = None
    at: float = 0.0  # wall clock when the answer (or the failure) arrived


class Webhooks:
    """Posts signed Twilio webhooks over any httpx client (ASGI in-process or a real socket)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.log: list[Attempt] = []

    async def post(self, params: dict[str, str], timeout: float = 30.0) -> Attempt:  # noqa: ASYNC109
        started = time.perf_counter()
        a = Attempt(params["MessageSid"], params["From"], params["Body"], None)
        try:
            resp = await self.client.post("/twilio/sms", content=urlencode(params),
                                          headers=signed_headers(params), timeout=timeout)
            a.status = resp.status_code
            if resp.status_code == 200:
                a.messages = twiml_messages(resp.text)
                a.ids = twiml_ids(resp.text)
        except httpx.HTTPError as exc:
            a.error = type(exc).__name__
        a.seconds = time.perf_counter() - started
        a.at = time.time()
        self.log.append(a)
        return a


@pytest.fixture
async def asgi_client_factory() -> AsyncIterator[Callable[[Any], httpx.AsyncClient]]:
    """httpx over ASGITransport: requests run on the test's own event loop, truly concurrently
    (Litestar's AsyncTestClient runs the app through a blocking portal, one request at a time)."""
    made: list[httpx.AsyncClient] = []

    def make(app: Any) -> httpx.AsyncClient:
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                              base_url="http://testserver")
        made.append(c)
        return c

    yield make
    for c in made:
        await c.aclose()


_THIS = sys.modules[__name__]  # captured now: pytest re-binds the name "conftest" per directory


@pytest.fixture
def kit() -> Any:
    """This module's helpers (Webhooks, sms_params, twiml_messages, servers...) for the tests:
    tests/faults has no __init__.py, so test modules reach them through this fixture."""
    return _THIS

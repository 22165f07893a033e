"""Local stand-ins for the two outside services the LLM path talks to, in ONE loopback process.

- ``POST /v1/chat/completions``: a mock OpenAI chat-completions endpoint. It sleeps a fixed
  ``--llm-latency`` (default 0.8 s), then answers a valid ``chat.completion`` whose single tool
  call is ``understand`` with LLMTurn arguments (agent/llm_output.py) for a haircut booking.
- ``POST /2010-04-01/Accounts/{sid}/Messages.json``: a fake Twilio REST API that records the
  send and answers 201 with a Message resource (``status: queued``).
- ``GET /stats`` (counters) and ``POST /reset`` for the orchestrator (bench/run.py).

A raw ASGI app (no framework) so the fakes cost as little CPU as possible on a 2-core box.

    python -m bench.fakes --port 8765 [--llm-latency 0.8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections import Counter
from typing import Any
from urllib.parse import parse_qs

__all__ = ["LLM_ARGUMENTS", "completion_body", "make_app"]

LLM_ARGUMENTS: dict[str, Any] = {
    "intent": "book_appointment", "confidence": 0.9,
    "slots": {"service": "haircut", "date": None, "time": None, "provider": None, "name": None,
              "email": None},
    "affirm": None, "choice": None, "tool_calls": [],
}


def completion_body(model: str = "gpt-4o-mini") -> dict[str, Any]:
    """A chat.completion exactly as the API returns it (cf. tests/agent/test_openai_provider.py)."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
        "model": model, "system_fingerprint": "fp_bench",
        "choices": [{
            "index": 0, "logprobs": None, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": None, "refusal": None, "tool_calls": [{
                "id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
                "function": {"name": "understand", "arguments": json.dumps(LLM_ARGUMENTS)}}]},
        }],
        "usage": {"prompt_tokens": 812, "completion_tokens": 46, "total_tokens": 858},
    }


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.llm_requests = 0
        self.llm_answered = 0  # responses fully sent (the client had not hung up)
        self.twilio_sends = 0
        self.to: Counter[str] = Counter()
        self.first_send: float | None = None
        self.last_send: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"llm_requests": self.llm_requests, "llm_answered": self.llm_answered,
                "twilio_sends": self.twilio_sends, "distinct_to": len(self.to),
                "duplicate_to": sum(1 for n in self.to.values() if n > 1),
                "first_send": self.first_send, "last_send": self.last_send, "now": time.time()}


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise ConnectionError("client went away")
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body"):
            return b"".join(chunks)


async def _send(send: Any, status: int, payload: Any) -> None:
    raw = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


def make_app(llm_latency_s: float = 0.8) -> Any:
    stats = Stats()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        try:
            body = await _body(receive)
        except ConnectionError:
            return
        if path.endswith("/chat/completions") and method == "POST":
            stats.llm_requests += 1
            try:
                request = json.loads(body or b"{}")
            except ValueError:
                request = {}
            await asyncio.sleep(llm_latency_s)
            try:
                await _send(send, 200, completion_body(str(request.get("model") or "gpt-4o-mini")))
                stats.llm_answered += 1
            except Exception:  # the client gave up (turn budget): nothing to answer
                pass
        elif path.startswith("/2010-04-01/Accounts/") and path.endswith("/Messages.json") \
                and method == "POST":
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            sid = path.split("/")[3]
            now = time.time()
            stats.twilio_sends += 1
            stats.to[form.get("To", "")] += 1
            stats.first_send = stats.first_send or now
            stats.last_send = now
            await _send(send, 201, {
                "sid": "SM" + uuid.uuid4().hex, "account_sid": sid, "to": form.get("To"),
                "from": form.get("From"), "body": form.get("Body"), "status": "queued", "num_segments": "1",
                "direction": "outbound-api",
                "api_version": "2010-04-01", "date_created": None, "date_updated": None, "date_sent": None,
                "price": None, "error_code": None, "error_message": None, "uri": path,
            })
        elif path == "/stats":
            await _send(send, 200, stats.as_dict())
        elif path == "/reset" and method == "POST":
            stats.reset()
            await _send(send, 200, {"ok": True})
        elif path == "/healthz":
            await _send(send, 200, {"status": "ok"})
        else:
            await _send(send, 404, {"error": "not found", "path": path})

    return app


def main() -> None:
    import uvicorn

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--llm-latency", type=float, default=0.8)
    args = ap.parse_args()
    uvicorn.run(make_app(args.llm_latency), host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()

"""Load generator: signed Twilio SMS webhooks at a fixed concurrency, from its own process.

Each of ``--concurrency`` virtual users holds one keep-alive HTTP/1.1 connection to the server
and sends its share of ``--requests`` one after another (a closed loop: the next request leaves
when the previous answer arrived). Requests are built and signed up front, exactly as Twilio
signs them (``RequestValidator(auth_token).compute_signature(public_url + "/twilio/sms",
params)``), so the timed loop only writes bytes and parses responses. The HTTP client is a
minimal one over asyncio streams (uvloop when present): a Python httpx client would saturate
a core well before the bare endpoint does and understate the baseline.

Bounded: the run stops issuing requests after ``--max-seconds``, and every request gives up
after ``--timeout`` seconds (counted as an error). Loopback only (``--url`` must be 127.0.0.1
or localhost).

Prints ``started`` when the timed loop begins, ``progress N`` lines every ``--progress-every``
answers (for the memory soak), then one JSON object (the last line): counts, errors by kind,
wall time, throughput, latency percentiles.

    python -m bench.load --url http://127.0.0.1:8000 --token T --account-sid AC... \
        --body HELP --concurrency 10 --requests 500 --senders user
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from twilio.request_validator import RequestValidator

__all__ = ["LoadResult", "percentile", "phone", "run_load"]

TO_NUMBER = "+15005550006"


def phone(index: int) -> str:
    """A distinct, possible US number per index (+1 646 2xx-xxxx ...)."""
    return f"+1646{2_000_000 + index:07d}"


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class LoadResult:
    requests: int = 0  # answered or failed (i.e. issued and finished)
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    unexpected: int = 0  # HTTP 200 whose body does not look like the expected answer
    wall_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        return {
            "requests": self.requests, "ok": self.ok, "errors": sum(self.errors.values()),
            "error_kinds": dict(self.errors), "unexpected": self.unexpected, "wall_s": round(self.wall_s, 3),
            "throughput": round(self.requests / self.wall_s, 2) if self.wall_s > 0 else 0.0,
            "p50_ms": round(percentile(lat, 50), 2), "p95_ms": round(percentile(lat, 95), 2),
            "p99_ms": round(percentile(lat, 99), 2), "max_ms": round(lat[-1], 2) if lat else 0.0,
            "mean_ms": round(sum(lat) / len(lat), 2) if lat else 0.0,
        }


def build_request(host: str, public_url: str, validator: RequestValidator, account_sid: str,
                  sender: str, body: str) -> bytes:
    params = {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": account_sid, "From": sender,
              "To": TO_NUMBER, "Body": body, "NumMedia": "0"}
    signature = validator.compute_signature(public_url.rstrip("/") + "/twilio/sms", params)
    payload = urlencode(params).encode()
    head = (f"POST /twilio/sms HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"X-Twilio-Signature: {signature}\r\nContent-Length: {len(payload)}\r\n"
            "User-Agent: TwilioProxy/1.1 (textdesk bench)\r\n\r\n")
    return head.encode() + payload


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body, and whether the server will close the connection."""
    line = await reader.readline()
    if not line:
        raise ConnectionError("connection closed before a response")
    parts = line.split(None, 2)
    status = int(parts[1])
    length: int | None = None
    chunked = close = False
    while True:
        h = await reader.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        key, _, value = h.decode("latin-1").partition(":")
        key, value = key.strip().lower(), value.strip().lower()
        if key == "content-length":
            length = int(value)
        elif key == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif key == "connection" and "close" in value:
            close = True
    if chunked:
        chunks = []
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                await reader.readline()
                break
            chunks.append(await reader.readexactly(size))
            await reader.readline()
        body = b"".join(chunks)
    elif length is not None:
        body = await reader.readexactly(length)
    else:
        body, close = await reader.read(), True
    return status, body, close


def _expected(kind: str, body: bytes) -> bool:
    if kind == "message":
        return b"<Message" in body
    if kind == "empty":
        return b"<Response/>" in body
    return b"<Response" in body


async def run_load(url: str, public_url: str, token: str, account_sid: str, body: str, concurrency: int,
                   requests: int, *, senders: str = "user", sender_offset: int = 0, max_seconds: float = 60.0,
                   request_timeout_s: float = 10.0, expect: str = "any",
                   progress_every: int = 0) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing to load a non-loopback host: {host}")
    validator = RequestValidator(token)

    def sender_for(vu: int, i: int) -> str:
        if senders == "user":
            return phone(sender_offset + vu)
        if senders == "request":
            return phone(sender_offset + i)
        if senders.startswith("pool:"):
            return phone(sender_offset + i % int(senders.split(":", 1)[1]))
        raise SystemExit(f"unknown --senders {senders!r}")

    # Static partition: virtual user k sends requests k, k+C, k+2C, ...
    plans: list[list[bytes]] = [[] for _ in range(concurrency)]
    for i in range(requests):
        vu = i % concurrency
        plans[vu].append(build_request(f"{host}:{port}", public_url, validator, account_sid,
                                       sender_for(vu, i), body))

    result = LoadResult()
    deadline = time.monotonic() + max_seconds

    async def user(plan: list[bytes]) -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        for raw in plan:
            if time.monotonic() >= deadline:
                break
            started = time.perf_counter()
            try:
                async with asyncio.timeout(request_timeout_s):
                    if writer is None:
                        reader, writer = await asyncio.open_connection(host, port)
                    assert reader is not None
                    writer.write(raw)
                    await writer.drain()
                    status, answer, close = await read_response(reader)
            except TimeoutError:
                result.errors["timeout"] += 1
                status, answer, close = 0, b"", True
            except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
                result.errors[f"conn:{type(exc).__name__}"] += 1
                status, answer, close = 0, b"", True
            # Failed requests count too, at the time they failed (a timeout at the limit): percentiles
            # over the answered requests only would hide them.
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            if status:
                if status == 200:
                    result.ok += 1
                    if not _expected(expect, answer):
                        result.unexpected += 1
                else:
                    result.errors[f"http_{status}"] += 1
            result.requests += 1
            if progress_every and result.requests % progress_every == 0:
                print(f"progress {result.requests}", flush=True)
            if close and writer is not None:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    print("started", flush=True)  # the orchestrator samples server CPU from here
    t0 = time.perf_counter()
    await asyncio.gather(*(user(p) for p in plans))
    result.wall_s = time.perf_counter() - t0
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Signed Twilio webhook load generator (loopback only).")
    ap.add_argument("--url", required=True, help="Server base URL, e.g. http://127.0.0.1:8000")
    ap.add_argument("--public-url", default=None, help="The URL the signature covers (default: --url)")
    ap.add_argument("--token", required=True, help="Twilio auth token the server checks")
    ap.add_argument("--account-sid", required=True)
    ap.add_argument("--body", default="HELP")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--senders", default="user", help="user | request | pool:N (see module doc)")
    ap.add_argument("--sender-offset", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=60.0)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--expect", default="any", choices=["any", "message", "empty"])
    ap.add_argument("--progress-every", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    else:
        runner = uvloop.run
    result = runner(run_load(
        args.url, args.public_url or args.url, args.token, args.account_sid, args.body, args.concurrency,
        args.requests, senders=args.senders, sender_offset=args.sender_offset, max_seconds=args.max_seconds,
        request_timeout_s=args.timeout, expect=args.expect, progress_every=args.progress_every))
    print(json.dumps(result.summary()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

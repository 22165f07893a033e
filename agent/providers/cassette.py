"""Cassettes: recorded model responses, keyed by a fingerprint of the exact request body.

A cassette is a JSONL file, one ``{"fingerprint", "status", "request", "response"}`` object a
line (later lines win, so recording only ever appends). It plugs in at the httpx transport
seam, below the openai SDK, so a replayed turn runs the same parsing, validation, repair and
fallback code as a live one:

* :class:`RecordingTransport` wraps the real transport and stores every 2xx chat-completions
  response (``cassette_mode=record``).
* :class:`ReplayTransport` answers from the cassette and never touches the network; a request
  it has not seen raises :class:`CassetteMiss`, naming the fingerprint and the closest recorded
  request, so an eval case fails loudly instead of silently falling back to offline.

The fingerprint is the sha256 of the canonical JSON (sorted keys, no whitespace) of the request
body: model, messages, tools, tool_choice, temperature, max_tokens. Any change to the prompt
file, the business facts, the frozen clock or the dialogue state therefore changes it.
Stored requests are PII-redacted and keep the tool schema as a hash (they serve only to explain
misses); fingerprints are computed on the exact body.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import httpx

from textdesk.errors import ProviderError
from textdesk.redact import redact_obj

__all__ = [
    "Cassette",
    "CassetteMiss",
    "RecordingTransport",
    "ReplayTransport",
    "canonical_json",
    "fingerprint",
]


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(body: Any) -> str:
    """sha256 hex of the canonical JSON of a request body."""
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


class CassetteMiss(ProviderError):
    """Replay found no recorded response for a request. Never retried, never a fallback."""

    def __init__(self, fp: str, path: Path, closest: str | None, detail: str) -> None:
        self.fingerprint, self.path, self.closest, self.detail = fp, path, closest, detail
        near = f"closest recorded request {closest[:12]}: {detail}" if closest else "the cassette is empty"
        super().__init__(
            f"cassette miss: no response recorded for request {fp[:12]} in {path}; {near}. "
            "Re-record with TEXTDESK_CASSETTE_MODE=record (and a live endpoint)."
        )


@dataclass(frozen=True)
class Entry:
    fingerprint: str
    status: int
    request: dict[str, Any]
    response: dict[str, Any]


def _first_difference(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Where two request bodies first differ, as ``field: 'recorded…' vs 'live…'``."""
    for key in sorted(set(a) | set(b)):
        if key == "messages":
            continue
        if canonical_json(a.get(key)) != canonical_json(b.get(key)):
            return f"{key} differs"
    ma, mb = a.get("messages") or [], b.get("messages") or []
    for i, (x, y) in enumerate(zip(ma, mb, strict=False)):
        sx, sy = canonical_json(x), canonical_json(y)
        if sx != sy:
            pairs = enumerate(zip(sx, sy, strict=False))
            at = next((j for j, (p, q) in pairs if p != q), min(len(sx), len(sy)))
            lo = max(0, at - 20)
            return f"messages[{i}] differs: recorded {sx[lo:at + 40]!r} vs live {sy[lo:at + 40]!r}"
    return f"message count differs: recorded {len(ma)} vs live {len(mb)}"


def _stored(request: dict[str, Any]) -> dict[str, Any]:
    """What a cassette keeps of a request: redacted, the (large, repeated) tool schema as a hash."""
    kept = redact_obj(request)
    if "tools" in kept:
        kept["tools"] = f"sha256:{fingerprint(request['tools'])[:16]}"
    return cast(dict[str, Any], kept)


class Cassette:
    """One JSONL cassette file, loaded once. Appends are small synchronous writes (a stated
    choice: recording is an offline, developer-run activity).

    :meth:`shared` hands every provider in a process the same instance per file, so an eval
    run that builds a provider per case parses the file once.
    """

    _open: ClassVar[dict[Path, Cassette]] = {}

    @classmethod
    def shared(cls, path: Path) -> Cassette:
        key = path.resolve()
        if key not in cls._open:
            cls._open[key] = cls(path)
        return cls._open[key]

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, Entry] = {}
        if path.exists():
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    raw = json.loads(line)
                    entry = Entry(raw["fingerprint"], int(raw["status"]), raw["request"], raw["response"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise ProviderError(f"{path}:{n}: not a cassette line: {exc}") from exc
                self._entries[entry.fingerprint] = entry

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, fp: str) -> Entry | None:
        return self._entries.get(fp)

    def put(self, request: dict[str, Any], response: dict[str, Any], status: int = 200) -> str:
        fp = fingerprint(request)
        entry = Entry(fp, status, _stored(request), response)
        if self._entries.get(fp) != entry:
            self._entries[fp] = entry
            self.path.parent.mkdir(parents=True, exist_ok=True)
            line = {"fingerprint": fp, "status": status, "request": entry.request, "response": response}
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(canonical_json(line) + "\n")
        return fp

    def miss(self, request: dict[str, Any]) -> CassetteMiss:
        """The error for an unrecorded request, naming the closest recorded one."""
        fp = fingerprint(request)
        live = _stored(request)
        text = canonical_json(live.get("messages"))
        best: tuple[float, Entry] | None = None
        candidates = sorted(
            self._entries.values(),
            key=lambda e: -difflib.SequenceMatcher(None, canonical_json(e.request.get("messages")), text)
            .quick_ratio(),
        )[:5]
        for e in candidates:
            score = difflib.SequenceMatcher(None, canonical_json(e.request.get("messages")), text).ratio()
            if best is None or score > best[0]:
                best = (score, e)
        if best is None:
            return CassetteMiss(fp, self.path, None, "")
        detail = f"similarity {best[0]:.2f}, {_first_difference(best[1].request, live)}"
        return CassetteMiss(fp, self.path, best[1].fingerprint, detail)


async def _body(request: httpx.Request) -> dict[str, Any]:
    raw = await request.aread()
    try:
        data = json.loads(raw or b"{}")
    except ValueError:
        data = {"_raw": raw.decode("utf-8", "replace")}
    return data if isinstance(data, dict) else {"_body": data}


class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes requests to ``inner`` and records each successful response in the cassette."""

    def __init__(self, cassette: Cassette, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.cassette = cassette
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await _body(request)
        response = await self.inner.handle_async_request(request)
        content = await response.aread()
        await response.aclose()
        if 200 <= response.status_code < 300:
            # Not JSON: nothing the provider could parse either; the call itself proceeds.
            with contextlib.suppress(ValueError):
                self.cassette.put(body, json.loads(content), response.status_code)
        headers = {k: v for k, v in response.headers.items() if k.lower() in ("content-type", "retry-after")}
        return httpx.Response(response.status_code, headers=headers, content=content, request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class ReplayTransport(httpx.AsyncBaseTransport):
    """Answers from the cassette only; raises CassetteMiss for anything not recorded."""

    def __init__(self, cassette: Cassette) -> None:
        self.cassette = cassette

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await _body(request)
        entry = self.cassette.get(fingerprint(body))
        if entry is None:
            raise self.cassette.miss(body)
        return httpx.Response(entry.status, json=entry.response, request=request)

"""Business keyword auto-replies (e.g. HOURS -> "We're open Mon-Sat ..."), editable by admins.

A small interface (``AutoReplyStore``) with one implementation, a JSON file, so the pipeline can
be wired to it without knowing where the replies live. The business file's own ``auto_replies``
are read-only defaults; admin edits override them keyword by keyword (``effective``).

Keywords are single words. The hard-rule words (STOP, HELP, HUMAN, START, YES, ...) are reserved:
an auto-reply can never shadow an opt-out, HELP or a handoff. Replies pass the output guard
(no foreign links, no other numbers) and fit in two SMS segments.

The file is re-read when its modification time changes, so several worker processes on one
host see each other's edits; across hosts, a table would be needed (see the report to the lead).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from guardrails.keywords import HELP_WORDS, HUMAN_WORDS, OPT_IN_WORDS, OPT_OUT_WORDS
from guardrails.output import OutputGuard
from textdesk.business import Business
from textdesk.segments import count_segments
from textdesk.settings import Settings

__all__ = [
    "RESERVED",
    "AutoReplyStore",
    "JsonAutoReplyStore",
    "auto_replies_path",
    "effective",
    "match_auto_reply",
    "normalize_keyword",
    "validate_reply",
]

RESERVED = OPT_OUT_WORDS | OPT_IN_WORDS | HELP_WORDS | HUMAN_WORDS | {"YES"}
_KEYWORD = re.compile(r"^[A-Z][A-Z0-9]{1,19}$")
_EDGE = re.compile(r"^[\W_]+|[\W_]+$")
MAX_SEGMENTS = 2


class AutoReplyStore(Protocol):
    async def all(self) -> dict[str, str]:
        """Admin-defined keyword -> reply."""
        ...

    async def put(self, keyword: str, reply: str) -> None: ...

    async def remove(self, keyword: str) -> bool: ...


def normalize_keyword(word: str) -> str:
    key = word.strip().upper()
    if not _KEYWORD.match(key):
        raise ValueError("a keyword is one word of 2-20 letters or digits, starting with a letter")
    if key in RESERVED:
        raise ValueError(
            f"{key} is a hard-rule keyword (opt-out, opt-in, HELP or HUMAN) and cannot be changed"
        )
    return key


def validate_reply(text: str, business: Business) -> str:
    reply = " ".join(text.split())
    if not reply:
        raise ValueError("the reply is empty")
    if count_segments(reply).segments > MAX_SEGMENTS:
        raise ValueError(f"the reply is longer than {MAX_SEGMENTS} SMS segments")
    verdict = OutputGuard(business).check(reply)
    if verdict.triggered:
        raise ValueError(f"the output guard rejects this reply ({verdict.reason})")
    return reply


def match_auto_reply(text: str, replies: dict[str, str]) -> str | None:
    """The reply for a message that is exactly one keyword (any case, punctuation ignored)."""
    word = _EDGE.sub("", text.strip()).upper()
    return replies.get(word) if word and word not in RESERVED else None


def effective(business: Business, edited: dict[str, str]) -> dict[str, str]:
    """Business-file replies overridden by admin edits; reserved words never included."""
    merged = {k.upper(): v for k, v in business.auto_replies.items()}
    merged.update(edited)
    return {k: v for k, v in merged.items() if k not in RESERVED}


def auto_replies_path(settings: Settings) -> Path:
    """``settings.auto_replies_file``, or ``<db>.autoreplies.json`` next to a SQLite database."""
    if settings.auto_replies_file is not None:
        return settings.auto_replies_file
    url = settings.database_url
    if url.startswith("sqlite") and ":memory:" not in url and ":///" in url:
        db = Path(url.split(":///", 1)[1])
        return db.with_name(db.stem + ".autoreplies.json")
    return Path("textdesk.autoreplies.json")


class JsonAutoReplyStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()
        self._cache: tuple[float, dict[str, str]] | None = None

    def _read(self) -> dict[str, str]:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return {}
        if self._cache and self._cache[0] == mtime:
            return dict(self._cache[1])
        data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        clean = {str(k).upper(): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
        self._cache = (mtime, clean)
        return dict(clean)

    def _write(self, data: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".autoreplies.")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(dict(sorted(data.items())), fh, indent=2, ensure_ascii=False)
        os.replace(tmp, self.path)  # atomic: readers see the old or the new file, never half

    # Small files, but still disk I/O: done in a worker thread on purpose.
    async def all(self) -> dict[str, str]:
        return await asyncio.to_thread(self._read)

    async def put(self, keyword: str, reply: str) -> None:
        async with self._lock:
            data = await asyncio.to_thread(self._read)
            data[keyword] = reply
            await asyncio.to_thread(self._write, data)

    async def remove(self, keyword: str) -> bool:
        async with self._lock:
            data = await asyncio.to_thread(self._read)
            if data.pop(keyword, None) is None:
                return False
            await asyncio.to_thread(self._write, data)
            return True

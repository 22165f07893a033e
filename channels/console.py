"""Console channel: the same pipeline in a terminal (`textdesk chat`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from textdesk.pipeline import Inbound, Pipeline, TurnResult

__all__ = ["chat_loop", "format_turn"]


def format_turn(result: TurnResult, verbose: bool) -> str:
    lines = [f"bot> {r.body}" for r in result.replies if r.status != "blocked"]
    if not lines:
        lines = ["bot> (no reply)"]
    if verbose:
        tools = ", ".join(f"{t['name']}({t['args']})" for t in result.tools) or "-"
        lines.append(f"     [route={result.route} rule={result.rule} intent={result.intent} "
                     f"conf={result.confidence} slots={result.slots} tools={tools}]")
    return "\n".join(lines)


async def chat_loop(pipeline: Pipeline, phone: str, read: Callable[[str], str] = input,
                    write: Callable[[str], None] = print, verbose: bool = False) -> None:
    n = 0
    while True:
        try:
            text = await asyncio.to_thread(read, "you> ")
        except (EOFError, KeyboardInterrupt):
            write("")
            return
        if text.strip() in ("/quit", "/exit"):
            return
        n += 1
        result = await pipeline.handle(Inbound(sender=phone, body=text, channel="console"))
        write(format_turn(result, verbose))

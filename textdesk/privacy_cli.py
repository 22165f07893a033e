"""``textdesk contact export|forget`` and ``textdesk purge``: the privacy operations at the CLI.

``register(app)`` adds them to the main typer app. Exit status: 0 done, 1 no such contact,
2 bad input (an invalid number, ``forget`` without ``--yes``). Each command runs in one
transaction: a failure leaves the database as it was.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from sqlmodel.ext.asyncio.session import AsyncSession

from textdesk.clihelp import Typer
from textdesk.clock import SystemClock
from textdesk.phone import InvalidPhone, normalize_phone
from textdesk.privacy import UnknownContact, export_contact, forget_contact, purge_bodies, suppression_key
from textdesk.settings import Settings

__all__ = ["register"]

T = TypeVar("T")

_Phone = Annotated[str, typer.Argument(help="The contact's number, any common format (+1 212 555 0123).")]
_DbUrl = Annotated[str | None, typer.Option(help="SQLAlchemy async URL (default: TEXTDESK_DATABASE_URL).")]
_Actor = Annotated[str | None, typer.Option(help="Who asked, for the audit log (default: cli:<os user>).")]


def _settings(database_url: str | None) -> Settings:
    return Settings(database_url=database_url) if database_url else Settings()


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name (some containers)
        return "cli"


def _phone(raw: str) -> str:
    try:
        return normalize_phone(raw)
    except InvalidPhone as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _in_transaction(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Migrate, run ``work`` in one session and commit it."""
    from store.db import make_engine, make_sessionmaker, migrate_async

    async def run() -> T:
        await migrate_async(settings.database_url)
        engine = make_engine(settings.database_url)
        try:
            async with make_sessionmaker(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _write_private(path: Path, text: str) -> None:
    """Personal data: readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def export_command(
    phone: _Phone,
    out: Annotated[Path | None, typer.Option("--out", help="Write the JSON here (default: standard output).")]
    = None,
    database_url: _DbUrl = None,
    actor: _Actor = None,
) -> None:
    """Export everything textdesk holds about one contact as JSON (right of access)."""
    number, settings, who = _phone(phone), _settings(database_url), _actor(actor)

    async def work(session: AsyncSession) -> dict[str, Any]:
        return await export_contact(session, number, actor=who, now=SystemClock().now())

    try:
        data = _in_transaction(settings, work)
    except UnknownContact as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        _write_private(out, text)
        typer.echo(f"exported {number}: {sum(len(v) for v in data.values() if isinstance(v, list))} rows "
                   f"to {out}", err=True)


def forget_command(
    phone: _Phone,
    yes: Annotated[bool, typer.Option("--yes", help="Really delete; there is no undo.")] = False,
    database_url: _DbUrl = None,
    actor: _Actor = None,
) -> None:
    """Delete a contact and everything about them (right to erasure). An opt-out is remembered."""
    number, settings, who = _phone(phone), _settings(database_url), _actor(actor)
    if not yes:
        typer.echo(f"refusing to forget {number} without --yes (this deletes their messages, bookings "
                   "and traces for good)", err=True)
        raise typer.Exit(2)
    key = suppression_key(settings.secret_key.get_secret_value())

    async def work(session: AsyncSession) -> dict[str, Any]:
        return await forget_contact(session, number, who, key=key, now=SystemClock().now())

    result = _in_transaction(settings, work)
    typer.echo(json.dumps(result, indent=2, default=str))
    if not result["found"]:
        typer.echo(f"no contact with number {number}; nothing deleted", err=True)
        raise typer.Exit(1)
    for path in result.get("saved_cases") or []:
        typer.echo(f"note: reviewers saved an eval case from this contact's conversation: {path}", err=True)


def purge_command(
    retention_days: Annotated[int | None, typer.Option(
        help="Days of text to keep (default: TEXTDESK_RETENTION_DAYS; 0 keeps everything).")] = None,
    full: Annotated[bool, typer.Option("--full", help="Rescan all traces, not only new ones.")]
    = False,
    database_url: _DbUrl = None,
    actor: _Actor = None,
) -> None:
    """Apply the retention policy: blank message bodies and trace text older than N days."""
    settings = _settings(database_url)
    days = settings.retention_days if retention_days is None else retention_days
    if days <= 0:
        typer.echo("retention is 0 days (keep forever): nothing to purge", err=True)
        return
    who = _actor(actor)

    async def work(session: AsyncSession) -> int:
        return await purge_bodies(session, SystemClock().now(), days, full=full, actor=who)

    n = _in_transaction(settings, work)
    typer.echo(f"purged text older than {days} days from {n} rows")


def register(app: typer.Typer) -> None:
    """Add ``contact export|forget`` and ``purge`` to the main command."""
    contact_app = Typer(help="One contact's data: export it or forget it.", no_args_is_help=True)
    contact_app.command("export")(export_command)
    contact_app.command("forget")(forget_command)
    app.add_typer(contact_app, name="contact")
    app.command("purge")(purge_command)

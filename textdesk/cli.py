"""The `textdesk` command. Settings are built here, once, and passed down."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from evals.cli import register as register_evals
from textdesk.clihelp import Typer
from textdesk.privacy_cli import register as register_privacy
from textdesk.settings import Settings

if TYPE_CHECKING:
    from store.models import Booking, Contact

app = Typer(help="textdesk: a two-way SMS assistant for service businesses.", no_args_is_help=True)
user_app = Typer(help="Staff accounts.")
app.add_typer(user_app, name="user")
booking_app = Typer(help="Bookings.")
app.add_typer(booking_app, name="booking")


def _settings(**overrides: object) -> Settings:
    given = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**given)  # type: ignore[arg-type]


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (use PostgreSQL for more than one).")] = 1,
    business: Annotated[str | None, typer.Option(
        help="Business file, or a demo: salon (default), wellness, clinic, repair.")] = None,
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy async URL.")] = None,
) -> None:
    """Run the web app (provider webhooks, web chat, staff app, API). Applies migrations first."""
    import uvicorn

    from store.db import migrate
    from textdesk.logs import configure_logging, log_config
    from textdesk.settings import business_path

    if business is not None:
        os.environ["TEXTDESK_BUSINESS_FILE"] = str(business_path(business).resolve())
    if database_url is not None:
        os.environ["TEXTDESK_DATABASE_URL"] = database_url
    os.environ["TEXTDESK_WORKERS"] = str(workers)  # the workers read it: they share the database
    settings = Settings()
    configure_logging(settings.log_level)
    for var in settings.placeholder_secrets():
        message = f"{var} is still the shipped placeholder: set your own before going live"
        logging.getLogger("textdesk.serve").warning(message, extra={"setting": var})
        typer.echo(f"warning: {message}", err=True)
    if workers > 1 and settings.database_url.startswith("sqlite"):
        typer.echo("warning: several workers on SQLite serialize on the file lock; use PostgreSQL", err=True)
    migrate(settings.database_url)
    typer.echo(f"textdesk: serving {_business_label(settings.business_file)} on http://{host}:{port} "
               f"(db {settings.database_url.split('@')[-1]})", err=True)
    uvicorn.run("web.factory:app", factory=True, host=host, port=port, workers=workers,
                log_level=settings.log_level.lower(), log_config=log_config(settings.log_level),
                timeout_graceful_shutdown=20)


def _business_label(path: Path) -> str:
    """``/abs/path/shop.yaml``, or ``the salon demo (/abs/.../salon.yaml)`` for a shipped demo."""
    from textdesk.settings import DEMO_BUSINESSES, DEMO_DIR

    path = path.resolve()
    if path.parent == DEMO_DIR.resolve() and path.stem in DEMO_BUSINESSES:
        return f"the {path.stem} demo ({path})"
    return str(path)


@app.command()
def check(
    business: Annotated[str, typer.Argument(help="Business file, or a demo name.")] = "salon",
    samples: Annotated[
        bool, typer.Option("--samples", help="Also print 10DLC sample messages rendered from the templates.")
    ] = False,
) -> None:
    """Lint a business file before going live (understanding and deliverability), each problem with
    its fix. Exit 0 clean, 1 problems, 2 unreadable."""
    from agent.extract import known_topics
    from textdesk.business import load_business
    from textdesk.deliverability import suggested_samples
    from textdesk.errors import ConfigurationError
    from textdesk.lint import problems
    from textdesk.settings import business_path

    try:
        b = load_business(business_path(business))
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    found = problems(b, known_topics())
    for p in found:
        typer.echo(f"- {p}")
    if samples:
        typer.echo("a2p_10dlc sample_messages (rendered from the templates):")
        for text in suggested_samples(b):
            typer.echo(f"  - {json.dumps(text)}")
    typer.echo(f"{b.name}: {len(found)} problem(s)" if found else f"{b.name}: clean")
    raise typer.Exit(1 if found else 0)


@app.command()
def chat(
    phone: Annotated[str, typer.Option(help="The customer number to play.")] = "+12125550199",
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show route, intent, slots, tools.")
    ] = False,
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy async URL.")] = None,
) -> None:
    """Talk to the bot in the terminal through the same pipeline as the webhook."""
    from channels.console import chat_loop
    from store.db import migrate_async
    from textdesk.services import build_services

    settings = _settings(database_url=database_url)

    async def run() -> None:
        await migrate_async(settings.database_url)
        services = build_services(settings)
        typer.echo(f"Texting {services.business.name} as {phone}. /quit to leave.")
        try:
            await chat_loop(services.pipeline, phone, verbose=verbose)
        finally:
            await services.close()

    asyncio.run(run())


@booking_app.command("list")
def booking_list(
    date: Annotated[str | None, typer.Option(
        metavar="YYYY-MM-DD", help="Only bookings on this day (in the business's time zone).")] = None,
    all_: Annotated[bool, typer.Option(
        "--all", help="Past ones and every status too (cancelled, no_show, overlap).")] = False,
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy async URL.")] = None,
) -> None:
    """List bookings: id, time in the business's zone, service, provider, contact (name or redacted).

    Upcoming active bookings by default; the id is what `booking no-show` takes."""
    import datetime as dt

    from store import repo
    from store.db import make_engine, make_sessionmaker, migrate_async
    from store.models import utcnow
    from textdesk.business import load_business
    from textdesk.errors import ConfigurationError
    from textdesk.redact import redact

    settings = _settings(database_url=database_url)
    try:
        tz = load_business(settings.business_file).tz
    except ConfigurationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    after: dt.datetime | None = None if all_ else utcnow()
    before: dt.datetime | None = None
    if date is not None:
        try:
            day = dt.date.fromisoformat(date)
        except ValueError as exc:
            typer.echo(f"error: --date {date!r} is not a date (YYYY-MM-DD)", err=True)
            raise typer.Exit(2) from exc
        after = dt.datetime.combine(day, dt.time(), tz)
        before = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)

    async def run() -> list[tuple[Booking, Contact]]:
        await migrate_async(settings.database_url)
        engine = make_engine(settings.database_url)
        try:
            async with make_sessionmaker(engine)() as s:
                return await repo.bookings_between(s, after, before, active_only=not all_)
        finally:
            await engine.dispose()

    rows = asyncio.run(run())
    if not rows:
        typer.echo("no bookings")
        return
    for b, contact in rows:
        when = b.start.astimezone(tz).strftime("%a %Y-%m-%d %H:%M %Z")
        status = f"  [{b.status}]" if b.status != "active" else ""
        typer.echo(f"{b.id}  {when}  {b.service} with {b.provider or '-'}  "
                   f"{contact.name or redact(contact.phone)}{status}")


@booking_app.command("no-show")
def booking_no_show(
    booking_id: Annotated[str, typer.Argument(help="The booking id (bk_...).")],
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy async URL.")] = None,
) -> None:
    """Mark a booking as a no-show; the job loop then texts a rebooking offer (if enabled)."""
    from store import repo
    from store.db import make_engine, make_sessionmaker, migrate_async
    from store.jobs import mark_no_show
    from store.models import Booking, utcnow

    settings = _settings(database_url=database_url)

    async def run() -> bool:
        await migrate_async(settings.database_url)
        engine = make_engine(settings.database_url)
        try:
            async with make_sessionmaker(engine)() as s:
                booking = await s.get(Booking, booking_id)
                if booking is None or booking.status != "active":
                    return False
                now = utcnow()
                await mark_no_show(s, booking, now, settings.no_show_followup)
                await repo.audit(s, "booking.no_show", contact_id=booking.contact_id, at=now,
                                 booking_id=booking.id, actor="cli")
                await s.commit()
                return True
        finally:
            await engine.dispose()

    if not asyncio.run(run()):
        typer.echo(f"error: no active booking {booking_id!r}", err=True)
        raise typer.Exit(2)
    typer.echo(f"marked {booking_id} as a no-show")


@booking_app.command("overlaps")
def booking_overlaps(
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy async URL.")] = None,
) -> None:
    """List bookings set aside as 'overlap': sold twice before the no-double-booking rule existed.

    Each overlaps a booking that stands; call one of the two customers, then cancel or move it."""
    from sqlmodel import select

    from store.db import make_engine, make_sessionmaker, migrate_async
    from store.models import AuditEvent, Booking, Contact

    settings = _settings(database_url=database_url)

    async def run() -> list[tuple[Booking, Contact | None, str]]:
        await migrate_async(settings.database_url)
        engine = make_engine(settings.database_url)
        try:
            async with make_sessionmaker(engine)() as s:
                rows = list(await s.exec(select(Booking).where(Booking.status == "overlap")))
                found = {str(a.data.get("booking_id")): str(a.data.get("overlaps")) for a in await s.exec(
                    select(AuditEvent).where(AuditEvent.kind == "booking.overlap_found"))}
                return [(b, await s.get(Contact, b.contact_id), found.get(b.id, "?")) for b in rows]
        finally:
            await engine.dispose()

    rows = asyncio.run(run())
    if not rows:
        typer.echo("no overlapping bookings")
        return
    for b, contact, kept in rows:
        typer.echo(f"{b.id}  {b.start.isoformat()}  {b.service} with {b.provider or '-'}  "
                   f"{contact.phone if contact else '?'}  overlaps {kept}")


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option(help="Login email.")],
    role: Annotated[str, typer.Option(help="admin | agent | reviewer")],
    database_url: Annotated[str | None, typer.Option(help="SQLAlchemy async URL.")] = None,
) -> None:
    """Create a staff account; the password is read from standard input."""
    import sys

    from web.auth import create_user

    password = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else typer.prompt(
        "Password", hide_input=True, confirmation_prompt=True)
    settings = _settings(database_url=database_url)
    try:
        asyncio.run(create_user(settings, email, role, password))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"created {role} {email}")


# Command groups that live with their code: evals, privacy.
register_evals(app)
register_privacy(app)


def main() -> None:  # pragma: no cover
    app()

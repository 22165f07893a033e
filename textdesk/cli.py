"""The `textdesk` command. Settings are built here, once, and passed down."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer

from evals.cli import register as register_evals
from textdesk.privacy_cli import register as register_privacy
from textdesk.settings import Settings

app = typer.Typer(help="textdesk: a two-way SMS assistant for service businesses.", no_args_is_help=True)
user_app = typer.Typer(help="Staff accounts.")
app.add_typer(user_app, name="user")
booking_app = typer.Typer(help="Bookings.")
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
    from textdesk.settings import business_path

    if business is not None:
        os.environ["TEXTDESK_BUSINESS_FILE"] = str(business_path(business).resolve())
    if database_url is not None:
        os.environ["TEXTDESK_DATABASE_URL"] = database_url
    os.environ["TEXTDESK_WORKERS"] = str(workers)  # the workers read it: they share the database
    settings = Settings()
    if workers > 1 and settings.database_url.startswith("sqlite"):
        typer.echo("warning: several workers on SQLite serialize on the file lock; use PostgreSQL", err=True)
    migrate(settings.database_url)
    typer.echo(f"textdesk: serving {settings.business_file.name} on http://{host}:{port} "
               f"(db {settings.database_url.split('@')[-1]})", err=True)
    uvicorn.run("web.factory:app", factory=True, host=host, port=port, workers=workers,
                log_level=settings.log_level.lower(), timeout_graceful_shutdown=20)


@app.command()
def check(
    business: Annotated[str, typer.Argument(help="Business file, or a demo name.")] = "salon",
) -> None:
    """Lint a business file before going live. Exit 0 clean, 1 problems, 2 unreadable."""
    from agent.extract import known_topics
    from textdesk.business import load_business
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

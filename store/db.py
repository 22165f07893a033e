"""Engine, sessions and migrations."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

import store.models  # noqa: F401  (registers tables)

__all__ = ["alembic_config", "create_all", "make_engine", "make_sessionmaker", "migrate"]

_MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets WAL and a busy timeout so the webhook and CLI can share it."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # We issue BEGIN ourselves (below); the driver's implicit BEGIN is deferred.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            if ":memory:" not in url:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            # WAL + NORMAL: no fsync per commit; a power cut may lose the last commits, never corrupt.
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn):  # type: ignore[no-untyped-def]
            # A deferred transaction that reads and later writes fails at once with "database is
            # locked" when another connection committed in between (no busy wait applies). Taking
            # the write lock at BEGIN makes concurrent turns queue on the busy timeout instead.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # `?search_path=schema` selects a PostgreSQL schema (tests use one per test; some deployments
    # share a database between apps). asyncpg takes it as a server setting, not a URL option.
    parsed = make_url(url)
    connect_args: dict[str, object] = {}
    search_path = parsed.query.get("search_path")
    if search_path:
        parsed = parsed.difference_update_query(["search_path"])
        connect_args["server_settings"] = {"search_path": str(search_path)}
    return create_async_engine(parsed, pool_size=10, max_overflow=20,
                               connect_args=connect_args)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    """Apply Alembic migrations (blocking; call from sync code or a worker thread)."""
    command.upgrade(alembic_config(url), revision)


async def migrate_async(url: str) -> None:
    await asyncio.to_thread(migrate, url)


async def create_all(engine: AsyncEngine) -> None:
    """Create tables directly from the models (eval fixtures and unit tests; not for serve)."""
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.create_all)

"""A private, throw-away PostgreSQL cluster for fault tests (stop/restart under traffic).

The shared server on 127.0.0.1:5432 is used by every other test and must never be stopped, so
tests that take the database away start their own cluster: ``initdb`` into a temporary
directory, ``pg_ctl start`` on a free loopback port, ``pg_ctl stop -m fast`` to pull the plug.
PostgreSQL refuses to run as root; when the tests run as root every command runs as the
``postgres`` OS user (``runuser -u postgres``) over a directory chowned to that user.

Every command is bounded by a timeout; ``destroy()`` always stops the cluster (immediate mode)
and removes its directory, so a failing test leaves nothing running.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PgCluster", "find_pg_bin", "free_port", "why_unavailable"]


def find_pg_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<v>/bin`` that has initdb and pg_ctl (or PATH's)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
                        reverse=True)
    for c in candidates:
        if (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    return None


def _run_as() -> list[str]:
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


def why_unavailable() -> str | None:
    """None when a private cluster can be made here, else the reason (for pytest.skip)."""
    if find_pg_bin() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) are not installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' OS user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """``init()`` once, then ``start()`` / ``stop()`` as often as the test needs."""

    def __init__(self) -> None:
        reason = why_unavailable()
        if reason:
            raise RuntimeError(reason)
        self.bin = find_pg_bin()
        assert self.bin is not None
        self.dir = Path(tempfile.mkdtemp(prefix="textdesk-pg-", dir="/tmp"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port = free_port()
        self.running = False

    @property
    def url(self) -> str:
        """SQLAlchemy async URL of the cluster's ``postgres`` database."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def dsn(self) -> str:
        """asyncpg DSN, for checks made outside the app."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    # -- commands --------------------------------------------------------------------------------

    def _cmd(self, *args: str) -> list[str]:
        return [*_run_as(), *args]

    def _pg_ctl(self, action: str, *extra: str) -> list[str]:
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        return self._cmd(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                         "-t", "30", "-o", opts, action, *extra)

    def init(self) -> PgCluster:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o700)
        subprocess.run(self._cmd(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                                 "--auth=trust", "--no-sync", "-E", "UTF8"),
                       check=True, capture_output=True, timeout=120)
        return self

    def start(self) -> None:
        subprocess.run(self._pg_ctl("start"), check=True, capture_output=True, timeout=60)
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(self._pg_ctl("stop", "-m", mode), check=True, capture_output=True, timeout=60)
        self.running = False

    async def astart(self) -> None:
        """``start()`` without blocking the event loop (the app keeps serving meanwhile)."""
        await self._arun(self._pg_ctl("start"))
        self.running = True

    async def astop(self, mode: str = "fast") -> None:
        await self._arun(self._pg_ctl("stop", "-m", mode))
        self.running = False

    @staticmethod
    async def _arun(cmd: list[str]) -> None:
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[-3:]} failed ({proc.returncode}): {err.decode()[-500:]} "
                               f"{out.decode()[-200:]}")

    def server_log(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def destroy(self) -> None:
        if self.running or (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                subprocess.run(self._pg_ctl("stop", "-m", "immediate"), capture_output=True, timeout=30)
            self.running = False
        shutil.rmtree(self.dir, ignore_errors=True)

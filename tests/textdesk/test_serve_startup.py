"""`textdesk serve` up to the point uvicorn takes over: which business it serves (resolved path),
warnings for placeholder secrets, and uvicorn's own log lines as JSON like the rest."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from textdesk.cli import app
from textdesk.logs import UVICORN_LOGGERS, log_config
from textdesk.settings import DEMO_BUSINESS_FILE, DEMO_DIR

runner = CliRunner()
ENV = ("TEXTDESK_BUSINESS_FILE", "TEXTDESK_DATABASE_URL", "TEXTDESK_WORKERS", "TEXTDESK_SECRET_KEY",
       "TEXTDESK_TWILIO_AUTH_TOKEN")


@pytest.fixture
def keep_logging() -> Iterator[None]:
    """serve (and uvicorn) configure logging for the whole process: put it back afterwards."""
    names = ["", *UVICORN_LOGGERS]
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).level, logging.getLogger(n).propagate)
             for n in names}
    yield
    for n, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(n)
        logger.handlers[:], logger.propagate = handlers, propagate
        logger.setLevel(level)


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, keep_logging: None) -> dict[str, Any]:
    """What `textdesk serve` hands uvicorn.run, recorded instead of serving; the environment serve
    writes is put back afterwards."""
    for var in ENV:
        monkeypatch.setenv(var, "")  # recorded, so what serve sets is undone
        monkeypatch.delenv(var)
    monkeypatch.setenv("TEXTDESK_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}")
    calls: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda target, **kw: calls.update(target=target, **kw))
    return calls


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_serve_names_the_demo_and_its_resolved_path(served: dict[str, Any]) -> None:
    result = runner.invoke(app, ["serve", "--business", "wellness"])
    assert result.exit_code == 0, result.output
    assert f"serving the wellness demo ({(DEMO_DIR / 'wellness.yaml').resolve()}) on http://127.0.0.1:8000" \
        in result.stderr
    assert served["target"] == "web.factory:app"


def test_serve_names_a_business_file_by_its_absolute_path(served: dict[str, Any], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(DEMO_BUSINESS_FILE, tmp_path / "shop.yaml")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["serve", "--business", "shop.yaml"])
    assert result.exit_code == 0, result.output
    assert f"serving {(tmp_path / 'shop.yaml').resolve()} on" in result.stderr


def test_placeholder_secrets_are_warned_about_in_the_output_and_the_log(served: dict[str, Any]) -> None:
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 0, result.output
    for var in ("TEXTDESK_SECRET_KEY", "TEXTDESK_TWILIO_AUTH_TOKEN"):
        assert f"warning: {var} is still the shipped placeholder" in result.stderr
    logged = [line for line in json_lines(result.stderr) if line["logger"] == "textdesk.serve"]
    assert [(line["level"], line["setting"]) for line in logged] == [
        ("warning", "TEXTDESK_SECRET_KEY"), ("warning", "TEXTDESK_TWILIO_AUTH_TOKEN")]


def test_real_secrets_get_no_warning(served: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTDESK_SECRET_KEY", "a-real-secret-of-our-own-0123456789")
    monkeypatch.setenv("TEXTDESK_TWILIO_AUTH_TOKEN", "0123456789abcdef0123456789abcdef")
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 0, result.output
    assert "placeholder" not in result.stderr


def test_serve_gives_uvicorn_the_json_logging_config(served: dict[str, Any]) -> None:
    assert runner.invoke(app, ["serve"]).exit_code == 0
    assert served["log_config"] == log_config(served["log_level"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def no_content(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def test_uvicorn_access_and_startup_lines_come_out_as_json(capfd: pytest.CaptureFixture[str],
                                                           keep_logging: None) -> None:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(no_content, host="127.0.0.1", port=port, lifespan="off",
                                           log_config=log_config("INFO"), log_level="info"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/ping").status_code == 204
    finally:
        server.should_exit = True
        thread.join(timeout=20)
    err = capfd.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line is JSON
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert len(access) == 1 and '"GET /ping HTTP/1.1" 204' in access[0]["event"], access
    assert access[0]["level"] == "info" and "color_message" not in access[0]
    assert any(line["logger"] == "uvicorn.error" and "Uvicorn running" in line["event"] for line in lines)

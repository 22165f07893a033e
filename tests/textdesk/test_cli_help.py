"""Every `textdesk ... --help` reads cleanly: flags without a ``<bool>``, arguments as METAVARs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from textdesk.cli import app

runner = CliRunner()


def command_paths(command: object, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, TyperGroup):
        for name, sub in command.commands.items():
            yield from command_paths(sub, (*path, name))


PATHS = list(command_paths(typer.main.get_command(app)))


def test_every_command_is_walked() -> None:
    assert {("eval",), ("booking", "list"), ("contact", "export"), ("user", "create")} <= set(PATHS)


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) or "textdesk" for p in PATHS])
def test_help_has_no_bool_placeholder_and_no_braces(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "160"}, prog_name="textdesk")
    assert result.exit_code == 0, result.output
    assert "--help" in result.output
    assert "<bool>" not in result.output
    assert "{" not in result.output


def test_arguments_and_flags_read_like_this() -> None:
    out = runner.invoke(app, ["eval", "--help"], env={"COLUMNS": "160"}, prog_name="textdesk").output
    assert "Usage: textdesk eval [OPTIONS] PATHS..." in out
    assert "TAG" in out and "<int>" in out  # options that take a value still say what
    out = runner.invoke(app, ["check", "--help"], env={"COLUMNS": "160"}, prog_name="textdesk").output
    assert "Usage: textdesk check [OPTIONS] [BUSINESS]" in out

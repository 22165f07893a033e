"""Help that reads cleanly: flags show no ``<bool>``, arguments show a metavar (``PATHS...``).

Typer's rich help prints a type on every parameter, flags included (``--verbose -v <bool>``), and
writes a required argument as ``{paths}...`` in the usage line. ``Typer`` here is typer's, with
commands and groups whose parameters are tidied before help is drawn: a flag gets an empty
metavar, an argument its name in capitals (``...`` when it takes several), and the usage line
writes arguments the click way (``PATHS...``, ``[BUSINESS]``). Every textdesk command group uses it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import typer
from typer._click import Context  # typer's own click, the type its command classes take
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

__all__ = ["Command", "Group", "Typer"]

F = TypeVar("F", bound=Callable[..., Any])


def _tidy(params: list[Any]) -> list[Any]:
    for p in params:
        if isinstance(p, TyperOption) and p.is_flag and p.metavar is None:
            p.metavar = ""  # a flag takes no value: nothing to show after it
        elif isinstance(p, TyperArgument) and p.metavar is None and p.name:
            p.metavar = p.name.upper() + ("..." if p.nargs != 1 else "")
    return params


class Command(TyperCommand):
    def get_params(self, ctx: Context) -> list[Any]:
        return _tidy(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for p in self.get_params(ctx):
            if isinstance(p, TyperArgument) and p.metavar:
                pieces.append(p.metavar if p.required else f"[{p.metavar}]")
        return pieces


class Group(TyperGroup):
    def get_params(self, ctx: Context) -> list[Any]:
        return _tidy(super().get_params(ctx))


class Typer(typer.Typer):
    """``typer.Typer`` whose groups and commands default to the classes above."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("cls", Group)
        super().__init__(*args, **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        kwargs.setdefault("cls", Command)
        decorator: Callable[[F], F] = super().command(*args, **kwargs)
        return decorator

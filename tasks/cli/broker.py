"""The broker's Redis for the commands that change state there, and the --tool option and id check they share."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

import redis
import typer

import isolation
from config import load_settings
from tasks.errors import UserError
from tasks.tools import load_catalogue

Tool = Annotated[str | None, typer.Option("--tool", help="a tool: cap that tool's runs of the tenant")]


def connect() -> redis.Redis:
    """A client of the broker's Redis (TOOLRUNNER_BROKER_URL, or the settings' default)."""
    return redis.Redis.from_url(load_settings().broker)


@contextlib.contextmanager
def checked_ids() -> Iterator[None]:
    """A tenant id or tool name that no run could have is a user error (one line, exit 2), never a key pattern."""
    try:
        yield
    except isolation.InvalidIdentifierError as exc:
        raise UserError(str(exc)) from None


def known_tool(tool: str | None) -> str | None:
    """The --tool given, when the catalogue (with TOOLRUNNER_EXTRA_TOOL_MODULES) has it: a typo is a user error."""
    if tool is None:
        return None
    catalogue = load_catalogue(load_settings().extra_tool_modules)
    if tool not in catalogue:
        raise UserError(f"unknown tool {tool!r}; known tools: {', '.join(sorted(catalogue))}")
    return tool

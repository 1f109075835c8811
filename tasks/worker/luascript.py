"""The fair-share Lua scripts (tasks/worker/lua/*.lua), each run with the shared helpers of common.lua prepended."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import redis

from tasks.worker.parking import PREFIX

_LUA = Path(__file__).with_name("lua")


@cache
def source(name: str) -> str:
    """The script `name` with common.lua in front of it."""
    return (_LUA / "common.lua").read_text() + "\n" + (_LUA / f"{name}.lua").read_text()


def run(redis_client: redis.Redis, name: str, *args: str | bytes | int) -> list[bytes | int]:
    """Run a script; the prefix is its first argument and every key is built from it (one Redis, not a cluster)."""
    reply = redis_client.eval(source(name), 0, PREFIX, *args)
    return list(reply) if isinstance(reply, list) else [reply]  # renew answers a bare count


def text(value: object) -> str:
    """A Redis reply item as text."""
    return value.decode() if isinstance(value, bytes) else str(value)

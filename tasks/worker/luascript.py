"""The Lua scripts (tasks/worker/lua/*.lua), each loaded once and run by its SHA (EVALSHA, loaded again if Redis
restarted without it). The fair-share scripts get common.lua in front and the key prefix as ARGV[1]; the cache's
take their keys as KEYS."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import redis
from redis.commands.core import Script

from tasks.worker.keys import FAIR_SHARE

_LUA = Path(__file__).with_name("lua")
# Standalone: every key comes in KEYS, no prefix.
_KEYED = frozenset({"cache_lookup", "cache_finish", "chunk_done", "chunk_claim"})


@cache
def source(name: str) -> str:
    """The script `name`, with common.lua in front of it unless it is a standalone one."""
    own = (_LUA / f"{name}.lua").read_text()
    return own if name in _KEYED else (_LUA / "common.lua").read_text() + "\n" + own


@cache
def _script(name: str) -> Script:
    # Bytes, so no client is needed for the SHA; each call names its client.
    return Script(None, source(name).encode())  # type: ignore[arg-type]


def names() -> list[str]:
    """Every script's name."""
    return sorted(path.stem for path in _LUA.glob("*.lua") if path.stem != "common")


def sha(name: str) -> str:
    """The SHA1 Redis knows the script `name` by (EVALSHA)."""
    return str(_script(name).sha)


def run(redis_client: redis.Redis, name: str, *args: str | bytes | int | float) -> list[bytes | int]:
    """Run a fair-share script; the prefix is its first argument and every key is built from it (one Redis)."""
    return _listed(_script(name)(keys=[], args=[FAIR_SHARE, *args], client=redis_client))


def run_keyed(redis_client: redis.Redis, name: str, keys: list[str], *args: str | bytes | int) -> list[bytes | int]:
    """Run a standalone script on the keys it names."""
    return _listed(_script(name)(keys=keys, args=list(args), client=redis_client))


def _listed(reply: object) -> list[bytes | int]:
    return list(reply) if isinstance(reply, list) else [reply]  # type: ignore[list-item]  # renew answers a count


def text(value: object) -> str:
    """A Redis reply item as text."""
    return value.decode() if isinstance(value, bytes) else str(value)

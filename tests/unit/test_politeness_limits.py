"""The fair-share Lua's host_limits gives every host key the limits tasks.hosts.effective (the rule) gives it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

import tasks.hosts
from tasks.scope.host import hex_span
from tasks.worker import keys, luascript
from tests.conftest import database_url, flushed_database

DB = 12
RUNNING, RPS = 2, 50.0
NETWORKS = (
    "198.51.0.0/16", "198.51.100.0/24", "198.51.100.0/28", "198.51.100.7", "198.51.101.0/24", "203.0.113.9",
    "2001:db8::/48", "2001:db8::/64", "2001:db8::1",
)  # fmt: skip
KEYS = ("198.51.100.7", "198.51.100.8", "198.51.100.0/24", "198.51.0.0/16", "0.0.0.0/0", "2001:db8::/64",
        "2001:db8::1", "::/0")  # fmt: skip
# common.lua's functions, called with a key as the envelopes carry it; numbers come back as text (Lua floats).
COMMON = (Path(luascript.__file__).with_name("lua") / "common.lua").read_text()
PROBE = "local running, rps = host_limits(cjson.decode(ARGV[2]), 2, 50) return {tostring(running), tostring(rps)}"


@pytest.fixture(scope="module")
def conn(redis_url: str) -> Iterator[redis.Redis]:
    with flushed_database(database_url(redis_url, DB)) as client:
        yield client


def lua_limits(conn: redis.Redis, key: str) -> tuple[int, float]:
    span = tasks.hosts.read(key)
    wire = [key, *hex_span(span), []]
    running, rps = conn.eval(COMMON + "\n" + PROBE, 0, keys.FAIR_SHARE, json.dumps(wire))  # type: ignore[no-untyped-call]
    return int(float(running)), float(rps)


overrides = st.dictionaries(
    st.sampled_from(NETWORKS),
    st.tuples(st.one_of(st.none(), st.integers(1, 9)), st.one_of(st.none(), st.sampled_from((5.0, 12.5, 80.0)))).filter(
        lambda limits: limits != (None, None)
    ),
    max_size=5,
)


@settings(max_examples=60, deadline=None)
@given(overrides)
def test_the_lua_and_the_rule_give_every_key_the_same_limits(
    conn: redis.Redis, chosen: dict[str, tuple[int | None, float | None]]
) -> None:
    conn.delete(keys.HOST_OVERRIDES())
    for network, (running, rps) in chosen.items():
        tasks.hosts.set(network, max_running=running, max_rps=rps, connection=conn)
    stored = tasks.hosts.show(connection=conn)
    for key in KEYS:
        expected = tasks.hosts.effective(stored, tasks.hosts.read(key), RUNNING, RPS)
        assert lua_limits(conn, key) == (expected.max_running, expected.max_rps), (key, chosen)

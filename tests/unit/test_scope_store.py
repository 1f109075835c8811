"""Tenants' scopes in a real Redis: add, remove, show and clear; all or nothing; expiry; the workers' cache."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis

import tasks.scope
from config import Settings
from isolation import InvalidIdentifierError
from tasks.errors import ScopeEntryError
from tasks.scope import store
from tasks.scope.store import Line, Scopes
from tests.conftest import database_url, flushed_database

DB = 14
SETTINGS = Settings()  # the default widest networks: /16 and /48


class CountingRedis(redis.Redis):
    """A Redis client that remembers the name of every command it sends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: list[str] = []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.commands.append(str(args[0]))
        return super().execute_command(*args, **options)


@pytest.fixture
def url(redis_url: str) -> Iterator[str]:
    with flushed_database(database_url(redis_url, DB)):
        yield database_url(redis_url, DB)


@pytest.fixture
def conn(url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(url) as client:
        yield client


def add(conn: redis.Redis, *entries: str, **options: Any) -> list[str]:
    return tasks.scope.add("acme", entries, connection=conn, settings=SETTINGS, **options)


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


def later(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Move the store's clock this far ahead of the real one."""
    now = time.time() + seconds
    monkeypatch.setattr(store, "time", SimpleNamespace(time=lambda: now))


def test_entries_are_added_in_canonical_form_shown_removed_in_any_form_and_cleared(conn: redis.Redis) -> None:
    assert add(conn, "Example.COM.", "192.0.2.5/24", "=WWW.example.org") == [
        "example.com", "192.0.2.0/24", "=www.example.org",
    ]  # fmt: skip
    assert add(conn, "192.0.2.7", exclude=True) == ["192.0.2.7"]
    assert tasks.scope.show("acme", connection=conn) == [
        Line("192.0.2.0/24", False, None), Line("=www.example.org", False, None), Line("example.com", False, None),
        Line("192.0.2.7", True, None),
    ]  # fmt: skip
    assert tasks.scope.remove("acme", ["EXAMPLE.com.", "198.51.100.0/24"], connection=conn) == 1
    assert tasks.scope.remove("acme", ["192.0.2.7"], connection=conn) == 0, "an exclusion is removed with exclude"
    assert tasks.scope.remove("acme", ["192.0.2.7"], exclude=True, connection=conn) == 1
    assert [line.entry for line in tasks.scope.show("acme", connection=conn)] == ["192.0.2.0/24", "=www.example.org"]
    assert tasks.scope.clear("acme", connection=conn) == 2
    assert tasks.scope.show("acme", connection=conn) == []
    assert conn.exists(store.key("acme")) == 0


def test_one_refused_entry_adds_none_of_them_and_the_error_names_every_refused_one(conn: redis.Redis) -> None:
    with pytest.raises(ScopeEntryError) as refused:
        add(conn, "example.com", "com", "10.0.0.0/8", "192.0.2.0/24")
    assert "'com' is a public suffix" in str(refused.value)
    assert "'10.0.0.0/8' is wider than /16" in str(refused.value)
    assert conn.exists(store.key("acme")) == 0


@pytest.mark.parametrize("tenant", ["", "a:b", "../x", "a" * 65])
def test_a_malformed_tenant_id_is_refused_before_redis_is_asked(conn: redis.Redis, tenant: str) -> None:
    with pytest.raises(InvalidIdentifierError):
        tasks.scope.add(tenant, ["example.com"], connection=conn, settings=SETTINGS)
    assert conn.dbsize() == 0


def test_an_entry_shows_when_it_expires(conn: redis.Redis) -> None:
    before = time.time()
    add(conn, "example.com", expires_in_days=2)
    (line,) = tasks.scope.show("acme", connection=conn)
    assert line.expires_at is not None and before + 2 * 86400 - 1 <= line.expires_at <= time.time() + 2 * 86400


def test_an_expired_entry_is_not_shown_nor_in_scope_and_the_next_add_prunes_it(
    conn: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(conn, "198.51.100.0/24", expires_in_days=1)
    add(conn, "192.0.2.0/24")
    scopes = Scopes(conn)
    assert scopes.of("acme").include_ranges.covers(net("198.51.100.7/32"))
    later(monkeypatch, 2 * 86400)
    assert [line.entry for line in tasks.scope.show("acme", connection=conn)] == ["192.0.2.0/24"]
    compiled = scopes.of("acme")  # the cached scope is not used past the expiry of one of its entries
    assert not compiled.include_ranges.touches(net("198.51.100.7/32"))
    assert compiled.include_ranges.covers(net("192.0.2.7/32"))
    assert b"+198.51.100.0/24" in conn.hgetall(store.key("acme")), "reads skip an expired entry, not delete it"
    add(conn, "example.com")
    assert b"+198.51.100.0/24" not in conn.hgetall(store.key("acme"))


@pytest.mark.parametrize("decode_responses", [False, True])
def test_a_workers_scopes_cost_one_hget_while_unchanged_and_see_a_change_made_elsewhere(
    url: str, conn: redis.Redis, decode_responses: bool
) -> None:
    add(conn, "example.com")
    with CountingRedis.from_url(url, decode_responses=decode_responses) as counting:
        scopes = Scopes(counting)
        first = scopes.of("acme")
        assert counting.commands == ["HGET", "HGETALL"]
        assert scopes.of("acme") is first
        assert counting.commands == ["HGET", "HGETALL", "HGET"]
        add(conn, "192.0.2.0/24")  # through another client, as `toolrunner scope add` does
        assert scopes.of("acme").include_ranges.covers(net("192.0.2.1/32"))
        assert counting.commands[3:] == ["HGET", "HGETALL"]
        tasks.scope.clear("acme", connection=conn)
        assert scopes.of("acme").empty


def test_a_tenant_without_a_scope_has_an_empty_one(conn: redis.Redis) -> None:
    assert Scopes(conn).of("nobody").empty


def test_a_stored_entry_the_public_suffix_list_now_refuses_is_left_out_while_exclusions_stay(
    conn: redis.Redis,
) -> None:
    add(conn, "example.com", "example.co.uk")
    # As if a newer public suffix list had made these suffixes after they were stored.
    conn.hset(store.key("acme"), mapping={"+github.io": 0, "-co.uk": 0, store.VERSION: "changed"})
    compiled = Scopes(conn).of("acme")
    assert compiled.name_reason("www.example.com") is None
    assert compiled.name_reason("user.github.io") == "outside the tenant's scope"
    assert compiled.name_reason("www.example.co.uk") == "excluded from the tenant's scope"
    assert tasks.scope.remove("acme", ["github.io"], connection=conn) == 1, "what was left out can be removed"


def test_a_changed_scope_parses_only_its_new_entries_and_a_refused_one_stays_refused(
    conn: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(conn, "example.com", "192.0.2.0/24")
    conn.hset(store.key("acme"), mapping={"+github.io": 0})  # refused by the public suffix list when read
    parsed: list[str] = []
    real = store.parse
    monkeypatch.setattr(store, "parse", lambda text, **kwargs: parsed.append(text) or real(text, **kwargs))
    scopes = Scopes(conn)
    assert scopes.of("acme").name_reason("www.example.com") is None
    assert sorted(parsed) == ["192.0.2.0/24", "example.com", "github.io"]
    add(conn, "example.org")
    parsed.clear()  # the add's own canonicalisation
    changed = scopes.of("acme")
    assert parsed == ["example.org"], "the stored entries' parsing is kept; only the new one is parsed"
    assert changed.name_reason("a.example.org") is None
    assert changed.name_reason("user.github.io") == "outside the tenant's scope", "still left out"

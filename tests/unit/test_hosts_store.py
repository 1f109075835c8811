"""Per-host overrides in a real Redis, through tasks.hosts and `toolrunner hosts`: one hash the fair-share Lua reads."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import redis
from typer.testing import CliRunner

import tasks.hosts
from config import Settings
from tasks.cli import cli, main
from tasks.errors import HostOverrideError
from tasks.hosts import Limits, Override, read, store
from tasks.worker import keys
from tests.conftest import database_url, flushed_database

DB = 8


@pytest.fixture
def url(redis_url: str) -> Iterator[str]:
    with flushed_database(database_url(redis_url, DB)):
        yield database_url(redis_url, DB)


@pytest.fixture
def conn(url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(url, decode_responses=True) as client:
        yield client


def stored(conn: redis.Redis) -> dict[str, str]:
    return conn.hgetall(keys.HOST_OVERRIDES())  # type: ignore[return-value]


# --- the Python API and the hash ------------------------------------------------------------------------------------


def test_an_override_is_stored_under_its_canonical_network_as_the_luas_json(conn: redis.Redis) -> None:
    assert tasks.hosts.set("198.51.100.7", max_running=1, connection=conn) == "198.51.100.7/32"
    assert tasks.hosts.set("2001:DB8::1/64", max_rps=200, connection=conn) == "2001:db8::/64"
    assert stored(conn) == {
        "198.51.100.7/32": '{"v":4,"lo":"c6336407","hi":"c6336407","p":32,"n":1,"r":null}',
        "2001:db8::/64": '{"v":6,"lo":"20010db8000000000000000000000000","hi":"20010db800000000ffffffffffffffff",'
        '"p":64,"n":null,"r":200.0}',
    }
    assert conn.type(keys.HOST_OVERRIDES()) == "hash" and conn.ttl(keys.HOST_OVERRIDES()) == -1


def test_a_second_set_of_the_same_host_in_any_form_replaces_both_limits(conn: redis.Redis) -> None:
    tasks.hosts.set("198.51.100.7", max_running=1, max_rps=5, connection=conn)
    tasks.hosts.set("::ffff:198.51.100.7", max_rps=9, connection=conn)
    assert tasks.hosts.show(connection=conn) == [Override("198.51.100.7/32", read("198.51.100.7"), None, 9.0)]


def test_show_lists_every_override_in_address_order_or_those_that_apply_to_a_host(conn: redis.Redis) -> None:
    for host, n in [("198.51.100.7", 1), ("2001:db8::/64", 3), ("198.51.0.0/16", 4), ("198.51.101.0/24", 5)]:
        tasks.hosts.set(host, max_running=n, connection=conn)
    tasks.hosts.set("198.51.100.0/24", max_rps=10, connection=conn)
    every = ["198.51.0.0/16", "198.51.100.0/24", "198.51.100.7/32", "198.51.101.0/24", "2001:db8::/64"]
    assert [o.host for o in tasks.hosts.show(connection=conn)] == every
    covering = ["198.51.0.0/16", "198.51.100.0/24", "198.51.100.7/32"]
    assert [o.host for o in tasks.hosts.show("198.51.100.7", connection=conn)] == covering
    assert [o.host for o in tasks.hosts.show("::ffff:198.51.100.7", connection=conn)] == covering
    assert [o.host for o in tasks.hosts.show("198.51.100.0/24", connection=conn)] == covering, "and the narrower"
    assert [o.host for o in tasks.hosts.show("2001:db8::5", connection=conn)] == ["2001:db8::/64"]
    assert tasks.hosts.show("203.0.113.1", connection=conn) == []


def test_limits_are_the_rule_applied_to_the_stored_overrides_with_the_settings_defaults(conn: redis.Redis) -> None:
    tasks.hosts.set("198.51.100.0/24", max_rps=10, connection=conn)
    tasks.hosts.set("198.51.100.7", max_running=1, connection=conn)
    mine = Settings(host_max_running=3, host_max_rps=70)

    def limits(host: str) -> Limits:
        return tasks.hosts.limits(host, connection=conn, settings=mine)

    assert limits("198.51.100.7") == Limits(1, 10.0, "198.51.100.7/32", "198.51.100.0/24")
    assert limits("198.51.100.8") == Limits(3, 10.0, None, "198.51.100.0/24")
    assert limits("203.0.113.1") == Limits(3, 70.0, None, None)


def test_unset_drops_exactly_that_network_written_in_any_form(conn: redis.Redis) -> None:
    tasks.hosts.set("198.51.100.7", max_running=1, connection=conn)
    tasks.hosts.set("198.51.100.0/24", max_running=2, connection=conn)
    assert tasks.hosts.unset("::ffff:198.51.100.7", connection=conn) is True
    assert tasks.hosts.unset("198.51.100.7/32", connection=conn) is False
    assert list(stored(conn)) == ["198.51.100.0/24"]
    assert tasks.hosts.unset("198.51.100.99/24", connection=conn) is True
    assert conn.exists(keys.HOST_OVERRIDES()) == 0


@pytest.mark.parametrize(
    ("host", "limits"),
    [
        ("example.com", {"max_running": 1}),
        ("10.0.0.1/33", {"max_running": 1}),
        ("10.0.0.1", {"max_running": 0}),
        ("10.0.0.1", {"max_rps": -1}),
        ("10.0.0.1", {}),
    ],
)
def test_a_refused_override_writes_nothing(conn: redis.Redis, host: str, limits: dict[str, float]) -> None:
    with pytest.raises(HostOverrideError):
        tasks.hosts.set(host, connection=conn, **limits)  # type: ignore[arg-type]
    assert conn.exists(keys.HOST_OVERRIDES()) == 0


def test_every_change_is_an_event_line_naming_the_host_and_who_made_it(
    conn: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tasks.hosts"):
        tasks.hosts.set("198.51.100.7", max_running=1, connection=conn)
        tasks.hosts.unset("198.51.100.7", connection=conn)
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        f"hosts event=set host=198.51.100.7/32 max_running=1 max_rps=None by={store.actor()}",
        f"hosts event=unset host=198.51.100.7/32 removed=1 by={store.actor()}",
    ]


def test_a_value_written_by_hand_that_cannot_be_read_is_left_out_with_a_warning(
    conn: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    tasks.hosts.set("198.51.100.7", max_running=1, connection=conn)
    conn.hset(keys.HOST_OVERRIDES(), mapping={"198.51.100.0/24": "5", "bogus": "{}"})
    assert [o.host for o in tasks.hosts.show(connection=conn)] == ["198.51.100.7/32"]
    assert sum("is left out" in record.getMessage() for record in caplog.records) == 2


def test_the_hash_is_declared_in_the_schema_under_the_fair_share_prefix_owned_by_operators() -> None:
    assert keys.declared(store.KEY) is keys.HOST_OVERRIDES and keys.HOST_OVERRIDES in keys.SCHEMA
    assert keys.HOST_OVERRIDES() == keys.FAIR_SHARE + "hosts"
    assert keys.HOST_OVERRIDES.kind == "hash" and keys.HOST_OVERRIDES.expires is False


# --- `toolrunner hosts` ------------------------------------------------------------------------------------------


def toolrunner(url: str, *args: str) -> str:
    # The production defaults (the suite's own environment loosens them for loopback: bench/loopback.py).
    env = {
        "TOOLRUNNER_BROKER_URL": url,
        "COLUMNS": "200",
        "TOOLRUNNER_HOST_MAX_RUNNING": "2",
        "TOOLRUNNER_HOST_MAX_RPS": "50",
    }
    result = CliRunner().invoke(cli, ["hosts", *args], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_commands_set_show_and_unset_an_override(url: str, conn: redis.Redis) -> None:
    assert toolrunner(url, "set", "--host", "198.51.100.7", "--max-running", "1") == (
        "198.51.100.7/32: max running 1, max rps default\n"
    )
    assert toolrunner(url, "set", "--host", "198.51.100.0/24", "--max-rps", "2.5") == (
        "198.51.100.0/24: max running default, max rps 2.5\n"
    )
    assert "198.51.100.7/32" in stored(conn)
    shown = toolrunner(url, "show")
    assert "defaults: max running 2, max rps 50" in shown
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in shown.splitlines() if "198.51" in line]
    assert rows == [["198.51.100.0/24", "default", "2.5"], ["198.51.100.7/32", "1", "default"]]
    assert toolrunner(url, "unset", "--host", "198.51.100.7") == "removed\n"
    assert toolrunner(url, "unset", "--host", "198.51.100.7") == "there was no such override\n"


def test_show_with_a_host_gives_the_overrides_that_apply_and_its_effective_limits(url: str) -> None:
    toolrunner(url, "set", "--host", "198.51.100.0/24", "--max-rps", "10")
    toolrunner(url, "set", "--host", "198.51.100.7", "--max-running", "1")
    shown = toolrunner(url, "show", "--host", "::ffff:198.51.100.7")
    assert shown.splitlines()[-1] == (
        "effective for 198.51.100.7/32: max running 1 (198.51.100.7/32), max rps 10 (198.51.100.0/24)"
    )
    other = toolrunner(url, "show", "--host", "203.0.113.1")
    assert other.splitlines() == [
        "no host overrides apply; defaults: max running 2, max rps 50",
        "effective for 203.0.113.1/32: max running 2 (default), max rps 50 (default)",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "example.com", "--max-running", "1"], "'example.com' is a name: a host is an IP address or CIDR"),
        (["--host", "10.0.0.1/33", "--max-running", "1"], "'10.0.0.1/33': prefix length /33 is out of range"),
        (["--host", "10.0.0.1", "--max-running", "0"], "max running must be a whole number from 1 to 1000, not 0"),
        (["--host", "10.0.0.1", "--max-rps", "-1"], "max rps must be a number from 1 to 100000, not -1"),
        (["--host", "10.0.0.1"], "give --max-running, --max-rps or both"),
    ],
    ids=["name", "prefix-33", "running-0", "rps-negative", "no-limit"],
)
def test_a_refused_override_exits_2_with_one_line_and_writes_nothing(
    url: str, conn: redis.Redis, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    args: list[str], message: str,
) -> None:  # fmt: skip
    monkeypatch.setenv("TOOLRUNNER_BROKER_URL", url)
    monkeypatch.setenv("COLUMNS", "40")  # narrower than the message: it stays one line
    monkeypatch.setattr("sys.argv", ["toolrunner", "hosts", "set", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: {message}") and captured.err.count("\n") == 1, captured.err
    assert captured.out == "" and conn.exists(keys.HOST_OVERRIDES()) == 0

"""Intrusive tools run only for tenants an operator opted in: the refusal, the opt-in in a real Redis (Python API
and `toolrunner limits`), the pipeline step that refuses before the scope and the engine, and the CLI's own
process."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any
from unittest import mock

import docker
import pytest
import redis
from celery import Celery, Task
from typer.testing import CliRunner

from bench import loopback
from config import load_settings
from tasks.cli import cli, main
from tasks.errors import IntrusiveToolError, OutOfScopeError
from tasks.scope.policy import checker
from tasks.scope.store import Scopes
from tasks.service import RunRequest, plan_run
from tasks.service.intrusive import refuse_unless_opted_in
from tasks.tools import load_catalogue
from tasks.worker import backlog, keys, pipeline
from tasks.worker.context import Run, Services
from tasks.worker.limits import Limit, allow_intrusive, intrusive_allowed, set_limit, show_limits
from tests.conftest import database_url, flushed_database

DB = 10
CATALOGUE = load_catalogue()
FFUF = {"url": "http://127.0.0.1:9/FUZZ", "wordlist": ["admin"]}


@pytest.fixture
def conn(redis_url: str) -> Iterator[redis.Redis]:
    with flushed_database(database_url(redis_url, DB)) as client:
        yield client


def test_the_brute_forcers_and_the_injection_tool_are_intrusive_and_nothing_else() -> None:
    assert {name for name, spec in CATALOGUE.items() if spec.intrusive} == {"ffuf", "gobuster", "sqlmap"}


def test_an_intrusive_tool_for_a_tenant_not_opted_in_is_refused_saying_how_to_opt_it_in() -> None:
    with pytest.raises(IntrusiveToolError, match="ffuf is an intrusive tool") as refused:
        refuse_unless_opted_in(CATALOGUE["ffuf"], "acme", opted_in=False)
    assert "`toolrunner limits set --tenant acme --allow-intrusive`" in str(refused.value)
    assert isinstance(refused.value, ValueError)  # a TaskInputError: bad input, never retried


def test_an_opted_in_tenant_and_a_tool_that_is_not_intrusive_pass() -> None:
    refuse_unless_opted_in(CATALOGUE["sqlmap"], "acme", opted_in=True)
    refuse_unless_opted_in(CATALOGUE["nmap"], "acme", opted_in=False)


def test_the_opt_in_is_stored_per_tenant_taken_back_and_shown_beside_the_caps(conn: redis.Redis) -> None:
    assert not intrusive_allowed(conn, "acme")
    assert allow_intrusive(conn, "acme") and not allow_intrusive(conn, "acme")  # True only when it changed
    allow_intrusive(conn, "beta")
    set_limit(conn, "acme", 3)
    set_limit(conn, "acme", 1, tool="sqlmap")
    assert intrusive_allowed(conn, "acme") and not intrusive_allowed(conn, "gamma")
    assert show_limits(conn) == [
        Limit("acme", None, 3, True), Limit("acme", "sqlmap", 1, False), Limit("beta", None, None, True),
    ]  # fmt: skip
    assert show_limits(conn, "beta") == [Limit("beta", None, None, True)]
    assert allow_intrusive(conn, "beta", False) and not intrusive_allowed(conn, "beta")
    assert show_limits(conn, "beta") == []
    assert keys.declared(keys.INTRUSIVE()) is keys.INTRUSIVE


def test_a_tenant_id_that_could_not_name_a_run_is_refused(conn: redis.Redis) -> None:
    with pytest.raises(ValueError):
        allow_intrusive(conn, "bad tenant")
    assert conn.exists(keys.INTRUSIVE()) == 0


def test_the_loopback_grant_opts_its_tenants_in_unless_told_not_to_and_revoke_takes_it_back(
    conn: redis.Redis,
) -> None:
    loopback.grant(conn, "acme")
    loopback.grant(conn, "beta", intrusive=False)
    assert intrusive_allowed(conn, "acme") and not intrusive_allowed(conn, "beta")
    loopback.revoke(conn, "acme", "beta")
    assert not intrusive_allowed(conn, "acme") and conn.keys("toolrunner:scope:*") == []


@pytest.fixture
def limits_cli(redis_url: str, monkeypatch: pytest.MonkeyPatch, conn: redis.Redis) -> CliRunner:
    monkeypatch.setenv("TOOLRUNNER_BROKER_URL", database_url(redis_url, DB))
    return CliRunner()


def test_the_cli_opts_a_tenant_in_shows_it_and_takes_it_back(limits_cli: CliRunner, conn: redis.Redis) -> None:
    opted = limits_cli.invoke(cli, ["limits", "set", "--tenant", "acme", "--allow-intrusive"])
    assert opted.exit_code == 0 and "acme intrusive tools = allowed" in opted.output
    shown = limits_cli.invoke(cli, ["limits", "show"])
    assert shown.exit_code == 0 and [line.split("│")[1:-1] for line in shown.output.splitlines() if "acme" in line] == [
        [" acme   ", " (all) ", " (default)   ", " allowed         "]
    ]
    both = limits_cli.invoke(cli, ["limits", "set", "--tenant", "acme", "--max-running", "2", "--no-allow-intrusive"])
    assert both.exit_code == 0 and "acme intrusive tools = refused" in both.output
    assert not intrusive_allowed(conn, "acme") and show_limits(conn) == [Limit("acme", None, 2, False)]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tenant", "acme"], "give --max-running N, --allow-intrusive or --no-allow-intrusive"),
        (["--tenant", "acme", "--tool", "ffuf", "--allow-intrusive"], "for a whole tenant"),
    ],
    ids=["nothing-to-set", "per-tool"],
)
def test_the_cli_refuses_a_set_with_nothing_to_set_or_an_opt_in_for_one_tool(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], conn: redis.Redis, argv: list[str],
    message: str, redis_url: str,
) -> None:  # fmt: skip
    monkeypatch.setenv("TOOLRUNNER_BROKER_URL", database_url(redis_url, DB))
    monkeypatch.setattr("sys.argv", ["toolrunner", "limits", "set", *argv])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2 and message in " ".join(capsys.readouterr().err.split())
    assert conn.keys("*") == []


# The pipeline, in eager mode with a mocked engine and a real Redis.


@pytest.fixture
def eager(conn: redis.Redis) -> Iterator[tuple[Task, mock.MagicMock]]:
    """An eager task running the whole pipeline for tenants whose opt-in and scope live in `conn`."""
    client = mock.create_autospec(docker.DockerClient, instance=True)
    settings = load_settings()
    services = Services(lambda: client, conn, settings, CATALOGUE, Scopes(conn), checker(settings))
    probe = Celery("intrusive-probe", set_as_current=False)
    probe.conf.update(task_always_eager=True)

    @probe.task(bind=True)  # type: ignore[misc]
    def run(self: Task, *args: Any) -> dict[str, Any]:
        return pipeline.run_pipeline(Run(self, RunRequest(*args), services)).as_dict()

    yield run, client
    probe.close()


def test_the_pipeline_refuses_an_intrusive_run_before_the_scope_and_the_engine_and_logs_it(
    eager: tuple[Task, mock.MagicMock], caplog: pytest.LogCaptureFixture
) -> None:
    task, client = eager
    with caplog.at_level(logging.WARNING), pytest.raises(IntrusiveToolError, match="tenant acme is not opted in"):
        task.apply(("ffuf", "acme", "r1", FFUF)).get()
    assert client.mock_calls == []
    assert "intrusive event=refused tenant=acme run=r1" in caplog.text and "tool=ffuf" in caplog.text


def test_an_opted_in_tenants_intrusive_run_goes_on_to_the_scope_step(
    eager: tuple[Task, mock.MagicMock], conn: redis.Redis
) -> None:
    task, client = eager
    allow_intrusive(conn, "acme")
    with pytest.raises(OutOfScopeError, match="acme"):  # the next check: acme has no scope in this database
        task.apply(("ffuf", "acme", "r2", FFUF)).get()
    assert client.mock_calls == []


def test_a_tool_that_is_not_intrusive_never_reads_the_opt_in(eager: tuple[Task, mock.MagicMock]) -> None:
    task, _ = eager
    with mock.patch("tasks.worker.steps.intrusive.intrusive_allowed") as read, pytest.raises(OutOfScopeError):
        task.apply(("nmap", "acme", "r3", {"targets": ["127.0.0.1"], "ports": "80"})).get()
    read.assert_not_called()


# The CLI's own process (no broker): --allow-intrusive is the opt-in.


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ([], "add --allow-intrusive to run it in this process"),
        (["--allow-intrusive"], "'http://127.0.0.2/fuzz': outside"),  # past the opt-in, refused by the scope next
    ],
    ids=["refused", "opted-in"],
)
def test_an_in_process_intrusive_run_needs_allow_intrusive_and_is_refused_before_the_engine(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    monkeypatch.delenv("TOOLRUNNER_BROKER_URL", raising=False)
    monkeypatch.setenv("TOOLRUNNER_SCOPE_ALLOW_PRIVATE", "127.0.0.0/8")
    monkeypatch.setattr("tasks.cli.run.isolation.connect", _no_engine)
    argv = ["toolrunner", "run", "ffuf", "--tenant", "acme", "--scope", "127.0.0.1", *flags]
    monkeypatch.setattr("sys.argv", [*argv, "-p", "url=http://127.0.0.2/FUZZ", "-p", "wordlist=a"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert message in " ".join(capsys.readouterr().err.split())


def _no_engine(*_: Any) -> None:
    raise AssertionError("a refused run must not reach the engine")


def test_the_backlog_drain_leaves_an_intrusive_run_of_a_tenant_not_opted_in_queued_for_its_worker_to_refuse(
    conn: redis.Redis,
) -> None:
    in_scope = backlog._scope_check(mock.Mock(spec=[]), conn, load_settings())
    plan = plan_run(CATALOGUE, RunRequest("ffuf", "acme", "r4", FFUF), max_input_bytes=1 << 20, max_timeout_seconds=600)
    with pytest.raises(IntrusiveToolError):
        in_scope(plan)
    allow_intrusive(conn, "acme")
    with pytest.raises(OutOfScopeError):  # past the opt-in: acme has no scope in this database
        in_scope(plan)

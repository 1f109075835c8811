"""`toolrunner cancel`'s exit status (pinned: 0 cancelled or finished, 3 an id never seen, 2 usage) and the
recording of a cancel of an unseen id, bound to the tenant, in a real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from unittest import mock

import pytest
import redis

from config import Settings
from tasks.cli import main
from tasks.worker import keys
from tasks.worker.cancel import Cancelled, CancelOutcome, cancel
from tasks.worker.delivery import Delivery, claim_identity
from tests.conftest import database_url, flushed_database

DB = 11


@pytest.fixture
def conn(redis_url: str) -> Iterator[redis.Redis]:
    with flushed_database(database_url(redis_url, DB)) as client:
        yield client


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (Cancelled.SENT, 0),
        (Cancelled.RECORDED, 0),
        (Cancelled.ALREADY, 0),
        (Cancelled.FINISHED, 0),
        (Cancelled.UNKNOWN, 3),
    ],
)
def test_the_exit_status_says_whether_the_id_was_a_run_of_the_tenants(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], outcome: Cancelled, status: int
) -> None:
    said = CancelOutcome("t1", outcome, f"t1: {outcome.value}")
    monkeypatch.setattr("tasks.worker.cancel.cancel_run", lambda task_id, tenant_id: said)
    monkeypatch.setattr("sys.argv", ["toolrunner", "cancel", "t1", "--tenant", "acme"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == status
    assert capsys.readouterr().out == f"t1: {outcome.value}\n"


def test_a_usage_error_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["toolrunner", "cancel"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2


def test_an_id_never_seen_is_recorded_for_the_tenant_and_said_so(conn: redis.Redis) -> None:
    celery = mock.Mock()
    first = cancel(celery, conn, Settings(), "typo-id", "acme")
    assert first.outcome is Cancelled.UNKNOWN
    assert first.message == (
        "typo-id: no run of tenant acme with this id was seen; cancel recorded for acme: "
        "a run it sends with this id will not start"
    )
    assert conn.ttl(keys.CANCEL("typo-id", "acme")) > 0
    again = cancel(celery, conn, Settings(), "typo-id", "acme")
    assert again.outcome is Cancelled.UNKNOWN and "a cancel was already recorded for acme" in again.message
    celery.control.revoke.assert_not_called()


def test_another_tenants_run_is_answered_as_an_unseen_id_and_left_alone(conn: redis.Redis) -> None:
    claim_identity(conn, Delivery("their-id", "script", "other", "r1"), ttl=60)
    celery = mock.Mock()
    answer = cancel(celery, conn, Settings(), "their-id", "acme")
    assert answer.outcome is Cancelled.UNKNOWN and answer.message.startswith("their-id: no run of tenant acme")
    assert not conn.exists(keys.CANCEL("their-id", "other"))
    celery.control.revoke.assert_not_called()
    celery.AsyncResult.assert_not_called()


def test_a_queued_run_of_the_tenants_is_cancelled_with_exit_0_not_unknown(conn: redis.Redis) -> None:
    claim_identity(conn, Delivery("queued-id", "script", "acme", "r1"), ttl=60)
    celery = mock.Mock()
    celery.AsyncResult.return_value.state = "PENDING"
    answer = cancel(celery, conn, Settings(), "queued-id", "acme")
    assert answer.outcome is Cancelled.RECORDED
    assert answer.message == "queued-id: cancel recorded; the queued run will not start"
    celery.control.revoke.assert_called_once_with("queued-id")


@pytest.mark.parametrize(
    "argv",
    [
        ["cancel", "--tenant", "acme"],  # neither TASK_ID nor --waiting
        ["cancel", "t1", "--waiting", "--tenant", "acme"],  # both
        ["cancel", "--waiting"],  # no tenant
    ],
)
def test_exactly_one_of_a_task_id_and_waiting_and_a_tenant_or_exit_2(
    monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    ended = mock.Mock()
    monkeypatch.setattr("tasks.worker.cancel.cancel_waiting_runs", ended)
    monkeypatch.setattr("sys.argv", ["toolrunner", *argv])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    ended.assert_not_called()


def test_waiting_says_how_many_of_the_tenants_waiting_runs_it_cancelled(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("tasks.worker.cancel.cancel_waiting_runs", lambda tenant_id: 1200 if tenant_id == "acme" else 0)
    monkeypatch.setattr("sys.argv", ["toolrunner", "cancel", "--waiting", "--tenant", "acme"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 0
    assert capsys.readouterr().out == "tenant acme: 1200 waiting runs cancelled; running runs go on\n"

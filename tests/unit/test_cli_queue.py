"""`toolrunner run` through the queue: the task id at once, a line when no worker takes the run, --no-wait."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tasks import app
from tasks.cli import main, queue
from tasks.cli.run import print_result

RESULT = {
    "tool": "nmap", "tenant_id": "acme", "run_id": "r1", "task_id": "task-1", "status": "ok", "exit_code": 0,
    "reason": None, "findings": [], "stats": {"duration_ms": 5}, "notices": [],
}  # fmt: skip


class FakeHandle:
    """A queued run that stays PENDING for `pending` polls, then succeeds with RESULT."""

    def __init__(self, pending: int, state: str = "PENDING") -> None:
        self.id = "task-1"
        self.pending = pending
        self.waiting_state = state
        self.polls = 0

    @property
    def state(self) -> str:
        return self.waiting_state if self.polls <= self.pending else "SUCCESS"

    @property
    def info(self) -> Any:
        return {"stage": "running"} if self.waiting_state == "PROGRESS" else None

    def ready(self) -> bool:
        self.polls += 1
        return self.polls > self.pending

    def get(self, *, propagate: bool) -> Any:
        return dict(RESULT)


def test_a_run_nobody_takes_is_said_once_and_still_waited_for(capsys: pytest.CaptureFixture[str]) -> None:
    assert queue.wait_for(FakeHandle(pending=3), "nmap", no_worker_after=0, poll=0) == RESULT
    err = capsys.readouterr().err
    assert err.count(queue.no_worker("task-1")) == 1
    assert "no worker has taken task task-1 yet; still waiting (start one with: celery -A tasks worker" in err


def test_a_run_a_worker_has_taken_is_not_said_to_wait_for_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert queue.wait_for(FakeHandle(pending=3, state="PROGRESS"), "nmap", no_worker_after=0, poll=0) == RESULT
    assert "no worker" not in capsys.readouterr().err


def test_nothing_is_said_before_the_run_has_had_its_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    queue.wait_for(FakeHandle(pending=2), "nmap", no_worker_after=60, poll=0)
    assert "no worker" not in capsys.readouterr().err


def run_main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setenv("TOOLRUNNER_BROKER_URL", "redis://127.0.0.1:1/0")  # never reached: publish is faked
    monkeypatch.setattr(queue, "publish", lambda *a: FakeHandle(pending=0))
    monkeypatch.setattr("sys.argv", ["toolrunner", "run", "nmap", "--tenant", "acme", "-p", "targets=127.0.0.1", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    return int(exited.value.code or 0)


def test_no_wait_prints_only_the_task_id_and_exits_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_main(monkeypatch, "--no-wait") == 0
    assert capsys.readouterr().out == "task-1\n"
    assert run_main(monkeypatch, "--no-wait", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"task_id": "task-1"}


def test_a_queued_run_says_its_task_id_on_stderr_first_and_the_table_names_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert run_main(monkeypatch) == 0
    captured = capsys.readouterr()
    first = captured.err.splitlines()[0]
    assert first == "nmap: queued as task task-1 (cancel it with: toolrunner cancel task-1 --tenant acme)"
    assert captured.out.startswith("nmap for acme/r1 (task task-1): 0 finding(s)\n")
    assert run_main(monkeypatch, "--json") == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["task_id"] == "task-1" and "queued as task task-1" in captured.err


def test_the_table_says_a_cache_hit_and_every_notice(capsys: pytest.CaptureFixture[str]) -> None:
    notice = "timeout_seconds=99999 was capped to 3600 by TOOLRUNNER_MAX_TIMEOUT_SECONDS"
    hit = {"hit": True, "source_task_id": "task-0", "age_seconds": 12.5}
    print_result({**RESULT, "cache": hit, "notices": [notice]}, app.catalogue["nmap"])
    printed = capsys.readouterr().out
    assert "cache hit: the result of task task-0, 12.5s old\n" in printed
    assert f"notice: {notice}\n" in printed

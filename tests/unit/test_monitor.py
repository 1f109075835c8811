"""What event monitors see of a run: redacted arguments, and a cancel that Celery's event state takes as REVOKED."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from celery.events.state import State
from kombu.message import Message

from tasks import TOOL_TASKS, app, run_tool
from tasks.worker.monitor import RedactedRequest, redact_options, redacted_reprs, revoked_fields

SECRET_PARAMS = {"script": "curl https://secret.example/"}
SECRET_FILES = {"targets.txt": "10.9.8.7\n"}


@pytest.mark.parametrize(
    ("task", "args", "kwargs"),
    [
        ("toolrunner.run_tool", ["nmap", "acme", "scan-42", SECRET_PARAMS, SECRET_FILES], {}),
        ("toolrunner.run_tool", ["nmap", "acme", "scan-42"], {"params": SECRET_PARAMS, "files": SECRET_FILES}),
        ("toolrunner.tools.nmap", ["acme", "scan-42", SECRET_PARAMS], {"files": SECRET_FILES}),
    ],
)
def test_a_run_messages_reprs_name_its_tool_tenant_and_run_and_hide_params_and_files(
    task: str, args: list[Any], kwargs: dict[str, Any]
) -> None:
    options: dict[str, Any] = {}
    redact_options(task, args, kwargs, options)
    assert options["argsrepr"] == "{'tool': 'nmap', 'tenant_id': 'acme', 'run_id': 'scan-42'}"
    assert options["kwargsrepr"] == "{'files': '<redacted>', 'params': '<redacted>'}"


def test_arguments_that_are_not_valid_ids_are_not_shown_either() -> None:
    argsrepr, kwargsrepr = redacted_reprs({"tool": "nmap", "tenant_id": "acme 10.0.0.1", "run_id": ["x"], "z": 1})
    assert argsrepr == "{'tool': 'nmap', 'tenant_id': '<redacted>', 'run_id': '<redacted>'}"
    assert kwargsrepr == "{'z': '<redacted>'}"


def test_a_run_without_params_or_files_shows_no_hidden_arguments() -> None:
    assert redacted_reprs({"tool": "nmap", "tenant_id": "acme", "run_id": "r1"})[1] == "{}"


def test_other_tasks_keep_celerys_own_reprs() -> None:
    options: dict[str, Any] = {}
    redact_options("toolrunner.sweep_daemon", [], {"max_age_hours": 2}, options)
    assert options == {}


def test_the_worker_redacts_a_run_message_whatever_argsrepr_its_producer_sent() -> None:
    body = json.dumps([["script", "acme", "r1", SECRET_PARAMS, SECRET_FILES], {}, {}])
    headers = {"id": "t-1", "task": "toolrunner.run_tool", "argsrepr": repr(SECRET_PARAMS), "kwargsrepr": "{}"}
    message = Message(body=body, headers=headers, content_type="application/json", content_encoding="utf-8")
    request = RedactedRequest(message, app=app, task=run_tool)
    shown = f"{request.argsrepr} {request.kwargsrepr} {request.info(safe=True)}"
    assert "secret" not in shown and "10.9.8.7" not in shown
    assert request.argsrepr == "{'tool': 'script', 'tenant_id': 'acme', 'run_id': 'r1'}"


def test_every_run_task_uses_the_redacting_request() -> None:
    assert all(task.Request is RedactedRequest for task in [run_tool, *TOOL_TASKS.values()])


def _events(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    now = time.time()
    base = [
        {"type": "task-received", "name": "toolrunner.run_tool", "args": "{'tool': 'script'}", "kwargs": "{}"},
        {"type": "task-started"},
        {"type": "task-progress", "result": {"stage": "running"}},
        *extra,
    ]
    common = {"uuid": "t-1", "hostname": "w@h", "local_received": now, "clock": 0}
    return [{**common, "timestamp": now + i * 0.01, **event} for i, event in enumerate(base)]


def _state_after(events: list[dict[str, Any]]) -> str:
    state = State()
    for event in events:
        state.event(event)
    return str(state.tasks["t-1"].state)


def test_celerys_event_state_keeps_progress_after_a_plain_task_revoked() -> None:
    # Why the event carries `state`: a custom state outranks REVOKED in celery.states.PRECEDENCE.
    plain = {"type": "task-revoked", "terminated": False, "signum": None, "expired": False}
    assert _state_after(_events(plain)) == "PROGRESS"


def test_a_cancelled_runs_task_revoked_event_turns_progress_into_revoked() -> None:
    state = State()
    for event in _events({"type": "task-revoked", **revoked_fields("cancelled: stopped at running")}):
        state.event(event)
    task = state.tasks["t-1"]
    assert (task.state, task.result, task.args) == ("REVOKED", "cancelled: stopped at running", "{'tool': 'script'}")
    assert task.revoked is not None

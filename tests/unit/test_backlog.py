"""Reading run messages off the Redis transport's queue for the drain (pure: raw kombu messages in, runs out)."""

from __future__ import annotations

import pytest

from tasks.worker.backlog import read_message
from tests.unit.helpers import raw_message


def test_a_run_tool_message_becomes_an_envelope_waiting_in_its_tenants_list() -> None:
    queued = read_message(raw_message("toolrunner.run_tool", ["script", "acme", "r1", {"script": "true"}]), "celery")
    assert queued is not None
    assert (queued.delivery.tool, queued.delivery.tenant_id, queued.delivery.run_id) == ("script", "acme", "r1")
    envelope = queued.envelope
    assert (envelope.task_id, envelope.queue, envelope.waiting_in) == ("t-1", "celery", "toolrunner:fs:wait:acme")
    assert envelope.args == ["script", "acme", "r1", {"script": "true"}] and envelope.kwargs == {}


def test_a_per_tool_task_message_takes_its_tool_from_the_task_name_and_keeps_its_kwargs() -> None:
    raw = raw_message("toolrunner.tools.nuclei", ["acme"], {"run_id": "r2", "params": {}})
    queued = read_message(raw, "celery")
    assert queued is not None and queued.delivery.tool == "nuclei" and queued.delivery.run_id == "r2"
    assert queued.envelope.kwargs == {"run_id": "r2", "params": {}}


@pytest.mark.parametrize(
    "raw",
    [
        raw_message("toolrunner.maintenance.sweep", []),
        raw_message("toolrunner.run_tool", ["script", "acme", "r1"], eta="2030-01-01T00:00:00"),
        raw_message("toolrunner.run_tool", ["script", "acme", "r1"], retries=2),
        raw_message("toolrunner.run_tool", ["script"]),
        b"not json",
        b'{"body": "", "headers": {}}',
    ],
)
def test_anything_but_a_fresh_run_message_is_left_in_the_queue(raw: bytes) -> None:
    assert read_message(raw, "celery") is None

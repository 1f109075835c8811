"""A task id names one run: a stored result or progress of another run under the same id is refused."""

from __future__ import annotations

import pytest

from isolation import Label, managed_filter
from tasks import TaskIdentityError
from tasks.worker.delivery import Delivery

OURS = Delivery("job-1", "nmap", "acme", "r1")


@pytest.mark.parametrize(
    ("stored", "differ"),
    [
        ({"tool": "nmap", "tenant_id": "other", "run_id": "r1", "findings": []}, "tenant_id"),
        ({"tool": "ffuf", "tenant_id": "acme", "run_id": "r1"}, "tool"),
        ({"stage": "running", "tool": "nmap", "tenant_id": "acme", "run_id": "r2"}, "run_id"),
    ],
)
def test_another_runs_result_under_the_same_id_is_refused_naming_what_differs(
    stored: dict[str, object], differ: str
) -> None:
    with pytest.raises(TaskIdentityError, match=f"another run \\({differ} differ\\)"):
        OURS.check(stored)


def test_this_runs_own_result_and_a_bare_started_state_pass() -> None:
    OURS.check({"tool": "nmap", "tenant_id": "acme", "run_id": "r1", "findings": []})
    OURS.check({"pid": 12, "hostname": "w@h"})


def test_locks_counters_and_leftovers_are_keyed_on_the_whole_run_not_the_bare_id() -> None:
    other_tenant = Delivery("job-1", "nmap", "globex", "r1")
    assert OURS.key != other_tenant.key
    assert OURS.labels == {"task": "job-1", "tool": "nmap", "tenant": "acme", "run": "r1"}


def test_a_runs_label_keys_are_the_label_schemas() -> None:
    assert all(isinstance(key, Label) for key in OURS.labels)
    assert managed_filter("studio", **OURS.labels)["label"][1:] == [
        "studio.run=r1", "studio.task=job-1", "studio.tenant=acme", "studio.tool=nmap"
    ]  # fmt: skip

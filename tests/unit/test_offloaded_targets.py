"""A big run's targets go to the artifact store beside its message, and come back for its tenant only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.artifacts import ArtifactConfig, Artifacts, open_artifacts
from tasks.errors import TaskInputError
from tasks.service import RunRequest
from tasks.tools import load_catalogue
from tasks.worker import targets
from tasks.worker.targets import OFFLOAD_AFTER, loaded, offload, with_params

NMAP = load_catalogue()["nmap"]
MANY = [f"10.0.{i // 256}.{i % 256}" for i in range(OFFLOAD_AFTER + 1)]


@pytest.fixture
def store(tmp_path: Path) -> Artifacts:
    return open_artifacts(ArtifactConfig(url=f"file://{tmp_path}"))


def bound(params: dict[str, object], tenant: str = "acme") -> dict[str, object]:
    return {"tool": "nmap", "tenant_id": tenant, "run_id": "r", "params": params}


def test_more_targets_than_a_message_carries_travel_as_a_reference_and_come_back_for_their_tenant(
    store: Artifacts,
) -> None:
    sent = offload(lambda: store, NMAP, "task-1", bound({"targets": MANY, "ports": "80"}))
    assert sent is not None and sent["ports"] == "80" and set(sent["targets"]) == {"artifact"}  # type: ignore[arg-type]
    assert len(json.dumps(sent)) < 300, "the message stays small"
    request = loaded(store, NMAP, RunRequest("nmap", "acme", "r", sent), "task-1")
    assert request.params == {"targets": MANY, "ports": "80"}
    with pytest.raises(TaskInputError, match="could not be read"):
        loaded(store, NMAP, RunRequest("nmap", "other-tenant", "r", sent), "task-1")
    with pytest.raises(TaskInputError, match="could not be read"):  # another run's reference reads nothing of it
        loaded(store, NMAP, RunRequest("nmap", "acme", "r2", sent), "task-2")


def test_a_run_of_a_message_s_size_a_chunk_or_a_store_that_cannot_open_sends_its_targets_inline(
    store: Artifacts,
) -> None:
    assert offload(lambda: store, NMAP, "t", bound({"targets": MANY[:OFFLOAD_AFTER]})) is None
    assert offload(lambda: store, NMAP, "t", {**bound({"targets": MANY}), "chunk": {"parent": "p"}}) is None

    def broken() -> Artifacts:
        raise OSError("read-only file system")

    assert offload(broken, NMAP, "t", bound({"targets": MANY})) is None


def test_a_reference_that_is_not_one_is_bad_input(store: Artifacts) -> None:
    with pytest.raises(TaskInputError, match="must be a list"):
        loaded(store, NMAP, RunRequest("nmap", "acme", "r", {"targets": {"artifact": 3}}), "t")
    with pytest.raises(TaskInputError, match="must be a list"):
        loaded(None, NMAP, RunRequest("nmap", "acme", "r", {"targets": {"artifact": "file:///x"}}), "t")


def test_params_are_replaced_where_the_producer_put_them() -> None:
    new = {"targets": {"artifact": "u"}}
    assert with_params("toolrunner.run_tool", ("nmap", "t", "r", {}, None), {}, new) == (
        ["nmap", "t", "r", new, None],
        {},
    )
    assert with_params("toolrunner.tools.nmap", ("t", "r", {}), {}, new) == (["t", "r", new], {})
    assert with_params("toolrunner.run_tool", ("nmap", "t", "r"), {"params": {}}, new)[1] == {"params": new}
    assert targets.targets_task_id("a") != targets.targets_task_id("b")

"""A run's result kept as `result.json` beside its artifacts: encrypted, for its tenant only, replaced not doubled."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.artifacts import (
    RESULT_NAME,
    ArtifactConfig,
    ArtifactNotFoundError,
    Artifacts,
    new_master_key,
    open_artifacts,
)

RESULT = {"task_id": "task-1", "tenant_id": "acme", "run_id": "run-1", "status": "ok", "marker": "KEPT-MARKER-77"}


@pytest.fixture
def artifacts(tmp_path: Path) -> Artifacts:
    return open_artifacts(ArtifactConfig(url=(tmp_path / "store").as_uri(), master_key=new_master_key()))


def test_a_kept_result_reads_back_for_its_tenant_and_is_encrypted_at_rest(artifacts: Artifacts, tmp_path: Path) -> None:
    artifacts.keep_result("acme", "run-1", "task-1", RESULT)
    assert artifacts.kept_result("task-1", tenant="acme") == RESULT
    stored = [p.read_bytes() for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert stored and not any(b"KEPT-MARKER-77" in data for data in stored)


def test_another_tenant_finds_no_kept_result(artifacts: Artifacts) -> None:
    artifacts.keep_result("acme", "run-1", "task-1", RESULT)
    with pytest.raises(ArtifactNotFoundError):
        artifacts.kept_result("task-1", tenant="rival")


def test_a_kept_result_joins_the_tasks_artifacts_and_keeps_their_expiry(artifacts: Artifacts) -> None:
    sink = artifacts.for_task("acme", "run-1", "task-1")
    with sink.open("out.txt") as stream:
        stream.write(b"output")
    before = artifacts.index("task-1", tenant="acme")
    artifacts.keep_result("acme", "run-1", "task-1", RESULT)
    artifacts.keep_result("acme", "run-1", "task-1", {**RESULT, "status": "again"})
    after = artifacts.index("task-1", tenant="acme")
    assert [r.name for r in after.artifacts] == ["out.txt", RESULT_NAME]
    assert after.expires == before.expires
    assert artifacts.kept_result("task-1", tenant="acme")["status"] == "again"

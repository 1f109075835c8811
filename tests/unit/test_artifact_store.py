"""The artifact layer on the file store: streaming sink, index, reading back, retention, keys and memory."""

from __future__ import annotations

import ast
import hashlib
import logging
import os
import stat
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from isolation import Sink
from tasks.artifacts import (
    ArtifactConfig,
    ArtifactConfigError,
    ArtifactExistsError,
    ArtifactIntegrityError,
    ArtifactKeyError,
    ArtifactNotFoundError,
    Artifacts,
    ArtifactTooLargeError,
    StoreError,
    key_file_for,
    new_master_key,
    open_artifacts,
)

MARKER = b"PLAINTEXT-MARKER-41c9"
MiB = 1 << 20


@pytest.fixture
def artifacts(tmp_path: Path) -> Artifacts:
    return open_artifacts(ArtifactConfig(url=(tmp_path / "store").as_uri(), master_key=new_master_key()))


def store_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def write(artifacts: Artifacts, task: str, files: dict[str, bytes], tenant: str = "acme") -> list[str]:
    sink: Sink = artifacts.for_task(tenant, "run-1", task)
    for name, data in files.items():
        with sink.open(name) as target:
            target.write(data)
    return [r.uri for r in artifacts.list_artifacts(task, tenant=tenant)]


def test_an_output_round_trips_byte_for_byte_by_uri_and_by_name(artifacts: Artifacts) -> None:
    data = os.urandom(3 * MiB + 17)
    [uri] = write(artifacts, "task-1", {"out/scan.bin": data})
    assert uri == artifacts.store.base_uri + "tenants/acme/runs/run-1/task-1/out/scan.bin"
    assert artifacts.open_artifact(uri, tenant="acme").read() == data
    assert artifacts.open_artifact("task-1", "out/scan.bin", tenant="acme").read() == data


def test_records_carry_the_plaintext_size_and_sha256(artifacts: Artifacts) -> None:
    write(artifacts, "task-1", {"a.xml": b"<x/>", "empty": b""})
    records = {r.name: r.as_dict() for r in artifacts.list_artifacts("task-1", tenant="acme")}
    assert records["a.xml"]["size"] == 4
    assert records["a.xml"]["sha256"] == hashlib.sha256(b"<x/>").hexdigest()
    assert records["empty"]["size"] == 0
    assert set(records["empty"]) == {"name", "size", "sha256", "uri"}


def test_the_plaintext_never_appears_in_the_store(artifacts: Artifacts, tmp_path: Path) -> None:
    write(artifacts, "task-1", {"out.txt": MARKER * 1000})
    with artifacts.for_task("acme", "run-1", "task-2").findings() as findings:
        findings.write({"host": MARKER.decode()})
    for path in store_files(tmp_path / "store"):
        assert MARKER not in path.read_bytes(), path


def test_findings_are_stored_as_json_lines(artifacts: Artifacts) -> None:
    with artifacts.for_task("acme", "run-1", "task-1").findings() as findings:
        for port in range(3):
            findings.write({"port": port, "note": "é"})
    lines = artifacts.open_artifact("task-1", "findings.jsonl", tenant="acme").read().decode().splitlines()
    assert lines == [f'{{"port":{p},"note":"é"}}' for p in range(3)]


def test_an_error_inside_the_with_block_publishes_nothing(artifacts: Artifacts, tmp_path: Path) -> None:
    sink = artifacts.for_task("acme", "run-1", "task-1")
    with pytest.raises(RuntimeError), sink.open("half.bin") as target:
        target.write(b"x" * 1000)
        raise RuntimeError("the archive stream broke")
    assert store_files(tmp_path / "store") == []
    assert sink.records == []


def test_an_artifact_over_the_cap_is_dropped(tmp_path: Path) -> None:
    config = ArtifactConfig(url=(tmp_path / "s").as_uri(), master_key=new_master_key(), max_artifact_bytes=MiB)
    sink = open_artifacts(config).for_task("acme", "run-1", "task-1")
    with pytest.raises(ArtifactTooLargeError), sink.open("big.bin") as target:
        target.write(b"x" * MiB)
        target.write(b"y")
    assert store_files(tmp_path / "s") == []


def test_a_name_cannot_be_written_twice_in_one_task(artifacts: Artifacts) -> None:
    sink = artifacts.for_task("acme", "run-1", "task-1")
    with sink.open("a") as target:
        target.write(b"1")
    with pytest.raises(ArtifactExistsError):
        sink.open("a")


def test_a_tampered_artifact_raises_instead_of_returning_bytes(artifacts: Artifacts, tmp_path: Path) -> None:
    write(artifacts, "task-1", {"out.bin": os.urandom(2 * MiB)})
    [path] = [p for p in store_files(tmp_path / "store") if p.name == "out.bin"]
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x40
    path.write_bytes(blob)
    with pytest.raises(ArtifactIntegrityError), artifacts.open_artifact("task-1", "out.bin", tenant="acme") as source:
        source.read()


def test_an_artifact_swapped_for_another_of_the_same_tenant_does_not_open(artifacts: Artifacts, tmp_path: Path) -> None:
    write(artifacts, "task-1", {"a.bin": b"first", "b.bin": b"second"})
    files = {p.name: p for p in store_files(tmp_path / "store")}
    files["a.bin"].write_bytes(files["b.bin"].read_bytes())
    with pytest.raises(ArtifactKeyError):
        artifacts.open_artifact("task-1", "a.bin", tenant="acme").read()


def test_an_index_that_disagrees_with_the_artifact_fails_at_the_end(artifacts: Artifacts, tmp_path: Path) -> None:
    write(artifacts, "task-1", {"a.bin": b"content"})
    index = tmp_path / "store" / "index" / "acme" / "task-1.json"
    index.write_text(index.read_text().replace(hashlib.sha256(b"content").hexdigest(), "0" * 64))
    with pytest.raises(ArtifactIntegrityError, match="index entry"):
        artifacts.open_artifact("task-1", "a.bin", tenant="acme").read()


def test_another_tenants_key_cannot_open_an_artifact(artifacts: Artifacts, tmp_path: Path) -> None:
    write(artifacts, "task-1", {"a.bin": b"acme's evidence"})
    root = tmp_path / "store" / "tenants"
    (root / "acme").rename(root / "evil")
    index = tmp_path / "store" / "index" / "acme" / "task-1.json"
    (index.parent.parent / "evil").mkdir(mode=0o700)
    forged = index.parent.parent / "evil" / "task-1.json"
    forged.write_text(index.read_text().replace('"acme"', '"evil"').replace("/acme/", "/evil/"))
    with pytest.raises(ArtifactKeyError, match="tenant 'evil'"):
        artifacts.open_artifact("task-1", "a.bin", tenant="evil").read()


def test_unknown_tasks_names_and_foreign_uris_are_not_found(artifacts: Artifacts) -> None:
    write(artifacts, "task-1", {"a.bin": b"1"})
    with pytest.raises(ArtifactNotFoundError):
        artifacts.list_artifacts("task-2", tenant="acme")
    with pytest.raises(ArtifactNotFoundError):
        artifacts.open_artifact("task-1", "b.bin", tenant="acme")
    with pytest.raises(ArtifactNotFoundError):
        artifacts.open_artifact("s3://elsewhere/tenants/acme/runs/run-1/task-1/a.bin", tenant="acme")


def test_retention_removes_only_expired_tasks(tmp_path: Path) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    config = ArtifactConfig(url=(tmp_path / "s").as_uri(), master_key=new_master_key(), retention_days=30)
    base = open_artifacts(config)
    old = Artifacts(base.store, base.keys, retention_days=30, clock=lambda: now - timedelta(days=31))
    write(old, "old-task", {"a.bin": b"old"})
    fresh = Artifacts(base.store, base.keys, retention_days=30, clock=lambda: now - timedelta(days=29))
    write(fresh, "new-task", {"a.bin": b"new"})
    report = fresh.sweep_expired(now)
    assert (report.tasks, report.objects) == (1, 1)
    assert fresh.open_artifact("new-task", "a.bin", tenant="acme").read() == b"new"
    with pytest.raises(ArtifactNotFoundError):
        fresh.list_artifacts("old-task", tenant="acme")


def test_retention_removes_old_objects_no_index_names(artifacts: Artifacts, tmp_path: Path) -> None:
    sink = artifacts.for_task("acme", "run-1", "task-1")
    orphan = sink.open("never-closed.bin")
    orphan.write(b"interrupted")  # a worker killed here leaves only the temp file
    write(artifacts, "task-2", {"kept.bin": b"kept"})
    later = datetime.now(UTC) + timedelta(days=1)
    assert artifacts.sweep_expired(later).objects == 0
    report = artifacts.sweep_expired(datetime.now(UTC) + timedelta(days=31))
    assert report.tasks == 1
    assert store_files(tmp_path / "store") == []
    with pytest.raises(StoreError):  # the swept temp file cannot be published afterwards
        orphan.close()


def test_purging_a_tenant_leaves_other_tenants_alone(artifacts: Artifacts) -> None:
    write(artifacts, "task-1", {"a.bin": b"1", "b.bin": b"2"}, tenant="leaving")
    write(artifacts, "task-2", {"a.bin": b"3"}, tenant="staying")
    report = artifacts.purge_tenant("leaving")
    assert (report.tasks, report.objects) == (1, 2)
    with pytest.raises(ArtifactNotFoundError):
        artifacts.list_artifacts("task-1", tenant="leaving")
    assert artifacts.open_artifact("task-2", "a.bin", tenant="staying").read() == b"3"


def test_the_file_store_creates_one_private_key_file_beside_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = (tmp_path / "store").as_uri()
    with caplog.at_level(logging.WARNING):
        first = open_artifacts(ArtifactConfig(url=url))
        second = open_artifacts(ArtifactConfig(url=url))
    key_file = key_file_for(url)
    assert key_file == tmp_path / "store.master-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first.keys.key_id == second.keys.key_id
    assert sum("created the artifact master key" in r.getMessage() for r in caplog.records) == 1


def test_an_s3_store_without_a_master_key_refuses_to_start() -> None:
    with pytest.raises(ArtifactConfigError, match="refusing to start"):
        open_artifacts(ArtifactConfig(url="s3://bucket/prefix"))


@pytest.mark.parametrize("url", ["http://x/y", "file://host/path", "file:relative", "s3:///nobucket"])
def test_unusable_store_urls_are_refused(url: str) -> None:
    with pytest.raises(ArtifactConfigError):
        open_artifacts(ArtifactConfig(url=url, master_key=new_master_key()))


def test_a_master_key_that_is_not_32_bytes_of_base64_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactConfigError):
        open_artifacts(ArtifactConfig(url=tmp_path.as_uri(), master_key="c2hvcnQ="))


def test_the_config_repr_never_shows_the_master_key() -> None:
    key = new_master_key()
    assert key not in repr(ArtifactConfig(url="s3://b", master_key=key))


def test_streaming_256_mib_through_the_writer_allocates_little(artifacts: Artifacts) -> None:
    block = os.urandom(MiB)
    digest = hashlib.sha256()
    sink = artifacts.for_task("acme", "run-1", "task-1")
    tracemalloc.start()
    try:
        with sink.open("big.bin") as target:
            for _ in range(256):
                target.write(block)
                digest.update(block)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB"
    [record] = sink.records
    assert (record.size, record.sha256) == (256 * MiB, digest.hexdigest())


def test_the_artifact_package_imports_no_celery() -> None:
    package = Path(__file__).parents[2] / "tasks" / "artifacts"
    for module in package.glob("*.py"):
        tree = ast.parse(module.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not {n for n in names if n.split(".")[0] in ("celery", "config")}, module


def test_artifacts_are_bound_to_their_tenant_and_a_reused_task_id_never_repoints_the_index(
    artifacts: Artifacts,
) -> None:
    [uri] = write(artifacts, "task-1", {"a.bin": b"acme's evidence"}, tenant="acme")
    write(artifacts, "task-1", {"a.bin": b"globex's"}, tenant="globex")  # the id reused by another tenant
    assert artifacts.open_artifact("task-1", "a.bin", tenant="acme").read() == b"acme's evidence"
    assert artifacts.open_artifact(uri, tenant="acme").read() == b"acme's evidence"
    assert artifacts.open_artifact("task-1", "a.bin", tenant="globex").read() == b"globex's"
    for attempt in (
        lambda: artifacts.open_artifact(uri, tenant="initech"),
        lambda: artifacts.open_artifact("task-1", "a.bin", tenant="initech"),
        lambda: artifacts.list_artifacts("task-1", tenant="initech"),
    ):
        with pytest.raises(ArtifactNotFoundError, match=r"^task task-1 has no artifacts \(none were stored"):
            attempt()


def test_an_index_entry_written_before_tenant_keyed_entries_is_read_for_its_own_tenant_only(
    artifacts: Artifacts, tmp_path: Path
) -> None:
    write(artifacts, "task-1", {"a.bin": b"old"}, tenant="acme")
    index = tmp_path / "store" / "index" / "acme" / "task-1.json"
    index.rename(tmp_path / "store" / "index" / "task-1.json")  # where an older release wrote it
    assert artifacts.open_artifact("task-1", "a.bin", tenant="acme").read() == b"old"
    with pytest.raises(ArtifactNotFoundError):
        artifacts.list_artifacts("task-1", tenant="globex")
    assert artifacts.sweep_expired(datetime.now(UTC) + timedelta(days=31)).tasks == 1

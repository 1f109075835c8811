"""Artifacts on real services: an S3-compatible server process (moto) on 127.0.0.1 and the real Docker Engine."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import docker
import pytest

from bench.launch import free_port
from isolation import IsolatedContainerVolume
from tasks.artifacts import (
    ArtifactConfig,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    Artifacts,
    S3Options,
    new_master_key,
    open_artifacts,
)
from tasks.artifacts.store import DEFAULT_PART_SIZE, open_store
from tasks.audit import AuditEvent, AuditKey, Journal, Kind, new_audit_key, search, verify

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration

MiB = 1 << 20
MARKER = b"PLAINTEXT-MARKER-e93a"
CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing", "region": "us-east-1"}


def _missing(what: str, why: object) -> None:
    message = f"{what} is not available ({why}); install the test extras (pip install -e '.[test]')"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server process on 127.0.0.1, stopped (by its own pid) at the end of the session."""
    binary = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if binary is None:
        _missing("moto_server (an S3-compatible server)", "not installed")
    port = free_port()
    server = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_for_port(port, server)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_for_port(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            _missing("moto_server", f"it exited with {server.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    _missing("moto_server", "it did not listen within 30 s")


@pytest.fixture
def raw_s3(s3_endpoint: str) -> S3Client:
    """A plain boto3 client of the test server, to look at what the store really holds."""
    return boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip


@pytest.fixture
def bucket(raw_s3: S3Client) -> Iterator[str]:
    """A fresh bucket, emptied and removed after the test."""
    name = f"artifacts-{uuid.uuid4().hex[:12]}"
    raw_s3.create_bucket(Bucket=name)
    yield name
    for upload in raw_s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
        raw_s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    for item in raw_s3.list_objects_v2(Bucket=name).get("Contents", []):
        raw_s3.delete_object(Bucket=name, Key=item["Key"])
    raw_s3.delete_bucket(Bucket=name)


@pytest.fixture
def s3_artifacts(s3_endpoint: str, bucket: str) -> Artifacts:
    options = S3Options(endpoint_url=s3_endpoint, **CREDENTIALS)
    return open_artifacts(ArtifactConfig(url=f"s3://{bucket}/toolrunner", master_key=new_master_key(), s3=options))


@pytest.fixture(params=["file", "s3"])
def any_artifacts(request: pytest.FixtureRequest, tmp_path: Path) -> Artifacts:
    """Each store in turn."""
    if request.param == "s3":
        return request.getfixturevalue("s3_artifacts")  # type: ignore[no-any-return]
    return open_artifacts(ArtifactConfig(url=(tmp_path / "store").as_uri(), master_key=new_master_key()))


def blocks(total: int, seed: bytes = b"seed") -> Iterator[bytes]:
    """Incompressible, reproducible 1 MiB blocks."""
    for i in range(total // MiB):
        yield hashlib.shake_256(seed + i.to_bytes(8, "big")).digest(MiB)


def stored_keys(raw: S3Client, bucket: str) -> list[str]:
    return [o["Key"] for o in raw.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_binary_outputs_round_trip_byte_for_byte(any_artifacts: Artifacts) -> None:
    files = {"all-bytes.bin": bytes(range(256)) * 1000, "nested/dir/empty": b"", "report.xml": b"<r>\r\n\x00</r>"}
    sink = any_artifacts.for_task("acme", "run-1", "task-bin")
    for name, data in files.items():
        with sink.open(name) as target:
            target.write(data)
    assert {r.name: r.size for r in any_artifacts.list_artifacts("task-bin", tenant="acme")} == {
        n: len(d) for n, d in files.items()
    }
    for record in any_artifacts.list_artifacts("task-bin", tenant="acme"):
        assert any_artifacts.open_artifact(record.uri, tenant="acme").read() == files[record.name]


def test_a_256_mib_output_streams_to_s3_in_bounded_memory_and_back_byte_for_byte(
    s3_artifacts: Artifacts, raw_s3: S3Client, bucket: str
) -> None:
    sent = hashlib.sha256()
    sink = s3_artifacts.for_task("acme", "run-1", "task-big")
    tracemalloc.start()
    try:
        with sink.open("big.bin") as target:
            for block in blocks(256 * MiB):
                target.write(block)
                sent.update(block)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # At worst a part filling, its copy waiting to be queued, one queued, one uploading, plus the request's own
    # buffers (36 MiB measured): a bound set by the part size, whatever the object's size.
    assert peak < 6 * DEFAULT_PART_SIZE, f"peak {peak / MiB:.1f} MiB"
    key = "toolrunner/tenants/acme/runs/run-1/task-big/big.bin"
    assert raw_s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"').endswith("-33")  # 33 parts: multipart
    received = hashlib.sha256()
    with s3_artifacts.open_artifact("task-big", "big.bin", tenant="acme") as source:
        while chunk := source.read(MiB):
            received.update(chunk)
    assert received.hexdigest() == sent.hexdigest() == sink.records[0].sha256


def test_the_plaintext_never_reaches_the_bucket(s3_artifacts: Artifacts, raw_s3: S3Client, bucket: str) -> None:
    sink = s3_artifacts.for_task("acme", "run-1", "task-marker")
    with sink.open("out.txt") as target:
        target.write(MARKER * 100_000)
    with sink.findings() as findings:
        findings.write({"title": MARKER.decode()})
    for key in stored_keys(raw_s3, bucket):
        if "/tenants/" in key:
            assert MARKER not in raw_s3.get_object(Bucket=bucket, Key=key)["Body"].read(), key


def test_an_interrupted_upload_leaves_no_object_and_no_open_multipart_upload(
    s3_artifacts: Artifacts, raw_s3: S3Client, bucket: str
) -> None:
    sink = s3_artifacts.for_task("acme", "run-1", "task-broken")
    with pytest.raises(ConnectionError), sink.open("big.bin") as target:
        for block in blocks(24 * MiB):
            target.write(block)
        raise ConnectionError("the engine's archive stream broke")
    assert stored_keys(raw_s3, bucket) == []
    assert raw_s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_tampered_s3_object_fails_with_a_clear_error(s3_artifacts: Artifacts, raw_s3: S3Client, bucket: str) -> None:
    sink = s3_artifacts.for_task("acme", "run-1", "task-tamper")
    with sink.open("out.bin") as target:
        target.write(os.urandom(3 * MiB))
    key = "toolrunner/tenants/acme/runs/run-1/task-tamper/out.bin"
    blob = bytearray(raw_s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    blob[2 * MiB] ^= 0xFF
    raw_s3.put_object(Bucket=bucket, Key=key, Body=bytes(blob))
    with (
        pytest.raises(ArtifactIntegrityError, match="segment 1 of the artifact failed authentication"),
        s3_artifacts.open_artifact("task-tamper", "out.bin", tenant="acme") as source,
    ):
        source.read()


def test_an_audit_segment_on_s3_is_written_searched_and_verified_and_a_flipped_byte_is_caught(
    s3_endpoint: str, bucket: str, raw_s3: S3Client, tmp_path: Path
) -> None:
    store = open_store(f"s3://{bucket}/toolrunner", S3Options(endpoint_url=s3_endpoint, **CREDENTIALS))
    key = AuditKey.parse(new_audit_key())
    journal = Journal(store, key, "w1", tmp_path / "spool", segment_seconds=60)
    journal.replay()
    journal.record(AuditEvent.new(Kind.RUN_STARTED, tenant="acme", run_id="run-1", targets=["203.0.113.0/24"]))
    journal.close()
    assert [e.run_id for e in search(store, key, "203.0.113.7").events] == ["run-1"]
    assert verify(store, key).ok
    [segment] = [k for k in stored_keys(raw_s3, bucket) if k.endswith(".seg")]
    assert segment.startswith("toolrunner/audit/v1/w1/")
    blob = bytearray(raw_s3.get_object(Bucket=bucket, Key=segment)["Body"].read())
    blob[-1] ^= 1
    raw_s3.put_object(Bucket=bucket, Key=segment, Body=bytes(blob))
    [problem] = verify(store, key).problems
    assert "failed authentication" in problem


def test_retention_and_purge_on_s3_remove_only_what_they_should(s3_artifacts: Artifacts) -> None:
    now = datetime.now(UTC)
    old = Artifacts(s3_artifacts.store, s3_artifacts.keys, clock=lambda: now - timedelta(days=40))
    for tenant, task, writer in (("acme", "t-old", old), ("acme", "t-new", s3_artifacts), ("gone", "t-gone", old)):
        with writer.for_task(tenant, "run-1", task).open("a.bin") as target:
            target.write(task.encode())
    report = s3_artifacts.sweep_expired(now)
    assert (report.tasks, report.objects) == (2, 2)
    assert s3_artifacts.open_artifact("t-new", "a.bin", tenant="acme").read() == b"t-new"
    with pytest.raises(ArtifactNotFoundError):
        s3_artifacts.list_artifacts("t-old", tenant="acme")
    assert s3_artifacts.purge_tenant("acme").objects == 1
    assert list(s3_artifacts.store.list("")) == []


def test_a_container_output_streams_from_the_volume_into_the_store_byte_for_byte(
    docker_client: docker.DockerClient,
    busybox_image: str,
    any_artifacts: Artifacts,
    make_container: Callable[..., str],
    tmp_path: Path,
) -> None:
    size_mib = 192
    assert shutil.disk_usage(tmp_path).free > 4 * size_mib * MiB, "not enough free disk for this test"
    with IsolatedContainerVolume(
        "acme", "engine", docker_client, max_file_bytes=1 << 30, max_total_bytes=1 << 30
    ) as volume:
        volume.initialize({})
        script = f"head -c {size_mib}m /dev/urandom > /out/big.bin && sha256sum /out/big.bin"
        container = make_container(
            busybox_image, ["sh", "-c", script], start=True, network_mode="none", user="65532:65532",
            mounts=[volume.get_volume_config("/out", read_only=False)],
        )  # fmt: skip
        assert docker_client.api.wait(container, timeout=120)["StatusCode"] == 0
        expected = docker_client.api.logs(container).decode().split()[0]
        docker_client.api.remove_container(container)  # it holds the volume, which `with` removes next
        sink = any_artifacts.for_task("acme", "engine", "task-engine")
        # _read is the streaming read that read_files/copy_files_to wrap; it takes any Sink.
        assert volume.read_into(["big.bin"], sink) == {"big.bin": size_mib * MiB}
    [record] = any_artifacts.list_artifacts("task-engine", tenant="acme")
    assert (record.size, record.sha256) == (size_mib * MiB, expected)
    received = hashlib.sha256()
    with any_artifacts.open_artifact(record.uri, tenant="acme") as source:
        while chunk := source.read(MiB):
            received.update(chunk)
    assert received.hexdigest() == expected

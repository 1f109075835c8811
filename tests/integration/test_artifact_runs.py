"""Runs keep their raw outputs as encrypted artifacts, read back byte for byte, through a real worker."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bench.launch import LaunchError, Worker, start_worker
from tasks import open_artifact, run_tool
from tests.integration.helpers import peak_rss, pool_process

pytestmark = pytest.mark.integration
WAIT = 300
MIB = 1 << 20
MARKER = "plaintext-marker-6f1c"


def store_root() -> Path:
    return Path(urlsplit(os.environ["TOOLRUNNER_ARTIFACT_URL"]).path)


def stored_bytes_contain(marker: bytes) -> bool:
    return any(marker in path.read_bytes() for path in store_root().rglob("*") if path.is_file())


def test_a_runs_outputs_are_stored_encrypted_and_read_back_byte_for_byte(worker: Worker) -> None:
    script = f"printf '{MARKER}\\000\\377\\n' > /outputs/out.txt; head -c 30000 /dev/urandom > /outputs/b.bin"
    params = {"script": script, "outputs": ["out.txt", "b.bin"]}
    result = run_tool.delay("script", "acme", "artifacts-1", params).get(timeout=WAIT)
    stored = {a["name"]: a for a in result["artifacts"]}
    assert set(stored) == {"out.txt", "b.bin"}
    for name, artifact in stored.items():
        with open_artifact(artifact["uri"], tenant_id="acme") as stream:
            data = stream.read()
        assert len(data) == artifact["size"] == result["outputs"][name]
        assert hashlib.sha256(data).hexdigest() == artifact["sha256"]
    with open_artifact(result["task_id"], "out.txt", tenant_id="acme") as stream:
        assert stream.read() == f"{MARKER}\0\377\n".encode("latin-1")
    assert not stored_bytes_contain(MARKER.encode()), "plaintext reached the store"


def test_findings_past_the_inline_cap_are_all_in_the_findings_artifact(worker: Worker) -> None:
    result = run_tool.delay("flood", "acme", "artifacts-2", {"format": "nmap", "count": 1}).get(timeout=WAIT)
    assert result["findings_truncated"] is True and result["stats"]["findings"] == 65535
    names = [a["name"] for a in result["artifacts"]]
    assert names == ["nmap.xml", "findings.jsonl"]
    with open_artifact(result["task_id"], "findings.jsonl", tenant_id="acme") as stream:
        lines = stream.read().splitlines()
    assert len(lines) == 65535
    assert lines[0].startswith(b'{"host":"10.0.0.1"')


def test_a_run_whose_findings_fit_keeps_no_findings_artifact(worker: Worker) -> None:
    result = run_tool.delay("flood", "acme", "artifacts-3", {"format": "ffuf", "count": 3}).get(timeout=WAIT)
    assert result["findings_truncated"] is False and len(result["findings"]) == 3
    assert [a["name"] for a in result["artifacts"]] == ["ffuf.json"]


@pytest.fixture
def lone_worker(redis_url: str, busybox_image: str, tmp_path: Path) -> Iterator[Worker]:
    running = start_worker(tmp_path, "big", concurrency=1, queues="big")
    yield running
    running.stop()


@pytest.mark.timeout(900)
def test_a_2_gib_output_streams_into_the_store_with_the_pool_process_rss_bounded(lone_worker: Worker) -> None:
    free = shutil.disk_usage(store_root().parent).free
    if free < 8 << 30:  # a 2 GiB spool file, a 2 GiB artifact, the volume's 2 GiB, and room to spare
        message = f"{free >> 30} GiB free; this test writes about 6 GiB"
        pytest.fail(message) if os.environ.get("CI") == "true" else pytest.skip(message)
    run_tool.apply_async(("flood", "acme", "big", {"format": "zeros", "count": 1}), queue="big").get(timeout=WAIT)
    pid = pool_process(lone_worker)
    before = peak_rss(pid)
    handle = run_tool.apply_async(("flood", "acme", "big", {"format": "zeros", "count": 2048}), queue="big")
    result = handle.get(timeout=800)
    grown = peak_rss(pid) - before
    assert result["status"] == "ok", result["reason"]
    (artifact,) = result["artifacts"]
    assert artifact["size"] == 2048 * MIB
    zeros = hashlib.sha256()
    for _ in range(2048):
        zeros.update(bytes(MIB))
    assert artifact["sha256"] == zeros.hexdigest()
    assert grown <= 150 * MIB, f"the pool process's peak RSS grew by {grown / MIB:.0f} MiB"


def test_a_worker_with_an_s3_store_and_no_master_key_refuses_to_start(redis_url: str, tmp_path: Path) -> None:
    env = {"TOOLRUNNER_ARTIFACT_URL": "s3://toolrunner-artifacts/prod", "TOOLRUNNER_ARTIFACT_MASTER_KEY": ""}
    with pytest.raises(LaunchError, match="exited early") as refused:
        start_worker(tmp_path, "keyless", concurrency=1, env=env)
    assert "refusing to start" in str(refused.value) and "needs a master key" in str(refused.value)

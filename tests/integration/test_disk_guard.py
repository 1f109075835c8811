"""The disk guard on a real worker whose spool is a small tmpfs this test mounts: low disk stops it taking runs
(its consumer cancelled, the run stays queued), space back resumes it; a run that fills the disk fails with the
reason and leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.result import AsyncResult

from bench.launch import start_worker, wait_until
from tasks import app, run_tool
from tasks.worker import keys
from tasks.worker.diskguard import CHECK_SECONDS

pytestmark = pytest.mark.integration
MIB = 1 << 20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs: a filesystem of a fixed size, mounted for this test and unmounted after it."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=1777", "tmpfs", str(mount)], check=False)
    if done.returncode != 0:
        pytest.fail("mounting a tmpfs needs root (the suite runs as root, as CI does)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _record(hostname: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in app.redis.hgetall(keys.WORKER(hostname)).items()}


def _status(hostname: str) -> dict[str, Any]:
    """`toolrunner status --json`'s view of one worker, with a disk-low alert checked against its paused state."""
    done = subprocess.run(
        [str(Path(sys.executable).with_name("toolrunner")), "status", "--json"], capture_output=True, text=True,
        check=True, env={**os.environ, "TOOLRUNNER_BROKER_URL": app.settings.broker},
    )  # fmt: skip
    fleet = json.loads(done.stdout)
    worker = next(w for w in fleet["workers"] if w["name"] == hostname)
    assert bool(worker["paused"]) == any(a.startswith(f"disk low: {hostname} takes no runs") for a in fleet["alerts"])
    return dict(worker)


def _hostname(name: str) -> str:
    return next(h for h in (app.control.inspect(timeout=2).ping() or {}) if h.startswith(f"{name}@"))


def test_a_worker_low_on_disk_takes_no_runs_until_space_returns(small_disk: Path, tmp_path: Path) -> None:
    env = {"TMPDIR": str(small_disk), "TOOLRUNNER_MIN_FREE_DISK_BYTES": str(32 * MIB)}
    worker = start_worker(tmp_path, "disk-guard", env=env, queues="disk-guard", concurrency=1)
    try:
        hostname = _hostname("disk-guard")
        wait_until(lambda: _record(hostname).get("paused") == "", CHECK_SECONDS + 5, "the guard's first check")
        filler = small_disk / "filler"
        filler.write_bytes(b"\0" * (40 * MIB))  # 24 MiB left of 64: under the 32 MiB minimum
        wait_until(lambda: _record(hostname).get("paused"), CHECK_SECONDS + 5, "the worker paused")
        assert "under TOOLRUNNER_MIN_FREE_DISK_BYTES=32.0 MiB" in _record(hostname)["paused"]
        queues = (app.control.inspect([hostname], timeout=2).active_queues() or {}).get(hostname)
        assert queues == [], f"its consumer is cancelled: {queues}"
        seen = wait_until(lambda: (w := _status(hostname))["slots"] == 0 and w, CHECK_SECONDS + 5, "no slots offered")
        assert seen["concurrency"] == 1 and seen["daemon"] and seen["busy"] == 0
        assert "under TOOLRUNNER_MIN_FREE_DISK_BYTES" in seen["paused"]
        assert seen["free_disk"][str(small_disk)] < 32 * MIB
        handle = run_tool.apply_async(("script", "acme", "disk-1", {"script": "echo ok > /outputs/out.txt"}),
                                      queue="disk-guard")  # fmt: skip
        wait_until(lambda: app.redis.llen("disk-guard") == 1, 5, "the run queued")
        assert AsyncResult(handle.id).state == "PENDING", "nothing fails: it waits for a worker with disk"
        os.unlink(filler)
        assert handle.get(timeout=CHECK_SECONDS * 3)["status"] == "ok", "it ran once space came back"
        assert _record(hostname)["paused"] == ""
        wait_until(lambda: _status(hostname)["slots"] == 1, CHECK_SECONDS + 5, "its slot offered again")
    finally:
        worker.stop()


def test_a_run_that_fills_the_disk_fails_with_the_reason_and_leaves_nothing(small_disk: Path, tmp_path: Path) -> None:
    env = {"TMPDIR": str(small_disk), "TOOLRUNNER_MIN_FREE_DISK_BYTES": str(MIB)}
    worker = start_worker(tmp_path, "disk-full", env=env, queues="disk-full", concurrency=1)
    try:
        params = {"script": "dd if=/dev/zero of=/outputs/out.txt bs=1M count=96 2>/dev/null", "timeout_seconds": 60}
        result = run_tool.apply_async(("script", "acme", "disk-2", params), queue="disk-full").get(timeout=90)
    finally:
        worker.stop()
    assert result["status"] == "tool_failed"
    assert "the worker's disk filled up while reading them (No space left on device)" in result["reason"]
    assert [p.name for p in small_disk.iterdir() if p.name.startswith("toolrunner-outputs-")] == [], "spool gone"

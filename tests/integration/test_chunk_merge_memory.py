"""A chunked run's merge streams: 100 MB of chunk findings (real Redis, a real file artifact store, encrypted)
merged in a fresh process raises its peak RSS by at most 100 MiB over what it held before the merge (the kernel's
high-water mark, reset just before: /proc/self/clear_refs)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import redis

from bench.launch import ROOT
from tasks.artifacts import ArtifactConfig, Artifacts, open_artifacts
from tasks.worker import chunks, keys
from tests.conftest import REDIS_URL, database_url, flushed_database

pytestmark = pytest.mark.integration
CHUNKS, PER_CHUNK = 10, 10_000  # 100,000 findings of ~1 KB: 100 MB of JSON lines
PARENT = f"merge-memory-{uuid.uuid4().hex[:12]}"  # its own keys, whatever an earlier run left

MERGE = textwrap.dedent(
    """
    import json, re, sys
    import redis
    from celery import Celery
    from config import Settings
    from tasks.artifacts import ArtifactConfig, open_artifacts
    from tasks.worker.merge import merge

    def status(field):
        return int(re.search(field + r":\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))

    def peak_above_now(work):
        # The kernel's high-water mark reset to the present (clear_refs 5), so what imports or earlier work
        # peaked at (a fresh clone compiles every module) does not hide or inflate what `work` itself costs.
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        now = status("VmRSS")
        result = work()
        return result, status("VmHWM") - now

    url, store, parent = sys.argv[1:4]
    app = Celery("merge-memory", set_as_current=False, broker=url, backend=url)
    artifacts = open_artifacts(ArtifactConfig(url=store))
    client = redis.Redis.from_url(url)
    client.ping()
    settings = Settings()
    merged, grew = peak_above_now(lambda: merge(app, client, settings, artifacts, parent))
    # The control: the same findings read whole, as a merge that held them would. The measure must see that.
    uri = json.loads(client.get("celery-task-meta-" + parent))["result"]["artifacts"][0]["uri"]
    held, held_kib = peak_above_now(lambda: artifacts.open_artifact(uri, tenant="t").read())
    print(json.dumps({"merged": merged, "grew_kib": grew, "held_kib": held_kib, "bytes": len(held)}))
    """
)


def finding(chunk: int, i: int) -> dict[str, object]:
    return {"host": f"10.{chunk}.{i // 256}.{i % 256}", "port": 443, "state": "open", "padding": "x" * 940}


def test_merging_100_mb_of_chunk_findings_grows_the_merging_process_by_at_most_100_mib(tmp_path: Path) -> None:
    url = database_url(REDIS_URL, 4)
    store = f"file://{tmp_path / 'artifacts'}"
    artifacts = open_artifacts(ArtifactConfig(url=store))
    with flushed_database(url) as conn:
        written = _chunks(conn, artifacts)
        assert written >= 100_000_000
        process = subprocess.run(
            [sys.executable, "-c", MERGE, url, store, PARENT], cwd=ROOT, capture_output=True, text=True, timeout=600
        )
        assert process.returncode == 0, process.stderr[-3000:]
        measured = json.loads(process.stdout.strip().splitlines()[-1])
        assert measured["merged"] is True
        assert measured["grew_kib"] <= 100 * 1024, f"the merge grew the process by {measured['grew_kib']} KiB"
        assert measured["held_kib"] >= 90 * 1024, f"holding 100 MB grew it by {measured['held_kib']} KiB only"
        result = json.loads(conn.get(f"celery-task-meta-{PARENT}") or b"{}")["result"]
        assert result["stats"]["findings"] == CHUNKS * PER_CHUNK and result["findings_truncated"] is True
        merged = next(a for a in result["artifacts"] if a["name"] == "findings.jsonl")
        assert merged["size"] == written
        assert result["chunks"]["ok"] == CHUNKS and chunks.stored(conn, PARENT)["state"] == "done"


def _chunks(conn: redis.Redis, artifacts: Artifacts) -> int:
    """Each chunk's findings.jsonl in the store and its outcome in the parent's record, as its run leaves them."""
    conn.hset(
        keys.CHUNKS(PARENT),
        mapping={"tenant_id": "t", "tool": "nmap", "run_id": "r", "total": CHUNKS, "state": "merging",
                 "started": time.time(), "notices": "[]"},
    )  # fmt: skip
    written = 0
    for index in range(CHUNKS):
        task_id = chunks.chunk_task_id(PARENT, index)
        writer = artifacts.for_task("t", "r", task_id).findings()
        for i in range(PER_CHUNK):
            writer.write(finding(index, i))
        record = writer.close()
        written += record.size
        outcome = {
            "index": index, "task_id": task_id, "attempt": 0, "status": "ok", "reason": None, "image": "i",
            "exit_code": 0, "stats": {"findings": PER_CHUNK}, "findings_artifact": record.uri, "stderr_tail": "",
        }  # fmt: skip
        conn.hset(keys.CHUNK_OUTCOMES(PARENT), str(index), json.dumps(outcome))
    return written

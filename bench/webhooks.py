"""Webhook delivery: 1,000 runs' events to a loopback HTTPS receiver through a real webhook worker.

Each event is recorded exactly as a run's end records it (`tasks.worker.webhooks.emit`: the outbox write and the
publish of its first attempt), after its result is kept as `result.json` in an artifact store
(`completion.keep_result`); that pair, timed in this process, is the cost a run's end adds on its worker. The
events are real run results' size (a result of 50 artifacts, 2 KiB of stderr), sent at a steady rate; a worker
started with `-Q webhooks` (concurrency 4) signs and POSTs them to a receiver that verifies every signature.
Lag is from the event's `created` (its result stored) to the receiver's answer; deliveries per second over the
whole batch. `python -m bench.webhooks [COUNT]`; the long receiver outage is `--outage SECONDS`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from bench.common import BenchError, console, exit_on_sigterm, percentile, table, verdict, worker_env
from bench.launch import start_worker
from bench.receiver import LocalCA, Receiver
from config import celery_config, load_settings
from tasks.artifacts import ArtifactConfig, new_master_key, open_artifacts
from tasks.webhooks import event
from tasks.webhooks import set as set_endpoint
from tasks.webhooks.delivery import Delivering
from tasks.webhooks.signing import new_secret
from tasks.worker.completion import keep_result
from tasks.worker.webhooks import emit

REDIS = os.environ.get("TOOLRUNNER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15").rsplit("/", 1)[0] + "/6"
TENANT = "bench-hooks"
TARGET_P50_MS = 100


def result(i: int) -> dict[str, Any]:
    """A finished run's result of a realistic size."""
    artifacts = [{"name": f"out-{n}.txt", "size": 1000, "sha256": "0" * 64, "uri": f"file:///s/{n}"} for n in range(50)]
    return {
        "tool": "nmap", "tenant_id": TENANT, "run_id": f"run-{i}", "task_id": f"bench-hook-{i}", "image": "nmap:7",
        "exit_code": 0, "status": "ok", "reason": None, "findings": [{"host": "192.0.2.1", "port": 80}] * 100,
        "findings_truncated": False, "stats": {"findings": 100, "duration_ms": 5000}, "stderr_tail": "x" * 2048,
        "outputs": {"nmap.xml": 1}, "missing_outputs": [], "artifacts": artifacts, "timed_out": False, "notices": [],
    }  # fmt: skip


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__)
    parser.add_argument("count", nargs="?", type=int, default=1000)
    parser.add_argument("--outage", type=float, default=0, help="the receiver is down this long at the start")
    args = parser.parse_args()
    exit_on_sigterm()
    workdir = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    ca = LocalCA.make(workdir)
    receiver = Receiver(ca, [new_secret()]).start()
    env = {
        **worker_env(REDIS), "TOOLRUNNER_WEBHOOK_CA_BUNDLE": str(ca.ca_file),
        "TOOLRUNNER_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8,::1/128", "TOOLRUNNER_WEBHOOK_BACKOFF_MAX_SECONDS": "30",
    }  # fmt: skip
    app = Celery("bench-webhooks", set_as_current=False)
    app.conf.update(celery_config(load_settings()), broker_url=REDIS, result_backend=REDIS)
    with redis.Redis.from_url(REDIS) as conn:
        conn.flushdb()
        set_endpoint(TENANT, receiver.url, receiver.secrets[0], connection=conn)
        worker = start_worker(workdir, "hooks", concurrency=4, queues="webhooks", env=env, client=app)
        try:
            _measure(app, conn, receiver, workdir, args.count, args.outage)
        finally:
            worker.stop()
            receiver.stop()
            conn.flushdb()


def _measure(app: Celery, conn: redis.Redis, receiver: Receiver, workdir: Path, count: int, outage: float) -> None:
    artifacts = open_artifacts(ArtifactConfig(url=(workdir / "store").as_uri(), master_key=new_master_key()))
    how = Delivering.from_settings(load_settings())
    if outage:
        receiver.stop()
    steady = _send(app, conn, how, receiver, count, artifacts=artifacts, pause=0.005, outage=outage)
    got = receiver.wait_for(count, 600 + outage)
    lags = [r.at - steady.created[r.headers["webhook-id"]] for r in got if r.status == 200]
    _check(got, count)
    burst_from = len(receiver.got)
    burst = _send(app, conn, how, receiver, count, artifacts=None, pause=0, outage=0, first=count)
    burst_got = receiver.wait_for(burst_from + count, 600)[burst_from:]
    _check(burst_got, count)
    rate = count / (max(r.at for r in burst_got) - min(burst.created.values()))
    _print(count, lags, steady, rate, outage)


class _Sent:
    """What a batch's sends took: each event's created time, and the worker-side cost of each of its two parts."""

    def __init__(self) -> None:
        self.created: dict[str, float] = {}
        self.keep: list[float] = []
        self.emit: list[float] = []


def _send(
    app: Celery, conn: redis.Redis, how: Delivering, receiver: Receiver, count: int, *, artifacts: Any,
    pause: float, outage: float, first: int = 0,
) -> _Sent:  # fmt: skip
    sent, started = _Sent(), time.monotonic()
    for i in range(first, first + count):
        found = result(i)
        begun = time.perf_counter()
        if artifacts is not None:
            keep_result(artifacts, found)
            sent.keep.append(time.perf_counter() - begun)
        made = event.for_result(found, how.clock())
        begun = time.perf_counter()
        if not emit(app, conn, how, made):
            raise BenchError(f"event {i} was not recorded")
        sent.emit.append(time.perf_counter() - begun)
        sent.created[made.id] = made.created
        if pause:
            time.sleep(pause)  # a steady stream of run ends, not one burst
        if outage and not receiver.port_open() and time.monotonic() - started > outage:
            receiver.start()
    if outage and not receiver.port_open():
        time.sleep(max(0.0, outage - (time.monotonic() - started)))
        receiver.start()
    return sent


def _check(got: list[Any], count: int) -> None:
    if not all(r.verified for r in got) or len({r.headers["webhook-id"] for r in got}) != count:
        raise BenchError("a request failed verification, or an event was delivered twice")


def _print(count: int, lags: list[float], steady: _Sent, rate: float, outage: float) -> None:
    p50 = percentile(lags, 50) * 1000
    title = f"webhooks: {count} run ends to a loopback HTTPS receiver" + (f", {outage:g}s outage" if outage else "")
    out = table(title, "measure", "p50", "p95", "target")
    target = "n/a: an outage" if outage else f"p50 <= {TARGET_P50_MS}: {verdict(p50 <= TARGET_P50_MS)}"
    out.add_row("lag, result stored -> receiver's 2xx (ms)", f"{p50:.0f}", f"{percentile(lags, 95) * 1000:.0f}", target)
    out.add_row("deliveries per second, a burst of run ends", f"{rate:.0f}", "", "")
    for name, values in (
        ("run's end: result.json kept (ms)", steady.keep),
        ("run's end: event recorded (ms)", steady.emit),
    ):
        out.add_row(name, f"{percentile(values, 50) * 1000:.2f}", f"{percentile(values, 95) * 1000:.2f}", "")
    console(120).print(out)


if __name__ == "__main__":
    main()

"""A cache hit against a real run of the same request: seconds from submit to result, one worker at concurrency 2.

Each round submits a new request (a miss: volume, container, parse, store) and then the identical request
again (a hit: key, lookup, no container); 20 rounds after 2 warm-ups, one at a time so nothing queues.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import redis
from celery import Celery

from bench.common import BenchError, console, exit_on_sigterm, percentile, table, worker_env
from bench.launch import start_worker
from config import celery_config, load_settings

REDIS = os.environ.get("TOOLRUNNER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15").rsplit("/", 1)[0] + "/9"
ROUNDS, WARMUP = 20, 2


def producer() -> Celery:
    """A client app on the bench's Redis database."""
    app = Celery("cachehit", set_as_current=False)
    app.conf.update(celery_config(load_settings()), broker_url=REDIS, result_backend=REDIS)
    return app


def timed(app: Celery, round_no: int, run: str) -> tuple[float, bool]:
    """Seconds from submit to result of one request of this round, and whether it was a cache hit."""
    params = {"script": f"echo round-{round_no} > /outputs/out.txt", "cache_max_age_seconds": 600}
    started = time.monotonic()
    result = app.send_task("toolrunner.run_tool", ("script", "bench", run, params)).get(timeout=120)
    if result["status"] != "ok":
        raise BenchError(f"a run failed: {result}")
    return time.monotonic() - started, bool(result["cache"]["hit"])


def main() -> None:
    """Measure and print the table."""
    exit_on_sigterm()
    with redis.Redis.from_url(REDIS) as conn:
        conn.flushdb()
    app = producer()
    worker = start_worker(Path(tempfile.mkdtemp(prefix="bench-cache-")), "cache", concurrency=2,
                          env=worker_env(REDIS), client=app)  # fmt: skip
    runs: list[float] = []
    hits: list[float] = []
    try:
        for i in range(WARMUP + ROUNDS):
            miss, was_hit = timed(app, i, f"miss-{i}")
            hit, hit_ok = timed(app, i, f"hit-{i}")
            if was_hit or not hit_ok:
                raise BenchError(f"round {i}: expected a miss then a hit")
            if i >= WARMUP:
                runs.append(miss)
                hits.append(hit)
    finally:
        worker.stop()
    out = table(f"result cache: {ROUNDS} rounds of a real run, then the identical request", "request", "p50 ms",
                "p95 ms")  # fmt: skip
    for name, values in (("real run (miss)", runs), ("cache hit", hits)):
        out.add_row(name, f"{percentile(values, 50) * 1000:.0f}", f"{percentile(values, 95) * 1000:.0f}")
    console(100).print(out)


if __name__ == "__main__":
    main()

"""A 2,000-target run whole and chunked on two workers of four slots, and another tenant's small runs meanwhile.

    python -m bench.chunks [--redis-url URL] [--targets 2000] [--per-target-ms 10] [--chunk-size 334]
                           [--tenant-cap 6] [--rounds 2] [--small 12]

The tool (bench/chunks/tool.py) waits ~10 ms per target in busybox: waiting, not CPU, so two cores do not cap
the gain. The big tenant may run 6 of the 8 slots at once (`--tenant-cap`, as an operator's `toolrunner limits
set` would allow; at the default cap of 4 its 8 chunks of 250 ran in two waves, 2.6x), so its chunks spread over
the fleet while another tenant still finds a slot. Targets are spread over 127.0.x.y; the tenants' scope is
loopback and the host caps are the suite's (bench/loopback.py), which do not bind here. One worker pair serves
every phase: first the small runs alone (the idle baseline), then per round the big run whole and chunked, in
alternating order, each with the other tenant's small runs (10 targets, one every 0.5 s) submitted while it runs.
Printed: each big run's wall time (submission to its result, waited for in a thread of its own), chunked vs
whole, and the small runs' p50/p95 latency against the idle baseline. Targets: chunked ≥ 3x faster; the small
runs' p95 during a big run ≤ 3x idle.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from celery.result import AsyncResult

from bench import loopback
from bench.common import BenchError, exit_on_sigterm
from bench.launch import Worker, start_worker
from config import celery_config, load_settings
from tasks.worker.limits import set_limit

DEFAULT_REDIS = os.environ.get("TOOLRUNNER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15").rsplit("/", 1)[0] + "/3"
BIG, SMALL = "bench-big", "bench-small"
RESULT_TIMEOUT = 900


def options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.chunks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default=DEFAULT_REDIS, help="broker and results (flushed): %(default)s")
    parser.add_argument("--targets", type=int, default=2000, help="targets of the big run (%(default)s)")
    parser.add_argument("--per-target-ms", type=int, default=10, help="the tool's wait per target (%(default)s)")
    parser.add_argument("--chunk-size", type=int, default=334, help="the chunked run's chunk_size (%(default)s)")
    parser.add_argument(
        "--tenant-cap", type=int, default=6, help="the big tenant's max running (of 8 slots; default cap 4)"
    )
    parser.add_argument("--rounds", type=int, default=2, help="whole/chunked rounds, alternating (%(default)s)")
    parser.add_argument("--small", type=int, default=12, help="small runs per phase (%(default)s)")
    return parser.parse_args(argv)


def addresses(count: int, offset: int = 0) -> list[str]:
    """`count` loopback addresses, spread over 127.0.x.y."""
    return [f"127.0.{1 + (offset + i) // 250}.{1 + (offset + i) % 250}" for i in range(count)]


@dataclass(frozen=True)
class Phase:
    """One big run (or none, for the idle baseline) and the small runs' latencies around it."""

    name: str
    wall: float
    chunks: int
    small: tuple[float, ...]


def producer(redis_url: str) -> Celery:
    """A client app on the bench's Redis database."""
    app = Celery("chunks", set_as_current=False)
    app.conf.update(celery_config(load_settings()), broker_url=redis_url, result_backend=redis_url)
    return app


@contextlib.contextmanager
def workers(app: Celery, redis_url: str, tenant_cap: int) -> Iterator[list[Worker]]:
    """Two workers at concurrency 4 on a flushed database; the tenants may scan loopback; the tool is loaded; the big
    tenant may run `tenant_cap` runs at once (as `toolrunner limits set` would set it)."""
    with redis.Redis.from_url(redis_url) as conn:
        conn.flushdb()
        loopback.grant(conn, BIG, SMALL)
        set_limit(conn, BIG, tenant_cap)
    env = {
        "TOOLRUNNER_BROKER_URL": redis_url, "TOOLRUNNER_EXTRA_TOOL_MODULES": json.dumps(["bench.chunks.tool"]),
        "TOOLRUNNER_TOOL_NETWORK": "host", **loopback.ENVIRONMENT,
    }  # fmt: skip
    logs = Path(tempfile.mkdtemp(prefix="bench-chunks-"))
    started: list[Worker] = []
    try:
        for i in (1, 2):
            started.append(start_worker(logs, f"chunks{i}", concurrency=4, env=env, client=app))
        yield started
    finally:
        for worker in started:
            worker.stop()


def send(app: Celery, tenant: str, run: str, targets: list[str], per_target_ms: int, **extra: int) -> AsyncResult:
    """One run of the benchmark's tool."""
    params = {"targets": targets, "per_target_ms": per_target_ms, **extra}
    return app.send_task("toolrunner.run_tool", ("sleepy", tenant, run, params))


def ok(handle: AsyncResult, expected: int) -> dict[str, object]:
    """The run's result; BenchError unless it is ok with every target reported."""
    result: dict[str, object] = handle.get(timeout=RESULT_TIMEOUT)
    stats = result["stats"]
    if result["status"] != "ok" or not isinstance(stats, dict) or stats["findings"] != expected:
        raise BenchError(f"run {result['run_id']} ended {result['status']}: {result.get('reason')}")
    return result


def phase(app: Celery, args: argparse.Namespace, name: str, chunk_size: int | None) -> Phase:
    """The big run (none for the idle baseline; whole when chunk_size is None) with the small runs every 0.5 s."""
    began = time.monotonic()
    big, ended = None, dict[str, Any]()
    if name != "idle":
        extra = {"chunk_size": chunk_size} if chunk_size else {}
        big = send(app, BIG, f"big-{name}", addresses(args.targets), args.per_target_ms, **extra)
        waiter = threading.Thread(target=_await, args=(big, args.targets, ended), daemon=True)
        waiter.start()  # its wall time is its own, not the small runs' loop
    latencies: list[float] = []
    for i in range(args.small):
        sent = time.monotonic()
        ok(send(app, SMALL, f"small-{name}-{i}", addresses(10, 2000 + 10 * i), args.per_target_ms), 10)
        latencies.append(time.monotonic() - sent)
        time.sleep(max(0.0, 0.5 - (time.monotonic() - sent)))
    if big is None:
        return Phase(name, 0.0, 0, tuple(latencies))
    waiter.join(RESULT_TIMEOUT)
    if "error" in ended or "result" not in ended:
        raise BenchError(f"the big run of {name} did not end ok: {ended.get('error', 'no result in time')}")
    chunks = ended["result"].get("chunks")
    wall = ended["at"] - began
    return Phase(name, wall, int(chunks["total"]) if isinstance(chunks, dict) else 1, tuple(latencies))


def _await(big: AsyncResult, expected: int, ended: dict[str, Any]) -> None:
    """Wait for the big run in a thread of its own and note when it ended."""
    try:
        ended["result"] = ok(big, expected)
    except Exception as exc:
        ended["error"] = exc
    ended["at"] = time.monotonic()


def p95(values: Sequence[float]) -> float:
    """The 95th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def report(phases: list[Phase]) -> None:
    """The table, and the ratios against their targets."""
    idle = next(p for p in phases if p.name == "idle")
    print(f"{'phase':<14}{'chunks':>7}{'wall s':>9}{'small p50 s':>13}{'small p95 s':>13}{'p95 / idle':>12}")
    for p in phases:
        ratio = p95(p.small) / p95(idle.small)
        wall = f"{p.wall:.1f}" if p.wall else "-"
        print(
            f"{p.name:<14}{p.chunks:>7}{wall:>9}{statistics.median(p.small):>13.2f}{p95(p.small):>13.2f}{ratio:>11.2f}x"
        )
    whole = [p.wall for p in phases if p.name.startswith("whole")]
    chunked = [p.wall for p in phases if p.name.startswith("chunked")]
    during = [p95(p.small) for p in phases if p.name != "idle"]
    speedup = statistics.median(whole) / statistics.median(chunked)
    print(
        f"\nchunked vs whole, median wall: {speedup:.2f}x faster (target ≥ 3x; best {min(whole) / min(chunked):.2f}x)"
    )
    worst = max(during) / p95(idle.small)
    print(f"small runs' p95 during a big run vs idle: at most {worst:.2f}x (target ≤ 3x)")


def main(argv: Sequence[str] | None = None) -> None:
    """Idle baseline, then whole and chunked in alternating rounds, one worker pair throughout."""
    exit_on_sigterm()
    args = options(argv)
    app = producer(args.redis_url)
    print(f"big tenant's cap {args.tenant_cap} of 8 slots, chunk_size {args.chunk_size}, {args.targets} targets")
    with workers(app, args.redis_url, args.tenant_cap):
        ok(send(app, SMALL, "warm", addresses(10, 1990), 0), 10)  # first use: images, pools, scripts
        phases = [phase(app, args, "idle", None)]
        for number in range(1, args.rounds + 1):
            order = [("whole", None), ("chunked", args.chunk_size)]
            for kind, size in order if number % 2 else reversed(order):
                phases.append(phase(app, args, f"{kind}-{number}", size))
    report(phases)


if __name__ == "__main__":
    main()

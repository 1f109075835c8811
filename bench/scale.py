"""Fair share at 1,000 / 10,000 / 100,000 waiting runs across 10 / 100 / 1,000 tenants, on a real Redis of its own.

    python -m bench.scale [--sizes 1000:10,10000:100,100000:1000] [--sample 200] [--bulk 10000]

No worker and no tool: the bench drives the worker's own code paths in this process, against a redis-server it
starts (and stops) on a free loopback port, so CONFIG RESETSTAT and the slow log are its own. Per size:

- **queue**: that many run messages published through Celery (nmap, one loopback target each, tenants
  round-robin), then **drained** into the tenants' waiting lists by `backlog.drain`, as a worker does;
- **memory per waiting run**: Redis's used_memory once every run waits, over the runs (the queue is empty then);
- **admit**: `fairshare.admit` of a new run while all the others wait and every slot is taken (it parks);
- **cycle**: a picked run arrives (`admit`) and ends (`release`, which picks the next), 8 slots busy throughout;
- **cancel**: `cancel` of one waiting run by its task id (the CLI's `toolrunner cancel TASK_ID`);
- Redis commands and Redis server time per run of each (INFO commandstats), and the slowest commands (SLOWLOG,
  threshold 10 ms: the target is none at 100k).

Then `cancel --waiting` of one tenant with `--bulk` (10,000) waiting runs, on a Redis of its own. Targets:
per-run costs flat from the smallest to the largest size (at most 1.5x), no command over 10 ms, the bulk cancel
in seconds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import redis

from bench.common import console, table, verdict
from bench.launch import free_port, wait_until
from bench.loopback import ENVIRONMENT, grant

T = TypeVar("T")
QUEUE = "scale"
SLOTS = 8
SLOW_US = 10_000  # the slow log's threshold: the target is no command over 10 ms


@dataclass(frozen=True)
class Cost:
    """Redis commands and server time of an operation, per run, and its wall time per run."""

    commands: float
    server_us: float
    wall_ms: float


@dataclass(frozen=True)
class Scale:
    """One size's measurements."""

    runs: int
    tenants: int
    publish_s: float
    drain: Cost
    drain_s: float
    memory_per_run: float
    admit: Cost
    cycle: Cost
    cancel: Cost
    slow: list[tuple[str, float]]  # (command, ms) over SLOW_US


@contextmanager
def own_redis() -> Iterator[str]:
    """A redis-server of this bench's own on a free loopback port, without persistence; stopped by its PID."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as directory:
        command = [
            "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", directory, "--slowlog-log-slower-than", str(SLOW_US), "--slowlog-max-len", "1024",
        ]  # fmt: skip
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            client = redis.Redis(port=port)
            wait_until(lambda: _pings(client), 10, "the bench's redis-server")
            client.close()
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            server.terminate()
            server.wait(10)


@contextmanager
def stand() -> Iterator[tuple[Any, redis.Redis, Any]]:
    """A Celery app, a client and the settings on a Redis of the bench's own, the app holding the catalogue and the
    scopes as a worker's does (once); closed after."""
    from celery import Celery

    from config import celery_config, load_settings
    from tasks.scope.store import Scopes
    from tasks.tools import load_catalogue

    with own_redis() as url:
        os.environ.update({**ENVIRONMENT, "TOOLRUNNER_BROKER_URL": url, "TOOLRUNNER_RESULT_BACKEND": url,
                           "TOOLRUNNER_TOOL_NETWORK": "host"})  # fmt: skip
        settings = load_settings()
        app = Celery("bench-scale", set_as_current=False)
        app.config_from_object(celery_config(settings))
        client = redis.Redis.from_url(url)
        app.catalogue, app.scopes = load_catalogue(), Scopes(client)
        try:
            yield app, client, settings
        finally:
            client.close()
            app.close()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def _totals(client: redis.Redis) -> tuple[int, int]:
    stats = client.info("commandstats")
    calls = sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")
    usec = sum(int(v["usec"]) for k, v in stats.items() if k != "cmdstat_info")
    return calls, usec


def measured(client: redis.Redis, runs: int, action: Callable[[], T]) -> tuple[T, Cost]:
    """Run `action` and return what it returned and its cost per run (of `runs`)."""
    calls, usec = _totals(client)
    started = time.perf_counter()
    result = action()
    wall = time.perf_counter() - started
    after_calls, after_usec = _totals(client)
    return result, Cost((after_calls - calls) / runs, (after_usec - usec) / runs, wall * 1000 / runs)


def tenant_of(index: int, tenants: int) -> str:
    return f"t{index % tenants:04d}"


def measure(runs: int, tenants: int, sample: int) -> Scale:
    """One size, on a Redis of its own."""
    from tasks.worker import backlog, fairshare, keys, parking, safetynet
    from tasks.worker.cancel import cancel

    with stand() as (app, client, settings):
        grant(client, *{tenant_of(i, tenants) for i in range(tenants)})
        baseline = int(client.info("memory")["used_memory"])
        started = time.perf_counter()
        ids = [_publish(app, i, tenants) for i in range(runs)]
        publish_s = time.perf_counter() - started
        client.slowlog_reset()
        client.config_resetstat()

        def drain_all() -> None:
            while client.llen(QUEUE):
                if not backlog.drain(app, client, settings, QUEUE):
                    raise RuntimeError("the drain moved nothing while messages were queued")

        _, drain = measured(client, runs, drain_all)
        memory = (int(client.info("memory")["used_memory"]) - baseline) / runs
        safetynet.register(client, "bench-scale", SLOTS, settings)
        picked = fairshare.release(client, None, settings)  # every slot taken: the runs below wait
        extra = [parking.Envelope(f"extra-{i}", "toolrunner.run_tool", [], {}, QUEUE, tenant_of(i, tenants), "nmap")
                 for i in range(sample)]  # fmt: skip
        _, admit = measured(client, sample, lambda: [fairshare.admit(client, e, settings) for e in extra])

        def cycles() -> None:
            running = list(picked)
            for _ in range(sample):
                envelope = parking.load(client, [running.pop(0)])[0]
                fairshare.admit(client, envelope, settings)  # its message arrived: admitted on its lease
                running += fairshare.release(client, envelope, settings)  # it ended: the next is picked

        _, cycle = measured(client, sample, cycles)
        waiting = ids[-sample:]
        _, cancelled = measured(
            client, sample, lambda: [cancel(app, client, settings, t, tenant) for t, tenant in waiting]
        )
        slow = [(_named(entry["command"]), entry["duration"] / 1000) for entry in client.slowlog_get(1024)]
        assert client.hlen(keys.PARKED()) >= runs - 2 * sample - SLOTS, "the runs wait while they are measured"
    return Scale(runs, tenants, publish_s, drain, drain.wall_ms * runs / 1000, memory, admit, cycle, cancelled, slow)


def file_copies(runs: int, size: int) -> tuple[float, float]:
    """How many copies of a waiting run's input file Redis holds once its message was drained (the target: one),
    found by reading every key for the file's contents; and Redis memory per run the file added, over its size
    (above 1 by the allocator's size classes, not by copies)."""
    from tasks.worker import backlog

    per_run, copies = [], 0.0
    for files in (None, {"extra.txt": "marker-" + "x" * size}):
        with stand() as (app, client, settings):
            grant(client, "t0000")
            baseline = int(client.info("memory")["used_memory"])
            for index in range(runs):
                _publish(app, index, 1, files)
            while client.llen(QUEUE):
                backlog.drain(app, client, settings, QUEUE)
            per_run.append((int(client.info("memory")["used_memory"]) - baseline) / runs)
            if files:
                copies = _occurrences(client, b"marker-" + b"x" * 64) / runs
    return copies, (per_run[1] - per_run[0]) / size


def _occurrences(client: redis.Redis, needle: bytes) -> int:
    """How many times `needle` appears in every value Redis holds (strings, hashes, lists, sets, sorted sets)."""
    found = 0
    for key in client.scan_iter(count=1000):
        raw_kind = client.type(key)
        kind = raw_kind.decode() if isinstance(raw_kind, bytes) else str(raw_kind)
        values: list[Any] = (
            [client.get(key) or b""] if kind == "string" else
            list(client.hvals(key)) if kind == "hash" else
            list(client.lrange(key, 0, -1)) if kind == "list" else
            list(client.smembers(key)) if kind == "set" else
            list(client.zrange(key, 0, -1)) if kind == "zset" else []
        )  # fmt: skip
        found += sum(bytes(value).count(needle) for value in values if isinstance(value, bytes))
    return found


def bulk_cancel(count: int) -> tuple[float, int, list[tuple[str, float]]]:
    """`cancel --waiting` of one tenant with `count` waiting runs: seconds, runs cancelled, commands over 10 ms."""
    from tasks.worker import backlog
    from tasks.worker.cancel import cancel_waiting

    with stand() as (app, client, settings):
        grant(client, "t0000")
        for index in range(count):
            _publish(app, index, 1)
        while client.llen(QUEUE):
            backlog.drain(app, client, settings, QUEUE)
        client.slowlog_reset()
        started = time.perf_counter()
        cancelled = cancel_waiting(app, client, settings, "t0000")
        seconds = time.perf_counter() - started
        slow = [(_named(entry["command"]), entry["duration"] / 1000) for entry in client.slowlog_get(1024)]
    return seconds, cancelled, slow


def _named(command: bytes | str) -> str:
    """A slow log entry's command, a script named by its file rather than its SHA."""
    from tasks.worker import luascript

    words = (command.decode(errors="replace") if isinstance(command, bytes) else command).split()
    scripts = {luascript.sha(name): name for name in luascript.names()}
    if words and words[0].upper() == "EVALSHA" and len(words) > 1:
        return f"EVALSHA {scripts.get(words[1], words[1][:8])}"
    return " ".join(words[:2])


def _publish(app: Any, index: int, tenants: int, files: dict[str, str] | None = None) -> tuple[str, str]:
    tenant = tenant_of(index, tenants)
    params = {"targets": [f"127.0.{index // 250 % 250 + 1}.{index % 250 + 1}"], "ports": "80"}
    result = app.send_task("toolrunner.run_tool", ["nmap", tenant, f"r{index}", params, files], queue=QUEUE)
    return str(result.id), tenant


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000:10,10000:100,100000:1000", help="runs:tenants, comma-separated")
    parser.add_argument("--sample", type=int, default=200, help="operations measured per size (admit, cycle, cancel)")
    parser.add_argument("--bulk", type=int, default=10_000, help="waiting runs of the tenant `cancel --waiting` ends")
    args = parser.parse_args(argv)
    sizes = [tuple(int(x) for x in size.split(":")) for size in args.sizes.split(",")]
    results = [measure(runs, tenants, args.sample) for runs, tenants in sizes]
    show(results)
    copies, memory = file_copies(1000, 16 << 10)
    console(160).print(
        f"a waiting run's 16 KiB input file: {copies:.2f} copies in Redis (target: one), "
        f"{memory:.2f}x its size in Redis memory (the allocator's size classes)"
    )
    seconds, cancelled, slow = bulk_cancel(args.bulk)
    console(160).print(
        f"cancel --waiting of one tenant's {cancelled:,} waiting runs: {seconds:.1f} s; commands over 10 ms: "
        f"{len(slow)} {sorted(slow, key=lambda s: -s[1])[:3]}"
    )
    return 0


def _field(cost: Callable[[Scale], Cost], name: str) -> Callable[[Scale], float]:
    return lambda scale: float(getattr(cost(scale), name))


def show(results: list[Scale]) -> None:
    out = console(160)
    columns = ["", *(f"{r.runs:,} runs / {r.tenants:,} tenants" for r in results), "largest / smallest"]
    report = table("bench.scale: Redis per run (commands, server µs) and wall ms per run", *columns)
    first, last = results[0], results[-1]

    def row(name: str, value: Callable[[Scale], float], fmt: str = "{:.1f}") -> None:
        ratio = value(last) / value(first) if value(first) else float("nan")
        report.add_row(name, *(fmt.format(value(r)) for r in results), f"{ratio:.2f}x")

    row("publish, s (Celery, not measured)", lambda r: r.publish_s)
    phases: dict[str, Callable[[Scale], Cost]] = {
        "drain": lambda r: r.drain, "admit (parks)": lambda r: r.admit, "cycle: arrive + end": lambda r: r.cycle,
        "cancel one waiting": lambda r: r.cancel,
    }  # fmt: skip
    for name, cost in phases.items():
        row(f"{name}: commands", _field(cost, "commands"))
        row(f"{name}: server µs", _field(cost, "server_us"))
        row(f"{name}: wall ms", _field(cost, "wall_ms"), "{:.2f}")
    row("drain of the whole queue, s", lambda r: r.drain_s)
    row("memory per waiting run, bytes", lambda r: r.memory_per_run, "{:.0f}")
    row("commands over 10 ms", lambda r: len(r.slow), "{:.0f}")
    out.print(report)
    for r in results:
        if r.slow:
            out.print(f"{r.runs:,}: slowest {sorted(r.slow, key=lambda s: -s[1])[:5]}")
    flat = all(cost(last).server_us <= 1.5 * cost(first).server_us for cost in phases.values())
    out.print(f"per-run server time flat (≤ 1.5x): {verdict(flat)}; none over 10 ms: {verdict(not last.slow)}")


if __name__ == "__main__":
    raise SystemExit(main())

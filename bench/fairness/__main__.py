"""Tenant A submits 100 runs of ~2 s, then B and C 5 each; fair dispatch vs FIFO side by side, then cap 2 for A.

A last table counts Redis commands (INFO commandstats, reset with CONFIG RESETSTAT, so the bench wants a Redis
of its own, as on a developer machine): per run over each batch, and per minute while 2 runs hold tenant W's
2 slots, first alone and then with 50 more of W's runs waiting: the difference divided by 50 is what one waiting
run costs per minute.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import docker
import redis
from celery import Celery
from celery.result import AsyncResult

from bench.common import BenchError, console, exit_on_sigterm, percentile, table, verdict, worker_env
from bench.launch import start_worker, wait_until
from config import celery_config, load_settings
from tasks.worker import keys

REDIS = os.environ.get("TOOLRUNNER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15").rsplit("/", 1)[0] + "/10"
PARAMS = {"script": "sleep 2; echo done > /outputs/out.txt"}
WAITING = 50
WINDOW_SECONDS = 30.0
SETTLE_SECONDS = 5.0


@dataclass
class Outcome:
    """Submit-to-result seconds per tenant, the wall time of the whole batch, the most runs of A seen at once."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    wall: float = 0.0
    peak_a: int = 0
    commands: int = 0

    @property
    def runs(self) -> int:
        """How many runs the batch had."""
        return sum(len(s) for s in self.seconds.values())


@dataclass(frozen=True)
class WaitingCost:
    """Redis commands per minute with W's 2 slots busy: no run of W waiting, one, then WAITING."""

    alone: float
    one: float
    many: float

    @property
    def per_waiting_run(self) -> float:
        """What each of WAITING waiting runs adds per minute, on average."""
        return (self.many - self.alone) / WAITING


def reset_commands() -> None:
    """Zero the server's command counters."""
    with redis.Redis.from_url(REDIS) as conn:
        conn.config_resetstat()


def commands() -> int:
    """Commands the server ran since the last reset (INFO commandstats), this read's own INFO excluded."""
    with redis.Redis.from_url(REDIS) as conn:
        stats = conn.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values()) - 1


def producer() -> Celery:
    """A client app on the bench's Redis database."""
    app = Celery("fairness", set_as_current=False)
    app.conf.update(celery_config(load_settings()), broker_url=REDIS, result_backend=REDIS)
    return app


@contextmanager
def workers(app: Celery, env: dict[str, str]) -> Iterator[None]:
    """Two workers at concurrency 4 on a flushed database."""
    with redis.Redis.from_url(REDIS) as conn:
        conn.flushdb()
    logs = Path(tempfile.mkdtemp(prefix="bench-fairness-"))
    started = [
        start_worker(logs, f"fair{i}", concurrency=4, env={**worker_env(REDIS), **env}, client=app) for i in (1, 2)
    ]
    try:
        yield
    finally:
        for worker in started:
            worker.stop()


def run_batch(app: Celery, plan: list[tuple[str, int]]) -> Outcome:
    """Submit the plan's runs in order and wait for every result, watching A's running tool containers."""
    client = docker.from_env()
    outcome, stop = Outcome(), threading.Event()
    watcher = threading.Thread(target=_watch, args=(client, outcome, stop), daemon=True)
    watcher.start()
    reset_commands()
    started = time.monotonic()
    handles: list[tuple[str, float, AsyncResult]] = []
    for tenant, count in plan:
        for i in range(count):
            handles.append(
                (
                    tenant,
                    time.monotonic(),
                    app.send_task("toolrunner.run_tool", ("script", tenant, f"{tenant}-{i}", PARAMS)),
                )
            )
    pending = list(handles)
    while pending:
        if time.monotonic() - started > 900:
            raise BenchError("results did not arrive within 15 minutes")
        for item in [h for h in pending if h[2].ready()]:
            if item[2].get()["status"] != "ok":
                raise BenchError(f"a run failed: {item[2].result}")
            outcome.seconds.setdefault(item[0], []).append(time.monotonic() - item[1])
            pending.remove(item)
        time.sleep(0.1)
    outcome.wall = time.monotonic() - started
    outcome.commands = commands()
    stop.set()
    watcher.join()
    return outcome


def waiting_cost(app: Celery) -> WaitingCost:
    """Commands per minute while tenant W's 2 running runs hold its cap, then with 1 and WAITING runs parked."""
    seconds = int(3 * (SETTLE_SECONDS + WINDOW_SECONDS) + 60)  # three windows, with room to park the runs
    long_run = {"script": f"sleep {seconds}", "timeout_seconds": seconds + 60}
    handles = [app.send_task("toolrunner.run_tool", ("script", "W", f"W-long-{i}", long_run)) for i in (0, 1)]
    client = docker.from_env()
    tools = {"label": ["studio.tenant=W", "studio.role=tool"]}
    wait_until(lambda: len(client.api.containers(filters=tools)) == 2, 120, "W's two long runs to start")
    rates = [_per_minute()]
    for first, last in ((0, 1), (1, WAITING)):
        # Distinct scripts: each run waits for a slot of its own, none behind an identical run (the result cache).
        handles += [
            app.send_task("toolrunner.run_tool", ("script", "W", f"W-{i}", {"script": f"true {i}"}))
            for i in range(first, last)
        ]
        with redis.Redis.from_url(REDIS) as conn:
            wait_until(lambda: conn.hlen(keys.PARKED()) >= last, 120, f"{last} runs of W to wait")  # noqa: B023
        rates.append(_per_minute())
    for handle in handles:
        handle.get(timeout=600)
    return WaitingCost(*rates)


def _per_minute() -> float:
    time.sleep(SETTLE_SECONDS)  # what the last submissions set off (events, progress writes) is over
    reset_commands()
    time.sleep(WINDOW_SECONDS)
    return commands() * 60 / WINDOW_SECONDS


def _watch(client: docker.DockerClient, outcome: Outcome, stop: threading.Event) -> None:
    while not stop.wait(0.2):
        running = client.api.containers(filters={"label": ["studio.tenant=A", "studio.role=tool"]})
        outcome.peak_a = max(outcome.peak_a, len(running))


def main() -> None:
    """Measure and print both tables."""
    exit_on_sigterm()
    app = producer()
    backlog = [("A", 100), ("B", 5), ("C", 5)]
    with workers(app, {"TOOLRUNNER_TENANT_MAX_RUNNING": "8"}):
        idle = run_batch(app, [("B", 5)])
        fair = run_batch(app, backlog)
    fifo_settings = {"TOOLRUNNER_TENANT_MAX_RUNNING": "8", "TOOLRUNNER_FAIR_SHARE": "false"}
    fifo_settings["TOOLRUNNER_POLITENESS"] = "off"  # host leases are taken at admission, which FIFO has none of
    with workers(app, fifo_settings):
        fifo = run_batch(app, backlog)
    with workers(app, {"TOOLRUNNER_TENANT_MAX_RUNNING": "2"}):
        capped = run_batch(app, [("A", 20), ("B", 5)])
        cost = waiting_cost(app)
    _print(idle, fair, fifo, capped)
    _print_commands(fair, fifo, cost)


def _print(idle: Outcome, fair: Outcome, fifo: Outcome, capped: Outcome) -> None:
    idle_p95 = percentile(idle.seconds["B"], 95)
    out = console(120)
    first = table(
        "A: 100 runs of ~2 s, then B and C 5 each; 2 workers x 4, cap 8",
        "tenant",
        "fair p50 s",
        "fair p95 s",
        "FIFO p50 s",
        "FIFO p95 s",
        "target",
    )
    for tenant in ("A", "B", "C"):
        f, q = fair.seconds[tenant], fifo.seconds[tenant]
        target = "-" if tenant == "A" else verdict(percentile(f, 95) <= 3 * idle_p95)
        first.add_row(
            tenant,
            f"{percentile(f, 50):.1f}",
            f"{percentile(f, 95):.1f}",
            f"{percentile(q, 50):.1f}",
            f"{percentile(q, 95):.1f}",
            target,
        )
    first.add_row(
        "idle B (5 alone)",
        f"{percentile(idle.seconds['B'], 50):.1f}",
        f"{idle_p95:.1f}",
        "",
        "",
        f"3x = {3 * idle_p95:.1f}",
    )
    ratio = (110 / fair.wall) / (110 / fifo.wall)
    first.add_row(
        "runs/s overall",
        f"{110 / fair.wall:.2f}",
        "",
        f"{110 / fifo.wall:.2f}",
        "",
        f"{ratio:.2f}x {verdict(ratio >= 0.9)}",
    )
    out.print(first)
    second = table(
        "cap 2: A 20 runs, B 5 runs; 2 workers x 4", "tenant", "p50 s", "p95 s", "most A tool containers at once"
    )
    for tenant in ("A", "B"):
        s = capped.seconds[tenant]
        second.add_row(
            tenant,
            f"{percentile(s, 50):.1f}",
            f"{percentile(s, 95):.1f}",
            f"{capped.peak_a} {verdict(capped.peak_a <= 2)}" if tenant == "A" else "",
        )
    out.print(second)


def _print_commands(fair: Outcome, fifo: Outcome, cost: WaitingCost) -> None:
    third = table("Redis commands (INFO commandstats)", "what", "commands", "per run / per minute")
    for name, batch in (("fair dispatch batch", fair), ("FIFO batch", fifo)):
        third.add_row(name, str(batch.commands), f"{batch.commands / batch.runs:.0f} per run")
    third.add_row("W: 2 running, none waiting", "", f"{cost.alone:.0f} per minute")
    third.add_row("W: 2 running, 1 waiting", "", f"{cost.one:.0f} per minute")
    third.add_row(f"W: 2 running, {WAITING} waiting", "", f"{cost.many:.0f} per minute")
    third.add_row(f"each of the {WAITING} waiting runs", "", f"{cost.per_waiting_run:.2f} per minute")
    console(120).print(third)


if __name__ == "__main__":
    main()

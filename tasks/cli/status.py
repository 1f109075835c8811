"""`toolrunner status`: the fleet on one screen — workers, the busiest tenants, the queue and the alerts firing."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from tasks.cli.broker import connect
from tasks.cli.console import out

app = typer.Typer()  # mounted without a name: `status` is a command of `toolrunner` itself
GIB = 1 << 30


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="print it as one JSON object")] = False) -> None:
    """The fleet from Redis: live workers (engine, slots, busy, draining, free disk, paused), running and waiting
    runs of the busiest tenants, the oldest waiting run's age, and the alerts firing (deploy/prometheus/alerts.yml's
    conditions that Redis answers)."""
    from tasks.worker import fleet  # the Celery layer only for this command
    from tasks.worker.app import app as celery

    seen = fleet.read(connect(), str(celery.conf.task_default_queue))
    if as_json:
        print(json.dumps(seen.as_dict(), indent=2))
        return
    workers = Table("worker", "engine", "slots", "busy", "draining", "free disk", "paused", title="workers",
                    title_justify="left")  # fmt: skip
    for worker in seen.workers:
        free = min(worker.free_disk.values(), default=None)
        workers.add_row(
            worker.name, worker.daemon[:12] or "-", f"{worker.slots} of {worker.concurrency or '?'}",
            "-" if worker.busy is None else str(worker.busy),
            worker.draining or "no", "-" if free is None else f"{free / GIB:.1f} GiB", worker.paused or "no",
        )  # fmt: skip
    out.print(workers if seen.workers else "workers: none live")
    tenants = Table("tenant", "running", "waiting", title="busiest tenants", title_justify="left")
    for tenant in seen.tenants:
        tenants.add_row(tenant["tenant"], str(tenant["running"]), str(tenant["waiting"]))
    out.print(tenants if seen.tenants else "tenants: none running or waiting")
    queue = seen.queue
    out.print(
        f"queue: {queue.queued} queued, {queue.dispatching} dispatching, {queue.slots_used} of {queue.slots} slots "
        f"used; oldest waiting run {queue.oldest_waiting_seconds:.0f} s; parked envelopes "
        f"{queue.parked_bytes / (1 << 20):.1f} MiB",
        markup=False,
    )
    out.print("alerts: none firing" if not seen.alerts else "alerts:", markup=False)
    for line in seen.alerts:
        out.print(f"  FIRING {line}", markup=False)

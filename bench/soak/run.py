"""Driving a soak: enqueue every run, poll, disrupt at the planned points, then sweep and count what is left."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis
from celery.utils import worker_direct
from rich.console import Console

import isolation
from bench.soak.plan import Disruption, Observed, Plan, PlannedRun, SoakConfig, make_plan
from bench.soak.worker import (
    LABEL_PREFIX,
    Engine,
    Workers,
    engine,
    leftovers,
    producer_app,
    result_listener,
    rss_sampler,
    worker_env,
)
from tasks.worker import keys
from tasks.worker.delivery import Delivery

ACTIVE = ("STARTED", "PROGRESS", "RETRY")
TERMINAL = ("SUCCESS", "FAILURE", "REVOKED")


@dataclass
class Soak:
    """Everything a running soak needs."""

    config: SoakConfig
    plan: Plan
    engine: Engine
    workers: Workers
    conn: redis.Redis
    keys: dict[str, str]
    observed: Observed
    started: float = field(default_factory=time.monotonic)


def poll(soak: Soak) -> None:
    """Read every non-terminal run's result meta with one MGET."""
    pending = [run.task_id for run in soak.plan.runs if _state(soak, run.task_id) not in TERMINAL]
    for task_id, raw in zip(pending, soak.conn.mget([soak.keys[t] for t in pending]), strict=True):
        if raw is not None:
            soak.observed.metas[task_id] = json.loads(raw)


def _state(soak: Soak, task_id: str) -> str:
    return str((soak.observed.metas.get(task_id) or {}).get("status", "PENDING"))


def terminal_count(soak: Soak) -> int:
    return sum(_state(soak, run.task_id) in TERMINAL for run in soak.plan.runs)


def in_flight(soak: Soak) -> tuple[str, ...]:
    return tuple(run.task_id for run in soak.plan.runs if _state(soak, run.task_id) in ACTIVE)


def disrupt(soak: Soak, kind: str, console: Console) -> None:
    """SIGKILL the worker group and start its successor, or restart the inner dockerd; record it."""
    flying, at, done = in_flight(soak), time.monotonic(), terminal_count(soak)
    if kind == "kill":
        soak.workers.kill_and_replace()
    elif soak.engine.restart is not None:
        soak.engine.restart()
    took = time.monotonic() - at
    soak.observed.disruptions.append(Disruption(kind, done, at - soak.started, took, flying))
    console.log(f"{kind} after {done} terminal runs, {len(flying)} in flight; took {took:.1f}s")


def drive(soak: Soak, console: Console) -> None:
    """Poll until every run is terminal or nothing finished for stall_seconds, disrupting at the planned points."""
    todo, last_done, last_change = list(soak.plan.disruptions), -1, time.monotonic()
    while True:
        poll(soak)
        done = terminal_count(soak)
        if done != last_done:
            last_done, last_change = done, time.monotonic()
            if done % 25 == 0 or done == len(soak.plan.runs):
                console.log(f"{done}/{len(soak.plan.runs)} runs terminal")
        if done == len(soak.plan.runs) or time.monotonic() - last_change > soak.config.stall_seconds:
            return
        if todo and done >= todo[0][0] and (in_flight(soak) or todo[0][1] == "restart"):
            disrupt(soak, todo.pop(0)[1], console)
            last_change = time.monotonic()
        time.sleep(0.25)


def finish(soak: Soak) -> None:
    """Count what is left, run the worker's own sweep (max age 0), count again; collect counters and logs."""
    observed, client = soak.observed, soak.engine.client
    observed.left_before_sweep = leftovers(client)
    try:
        queue = worker_direct(soak.workers.hostname())
        handle = soak.workers.producer.send_task("toolrunner.sweep_daemon", kwargs={"max_age_hours": 0}, queue=queue)
        observed.sweep = dict(handle.get(timeout=120))
    except Exception as exc:  # the report says so; the reaper in run_soak's finally removes what is left
        observed.sweep = {"error": f"{type(exc).__name__}: {exc}"}
    observed.left_after_sweep = leftovers(client)
    observed.deliveries = delivery_counts(soak.conn, soak.plan.runs)


def delivery_counts(conn: redis.Redis, runs: Sequence[PlannedRun]) -> dict[str, int]:
    """Each run's Redis delivery counter, read from the key the worker writes: per whole run (task id, tool,
    tenant, run id), not per task id."""
    counters = [keys.DELIVERIES(Delivery(run.task_id, "script", run.tenant, run.run_id).key) for run in runs]
    return {run.task_id: int(n or 0) for run, n in zip(runs, conn.mget(counters), strict=True)}


def run_soak(config: SoakConfig, log_dir: Path, console: Console) -> tuple[Plan, Observed]:
    """Run a whole soak and return the plan and what was observed; every resource it made is removed."""
    plan, observed = make_plan(config), Observed(log_dir=log_dir)
    producer, conn = producer_app(config.redis_url), redis.Redis.from_url(config.redis_url)
    conn.flushdb()
    result_keys = {run.task_id: producer.backend.get_key_for_task(run.task_id).decode() for run in plan.runs}
    try:
        with engine(config.dind) as used:
            workers = Workers(log_dir, config.concurrency, worker_env(config.redis_url, used.docker_host), producer)
            soak = Soak(config, plan, used, workers, conn, result_keys, observed)
            try:
                _soak(soak, console)
            finally:
                workers.stop()
                observed.logs = workers.logs()
                with contextlib.suppress(isolation.IsolationError):  # the DinD engine goes anyway
                    isolation.cleanup_orphaned_volumes(0, used.client, label_prefix=LABEL_PREFIX)
    finally:
        conn.flushdb()
        conn.close()
        producer.close()
    return plan, observed


def _soak(soak: Soak, console: Console) -> None:
    soak.workers.start()
    with rss_sampler(soak.workers, soak.observed), result_listener(soak.conn, soak.keys, soak.observed):
        soak.started = time.monotonic()
        for run in soak.plan.runs:
            soak.workers.producer.send_task("toolrunner.run_tool", run.args(), task_id=run.task_id)
        drive(soak, console)
        soak.observed.wall_seconds = time.monotonic() - soak.started
        finish(soak)

"""Soak benchmark: many runs across tenants through a real worker while the harness injects failures.

Run:  .venv/bin/python bench/soak.py [--runs 500] [--tenants 10] [--concurrency 4] [--seed N] [--no-dind]

Needs the Docker Engine, Redis on 127.0.0.1:6379 (db 11 is flushed, then used by this soak alone) and the images
toolrunner-busybox:local and toolrunner-dind:local (scripts/build-images). Nothing is asserted: the tables show
every measurement and, for each expectation, "ok" or "NOT ok". tests/integration/test_soak.py runs a short soak.

What runs:
  engine   an inner dockerd in a DinD container of the host engine (tests/integration/dind.py); the worker's
           DOCKER_HOST points at it, so the harness can restart that daemon. The host's dockerd is never
           restarted. With --no-dind the worker uses the host engine and there is no daemon restart.
  worker   a real `celery worker --pool prefork` (tests/integration/workers.py) with label prefix `soak`
           (its volumes and containers are labelled soak.*, invisible to the suite's studio.* leak checks),
           the test-only `script` tool, network none and short limits (soft 12 s, hard 14 s, visibility 16 s),
           so a killed worker's runs are delivered again within about half a minute.
  runs     all enqueued at once, tenants round-robin. Each run's input file marker.txt holds a tenant- and
           run-specific marker; its tool copies it to /outputs/out.txt, then appends a random execution id
           (/proc/sys/kernel/random/uuid: a new one for every time the tool really runs).
Injected, deterministic by --seed:
  exit     --exit-rate of the runs exit 3 after writing their output          -> expected tool_failed
  timeout  --timeout-rate of the runs sleep past a 2 s timeout_seconds          -> expected timed_out
  kill     round(--kill-rate x runs) times (at seeded points of the progress), with runs in flight, the
           harness SIGKILLs the worker's process group and starts a new worker with the same hostname; its
           start-up sweep removes the predecessor's leftovers and the unacked runs are delivered again.
  restart  once, half-way, the inner dockerd is stopped (SIGTERM, as `systemctl restart docker` would) and
           started again.
Checks:
  lost          runs without a terminal state (SUCCESS/FAILURE) when nothing finished for --stall-seconds.
  duplicates    (a) results published as SUCCESS (Redis pub/sub of the result keys, subscribed before any
                run is sent) carrying more than one execution id for one task; (b) `succeeded` lines per task id
                in all worker logs, minus the lines of deliveries that returned an earlier delivery's result.
  cross reads   a result whose out.txt carries another tenant's (or another run's) marker, or none.
  leftovers     soak.managed volumes and containers on the worker's engine after the worker's own sweep task
                (max age 0) ran at the end.
  peak RSS      the largest sum of VmRSS over the worker process and its pool children, sampled every 0.5 s.
The disruptions table's "in flight" counts runs started and not yet terminal (STARTED, PROGRESS or RETRY): runs
running at that moment, and also runs an earlier kill stranded or a retry countdown holds, until they come back.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import re
import secrets
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
import redis
import requests.exceptions
from celery import Celery
from celery.utils import worker_direct
from rich.console import Console
from rich.table import Table

import isolation
from config import Settings, celery_config

if TYPE_CHECKING:
    from tests.integration.dind import InnerDaemon
    from tests.integration.workers import Worker

ROOT = Path(__file__).resolve().parents[1]
SOAK_DB = "redis://127.0.0.1:6379/11"
LABEL_PREFIX = "soak"
WORKER_NAME = "soak"
IMAGE = "toolrunner-busybox:local"
MANAGED = {"label": [f"{LABEL_PREFIX}.managed=true"]}
LIMITS: dict[str, Any] = {"max_timeout_seconds": 10, "time_limit_margin_seconds": 2, "visibility_margin_seconds": 2}
TOOL_TIMEOUT, INJECTED_TIMEOUT = 10, 2
EXPECTED = {"none": "ok", "exit": "tool_failed", "timeout": "timed_out"}
ACTIVE = ("STARTED", "PROGRESS", "RETRY")
TERMINAL = ("SUCCESS", "FAILURE", "REVOKED")
SUCCEEDED = re.compile(r"Task toolrunner\.run_tool\[(?P<id>[0-9a-f-]+)\] succeeded in")
SHORT_CIRCUIT = re.compile(r"task=(?P<id>[0-9a-f-]+) already succeeded in another delivery")
IGNORED = re.compile(r"Task toolrunner\.run_tool\[(?P<id>[0-9a-f-]+)\] ignored")


@dataclass(frozen=True)
class SoakConfig:
    """How big the soak is and what it injects."""

    runs: int = 500
    tenants: int = 10
    concurrency: int = 4
    seed: int = 1
    exit_rate: float = 0.10
    timeout_rate: float = 0.05
    kill_rate: float = 0.02
    daemon_restart: bool = True
    dind: bool = True
    stall_seconds: float = 150.0


@dataclass(frozen=True)
class PlannedRun:
    """One run: its task id, tenant, run id, the failure injected into it and the marker it must read back."""

    task_id: str
    tenant: str
    run_id: str
    failure: str
    marker: str

    @property
    def expected(self) -> str:
        return EXPECTED[self.failure]

    def params(self) -> dict[str, Any]:
        """The `script` tool's params: copy the marker, add an execution id, then the injected ending."""
        script = "cat /inputs/marker.txt > /outputs/out.txt; cat /proc/sys/kernel/random/uuid >> /outputs/out.txt"
        ending = {"none": "", "exit": "; exit 3", "timeout": "; sleep 30"}[self.failure]
        timeout = INJECTED_TIMEOUT if self.failure == "timeout" else TOOL_TIMEOUT
        return {"script": script + ending, "outputs": ["out.txt"], "timeout_seconds": timeout}

    def args(self) -> tuple[Any, ...]:
        return ("script", self.tenant, self.run_id, self.params(), {"marker.txt": self.marker + "\n"})


@dataclass(frozen=True)
class Plan:
    """The runs and when the disruptions happen: (terminal runs seen, "kill" or "restart"), in order."""

    runs: tuple[PlannedRun, ...]
    disruptions: tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class Disruption:
    """A disruption as it happened: when (seconds into the soak), how long it took and which runs were in flight."""

    kind: str
    after_terminal: int
    at_seconds: float
    took_seconds: float
    in_flight: tuple[str, ...]


@dataclass
class Observed:
    """What the harness saw while the soak ran."""

    metas: dict[str, dict[str, Any]] = field(default_factory=dict)
    published: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    disruptions: list[Disruption] = field(default_factory=list)
    deliveries: dict[str, int] = field(default_factory=dict)
    logs: str = ""
    left_before_sweep: tuple[int, int] = (0, 0)
    left_after_sweep: tuple[int, int] = (0, 0)
    sweep: dict[str, Any] = field(default_factory=dict)
    peak_rss_bytes: int = 0
    wall_seconds: float = 0.0
    log_dir: Path = Path()


@dataclass(frozen=True)
class Expectation:
    """One expectation, what was measured and whether it holds."""

    what: str
    measured: int
    ok: bool


# --- the plan (pure) ----------------------------------------------------------------------------------------------


def make_plan(config: SoakConfig) -> Plan:
    """Runs and disruption points, deterministic by config.seed (task ids too: the seed drives them)."""
    rng = random.Random(config.seed)
    failures = ["none"] * config.runs
    picked = rng.sample(range(config.runs), round(config.runs * (config.exit_rate + config.timeout_rate)))
    exits = round(config.runs * config.exit_rate)
    for number, index in enumerate(picked):
        failures[index] = "exit" if number < exits else "timeout"
    runs = tuple(_planned(rng, i, i % config.tenants, failures[i]) for i in range(config.runs))
    return Plan(runs, _disruptions(rng, config))


def _planned(rng: random.Random, index: int, tenant: int, failure: str) -> PlannedRun:
    task_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    tenant_id, run_id = f"tenant-{tenant:02d}", f"run-{index:04d}"
    marker = f"marker tenant={tenant_id} run={run_id} token={rng.getrandbits(64):016x}"
    return PlannedRun(task_id, tenant_id, run_id, failure, marker)


def _disruptions(rng: random.Random, config: SoakConfig) -> tuple[tuple[int, str], ...]:
    kills = round(config.runs * config.kill_rate)
    middle = config.runs // 2
    window = [n for n in range(max(1, config.runs // 20), max(2, config.runs * 9 // 10)) if n != middle]
    points = [(n, "kill") for n in rng.sample(window, min(kills, len(window)))]
    if config.daemon_restart and config.dind:
        points.append((middle, "restart"))
    return tuple(sorted(points))


# --- the checks (pure) --------------------------------------------------------------------------------------------


def final_status(meta: Mapping[str, Any] | None) -> str:
    """The run's final status: the result's status, FAILURE with the exception type, or lost (and its state)."""
    state = (meta or {}).get("status", "PENDING")
    result = (meta or {}).get("result")
    if state == "SUCCESS" and isinstance(result, dict):
        return str(result.get("status"))
    if state == "FAILURE":
        return f"FAILURE {result.get('exc_type') if isinstance(result, dict) else result}"
    return f"lost ({state})"


def lines_of(result: Mapping[str, Any]) -> list[str]:
    return [str(f.get("line")) for f in result.get("findings") or [] if f.get("file") == "out.txt"]


def read_class(run: PlannedRun, result: Mapping[str, Any], owners: Mapping[str, PlannedRun]) -> str:
    """own, cross-tenant, cross-run or unmarked: whose marker this run's result carries."""
    if (result.get("tenant_id"), result.get("run_id")) != (run.tenant, run.run_id):
        return "cross-tenant" if result.get("tenant_id") != run.tenant else "cross-run"
    found = [owners[line] for line in lines_of(result) if line in owners]
    if any(other.tenant != run.tenant for other in found):
        return "cross-tenant"
    if any(other.run_id != run.run_id for other in found):
        return "cross-run"
    return "own" if found else "unmarked"


def read_classes(plan: Plan, observed: Observed) -> Counter[str]:
    owners = {run.marker: run for run in plan.runs}
    classes: Counter[str] = Counter()
    for run in plan.runs:
        meta = observed.metas.get(run.task_id) or {}
        if meta.get("status") == "SUCCESS" and isinstance(meta.get("result"), dict):
            classes[read_class(run, meta["result"], owners)] += 1
    return classes


def duplicate_completions(observed: Observed) -> dict[str, int]:
    """Task ids whose published SUCCESS results carry more than one execution id, and how many."""
    executions = {
        task_id: {tuple(lines_of(r)[1:2]) for r in results} for task_id, results in observed.published.items()
    }
    return {task_id: len(ids) for task_id, ids in executions.items() if len(ids) > 1}


def duplicate_log_successes(logs: str) -> dict[str, int]:
    """Task ids with more `succeeded` log lines than deliveries that returned an earlier delivery's result + 1."""
    succeeded = Counter(m["id"] for m in SUCCEEDED.finditer(logs))
    reused = Counter(m["id"] for m in SHORT_CIRCUIT.finditer(logs))
    return {task_id: n - reused[task_id] for task_id, n in succeeded.items() if n - reused[task_id] > 1}


def mismatches(plan: Plan, observed: Observed) -> list[tuple[PlannedRun, str]]:
    """Runs whose final status is not the one their injected failure predicts."""
    finals = ((run, final_status(observed.metas.get(run.task_id))) for run in plan.runs)
    return [(run, status) for run, status in finals if status != run.expected]


def lost(plan: Plan, observed: Observed) -> list[PlannedRun]:
    return [run for run in plan.runs if final_status(observed.metas.get(run.task_id)).startswith("lost")]


def expectations(plan: Plan, observed: Observed) -> list[Expectation]:
    """Every expectation of the soak with its measured value."""
    reads = read_classes(plan, observed)
    rows = [
        ("runs lost (no terminal state)", len(lost(plan, observed))),
        ("duplicate completions (published results, distinct executions)", len(duplicate_completions(observed))),
        ("duplicate completions (succeeded log lines per task)", len(duplicate_log_successes(observed.logs))),
        ("cross-tenant reads", reads["cross-tenant"]),
        ("results carrying another run's marker, or none", reads["cross-run"] + reads["unmarked"]),
        ("runs whose status is not the one expected for its injection", len(mismatches(plan, observed))),
        ("soak.managed volumes left after the sweep", observed.left_after_sweep[0]),
        ("soak.managed containers left after the sweep", observed.left_after_sweep[1]),
    ]
    return [Expectation(what, value, value == 0) for what, value in rows]


# --- the engine: an inner dockerd the harness may restart -------------------------------------------------------


@dataclass(frozen=True)
class Engine:
    """The worker's Docker engine: a client, the DOCKER_HOST reaching it (None: the default) and how to restart it."""

    client: docker.DockerClient
    docker_host: str | None
    restart: Callable[[], None] | None


def _import_tests() -> None:
    """Make tests/ importable when this file runs as a script (it is not an installed package)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


@contextlib.contextmanager
def engine(use_dind: bool) -> Iterator[Engine]:
    """The host engine, or a DinD inner daemon with the busybox image loaded, removed on exit whatever happens."""
    host = docker.from_env(timeout=120)
    try:
        if not use_dind:
            yield Engine(host, None, None)
            return
        _import_tests()
        from tests.integration.dind import inner_daemon

        with inner_daemon(host, [IMAGE]) as daemon:
            yield Engine(daemon.client, daemon.docker_host, partial(restart_inner, host, daemon))
    finally:
        host.close()


def restart_inner(host: docker.DockerClient, daemon: InnerDaemon) -> None:
    """Stop the inner dockerd (SIGTERM: it stops its containers first) and start it again; wait until it answers."""
    host.api.stop(daemon.container_id, timeout=60)
    host.api.start(daemon.container_id)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(docker.errors.DockerException, requests.exceptions.RequestException):
            if daemon.client.ping():
                return
        time.sleep(0.1)
    raise RuntimeError("the inner dockerd did not answer within 60s of its restart")


def leftovers(client: docker.DockerClient) -> tuple[int, int]:
    """soak.managed (volumes, containers) on the engine."""
    volumes = client.api.volumes(filters=MANAGED).get("Volumes") or []
    return len(volumes), len(client.api.containers(all=True, filters=MANAGED))


# --- the worker ------------------------------------------------------------------------------------------------


def soak_settings() -> Settings:
    """The settings producer and workers share (explicit values win over any TOOLRUNNER_* environment)."""
    return Settings(
        broker_url=SOAK_DB, result_backend=SOAK_DB, label_prefix=LABEL_PREFIX, tool_network="none", **LIMITS
    )


def worker_env(docker_host: str | None) -> dict[str, str]:
    env = {
        "TOOLRUNNER_BROKER_URL": SOAK_DB,
        "TOOLRUNNER_RESULT_BACKEND": SOAK_DB,
        "TOOLRUNNER_LABEL_PREFIX": LABEL_PREFIX,
        "TOOLRUNNER_TOOL_NETWORK": "none",
        "TOOLRUNNER_EXTRA_TOOL_MODULES": json.dumps(["tests.tooldefs.script"]),
        **{f"TOOLRUNNER_{key.upper()}": str(value) for key, value in LIMITS.items()},
    }
    return {**env, "DOCKER_HOST": docker_host} if docker_host else env


def producer_app() -> Celery:
    """A producer on the soak's Redis database, configured like the workers."""
    producer = Celery("soak-client", set_as_current=False)
    producer.conf.update(celery_config(soak_settings()))
    return producer


class Workers:
    """The worker's successive incarnations (one per SIGKILL), all with the same hostname, logs apart."""

    def __init__(self, log_dir: Path, concurrency: int, env: Mapping[str, str], producer: Celery) -> None:
        self.log_dir, self.concurrency, self.env, self.producer = log_dir, concurrency, dict(env), producer
        self.all: list[Worker] = []

    @property
    def current(self) -> Worker:
        return self.all[-1]

    def start(self) -> None:
        _import_tests()
        from tests.integration.workers import start_worker

        log_dir = self.log_dir / f"incarnation-{len(self.all):02d}"
        self.all.append(
            start_worker(log_dir, WORKER_NAME, concurrency=self.concurrency, env=self.env, client=self.producer)
        )

    def kill_and_replace(self) -> None:
        self.current.kill_group()
        self.start()

    def hostname(self) -> str:
        replies = self.producer.control.ping(timeout=2.0) or []
        return str(next(name for reply in replies for name in reply if name.startswith(f"{WORKER_NAME}@")))

    def stop(self) -> None:
        for worker in self.all:
            if worker.process.poll() is None:
                worker.stop()

    def logs(self) -> str:
        return "".join(w.log_text() for w in self.all if w.log.exists())


def tree_rss_bytes(pid: int) -> int:
    """VmRSS of a process and all its descendants, from /proc."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        with contextlib.suppress(OSError, ValueError):
            status = Path(f"/proc/{current}/status").read_text()
            total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")) * 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                stack.extend(int(child) for child in (task / "children").read_text().split())
    return total


@contextlib.contextmanager
def rss_sampler(workers: Workers, observed: Observed) -> Iterator[None]:
    """Sample the current worker's process-tree RSS every 0.5 s into observed.peak_rss_bytes."""
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            with contextlib.suppress(IndexError):
                observed.peak_rss_bytes = max(observed.peak_rss_bytes, tree_rss_bytes(workers.current.process.pid))

    thread = threading.Thread(target=sample, daemon=True, name="soak-rss")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def result_listener(conn: redis.Redis, keys: Mapping[str, str], observed: Observed) -> Iterator[None]:
    """Record every SUCCESS result published on the runs' result keys (Celery publishes each store)."""
    task_of = {key: task_id for task_id, key in keys.items()}

    def handle(message: Mapping[str, Any]) -> None:
        meta = json.loads(message["data"])
        if meta.get("status") == "SUCCESS" and isinstance(meta.get("result"), dict):
            observed.published.setdefault(task_of[message["channel"].decode()], []).append(meta["result"])

    pubsub = conn.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.subscribe(**dict.fromkeys(keys.values(), handle))
    thread = pubsub.run_in_thread(sleep_time=0.05, daemon=True)
    try:
        yield
    finally:
        time.sleep(0.5)  # let the last messages arrive
        thread.stop()
        thread.join(10)
        pubsub.close()


# --- driving the soak ----------------------------------------------------------------------------------------------


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
    keys = [f"toolrunner:deliveries:{run.task_id}" for run in soak.plan.runs]
    counts = soak.conn.mget(keys)
    observed.deliveries = {run.task_id: int(n or 0) for run, n in zip(soak.plan.runs, counts, strict=True)}


def run_soak(config: SoakConfig, log_dir: Path, console: Console) -> tuple[Plan, Observed]:
    """Run a whole soak and return the plan and what was observed; every resource it made is removed."""
    plan, observed = make_plan(config), Observed(log_dir=log_dir)
    producer, conn = producer_app(), redis.Redis.from_url(SOAK_DB)
    conn.flushdb()
    keys = {run.task_id: producer.backend.get_key_for_task(run.task_id).decode() for run in plan.runs}
    try:
        with engine(config.dind) as used:
            workers = Workers(log_dir, config.concurrency, worker_env(used.docker_host), producer)
            soak = Soak(config, plan, used, workers, conn, keys, observed)
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


# --- tables --------------------------------------------------------------------------------------------------------


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    return table


def status_table(plan: Plan, observed: Observed) -> Table:
    """Final status counts per injected failure."""
    finals = Counter((run.failure, final_status(observed.metas.get(run.task_id))) for run in plan.runs)
    statuses = sorted({status for _, status in finals})
    table = _table("runs by final status (rows: injected failure; expected: ok / tool_failed / timed_out)", "injected")
    for status in [*statuses, "total"]:
        table.add_column(status, justify="right")
    for failure in EXPECTED:
        row = [finals[(failure, status)] for status in statuses]
        table.add_row(f"{failure} (-> {EXPECTED[failure]})", *map(str, row), str(sum(row)))
    totals = [sum(finals[(f, s)] for f in EXPECTED) for s in statuses]
    table.add_row("all", *map(str, totals), str(len(plan.runs)), style="bold")
    return table


def disruption_table(plan: Plan, observed: Observed) -> Table:
    table = _table("disruptions", "#", "kind", "after terminal", "at s", "took s", "in flight", "their final statuses")
    for number, event in enumerate(observed.disruptions, 1):
        finals = Counter(final_status(observed.metas.get(task_id)) for task_id in event.in_flight)
        summary = ", ".join(f"{status} {n}" for status, n in sorted(finals.items()))
        table.add_row(
            str(number), event.kind, str(event.after_terminal), f"{event.at_seconds:.0f}",
            f"{event.took_seconds:.1f}", str(len(event.in_flight)), summary,
        )  # fmt: skip
    return table


def expectation_table(plan: Plan, observed: Observed) -> Table:
    table = _table("expectations", "expectation", "measured", "expected", "status")
    for item in expectations(plan, observed):
        table.add_row(item.what, str(item.measured), "0", "ok" if item.ok else "[bold red]NOT ok[/]")
    return table


def measurement_table(config: SoakConfig, plan: Plan, observed: Observed) -> Table:
    table = _table("measurements", "what", "value")
    for what, value in measurements(config, plan, observed):
        table.add_row(what, value)
    return table


def measurements(config: SoakConfig, plan: Plan, observed: Observed) -> list[tuple[str, str]]:
    deliveries = sorted(Counter(observed.deliveries.values()).items())
    logs, kills = observed.logs, sum(d.kind == "kill" for d in observed.disruptions)
    return [
        ("runs, tenants, concurrency, seed", f"{config.runs}, {config.tenants}, {config.concurrency}, {config.seed}"),
        ("engine", "DinD inner dockerd" if config.dind else "host engine (no daemon restart)"),
        ("wall time (first enqueue to last terminal run)", f"{observed.wall_seconds:.1f} s"),
        ("terminal runs per second", f"{_terminal(plan, observed) / max(observed.wall_seconds, 1e-9):.2f}"),
        ("worker peak RSS (process tree, max of 0.5 s samples)", f"{observed.peak_rss_bytes / 2**20:.0f} MiB"),
        ("worker incarnations (1 + SIGKILLs)", str(1 + kills)),
        ("runs by Redis delivery counter (deliveries + retries)", ", ".join(f"{k}x: {n}" for k, n in deliveries)),
        ("docker-unavailable retries (log lines)", str(logs.count("Retry in"))),
        ("deliveries returning an earlier result (log lines)", str(len(SHORT_CIRCUIT.findall(logs)))),
        ("redelivered messages ignored as already SUCCESS (log lines)", str(len(IGNORED.findall(logs)))),
        ("soak.managed volumes, containers before the sweep", ", ".join(map(str, observed.left_before_sweep))),
        ("the sweep's report", _sweep_summary(observed.sweep)),
        ("worker logs", str(observed.log_dir)),
    ]


def _terminal(plan: Plan, observed: Observed) -> int:
    return sum(not final_status(observed.metas.get(run.task_id)).startswith("lost") for run in plan.runs)


def _sweep_summary(sweep: Mapping[str, Any]) -> str:
    if "error" in sweep:
        return f"failed: {sweep['error']}"
    keys = ("removed", "removed_containers", "kept_in_use", "failed")
    return ", ".join(f"{key} {len(sweep.get(key) or [])}" for key in keys)


def print_anomalies(plan: Plan, observed: Observed, console: Console, limit: int = 10) -> None:
    """The first few runs behind each NOT ok, with the evidence."""
    for run, status in mismatches(plan, observed)[:limit]:
        meta = observed.metas.get(run.task_id) or {}
        result = meta.get("result")
        why = result.get("reason") or result.get("exc_message") if isinstance(result, dict) else result
        console.print(f"status {status!r}, expected {run.expected!r}: {run.run_id} task {run.task_id}: {why}")
    for task_id, n in list(duplicate_completions(observed).items())[:limit]:
        console.print(f"duplicate completion: task {task_id} published {n} distinct executions")
    for task_id, n in list(duplicate_log_successes(observed.logs).items())[:limit]:
        console.print(f"duplicate success in the logs: task {task_id} succeeded {n} times")


def report(config: SoakConfig, plan: Plan, observed: Observed, console: Console) -> None:
    console.print(status_table(plan, observed))
    console.print(disruption_table(plan, observed))
    console.print(measurement_table(config, plan, observed))
    console.print(expectation_table(plan, observed))
    print_anomalies(plan, observed, console)


# --- main ----------------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> SoakConfig:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=500, help="runs enqueued")
    parser.add_argument("--tenants", type=int, default=10, help="tenants the runs are spread over, round-robin")
    parser.add_argument("--concurrency", type=int, default=4, help="worker --concurrency")
    parser.add_argument("--seed", type=int, default=1, help="seed of the injected failures and disruption points")
    parser.add_argument("--exit-rate", type=float, default=0.10, help="share of runs that exit 3")
    parser.add_argument("--timeout-rate", type=float, default=0.05, help="share of runs that time out")
    parser.add_argument("--kill-rate", type=float, default=0.02, help="worker SIGKILLs per run")
    parser.add_argument("--no-daemon-restart", action="store_true", help="skip the inner dockerd restart")
    parser.add_argument("--no-dind", action="store_true", help="use the host engine (implies no daemon restart)")
    parser.add_argument("--stall-seconds", type=float, default=150.0, help="give up after this long without progress")
    args = parser.parse_args(argv)
    return SoakConfig(
        args.runs, args.tenants, args.concurrency, args.seed, args.exit_rate, args.timeout_rate, args.kill_rate,
        not args.no_daemon_restart, not args.no_dind, args.stall_seconds,
    )  # fmt: skip


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so every `finally` (workers, DinD, Redis database) still runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def main(argv: Sequence[str] | None = None) -> None:
    config = parse_args(argv)
    exit_on_sigterm()
    console = Console() if sys.stdout.isatty() else Console(width=150)
    log_dir = Path(tempfile.mkdtemp(prefix=f"soak-{secrets.token_hex(3)}-"))
    plan, observed = run_soak(config, log_dir, console)
    report(config, plan, observed, console)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)  # workers, the inner daemon and db 11 were already cleaned by the `finally` blocks

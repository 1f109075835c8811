"""The soak's plan (runs, injected failures, disruption points; pure and seeded) and what the harness observes."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.service import Status

SOAK_DB = "redis://127.0.0.1:6379/11"  # the default Redis database of broker and results, flushed by the soak
TOOL_TIMEOUT, INJECTED_TIMEOUT = 10, 2
EXPECTED = {"none": Status.OK, "exit": Status.TOOL_FAILED, "timeout": Status.TIMED_OUT}


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
    redis_url: str = SOAK_DB


@dataclass(frozen=True)
class PlannedRun:
    """One run: its task id, tenant, run id, the failure injected into it and the marker it must read back."""

    task_id: str
    tenant: str
    run_id: str
    failure: str
    marker: str

    @property
    def expected(self) -> Status:
        """The status the injected failure calls for."""
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

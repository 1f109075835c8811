"""What a run's steps share: the services made once per worker process, and the context of one delivery."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import docker
import redis
from celery import Task

import isolation
from config import Settings
from tasks.artifacts import Artifacts
from tasks.scope.check import Checker
from tasks.scope.host import Span
from tasks.scope.matcher import Scope
from tasks.scope.store import Scopes
from tasks.service import Reporter, RunPlan, RunRequest, Stage
from tasks.tools import ToolSpec
from tasks.worker.cache import Cached
from tasks.worker.chunks import ChunkOf
from tasks.worker.delivery import Delivery
from tasks.worker.progress import reporter


@dataclass(frozen=True)
class Services:
    """The dependencies of every step, injected once (what arq's `ctx` and dramatiq's middleware hold).

    The engine client is made at its first use, not here: an engine that is away then (a restart) raises
    DockerUnavailableError inside the run's steps, which retry it like any other engine call.
    """

    engine: Callable[[], docker.DockerClient]
    redis: redis.Redis
    settings: Settings
    catalogue: Mapping[str, ToolSpec]
    scopes: Scopes
    scope_checker: Checker
    artifacts: Artifacts | None = None
    images: isolation.SeenImages = field(default_factory=isolation.SeenImages)


def _unguarded(report: Reporter) -> Reporter:
    return report


@dataclass
class Run:
    """One delivery of a run message on its way through the steps: what it asks for and what steps found out.

    `plan` exists once the plan step validated the request; `cached` once the cache step looked it up;
    `guard` is the run control's (a reporter that raises a cancel or a drain); `earlier` says whether an
    earlier delivery or try of this run happened (its leftovers are removed before the tool runs again);
    `scope` is the tenant's scope the scope step checked the targets against (None while scope is off);
    `reached` where its tool connects (addresses and networks, as the scope step read and resolved them), and
    `rate` the requests per second per host admission gave it (0: no host lease, the tool's own rate).
    """

    task: Task
    request: RunRequest
    services: Services
    cached: Cached = field(default_factory=Cached)
    guard: Callable[[Reporter], Reporter] = _unguarded
    scope: Scope | None = None
    reached: list[Span] = field(default_factory=list)
    resolved: dict[str, list[str]] = field(default_factory=dict)  # each name target's addresses at admission
    rate: float = 0.0
    chunk: ChunkOf | None = None  # a chunk of a parent (the chunk step found it), counted once it ends
    chunk_counted: bool = False
    ended: bool = False  # the finished step recorded the run's end (its result kept, its webhook event)
    earlier: bool = field(init=False)
    _plan: RunPlan | None = None

    def __post_init__(self) -> None:
        self.earlier = bool(self.task.request.retries)  # a retry follows a try that lost the engine

    @property
    def plan(self) -> RunPlan:
        """The validated plan (the plan step, first in line, sets it)."""
        if self._plan is None:
            raise RuntimeError("the run has no plan yet: the plan step comes first")
        return self._plan

    @plan.setter
    def plan(self, plan: RunPlan) -> None:
        self._plan = plan

    @property
    def planned(self) -> bool:
        """Whether the plan step validated the request."""
        return self._plan is not None

    @property
    def task_id(self) -> str:
        """The id of the task message: the run's id in Celery."""
        return str(self.task.request.id)

    @property
    def eager(self) -> bool:
        """Run in this process with no worker and no broker (the CLI without TOOLRUNNER_BROKER_URL)."""
        return bool(self.task.request.is_eager)

    @cached_property
    def delivery(self) -> Delivery:
        """The run this message asks for, keyed on all of it (locks, counters, leftovers)."""
        return Delivery(self.task_id, self.plan.spec.name, self.plan.tenant_id, self.plan.run_id)

    @cached_property
    def _reporter(self) -> Reporter:
        return reporter(self.task, self.plan.spec.name, self.plan.tenant_id, self.plan.run_id)

    def reporter(self) -> Reporter:
        """The run's progress reporter, guarded by its run control once it has one."""
        return self.guard(self._reporter)

    def report(self, stage: Stage, meta: Mapping[str, Any]) -> None:
        """Report progress: PROGRESS with the stage, and an event for Flower."""
        self.reporter()(stage, meta)

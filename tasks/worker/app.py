"""The Celery app: configured lazily from config/ (nothing reads the environment at import time)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

import docker
import redis
from celery import Celery
from kombu.utils.uuid import uuid

import isolation
from beat_schedule import build_schedule
from config import Settings, celery_config, load_settings
from tasks.artifacts import Artifacts, open_artifacts
from tasks.scope.check import Checker
from tasks.scope.policy import checker
from tasks.scope.store import Scopes
from tasks.service.outputs import artifact_config
from tasks.tools import ToolSpec, load_catalogue
from tasks.worker import broker, targets
from tasks.worker.delivery import Delivery, bind_run, claim_identity
from tasks.worker.monitor import redact_options
from tasks.worker.visibility import VisibilityHeartbeat


class ToolrunnerCelery(Celery):  # type: ignore[misc]
    """A Celery app that owns the settings, the tool catalogue and the Docker client of its process."""

    @cached_property
    def settings(self) -> Settings:
        """Settings, read from the environment once, on first use."""
        return load_settings()

    @cached_property
    def catalogue(self) -> Mapping[str, ToolSpec]:
        """Built-in tools plus those of TOOLRUNNER_EXTRA_TOOL_MODULES."""
        return load_catalogue(self.settings.extra_tool_modules)

    @cached_property
    def redis(self) -> redis.Redis:
        """A Redis client on the broker, for delivery counters and locks."""
        return redis.Redis.from_url(self.settings.broker)

    @cached_property
    def scopes(self) -> Scopes:
        """Tenants' scopes as Redis holds them, compiled once per change."""
        return Scopes(self.redis)

    @cached_property
    def scope_checker(self) -> Checker:
        """The deny list, private ranges, allowed resolvers and the admission resolver, from the settings."""
        return checker(self.settings)

    @cached_property
    def artifacts(self) -> Artifacts:
        """The artifact store, its keys checked (an s3:// store without a master key refuses to open)."""
        return open_artifacts(artifact_config(self.settings))

    @cached_property
    def docker_client(self) -> docker.DockerClient:
        """One Docker client per worker process (DOCKER_HOST and friends from the environment)."""
        return isolation.connect(None)

    def send_task(self, name: str, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Publish a task; a run is first bound to its task id, so a reused id raises and queues nothing.

        Every publish of a run through this app comes here: `run_tool.delay` / `apply_async` (Celery's
        Task.apply_async calls send_task), `app.send_task`, and the republish of parked runs. A run message
        also carries an expiry (at most TOOLRUNNER_MAX_WAIT_SECONDS from now, or the producer's own when
        sooner), so no copy of it can start after its id's binding or a cancel of it has lapsed. Its argsrepr and
        kwargsrepr (what events and Flower show) name the tool, tenant and run only: never params or input files.
        """
        redact_options(name, args, kwargs, options)
        bound = bind_run(name, args or (), kwargs or {})
        if bound is not None:
            options["task_id"] = options.get("task_id") or uuid()
            _claim_at_publish(self.redis, self.settings, str(options["task_id"]), bound)
            spec = self.catalogue.get(str(bound.get("tool")))
            offloaded = targets.offload(lambda: self.artifacts, spec, str(options["task_id"]), bound)
            if offloaded is not None:  # a big run's targets beside its message, not in it
                args, kwargs = targets.with_params(name, args, kwargs, offloaded)
            if options.get("expires") is None:
                options["expires"] = self.settings.max_wait_seconds
        return super().send_task(name, args, kwargs, **options)


def _claim_at_publish(redis_client: redis.Redis, settings: Settings, task_id: str, bound: dict[str, Any]) -> None:
    """Bind the id to (tool, tenant, run); TaskIdentityError if another run holds it. Ids that are not valid
    identifiers are left to the worker, which fails the run with the reason (they cannot name a key here)."""
    try:
        ids = [isolation.validate_identifier(k, bound.get(k)) for k in ("tool", "tenant_id", "run_id")]
    except isolation.InvalidIdentifierError:
        return
    claim_identity(redis_client, Delivery(task_id, *ids), ttl=settings.identity_ttl)


def _configuration() -> dict[str, Any]:
    return {**celery_config(app.settings), "beat_schedule": build_schedule(app.settings)}


broker.install()  # before the first connection of this process: see tasks/worker/broker.py
app = ToolrunnerCelery("toolrunner")
app.steps["consumer"].add(VisibilityHeartbeat)
# Evaluated when the configuration is first read (worker start, first send), not at import.
app.add_defaults(_configuration)

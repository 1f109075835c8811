"""The Celery app: configured lazily from config/ (nothing reads the environment at import time)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

import docker
import redis
from celery import Celery

import isolation
from beat_schedule import build_schedule
from config import Settings, celery_config, load_settings
from tasks.artifacts import Artifacts, open_artifacts
from tasks.service.outputs import artifact_config
from tasks.tools import ToolSpec, load_catalogue
from tasks.worker import broker
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
    def artifacts(self) -> Artifacts:
        """The artifact store, its keys checked (an s3:// store without a master key refuses to open)."""
        return open_artifacts(artifact_config(self.settings))

    @cached_property
    def docker_client(self) -> docker.DockerClient:
        """One Docker client per worker process (DOCKER_HOST and friends from the environment)."""
        return isolation.connect(None)


def _configuration() -> dict[str, Any]:
    return {**celery_config(app.settings), "beat_schedule": build_schedule(app.settings)}


broker.install()  # before the first connection of this process: see tasks/worker/broker.py
app = ToolrunnerCelery("toolrunner")
app.steps["consumer"].add(VisibilityHeartbeat)
# Evaluated when the configuration is first read (worker start, first send), not at import.
app.add_defaults(_configuration)

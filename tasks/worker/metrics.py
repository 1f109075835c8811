"""Prometheus metrics of the worker: volumes, lifecycle stages, bytes, tool runs; served by the main process.

A prefork worker records in its child processes, so metrics use prometheus_client's multiprocess mode:
the main process picks a directory before the pool forks and serves what every child wrote there.
The metric objects are made lazily, in the children, once that mode is on.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis
from celery.signals import celeryd_after_setup, worker_shutdown

from config import Settings, docker_tls_files
from tasks.service import Stage, Status
from tasks.worker import diskguard, fairshare, health
from tasks.worker.app import app

logger = logging.getLogger(__name__)

_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600, 86400)
_TOOL_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600)
# Per-tenant gauges name at most this many tenants (the busiest: most running + waiting); the rest are summed
# under tenant="_other". Tenant ids are unbounded in a SaaS; a Prometheus series per tenant is not. Hosts alike.
TENANT_SERIES = 20
OTHER_TENANTS = "_other"


@dataclass(frozen=True)
class Metrics:
    """The worker's metric objects; it is the run service's RunMetrics."""

    volumes_created: Any
    volumes_removed: Any
    volume_cleanup_failures: Any
    sweep_removed: Any
    stage_seconds: Any
    bytes_in: Any
    bytes_out: Any
    tool_runs: Any
    tool_seconds: Any
    cache_lookups: Any
    reaper_last_run: Any
    sweep_last_success: Any
    webhook_deliveries: Any
    webhook_dead_letters: Any
    webhook_lag: Any

    def stage_took(self, stage: Stage, seconds: float) -> None:
        """A lifecycle stage ended after this many seconds."""
        self.stage_seconds.labels(stage.value).observe(seconds)

    def volume_done(self, removed: bool) -> None:
        """A volume the run created was removed (or failed to be)."""
        self.volumes_created.inc()
        (self.volumes_removed if removed else self.volume_cleanup_failures).inc()

    def run_done(self, tool: str, status: Status, tool_seconds: float, bytes_in: int, bytes_out: int) -> None:
        """A run ended with this status."""
        self.tool_runs.labels(tool, status.value).inc()
        self.tool_seconds.labels(tool).observe(tool_seconds)
        self.bytes_in.inc(bytes_in)
        self.bytes_out.inc(bytes_out)


@cache
def metrics() -> Metrics | None:
    """The metric objects, or None when this worker exposes no metrics (no TOOLRUNNER_METRICS_PORT)."""
    if app.settings.metrics_port is None or _DIR_VARIABLE not in os.environ:
        return None
    return build_metrics()


def build_metrics(registry: Any = None) -> Metrics:
    """The metric objects, registered in `registry` (None: prometheus_client's default, which multiprocess mode
    writes to files)."""
    from prometheus_client import REGISTRY, Counter, Gauge, Histogram

    registry = REGISTRY if registry is None else registry

    return Metrics(
        volumes_created=Counter("toolrunner_volumes_created", "Isolated volumes created", registry=registry),
        volumes_removed=Counter(
            "toolrunner_volumes_removed", "Isolated volumes removed after a run", registry=registry
        ),
        volume_cleanup_failures=Counter(
            "toolrunner_volume_cleanup_failures", "Volumes a run failed to remove", registry=registry
        ),
        sweep_removed=Counter(
            "toolrunner_sweep_removed_volumes", "Orphaned volumes removed by the sweep", registry=registry
        ),
        stage_seconds=Histogram(
            "toolrunner_stage_duration_seconds",
            "Duration of each lifecycle stage",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=registry,
        ),
        bytes_in=Counter("toolrunner_input_bytes", "Bytes of input files written to volumes", registry=registry),
        bytes_out=Counter("toolrunner_output_bytes", "Bytes of output files read from volumes", registry=registry),
        tool_runs=Counter(
            "toolrunner_tool_runs", "Tool runs by tool and status", ["tool", "status"], registry=registry
        ),
        tool_seconds=Histogram(
            "toolrunner_tool_duration_seconds",
            "Wall-clock duration of tool containers",
            ["tool"],
            buckets=_TOOL_BUCKETS,
            registry=registry,
        ),
        # Labels: tool (the catalogue, bounded) and outcome (hits, misses, waits); never the tenant.
        cache_lookups=Counter(
            "toolrunner_cache_lookups",
            "Result cache lookups by tool and outcome",
            ["tool", "outcome"],
            registry=registry,
        ),
        # Timestamps, so "max" across the processes' files is the latest (the reaper is the main process's,
        # sweeps run in the main process at start and in the pool children after).
        reaper_last_run=Gauge(
            "toolrunner_reaper_last_run_timestamp_seconds",
            "End of the deadline reaper's last pass that reached the daemon",
            multiprocess_mode="max",
            registry=registry,
        ),
        sweep_last_success=Gauge(
            "toolrunner_sweep_last_success_timestamp_seconds",
            "End of this worker's last completed orphan sweep of its daemon",
            multiprocess_mode="max",
            registry=registry,
        ),
        # Pinned (the alert rules use them): outcome is delivered, failed, refused, gone or dropped.
        webhook_deliveries=Counter(
            "toolrunner_webhook_deliveries", "Webhook delivery attempts by outcome", ["outcome"], registry=registry
        ),
        webhook_dead_letters=Counter(
            "toolrunner_webhook_dead_letters", "Webhook events given up on (dead-lettered)", registry=registry
        ),
        webhook_lag=Histogram(
            "toolrunner_webhook_lag_seconds",
            "From a run's final state stored to its receiver's 2xx",
            buckets=_LAG_BUCKETS,
            registry=registry,
        ),
    )


class _LoadCollector:
    """Running and waiting runs per label value, read from Redis at scrape time (the whole fleet, not this worker):
    two gauge families, the busiest `top` by name and the rest summed as _other."""

    label: str
    running_help: str
    waiting_help: str

    def __init__(self, redis_client: redis.Redis, top: int = TENANT_SERIES) -> None:
        self._redis, self._top = redis_client, top

    def loads(self) -> Sequence[fairshare.TenantLoad | fairshare.HostLoad]:
        """What to count, from Redis."""
        raise NotImplementedError

    def collect(self) -> Iterator[Any]:
        """The two gauge families, `toolrunner_<label>_running` and `toolrunner_<label>_waiting`."""
        from prometheus_client.core import GaugeMetricFamily

        label = self.label
        running = GaugeMetricFamily(f"toolrunner_{label}_running", self.running_help, labels=[label])
        waiting = GaugeMetricFamily(f"toolrunner_{label}_waiting", self.waiting_help, labels=[label])
        for name, load in bounded(self.loads(), self._top).items():
            running.add_metric([name], load[0])
            waiting.add_metric([name], load[1])
        yield running
        yield waiting


class TenantCollector(_LoadCollector):
    """Running and waiting runs per tenant (fair share)."""

    label, running_help, waiting_help = "tenant", "Runs holding a tenant slot", "Runs waiting for a tenant slot"

    def loads(self) -> Sequence[fairshare.TenantLoad]:
        """Every tenant seen in the last hour."""
        return fairshare.loads(self._redis)


class HostCollector(_LoadCollector):
    """Running and waiting runs per host key, an address or a block (politeness)."""

    label, running_help, waiting_help = "host", "Runs holding a lease on a host", "Runs waiting for a host"

    def loads(self) -> Sequence[fairshare.HostLoad]:
        """Every host key with a live lease or a run waiting for it."""
        return fairshare.host_loads(self._redis)


def bounded(loads: Sequence[fairshare.TenantLoad | fairshare.HostLoad], top: int) -> dict[str, tuple[int, int]]:
    """The `top` busiest tenants (or hosts) by name, everyone else summed under _other (pure)."""
    ranked = sorted(loads, key=lambda load: (-(load.running + load.waiting), load.name))
    series = {load.name: (load.running, load.waiting) for load in ranked[:top]}
    rest = ranked[top:]
    if rest:
        series[OTHER_TENANTS] = (sum(load.running for load in rest), sum(load.waiting for load in rest))
    return series


def scrape_collectors(settings: Settings, broker: Callable[[], redis.Redis]) -> list[Any]:
    """What the main process reads when Prometheus scrapes, beside the children's files: disk and certificates,
    and with fair share the fleet's queue from Redis (a client of `broker()` each)."""
    found: list[Any] = [
        health.DiskCollector(health.watched_directories(settings.artifact_url)),
        health.CertificateCollector(docker_tls_files()),
        diskguard.WorkerCollector(),
    ]
    if settings.fair_share:
        found += [TenantCollector(broker()), health.QueueCollector(broker(), str(app.conf.task_default_queue))]
        if settings.politeness == "on":
            found.append(HostCollector(broker()))
    return found


@celeryd_after_setup.connect
def _serve(sender: str | None = None, **_: Any) -> None:
    """In the worker's main process, before the pool forks: pick the directory and start the HTTP server."""
    port = app.settings.metrics_port
    if port is None:
        return
    directory = os.environ.get(_DIR_VARIABLE) or tempfile.mkdtemp(prefix="toolrunner-metrics-")
    os.environ[_DIR_VARIABLE] = directory
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server, values

    # prometheus_client picks its value class when first imported, and the celery command has already
    # imported it (through Flower's command plugin): pick again, now that the directory is known, before
    # any metric exists and before the pool forks.
    values.ValueClass = values.get_value_class()

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    settings = app.settings
    for collector in scrape_collectors(settings, lambda: redis.Redis.from_url(settings.broker)):
        registry.register(collector)
    start_http_server(port, addr=app.settings.metrics_address, registry=registry)
    logger.info("metrics on :%d (worker %s, directory %s)", port, sender, directory)


@worker_shutdown.connect
def _remove_directory(**_: Any) -> None:
    directory = os.environ.get(_DIR_VARIABLE, "")
    if app.settings.metrics_port is not None and os.path.basename(directory).startswith("toolrunner-metrics-"):
        shutil.rmtree(directory, ignore_errors=True)

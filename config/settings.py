"""The one settings object, read from TOOLRUNNER_* environment variables; the only reader of os.environ."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from isolation import ContainerLimits, defaults

IMAGE_PREFIX = "TOOLRUNNER_IMAGE_"
# Resolvers a tool may be told to query (dnsx -r) unless TOOLRUNNER_SCOPE_RESOLVERS says otherwise.
PUBLIC_RESOLVERS = ("1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4", "9.9.9.9", "149.112.112.112")
CommaList = Annotated[tuple[str, ...], NoDecode]  # "a,b,c" in the environment (pinned: not JSON)


class Settings(BaseSettings):
    """Every setting of the worker, beat, Flower and the CLI; docs/configuration.md lists them."""

    model_config = SettingsConfigDict(env_prefix="TOOLRUNNER_", frozen=True, extra="ignore")

    broker_url: str | None = Field(None, description="Redis URL of the broker; unset = the CLI runs in-process")
    result_backend: str | None = Field(None, description="result backend URL; defaults to the broker URL")
    tool_network: str = Field("bridge", description="network mode of tool containers unless their spec says")
    label_prefix: str = Field(defaults.LABEL_PREFIX, description="prefix of the labels on every volume and container")

    max_timeout_seconds: int = Field(3600, ge=1, description="cap on any tool's timeout_seconds")
    time_limit_margin_seconds: int = Field(120, ge=1, description="soft limit = max timeout + this; hard = soft + this")
    visibility_timeout_seconds: int = Field(
        60, ge=10, description="Redis redelivers a message whose worker stopped renewing it for this long"
    )
    visibility_heartbeat_seconds: float = Field(
        10, gt=0, description="how often each worker renews the messages it holds, so live runs are never redelivered"
    )
    max_wait_seconds: int = Field(
        86400, ge=60, description="the longest a run may wait parked for a slot; past it, it ends FAILED, never runs"
    )
    reaper_interval_seconds: float = Field(
        60, gt=0, description="how often each worker kills and removes its daemon's containers past their deadline"
    )
    max_redeliveries: int = Field(2, ge=0, description="times a task whose worker died is run again")
    max_input_bytes: int = Field(64 << 20, ge=0, description="cap on the total size of a run's input files")
    max_chunked_targets: int = Field(
        1_000_000, ge=1, description="cap on a chunked run's targets (addresses, for tools that count them)"
    )
    chunk_retries: int = Field(1, ge=0, le=5, description="times a failed or timed-out chunk runs again on its own")
    max_output_file_bytes: int = Field(
        10 << 30, ge=1, description="cap on one output file streamed back (to disk and the artifact store)"
    )
    max_output_total_bytes: int = Field(20 << 30, ge=1, description="cap on all output files of a run")
    min_free_disk_bytes: int = Field(
        5 << 30, ge=0, description="below this free on its spool or file artifact store, a worker takes no runs"
    )
    output_read_timeout_seconds: float = Field(
        defaults.READ_TIMEOUT_SECONDS, gt=0, description="how long reading a run's outputs back may take"
    )
    inline_findings_bytes: int = Field(
        1 << 20, ge=1024, description="findings JSON a result carries; past it the rest is counted, not inlined"
    )
    stdout_tail_bytes: int = Field(8192, ge=0, description="bytes of stdout/stderr kept in results")

    memory_limit: str = Field(defaults.MEMORY, description="tool container memory limit (Docker syntax)")
    cpus: float = Field(defaults.CPUS, gt=0, description="tool container CPU limit")
    pids_limit: int = Field(defaults.PIDS, ge=16, description="tool container process limit")
    tmpfs_size: str = Field(defaults.TMPFS_SIZE, description="size of the tool container's /tmp tmpfs")
    file_size_limit: int = Field(10 << 30, ge=1 << 20, description="RLIMIT_FSIZE of tool processes, bytes")

    nofile_limit: int = Field(defaults.NOFILE, ge=16, description="open-files limit (soft = hard) of tool processes")
    pull_timeout_seconds: float = Field(
        defaults.PULL_TIMEOUT_SECONDS, gt=0, description="how long a run waits for a missing image's pull"
    )

    docker_retries: int = Field(5, ge=0, description="retries of a run when the Docker Engine is unreachable")
    sweep_max_age_hours: float = Field(24, ge=0, description="age after which the sweep removes leftovers")
    sweep_cron: str = Field("0 * * * *", description="crontab (m h dom mon dow) of the orphan sweep")
    result_expires_seconds: int = Field(
        86400, ge=1, description="how long results stay in the backend (then `result.json` in the artifact store)"
    )
    metrics_port: int | None = Field(None, ge=0, le=65535, description="worker Prometheus port; unset = off")
    metrics_address: str = Field("127.0.0.1", description="address the worker's metrics server binds to")
    extra_tool_modules: list[str] = Field(default_factory=list, description="extra modules defining SPEC")

    artifact_url: str = Field(
        "file:///var/lib/toolrunner/artifacts", description="artifact store: file:///path or s3://bucket/prefix"
    )
    artifact_master_key: SecretStr | None = Field(
        None, description="base64 of 32 random bytes; required for s3://; file:// creates <store>.master-key"
    )
    artifact_retention_days: int = Field(30, ge=1, description="days artifacts and their index entries are kept")
    artifact_max_bytes: int = Field(10 << 30, ge=1 << 20, description="cap on one artifact's plaintext bytes")
    artifact_s3_endpoint_url: str | None = Field(None, description="S3-compatible endpoint (MinIO, Ceph); unset = AWS")
    artifact_s3_region: str | None = Field(None, description="S3 region; unset = AWS_REGION / AWS config")
    artifact_s3_access_key_id: str | None = Field(None, description="unset = the usual AWS credential chain")
    artifact_s3_secret_access_key: SecretStr | None = Field(None, description="unset = the usual AWS credential chain")
    artifact_s3_part_size: int = Field(8 << 20, ge=5 << 20, description="multipart part size; ~5 parts of memory")
    artifact_sweep_cron: str = Field("30 3 * * *", description="crontab of the artifact retention sweep")

    audit_key: SecretStr | None = Field(
        None, description="base64 of 32 random bytes: seals the audit trail; operators hold it, tenants never"
    )
    audit_retention_days: int = Field(400, ge=1, description="days audit segments and their target lists are kept")
    audit_segment_seconds: int = Field(
        3600, ge=1, le=86400, description="a worker's audit segment period: one object per period, empty ones too"
    )
    audit_spool_dir: str | None = Field(
        None, description="where a worker spools audit events before they are stored; unset = $TMPDIR/toolrunner-audit"
    )
    egress_address: str | None = Field(
        None, description="the address the worker's scans leave from, as the audit records it; unset = detected"
    )

    flower_user: str | None = Field(None, description="Flower basic-auth user")
    flower_password: SecretStr | None = Field(None, description="Flower basic-auth password")
    flower_address: str = Field("127.0.0.1", description="address Flower binds to")
    flower_port: int = Field(5555, ge=1, le=65535, description="port Flower listens on")
    flower_insecure_dev: bool = Field(False, description="allow Flower without auth (local dev only)")

    tenant_max_running: int = Field(
        4, ge=1, description="the most runs of one tenant running at once across every worker (a hard cap)"
    )
    fair_share: bool = Field(True, description="dispatch tenants' waiting runs round-robin; false = plain FIFO")
    lease_ttl_seconds: int = Field(
        30, ge=5, le=59, description="a dead worker's tenant slots come back after this (leases renewed at a third)"
    )
    cache_max_age_seconds: int = Field(
        86400, ge=0, description="cap on a request's cache_max_age_seconds; below the artifact retention"
    )
    cache_salt: str = Field("", description="namespace of the result cache: change it to disown every entry")

    scope: Literal["enforce", "off"] = Field(
        "enforce", description="enforce: a run's targets must be in its tenant's scope; off: single-tenant only"
    )
    scope_max_prefix_v4: int = Field(16, ge=0, le=32, description="widest IPv4 network a scope entry may be")
    scope_max_prefix_v6: int = Field(48, ge=0, le=128, description="widest IPv6 network a scope entry may be")
    scope_deny: CommaList = Field((), description="CIDRs and domains no scope opens (metadata and link-local always)")
    scope_allow_private: CommaList = Field(
        (), description="private, loopback or reserved CIDRs a scope may hold (comma-separated; none by default)"
    )
    scope_resolvers: CommaList = Field(
        PUBLIC_RESOLVERS, description="DNS servers a tenant may tell a tool to query (comma-separated addresses)"
    )
    scope_resolver: str | None = Field(
        None, description="DNS server (address[:port]) that resolves names at admission; unset = the system's"
    )
    scope_resolve_timeout_seconds: float = Field(
        5, gt=0, le=60, description="how long resolving a run's names at admission may take before it is refused"
    )

    politeness: Literal["on", "off"] = Field(
        "on", description="on: host leases and a request budget per scanned host, across tenants and workers"
    )
    host_max_running: int = Field(
        2, ge=1, le=1000, description="the most runs touching one host at once across every tenant and worker"
    )
    host_max_rps: float = Field(
        50, ge=1, le=100_000, description="requests (packets, for port scanners) per second one host may receive"
    )
    host_wide_after: int = Field(
        16, ge=1, le=4096, description="past this many addresses a run is keyed by /24 and /64 blocks, not addresses"
    )

    webhook_allow_http: bool = Field(False, description="allow plain http:// webhook URLs (development only)")
    webhook_ca_bundle: str | None = Field(
        None, description="PEM file of the CAs webhook receivers' certificates are checked against; unset = system's"
    )
    webhook_allow_networks: CommaList = Field(
        (), description="loopback, private or link-local CIDRs webhooks may reach (comma-separated; never metadata)"
    )
    webhook_max_age_seconds: int = Field(
        86400, ge=1, description="how long an event is retried before it is dead-lettered"
    )
    webhook_backoff_seconds: float = Field(
        5, gt=0, description="delay before an event's first retry; doubles, jittered"
    )
    webhook_backoff_max_seconds: float = Field(3600, gt=0, description="the longest delay between two retries")
    webhook_connect_timeout_seconds: float = Field(5, gt=0, le=60, description="a delivery's connect and TLS timeout")
    webhook_read_timeout_seconds: float = Field(10, gt=0, le=120, description="a delivery's wait for the response")
    webhook_log_days: int = Field(14, ge=1, le=365, description="days a tenant's webhook delivery log is kept")
    webhook_rotation_overlap_seconds: int = Field(
        86400, ge=0, description="how long the secret a rotate replaced still signs beside the new one"
    )
    webhook_poll_seconds: float = Field(1, gt=0, le=60, description="how often each worker looks for due events")

    image_overrides: dict[str, str] = Field(
        default_factory=dict, description="per-tool images, from TOOLRUNNER_IMAGE_<TOOL>"
    )

    @field_validator("scope_deny", "scope_allow_private", "scope_resolvers", "webhook_allow_networks", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return tuple(item.strip() for item in value.split(",") if item.strip()) if isinstance(value, str) else value

    @field_validator("sweep_cron", "artifact_sweep_cron")
    @classmethod
    def _five_cron_fields(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError("a crontab needs five fields: minute hour day-of-month month day-of-week")
        return value

    @model_validator(mode="after")
    def _politeness_needs_admission(self) -> Settings:
        # Host leases are taken by fair share's admission: without it no host would be protected, silently.
        if self.politeness == "on" and not self.fair_share:
            raise ValueError(
                "TOOLRUNNER_POLITENESS=on needs TOOLRUNNER_FAIR_SHARE=true (host leases are taken at admission): "
                "turn fair share back on, or set TOOLRUNNER_POLITENESS=off to run without host limits"
            )
        return self

    @model_validator(mode="after")
    def _sweep_spares_running_tools(self) -> Settings:
        problem = self.sweep_age_problem(self.sweep_max_age_hours, "sweep_max_age_hours")
        if problem:
            raise ValueError(problem)
        return self

    def sweep_age_problem(self, hours: float, name: str) -> str | None:
        """Why a sweep age (`name`, as the caller spells it) is refused; None when it spares every running tool."""
        # The sweep force-removes managed containers older than its age: below the longest run it would
        # kill tool containers that are still running as they should.
        if hours * 3600 > self.hard_time_limit:
            return None
        return (
            f"{name}={hours:g} ({hours * 3600:g}s) must exceed the longest run, {self.hard_time_limit}s "
            "(max_timeout_seconds plus two time_limit_margin_seconds): the sweep would remove running tool containers"
        )

    @model_validator(mode="after")
    def _heartbeat_outpaces_visibility(self) -> Settings:
        # Three missed beats before a live worker's messages look abandoned: one slow beat is not a redelivery.
        if self.visibility_heartbeat_seconds * 3 > self.visibility_timeout_seconds:
            raise ValueError(
                f"visibility_heartbeat_seconds={self.visibility_heartbeat_seconds:g} must be at most a third of "
                f"visibility_timeout_seconds={self.visibility_timeout_seconds}: live runs would be delivered twice"
            )
        return self

    @model_validator(mode="after")
    def _cache_outlived_by_artifacts(self) -> Settings:
        # A cache hit hands back the original run's artifact URIs: they must still exist for as long as a hit can.
        if self.cache_max_age_seconds >= self.artifact_retention_days * 86400:
            raise ValueError(
                f"cache_max_age_seconds={self.cache_max_age_seconds} must stay below the artifact retention "
                f"({self.artifact_retention_days} days = {self.artifact_retention_days * 86400}s): "
                "a cache hit would point at deleted artifacts"
            )
        return self

    @property
    def broker(self) -> str:
        """The broker URL the Celery app uses (a local Redis when none is configured)."""
        return self.broker_url or "redis://127.0.0.1:6379/0"

    @property
    def backend(self) -> str:
        """The result backend URL."""
        return self.result_backend or self.broker

    @property
    def soft_time_limit(self) -> int:
        """Celery's soft limit: the longest tool timeout plus time to read outputs and clean up."""
        return self.max_timeout_seconds + self.time_limit_margin_seconds

    @property
    def hard_time_limit(self) -> int:
        """Celery's hard limit, after which the child is killed and the sweep finds the leftovers."""
        return self.soft_time_limit + self.time_limit_margin_seconds

    @property
    def visibility_timeout(self) -> int:
        """Redis redelivers an unacked task after this long without its worker's heartbeat (not the run's length)."""
        return self.visibility_timeout_seconds

    @property
    def redelivery_window(self) -> int:
        """The longest a delivery can take before the next one of the same message: a whole run, then a timeout."""
        return self.hard_time_limit + self.visibility_timeout

    @property
    def identity_ttl(self) -> int:
        """How long a task id stays bound to its run, and a cancel of it kept: one lifetime for both.

        It covers waiting parked, every redelivery of its message and the result's lifetime, so neither
        expires while the run could still be delivered or read.
        """
        deliveries = self.redelivery_window * (self.max_redeliveries + 2)
        return self.max_wait_seconds + deliveries + self.result_expires_seconds

    def container_limits(self) -> ContainerLimits:
        """The resource caps of every tool container."""
        return ContainerLimits(
            memory=self.memory_limit,
            cpus=self.cpus,
            pids=self.pids_limit,
            tmpfs_size=self.tmpfs_size,
            file_size_bytes=self.file_size_limit,
            nofile=self.nofile_limit,
        )

    def image_for(self, tool: str, default: str) -> str:
        """The image a tool runs: its TOOLRUNNER_IMAGE_<TOOL> override, or the catalogue's pin."""
        return self.image_overrides.get(tool.lower(), default)


def load_settings() -> Settings:
    """Build the settings from the environment, collecting TOOLRUNNER_IMAGE_<TOOL> overrides."""
    overrides = {k[len(IMAGE_PREFIX) :].lower(): v for k, v in os.environ.items() if k.startswith(IMAGE_PREFIX) and v}
    return Settings(image_overrides=overrides)


def docker_tls_files(environ: Mapping[str, str] | None = None) -> dict[str, Path]:
    """The client certificate and CA the Docker SDK loads to reach DOCKER_HOST over TLS ({} without TLS): its own
    rule (docker.utils.kwargs_from_env), so the files watched are the files the worker's client uses."""
    environ = os.environ if environ is None else environ
    cert_path = environ.get("DOCKER_CERT_PATH") or None
    if not cert_path and environ.get("DOCKER_TLS_VERIFY") in (None, ""):
        return {}
    directory = Path(cert_path or Path.home() / ".docker")
    return {"client": directory / "cert.pem", "ca": directory / "ca.pem"}

"""Per-tenant (and per-tenant-per-tool) caps stored in Redis, read by every admission: change them at run time."""

from __future__ import annotations

from dataclasses import dataclass

import redis

import isolation
from tasks.worker import keys
from tasks.worker.fairshare import text


@dataclass(frozen=True)
class Limit:
    """One override: a tenant's cap, or its cap for one tool when `tool` is set."""

    tenant_id: str
    tool: str | None
    max_running: int


def _field(tenant_id: str, tool: str | None) -> str:
    # Checked as every run's ids are (no ':' in either), so "<tenant>:<tool>" names exactly one override.
    isolation.validate_identifier("tenant_id", tenant_id)
    if tool is not None:
        isolation.validate_identifier("tool", tool)
    return f"{tenant_id}:{tool}" if tool else tenant_id


def set_limit(redis_client: redis.Redis, tenant_id: str, max_running: int, tool: str | None = None) -> None:
    """Cap a tenant's (or a tenant's tool's) running runs; the next admission uses it."""
    if max_running < 1:
        raise ValueError("max_running must be at least 1")
    redis_client.hset(keys.LIMITS(), _field(tenant_id, tool), max_running)


def unset_limit(redis_client: redis.Redis, tenant_id: str, tool: str | None = None) -> bool:
    """Drop an override (back to TOOLRUNNER_TENANT_MAX_RUNNING, or no tool cap); True if there was one."""
    return bool(redis_client.hdel(keys.LIMITS(), _field(tenant_id, tool)))


def show_limits(redis_client: redis.Redis, tenant_id: str | None = None) -> list[Limit]:
    """Every override, or those of one tenant, sorted."""
    found = []
    for raw_field, raw_value in redis_client.hgetall(keys.LIMITS()).items():
        tenant, _, tool = text(raw_field).partition(":")
        if tenant_id is None or tenant == tenant_id:
            found.append(Limit(tenant, tool or None, int(text(raw_value))))
    return sorted(found, key=lambda limit: (limit.tenant_id, limit.tool or ""))

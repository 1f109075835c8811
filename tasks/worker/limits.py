"""Per-tenant (and per-tenant-per-tool) caps stored in Redis, read by every admission, and which tenants may run
intrusive tools (ToolSpec.intrusive), read before every such run: change them at run time."""

from __future__ import annotations

from dataclasses import dataclass

import redis

import isolation
from tasks.worker import keys
from tasks.worker.luascript import text


@dataclass(frozen=True)
class Limit:
    """One override: a tenant's cap, or its cap for one tool when `tool` is set."""

    tenant_id: str
    tool: str | None
    max_running: int | None  # None: the default cap (a tenant listed for its intrusive opt-in only)
    allow_intrusive: bool = False  # the tenant's opt-in (rows without a tool only)


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


def allow_intrusive(redis_client: redis.Redis, tenant_id: str, allowed: bool = True) -> bool:
    """Opt a tenant in to intrusive tools (or out, with allowed=False); True if that changed anything.

    The next run of an intrusive tool on every worker reads it; a parked run reads it again when it is let in.
    """
    isolation.validate_identifier("tenant_id", tenant_id)
    if allowed:
        return bool(redis_client.sadd(keys.INTRUSIVE(), tenant_id))
    return bool(redis_client.srem(keys.INTRUSIVE(), tenant_id))


def intrusive_allowed(redis_client: redis.Redis, tenant_id: str) -> bool:
    """Whether an operator opted the tenant in to intrusive tools (one SISMEMBER; absent: not)."""
    return bool(redis_client.sismember(keys.INTRUSIVE(), tenant_id))


def show_limits(redis_client: redis.Redis, tenant_id: str | None = None) -> list[Limit]:
    """Every override and opt-in, or those of one tenant, sorted (an opted-in tenant without a cap of its own has a
    row with max_running None)."""
    opted = {text(member) for member in redis_client.smembers(keys.INTRUSIVE())}
    found = []
    for raw_field, raw_value in redis_client.hgetall(keys.LIMITS()).items():
        tenant, _, tool = text(raw_field).partition(":")
        found.append(Limit(tenant, tool or None, int(text(raw_value)), not tool and tenant in opted))
    capped = {limit.tenant_id for limit in found if limit.tool is None}
    found += [Limit(tenant, None, None, True) for tenant in opted - capped]
    found = [limit for limit in found if tenant_id is None or limit.tenant_id == tenant_id]
    return sorted(found, key=lambda limit: (limit.tenant_id, limit.tool or ""))

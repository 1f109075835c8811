"""The scope tests and benchmarks give their tenants: loopback only, with loopback allowed as a private range.

Scope stays enforced in the suite and the benchmarks (TOOLRUNNER_SCOPE=enforce, the default): every worker they
start gets ENVIRONMENT, and every tenant that scans gets LOOPBACK through `grant`, from this one place.
"""

from __future__ import annotations

import redis

import tasks.scope

LOOPBACK = "127.0.0.0/16"  # the widest IPv4 entry the default TOOLRUNNER_SCOPE_MAX_PREFIX_V4 (16) allows
ENVIRONMENT = {"TOOLRUNNER_SCOPE_ALLOW_PRIVATE": "127.0.0.0/8"}


def grant(client: redis.Redis, *tenants: str) -> None:
    """Let each tenant scan loopback addresses (what every test and benchmark target listens on)."""
    for tenant in tenants:
        tasks.scope.add(tenant, [LOOPBACK], connection=client)


def revoke(client: redis.Redis, *tenants: str) -> None:
    """Drop each tenant's scope again."""
    for tenant in tenants:
        tasks.scope.clear(tenant, connection=client)

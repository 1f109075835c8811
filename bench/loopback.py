"""The scope and host limits tests and benchmarks give their tenants and workers: loopback only, with loopback
allowed as a private range, and hosts limited for a machine where every target is 127.0.0.1.

Scope stays enforced in the suite and the benchmarks (TOOLRUNNER_SCOPE=enforce, the default) and politeness on:
every worker they start gets ENVIRONMENT, and every tenant that scans gets LOOPBACK through `grant`, from this one
place.
"""

from __future__ import annotations

import redis

import tasks.scope

LOOPBACK = "127.0.0.0/16"  # the widest IPv4 entry the default TOOLRUNNER_SCOPE_MAX_PREFIX_V4 (16) allows
# Host politeness stays on, with limits for a machine where every test server is 127.0.0.1: the production
# defaults (2 runs and 50 req/s a host) would queue unrelated tests behind each other and slow every real scan.
# tests/integration/test_politeness.py and bench.politeness start their workers with the defaults instead.
HOST_LIMITS = {"TOOLRUNNER_HOST_MAX_RUNNING": "16", "TOOLRUNNER_HOST_MAX_RPS": "100000"}
ENVIRONMENT = {"TOOLRUNNER_SCOPE_ALLOW_PRIVATE": "127.0.0.0/8", **HOST_LIMITS}


def grant(client: redis.Redis, *tenants: str) -> None:
    """Let each tenant scan loopback addresses (what every test and benchmark target listens on)."""
    for tenant in tenants:
        tasks.scope.add(tenant, [LOOPBACK], connection=client)


def revoke(client: redis.Redis, *tenants: str) -> None:
    """Drop each tenant's scope again."""
    for tenant in tenants:
        tasks.scope.clear(tenant, connection=client)

"""The scope, opt-in and host limits tests and benchmarks give their tenants and workers: loopback only, with
loopback allowed as a private range, intrusive tools allowed, and hosts limited for a machine where every target is
127.0.0.1.

Scope stays enforced in the suite and the benchmarks (TOOLRUNNER_SCOPE=enforce, the default), intrusive tools
refused unless opted in, and politeness on: every worker they start gets ENVIRONMENT, and every tenant that scans
gets LOOPBACK and the intrusive-tools opt-in through `grant`, from this one place.
"""

from __future__ import annotations

import redis

import tasks.scope
from tasks.worker.limits import allow_intrusive

LOOPBACK = "127.0.0.0/16"  # the widest IPv4 entry the default TOOLRUNNER_SCOPE_MAX_PREFIX_V4 (16) allows
# Host politeness stays on, with limits for a machine where every test server is 127.0.0.1: the production
# defaults (2 runs and 50 req/s a host) would queue unrelated tests behind each other and slow every real scan.
# tests/integration/test_politeness.py and bench.politeness start their workers with the defaults instead.
HOST_LIMITS = {"TOOLRUNNER_HOST_MAX_RUNNING": "16", "TOOLRUNNER_HOST_MAX_RPS": "100000"}
# The same grant for a run in the CLI's own process (`toolrunner run ... --scope ... --allow-intrusive`).
CLI_FLAGS = ("--scope", LOOPBACK, "--allow-intrusive")
ENVIRONMENT = {"TOOLRUNNER_SCOPE_ALLOW_PRIVATE": "127.0.0.0/8", **HOST_LIMITS}


def grant(client: redis.Redis, *tenants: str, intrusive: bool = True) -> None:
    """Let each tenant scan loopback addresses (what every test and benchmark target listens on) and, unless
    intrusive=False, run intrusive tools (ffuf, gobuster, sqlmap), as `toolrunner limits set --allow-intrusive`."""
    for tenant in tenants:
        tasks.scope.add(tenant, [LOOPBACK], connection=client)
        allow_intrusive(client, tenant, intrusive)


def revoke(client: redis.Redis, *tenants: str) -> None:
    """Drop each tenant's scope and intrusive-tools opt-in again."""
    for tenant in tenants:
        tasks.scope.clear(tenant, connection=client)
        allow_intrusive(client, tenant, False)

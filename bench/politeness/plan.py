"""What the politeness bench runs: its phases in alternating order, each phase's runs in interleaved order, their
wordlists, the other hosts' addresses and the workers' environment."""

from __future__ import annotations

from dataclasses import dataclass

from bench import loopback
from bench.common import worker_env
from bench.recorder import EXISTING
from config import Settings

TENANTS = ("A", "B", "C")
SHARED = "127.0.0.1"


@dataclass(frozen=True)
class PlannedRun:
    """One ffuf run: its tenant, its label (run id and first path segment), and which host it fuzzes.

    `other` is None for the shared host, else the index of the other host it fuzzes.
    """

    tenant: str
    label: str
    other: int | None = None


@dataclass(frozen=True)
class Limits:
    """The host limits a phase with politeness on runs under: the production defaults."""

    max_running: int
    max_rps: float


def production_limits() -> Limits:
    """TOOLRUNNER_HOST_MAX_RUNNING and _RPS as shipped, read from the Settings model, not from this environment."""
    fields = Settings.model_fields
    return Limits(int(fields["host_max_running"].default), float(fields["host_max_rps"].default))


def phases(pairs: int) -> list[str]:
    """The phases' politeness in the order they run: off/on pairs, every other pair reversed (off on on off ...),
    so neither setting always runs second."""
    return [politeness for i in range(pairs) for politeness in (("off", "on") if i % 2 == 0 else ("on", "off"))]


def plan(phase: str, runs_per_tenant: int, others: int) -> list[PlannedRun]:
    """Each tenant's shared-host runs, round-robin, with the other-host runs (spread over the tenants) mixed in."""
    shared = [PlannedRun(tenant, f"{phase}-{tenant}-shared-{i}") for i in range(runs_per_tenant) for tenant in TENANTS]
    other = [PlannedRun(TENANTS[i % len(TENANTS)], f"{phase}-{TENANTS[i % len(TENANTS)]}-other-{i}", i)
             for i in range(others)]  # fmt: skip
    mixed: list[PlannedRun] = []
    every = max(1, len(shared) // max(1, others))  # one other-host run after every `every` shared-host runs
    for index, run in enumerate(shared):
        mixed.append(run)
        if (index + 1) % every == 0 and other:
            mixed.append(other.pop(0))
    return mixed + other


def wordlist(words: int) -> list[str]:
    """`words` words of which the recorder's existing ones (so ffuf finds something) come last."""
    found = sorted(EXISTING)
    return [f"w{i:05}" for i in range(max(0, words - len(found)))] + found


def other_addresses(count: int, *, ports: bool = False) -> list[str]:
    """Where the other hosts listen: 127.0.0.2, 127.0.0.3, ... one address each, as host leases are keyed by
    address; or (ports) one port each on 127.0.0.2, which politeness counts as one host."""
    if ports:
        return ["127.0.0.2"] * count
    if count > 250:
        raise ValueError("at most 250 other hosts fit in 127.0.0.2-127.0.0.251")
    return [f"127.0.0.{2 + i}" for i in range(count)]


def phase_env(redis_url: str, politeness: str, limits: Limits) -> dict[str, str]:
    """A phase's worker environment: the bench worker's, loopback in scope, tool containers on the host network
    (ffuf must reach the recorders), politeness as given, and the host limits at `limits`.

    The limits come last: loopback.ENVIRONMENT raises them for the test suite's workers, and a phase must run
    under the production defaults.
    """
    return {
        **worker_env(redis_url),
        **loopback.ENVIRONMENT,
        "TOOLRUNNER_TOOL_NETWORK": "host",
        "TOOLRUNNER_POLITENESS": politeness,
        "TOOLRUNNER_HOST_MAX_RUNNING": str(limits.max_running),
        "TOOLRUNNER_HOST_MAX_RPS": str(limits.max_rps),
    }

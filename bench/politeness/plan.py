"""What a politeness phase submits: the runs in interleaved order, their wordlists, and the other hosts' addresses."""

from __future__ import annotations

from dataclasses import dataclass

from bench.recorder import EXISTING

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


def other_addresses(count: int, *, spread: bool) -> list[str]:
    """Where the other hosts listen: one port each on 127.0.0.2, or (spread) 127.0.0.2, 127.0.0.3, ... one each."""
    if not spread:
        return ["127.0.0.2"] * count
    if count > 250:
        raise ValueError("at most 250 other hosts fit in 127.0.0.2-127.0.0.251")
    return [f"127.0.0.{2 + i}" for i in range(count)]

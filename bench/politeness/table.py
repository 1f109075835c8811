"""The politeness bench's two tables: the shared host as its server saw it, and the other hosts' throughput."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from bench.common import console, table, verdict
from bench.recorder import Summary, Traffic

RPS_SLACK = 1.1  # the budget may be exceeded by 10% in a one-second window
THROUGHPUT_TARGET = 0.9


@dataclass(frozen=True)
class Phase:
    """What one phase measured: the shared host's traffic and summary, the other hosts', and their throughput."""

    politeness: str
    shared: Summary
    shared_traffic: Traffic
    others: tuple[Summary, ...]
    other_runs: int
    other_seconds: float  # from submission to the last other-host result
    wall: float  # from submission to the last result
    short: tuple[str, ...]  # runs whose server saw fewer or more requests than words

    @property
    def other_runs_per_second(self) -> float:
        """The other hosts' runs completed per second of the phase."""
        return self.other_runs / self.other_seconds if self.other_seconds else 0.0


def print_phases(off: Phase, on: Phase, args: argparse.Namespace, max_running: int, max_rps: float) -> None:
    """Both phases side by side; the targets are the on phase's."""
    out = console(120)
    shared = table(
        f"shared host 127.0.0.1: {3 * args.runs} ffuf runs of {args.words} words from 3 tenants; 2 workers x 4",
        "seen at the server",
        "politeness off",
        "politeness on",
        "target (on)",
    )
    peak_rps = max_rps * RPS_SLACK
    shared.add_row(
        "most runs at once (first to last request)",
        str(off.shared.peak_runs_at_once),
        str(on.shared.peak_runs_at_once),
        f"<= {max_running} {verdict(on.shared.peak_runs_at_once <= max_running)}",
    )
    shared.add_row(
        "most requests in one sliding second",
        str(off.shared.peak_requests_per_second),
        str(on.shared.peak_requests_per_second),
        f"<= {peak_rps:g} {verdict(on.shared.peak_requests_per_second <= peak_rps)}",
    )
    shared.add_row("most connections at once", str(off.shared.peak_connections), str(on.shared.peak_connections), "")
    shared.add_row("requests (runs)", *(f"{p.shared.requests} ({p.shared.runs})" for p in (off, on)), "")
    shared.add_row("first to last request, s", *(f"{_span(p):.1f}" for p in (off, on)), "")
    out.print(shared)
    _print_others(off, on, args)


def _print_others(off: Phase, on: Phase, args: argparse.Namespace) -> None:
    where = "one address each from 127.0.0.2" if args.spread else "one port each on 127.0.0.2"
    others = table(
        f"other hosts: {off.other_runs} ffuf runs, {where}, submitted with the shared host's",
        "",
        "politeness off",
        "politeness on",
        "target",
    )
    ratio = on.other_runs_per_second / off.other_runs_per_second if off.other_runs_per_second else 0.0
    others.add_row(
        "runs/s (submission to last result)",
        f"{off.other_runs_per_second:.2f}",
        f"{on.other_runs_per_second:.2f}",
        f"on/off {ratio:.2f}x {verdict(ratio >= THROUGHPUT_TARGET)} (>= {THROUGHPUT_TARGET}x)",
    )
    others.add_row("last other-host result, s", f"{off.other_seconds:.1f}", f"{on.other_seconds:.1f}", "")
    others.add_row("last result of the phase, s", f"{off.wall:.1f}", f"{on.wall:.1f}", "")
    others.add_row("most requests in one sliding second, any other host", *(_other_rps(p) for p in (off, on)), "")
    others.add_row(
        "runs whose server saw other than --words requests",
        *(", ".join(p.short) or "none" for p in (off, on)),
        verdict(not off.short and not on.short, "all counted"),
    )
    console(120).print(others)


def _span(phase: Phase) -> float:
    times = [r.at for r in phase.shared_traffic.requests]
    return max(times) - min(times) if times else 0.0


def _other_rps(phase: Phase) -> str:
    return str(max((s.peak_requests_per_second for s in phase.others), default=0))

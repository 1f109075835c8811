"""The politeness bench's table: every phase side by side, the shared host as its server saw it, the other hosts'
throughput, and how often the workers parked runs."""

from __future__ import annotations

import argparse
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.table import Table

from bench.common import console, table, verdict
from bench.politeness.plan import Limits
from bench.recorder import Summary, Traffic

RPS_SLACK = 1.1  # the budget may be exceeded by 10% in a one-second window
THROUGHPUT_TARGET = 0.9
_PARKED = re.compile(r"parked task=\S+ tenant=\S+ ahead=\d+ host=(\S+)")
_DISPATCHED = "dispatched parked run task="


@dataclass(frozen=True)
class Parking:
    """What the workers logged about parking: deliveries parked at admission waiting for a host or a tenant slot,
    and parked runs published again once picked (each one more delivery). Runs fair share moves from the queue to
    its backlog before admission are not logged as parked, only as dispatched again."""

    for_host: int = 0
    for_slot: int = 0
    dispatched: int = 0

    def __add__(self, other: Parking) -> Parking:
        return Parking(
            self.for_host + other.for_host, self.for_slot + other.for_slot, self.dispatched + other.dispatched
        )


def parking_of(log: str) -> Parking:
    """Count a worker log's `parked task=... host=H` lines (H `-`: a slot) and its re-dispatches."""
    hosts = _PARKED.findall(log)
    waiting = sum(1 for host in hosts if host != "-")
    return Parking(waiting, len(hosts) - waiting, log.count(_DISPATCHED))


@dataclass(frozen=True)
class Phase:
    """What one phase measured: the shared host's traffic and summary, the other hosts', their throughput, parking."""

    name: str
    politeness: str
    shared: Summary
    shared_traffic: Traffic
    others: tuple[Summary, ...]
    other_runs: int
    other_seconds: float  # from submission to the last other-host result
    wall: float  # from submission to the last result
    other_wait: float  # median seconds from submission to an other-host run's first request
    other_span: float  # median seconds from an other-host run's first request to its last
    short: tuple[str, ...]  # runs whose server saw fewer or more requests than words
    parking: Parking = Parking()
    logs: str = ""  # the directory of the phase's worker logs

    @property
    def other_runs_per_second(self) -> float:
        """The other hosts' runs completed per second of the phase."""
        return self.other_runs / self.other_seconds if self.other_seconds else 0.0

    @property
    def span(self) -> float:
        """Seconds from the shared host's first request to its last."""
        times = [r.at for r in self.shared_traffic.requests]
        return max(times) - min(times) if times else 0.0


def median_of(phases: Sequence[Phase], politeness: str, value: Callable[[Phase], float]) -> float:
    """The median of `value` over the phases with this politeness; 0 when there are none."""
    values = [value(p) for p in phases if p.politeness == politeness]
    return statistics.median(values) if values else 0.0


def throughput_ratio(phases: Sequence[Phase]) -> float:
    """The other hosts' median runs/s with politeness on over their median with it off."""
    off = median_of(phases, "off", lambda p: p.other_runs_per_second)
    return median_of(phases, "on", lambda p: p.other_runs_per_second) / off if off else 0.0


def print_phases(phases: Sequence[Phase], args: argparse.Namespace, limits: Limits) -> None:
    """Every phase in the order it ran, one column each; the targets are those of the politeness-on phases."""
    on = [p for p in phases if p.politeness == "on"]
    where = "ports of 127.0.0.2" if args.ports else "one address each from 127.0.0.2"
    out = table(
        f"{3 * args.runs} ffuf runs of {args.words} words from 3 tenants on shared host 127.0.0.1, {args.others} on "
        f"other hosts ({where}); 2 workers x 4; host limits {limits.max_running} runs, {limits.max_rps:g} req/s",
        "phase, in the order run",
        *(p.name for p in phases),
        "target (every on phase)",
    )
    peak_rps = limits.max_rps * RPS_SLACK
    most_runs, most_rps = (max((v(p) for p in on), default=0) for v in (_runs_at_once, _peak_rps))
    out.add_row("shared: most runs at once", *_cells(phases, _runs_at_once),
                f"<= {limits.max_running} {verdict(most_runs <= limits.max_running)}")  # fmt: skip
    out.add_row("shared: most requests in a sliding second", *_cells(phases, _peak_rps),
                f"<= {peak_rps:g} {verdict(most_rps <= peak_rps)}")  # fmt: skip
    out.add_row("shared: most connections at once", *_cells(phases, lambda p: p.shared.peak_connections), "")
    out.add_row("shared: requests (runs)", *(f"{p.shared.requests} ({p.shared.runs})" for p in phases), "")
    out.add_row("shared: first to last request, s", *_cells(phases, lambda p: f"{p.span:.1f}"), "")
    _add_others(out, phases)
    out.add_row("all runs: submission to last result, s", *_cells(phases, lambda p: f"{p.wall:.1f}"), "")
    out.add_row("parked at admission for a host / a slot; dispatched again", *_cells(phases, _parking), "")
    out.add_row("runs whose server saw other than --words", *_cells(phases, lambda p: ", ".join(p.short) or "none"),
                verdict(not any(p.short for p in phases), "all counted"))  # fmt: skip
    console(140).print(out)
    _print_medians(phases)


def _add_others(out: Table, phases: Sequence[Phase]) -> None:
    off = median_of(phases, "off", lambda p: p.other_runs_per_second)
    ratio = throughput_ratio(phases)
    add = out.add_row
    add("other hosts: runs/s (submission to last result)", *_cells(phases, lambda p: f"{p.other_runs_per_second:.2f}"),
        "")  # fmt: skip
    add("other hosts: runs/s over the median of off", *_cells(phases, lambda p: _over(p.other_runs_per_second, off)),
        f"median on/off {ratio:.2f}x {verdict(ratio >= THROUGHPUT_TARGET)} (>= {THROUGHPUT_TARGET}x)")  # fmt: skip
    add("other hosts: median submission to 1st request, s", *_cells(phases, lambda p: f"{p.other_wait:.1f}"), "")
    add("other hosts: median 1st to last request, s", *_cells(phases, lambda p: f"{p.other_span:.1f}"), "")
    add("other hosts: last result, s", *_cells(phases, lambda p: f"{p.other_seconds:.1f}"), "")
    add("other hosts: most requests in a sliding second", *_cells(phases, _other_rps), "")


def _print_medians(phases: Sequence[Phase]) -> None:
    line = ", ".join(
        f"{politeness}: all runs {median_of(phases, politeness, lambda p: p.wall):.1f} s, other hosts "
        f"{median_of(phases, politeness, lambda p: p.other_runs_per_second):.2f} runs/s"
        for politeness in ("off", "on")
    )
    console(140).print(f"medians: {line}; worker logs in {', '.join(p.logs for p in phases)}")


def _cells(phases: Sequence[Phase], value: Callable[[Phase], object]) -> list[str]:
    return [str(value(p)) for p in phases]


def _runs_at_once(phase: Phase) -> int:
    return phase.shared.peak_runs_at_once


def _peak_rps(phase: Phase) -> int:
    return phase.shared.peak_requests_per_second


def _parking(phase: Phase) -> str:
    return f"{phase.parking.for_host} / {phase.parking.for_slot}; {phase.parking.dispatched}"


def _over(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else "-"


def _other_rps(phase: Phase) -> int:
    return max((s.peak_requests_per_second for s in phase.others), default=0)

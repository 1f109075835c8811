"""What a Recorder saw, as plain records, and the pure analysis of them: peaks per second, runs at once, connections.

Every time is one process's `time.monotonic()`, read by the server when a request's head has arrived or a
connection opened or closed; the client's clocks play no part.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

WINDOW = 1.0


@dataclass(frozen=True)
class Request:
    """One request: when its head arrived, the run it belongs to (its path's first segment), path and connection."""

    at: float
    run: str
    path: str
    connection: int


@dataclass(frozen=True)
class Connection:
    """One TCP connection: its number on this server, when it opened and when it closed (None: still open)."""

    number: int
    opened: float
    closed: float | None = None


@dataclass(frozen=True)
class Traffic:
    """A snapshot of everything one server recorded."""

    requests: tuple[Request, ...]
    connections: tuple[Connection, ...]


@dataclass(frozen=True)
class Summary:
    """The figures a politeness check reads: totals and the four peaks."""

    requests: int
    runs: int
    peak_requests_per_second: int
    peak_runs_at_once: int
    peak_connections: int


@dataclass(frozen=True)
class Second:
    """One aligned second of the per-second table: requests in it, by run, and runs active during any of it."""

    offset: int
    requests: int
    by_run: dict[str, int]
    active_runs: int


def run_of(path: str) -> str:
    """The run a request belongs to: the first segment of its path (`/acme-3/admin?x` -> `acme-3`), '' for `/`."""
    return path.split("?", 1)[0].split("#", 1)[0].lstrip("/").split("/", 1)[0]


def peak_requests_per_second(times: Iterable[float], window: float = WINDOW) -> int:
    """The most requests in any sliding window of `window` seconds, (t - window, t].

    Checking only the windows that end at a request is exact, not a sample: any window can slide back until its
    end meets the last request inside it without losing one. So this is never below the count of any aligned
    second (the per-second table), and usually above it when a burst straddles a second's boundary.
    """
    ordered = sorted(times)
    best = first = 0
    for last, at in enumerate(ordered):
        while at - ordered[first] >= window:
            first += 1
        best = max(best, last - first + 1)
    return best


def requests_by_run(requests: Iterable[Request]) -> dict[str, int]:
    """How many requests each run sent."""
    return dict(Counter(request.run for request in requests))


def run_spans(requests: Iterable[Request]) -> dict[str, tuple[float, float]]:
    """Each run's first and last request times."""
    spans: dict[str, tuple[float, float]] = {}
    for request in requests:
        first, last = spans.get(request.run, (request.at, request.at))
        spans[request.run] = (min(first, request.at), max(last, request.at))
    return spans


def peak_runs_at_once(requests: Iterable[Request]) -> int:
    """The most runs active at one instant, a run being active from its first request to its last, both included.

    This is what the server can see, and it is a lower bound of what holds a host lease: a run is counted while
    it pauses between requests (as its lease would be), but not while its container starts before its first
    request or exits after its last, and a run of one request is active for an instant only. Two runs of which
    one ends at the very instant the other starts count as overlapping (the stricter reading).
    """
    events = sorted((at, kind) for first, last in run_spans(requests).values() for at, kind in ((first, 0), (last, 1)))
    return _peak(events)


def peak_connections(connections: Iterable[Connection]) -> int:
    """The most connections open at once; one still open counts until the end, one closing as another opens not."""
    events = [(c.opened, 1) for c in connections] + [(c.closed, 0) for c in connections if c.closed is not None]
    return _peak(sorted(events), start=1)


def _peak(events: Sequence[tuple[float, int]], start: int = 0) -> int:
    """The highest running count over time-ordered (time, kind) events where kind `start` opens, the other closes."""
    best = current = 0
    for _, kind in events:
        current += 1 if kind == start else -1
        best = max(best, current)
    return best


def per_second(requests: Sequence[Request], start: float | None = None) -> list[Second]:
    """Aligned one-second buckets from `start` (default: the first request) to the last request, for debugging."""
    if not requests:
        return []
    origin = min(r.at for r in requests) if start is None else start
    spans = run_spans(requests)
    buckets: dict[int, list[Request]] = {}
    for request in requests:
        buckets.setdefault(int((request.at - origin) // WINDOW), []).append(request)
    return [_second(offset, buckets.get(offset, []), spans, origin) for offset in range(max(buckets) + 1)]


def _second(offset: int, requests: list[Request], spans: dict[str, tuple[float, float]], origin: float) -> Second:
    begins, ends = origin + offset * WINDOW, origin + (offset + 1) * WINDOW
    active = sum(1 for first, last in spans.values() if first < ends and last >= begins)
    return Second(offset, len(requests), requests_by_run(requests), active)


def format_seconds(seconds: Iterable[Second]) -> str:
    """The per-second table as text, one line a second: `+3s  120 req  2 runs  a-1=60 b-2=60`."""
    return "\n".join(
        f"+{s.offset}s {s.requests:5} req {s.active_runs:3} runs  "
        + " ".join(f"{run}={count}" for run, count in sorted(s.by_run.items()))
        for s in seconds
    )


def summarize(traffic: Traffic) -> Summary:
    """The totals and peaks of one server's traffic."""
    return Summary(
        requests=len(traffic.requests),
        runs=len(run_spans(traffic.requests)),
        peak_requests_per_second=peak_requests_per_second(r.at for r in traffic.requests),
        peak_runs_at_once=peak_runs_at_once(traffic.requests),
        peak_connections=peak_connections(traffic.connections),
    )

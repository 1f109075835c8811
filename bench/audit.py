"""The audit trail at a month's scale: 3,000,000 synthetic events (100,000 runs a day for 30 days) written as real
segments into a file store, then the time `search` takes for an address inside a scanned network, a host name,
an address nobody scanned, and the first with `--tenant`, with how many segments each opened of how many.

Events are spread over tenants and over 4 workers' streams with hourly segments (2,880 for a month); their targets
mix single addresses, CIDR networks of /24 to /28 and host names with the addresses they resolved to. They go
through the segment writer the journal uses (`write_segment`), not its spool, to keep the bench short; the spool's
cost is measured on its own: `record` (one append and fdatasync) in microseconds, on the temp directory's disk.
`python -m bench.audit [--events N] [--days D] [--keep] [--verify]`.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.common import console, table, usable_cpus, verdict
from tasks.artifacts import ObjectStore, open_store
from tasks.audit import AuditEvent, AuditKey, Journal, Kind, new_audit_key, search, verify
from tasks.audit.layout import place
from tasks.audit.segment import Plan, write_segment

STREAMS = 4
TENANTS = 400
HOUR = 3600
START = 1_798_761_600  # 2027-01-01 00:00:00 UTC
NEEDLE_NET = "203.0.113.0/24"  # scanned by the needle tenant on three days, once by another tenant
NEEDLE_NAME = "needle.example.net"
TARGET_SECONDS = 10.0  # "in seconds for a month of events"


@dataclass(frozen=True)
class Timed:
    """One search: what it asked, what it found and read, and how long it took."""

    query: str
    found: int
    opened: int
    segments: int
    seconds: float


def synthetic(rng: random.Random, n: int, at: float, stream: str) -> AuditEvent:
    """One run's event: a tenant, one to three targets of mixed forms, and resolved names."""
    targets: list[str] = []
    resolved: dict[str, list[str]] = {}
    for _ in range(rng.randint(1, 3)):
        form = rng.random()
        if form < 0.4:
            targets.append(_address(rng))
        elif form < 0.7:
            bits = rng.randint(24, 28)
            base = rng.getrandbits(32 - 8) >> (32 - bits) << (32 - bits)
            targets.append(f"{_address(rng, base)}/{bits}")
        else:
            name = f"h{rng.randrange(200_000)}.example{rng.randrange(500)}.com"
            targets.append(name)
            resolved[name] = [_address(rng)]
    return AuditEvent(
        id=uuid.UUID(int=rng.getrandbits(128)).hex, time=datetime.fromtimestamp(at, UTC), kind=Kind.RUN_FINISHED,
        tenant=f"t{rng.randrange(TENANTS):03d}", run_id=f"run-{n}", task_id=f"task-{n}", tool="naabu",
        image_id="sha256:" + "ab" * 32, argv=["-silent", "-json", "-list", "/inputs/targets.txt"], targets=targets,
        resolved=resolved, worker=stream, daemon_id="D" * 12, egress_address="192.0.2.250", status="ok",
        bytes_in=1234, bytes_out=5678,
    )  # fmt: skip


def _address(rng: random.Random, value: int | None = None) -> str:
    """A dotted quad with a first octet of 11-99: never in the documentation networks the queries use."""
    low = rng.getrandbits(24) if value is None else value & 0xFFFFFF
    return f"{rng.randint(11, 99)}.{low >> 16}.{(low >> 8) & 255}.{low & 255}"


def needles(period: int, days: int, stream: str) -> list[AuditEvent]:
    """The runs the queries look for, planted on three days of the month (stream w0 only)."""
    day = (period - START) // 86400
    if stream != "w0" or (period - START) % 86400 != 12 * HOUR or day not in (1, days // 2, days - 2):
        return []
    at = datetime.fromtimestamp(period + 60, UTC)
    return [
        AuditEvent(id=uuid.uuid4().hex, time=at, kind=Kind.RUN_FINISHED, tenant="needle", run_id=f"needle-{day}",
                   targets=[NEEDLE_NET], worker=stream),
        AuditEvent(id=uuid.uuid4().hex, time=at, kind=Kind.RUN_FINISHED, tenant="needle", run_id=f"name-{day}",
                   targets=[NEEDLE_NAME], resolved={NEEDLE_NAME: ["198.51.100.9"]}, worker=stream),
    ] + ([AuditEvent(id=uuid.uuid4().hex, time=at, kind=Kind.RUN_FINISHED, tenant="t000", targets=[NEEDLE_NET])]
         if day == 1 else [])  # fmt: skip


def write_month(url: str, key_text: str, events: int, days: int) -> float:
    """Write the month's segments, a process per stream on every CPU; return the seconds it took."""
    started = time.perf_counter()
    jobs = [(url, key_text, events, days, s) for s in range(STREAMS)]
    with multiprocessing.get_context("spawn").Pool(min(STREAMS, os.cpu_count() or 1)) as pool:
        pool.starmap(write_stream, jobs)
    return time.perf_counter() - started


def write_stream(url: str, key_text: str, events: int, days: int, number: int) -> None:
    """One worker's stream of hourly segments, chained, the last one closed."""
    store, key = open_store(url), AuditKey.parse(key_text)
    rng = random.Random(number)
    periods = days * 24
    per_segment = events / (periods * STREAMS)
    stream, link = f"w{number}", None
    for p in range(periods):
        period = START + p * HOUR
        first = int(per_segment * (number * periods + p))
        count = int(per_segment * (number * periods + p + 1)) - first
        batch = [synthetic(rng, first + i, period + rng.random() * HOUR, stream) for i in range(count)]
        batch += needles(period, days, stream)
        plan = Plan(place(stream, period), HOUR, link, closed=p == periods - 1)
        link = write_segment(store, key, plan, batch).link


def timed_searches(store: ObjectStore, key: AuditKey) -> Iterator[Timed]:
    """The four searches of the table."""
    for query, tenant in ((NEEDLE_NET.replace("0/24", "77"), None), (NEEDLE_NAME, None), ("192.0.2.1", None),
                          (NEEDLE_NET.replace("0/24", "77"), "needle")):  # fmt: skip
        started = time.perf_counter()
        found = search(store, key, query, tenant=tenant)
        seconds = time.perf_counter() - started
        label = query + (f" --tenant {tenant}" if tenant else "")
        yield Timed(label, len(found.events), found.opened, found.segments, seconds)


def record_cost(spool: Path, store: ObjectStore, key: AuditKey, count: int = 2000) -> list[float]:
    """Microseconds of each of `count` records: one append and fdatasync of a realistic event."""
    journal = Journal(store, key, "record-bench", spool)
    rng = random.Random(1)
    samples = []
    for n in range(count):
        event = synthetic(rng, n, time.time(), "record-bench")
        started = time.perf_counter()
        journal.record(event)
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def main() -> None:
    """Write the month, search it and print the tables."""
    parser = argparse.ArgumentParser(prog="python -m bench.audit", description=__doc__)
    parser.add_argument("--events", type=int, default=3_000_000, help="synthetic events in all (default 3,000,000)")
    parser.add_argument("--days", type=int, default=30, help="days they span (default 30)")
    parser.add_argument("--keep", action="store_true", help="leave the store in its temp directory")
    parser.add_argument("--verify", action="store_true", help="time verify over everything written, too")
    args = parser.parse_args()
    out = console(120)
    workdir = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    try:
        url, key_text = (workdir / "store").as_uri(), new_audit_key()
        store, key = open_store(url), AuditKey.parse(key_text)
        write_s = write_month(url, key_text, args.events, args.days)
        size = sum(info.size for info in store.list("audit/")) / 1e6
        rate = args.events / write_s
        out.print(f"{args.events:,} events over {args.days} days in {STREAMS} streams, {usable_cpus()} CPUs: "
                  f"written in {write_s:.0f}s ({rate:,.0f} events/s), {size:,.0f} MB stored")  # fmt: skip
        grid = table(f"search over {args.days} days", "query", "events found", "segments opened", "of", "seconds")
        results = list(timed_searches(store, key))
        for r in results:
            grid.add_row(r.query, str(r.found), str(r.opened), str(r.segments), f"{r.seconds:.2f}")
        out.print(grid)
        slowest = max(r.seconds for r in results)
        out.print(f"every search under {TARGET_SECONDS:.0f}s: {verdict(slowest < TARGET_SECONDS)}")
        if args.verify:
            started = time.perf_counter()
            report = verify(store, key)
            out.print(f"verify: {report.segments:,} segments, {report.events:,} events in "
                      f"{time.perf_counter() - started:.0f}s, problems: {len(report.problems)}")  # fmt: skip
        samples = record_cost(workdir / "spool", store, key)
        cost = table("Journal.record (append + fdatasync)", "records", "mean µs", "p50 µs", "p99 µs")
        p99 = sorted(samples)[int(len(samples) * 0.99)]
        cost.add_row(str(len(samples)), f"{statistics.mean(samples):.0f}", f"{statistics.median(samples):.0f}",
                     f"{p99:.0f}")  # fmt: skip
        out.print(cost)
    finally:
        if args.keep:
            out.print(f"store kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

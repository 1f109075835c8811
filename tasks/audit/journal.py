"""The journal: a writer's stream of segments on a fixed cadence, fed from its fsynced spool by a flusher thread.

Every period of `segment_seconds` (aligned on the epoch, UTC) the writer stores one segment, empty when nothing
happened, linked to the one before; `close()` stores the current period's segment marked closed. Events go to the
segment of the period their time falls in; one whose period is already stored (recorded late, or spooled again by
a crash between storing a segment and emptying the spool) goes to the next segment stored, and a replayed one is
named in that head so search and export drop the copy.

At start the journal stores what a crash left in the spool: the periods it covers are written as they would have
been, then the stream skips to the current period (its next head links across the time it was down). Losing the
worker's disk loses the events of the spool not yet stored (at most the current period and the one before, while
the store is reachable) and the chain state: the next segment starts a new chain, which verify reports.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from tasks.artifacts import ObjectStore
from tasks.audit.event import AuditEvent
from tasks.audit.key import AuditKey
from tasks.audit.layout import INDEX, PREFIX, check_stream, parse, place
from tasks.audit.segment import Link, Plan, read_head, write_segment
from tasks.audit.spool import Spool

logger = logging.getLogger(__name__)

DEFAULT_SEGMENT_SECONDS = 3600
_RETRY_SECONDS = 30.0  # after a failed flush (store unreachable): the events wait in the spool meanwhile
KeyLike = AuditKey | str | bytes


def as_key(key: KeyLike) -> AuditKey:
    """An AuditKey from itself, its raw bytes or its base64 text."""
    if isinstance(key, AuditKey):
        return key
    return AuditKey(key) if isinstance(key, bytes) else AuditKey.parse(key)


class Journal:
    """One writer's audit stream: `record` is durable when it returns, segments reach the store on the cadence."""

    def __init__(
        self,
        store: ObjectStore,
        key: KeyLike,
        stream: str,
        spool_dir: Path,
        segment_seconds: int = DEFAULT_SEGMENT_SECONDS,
        clock: Callable[[], float] = time.time,
        lock_timeout: float = 30.0,
    ) -> None:
        if segment_seconds < 1:
            raise ValueError(f"segment_seconds must be at least 1, got {segment_seconds}")
        self.store, self.key, self.stream = store, as_key(key), check_stream(stream)
        self.seconds = segment_seconds
        self._clock = clock
        self._spool = Spool(spool_dir, stream, lock_timeout)  # waits for a predecessor of the stream to finish
        self._spool.drop(())  # a line torn by a kill would swallow the next one appended after it
        self._link = self._spool.load_link()
        self._next: int | None = None  # the first period not stored yet; None until start() replayed the spool
        self._flushing = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Store what a previous run left in the spool, then flush on the cadence in a daemon thread."""
        self.replay()
        self._thread = threading.Thread(target=self._run, name=f"audit-{self.stream}", daemon=True)
        self._thread.start()

    def record(self, event: AuditEvent) -> None:
        """Append an event to the spool: on disk when this returns (one write and one fdatasync)."""
        self._spool.append(event)

    def replay(self) -> int:
        """Store the periods a crash left in the spool; return how many segments were written."""
        with self._flushing:
            pending = self._spool.read()
            now = self._period(self._clock())
            after_last = self._link.period + self.seconds if self._link else None
            if not pending:
                self._next = max(now, after_last or now)
                return 0
            first = min(self._period(e.timestamp) for e in pending)
            self._next = max(first, after_last) if after_last is not None else first
            last = min(max(self._period(e.timestamp) for e in pending), now - self.seconds)
            written = self._store_through(pending, last, closed=False) if last >= self._next else 0
            self._next = max(self._next, now)  # the periods the writer was down have no segment: the link spans them
            return written

    def flush(self, *, final: bool = False) -> int:
        """Store every complete period (and, when final, the current one, closed); return the segments written."""
        if self._next is None:
            self.replay()
        with self._flushing:
            assert self._next is not None
            now = self._period(self._clock())
            last = max(now, self._next) if final else now - self.seconds
            if last < self._next:
                return 0
            return self._store_through(self._spool.read(), last, closed=final)

    def close(self) -> None:
        """Stop the flusher and store everything, ending the stream with a closed segment (SIGTERM, shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.flush(final=True)
        finally:  # the store down: the events stay in the spool, for the next journal of the stream to store
            self._spool.close()

    def _store_through(self, pending: Sequence[AuditEvent], last: int, *, closed: bool) -> int:
        assert self._next is not None
        by_period: dict[int, list[AuditEvent]] = {}
        late: list[AuditEvent] = []
        for event in pending:
            period = self._period(event.timestamp)
            if period > last:
                continue
            (late if period < self._next else by_period.setdefault(period, [])).append(event)
        written = 0
        for period in range(self._next, last + 1, self.seconds):
            events = by_period.get(period, []) + (late if period == self._next else [])
            replayed = [e.id for e in late] if period == self._next else []
            plan = Plan(
                place(self.stream, period), self.seconds, self._link, closed and period == last, False, replayed
            )
            self._link = write_segment(self.store, self.key, plan, events).link
            self._spool.save_link(self._link)
            self._spool.drop(e.id for e in events)
            written += 1
        self._next = last + self.seconds
        return written

    def _run(self) -> None:
        while True:
            assert self._next is not None
            due = self._next + self.seconds + min(5.0, self.seconds / 10)  # a moment for events stamped at the end
            if self._stop.wait(max(0.0, due - self._clock())):
                return
            try:
                self.flush()
            except Exception:  # the store is down or refuses: keep the spool, try again
                logger.warning("audit stream=%s: storing a segment failed; retrying", self.stream, exc_info=True)
                if self._stop.wait(min(_RETRY_SECONDS, self.seconds)):
                    return

    def _period(self, timestamp: float) -> int:
        return int(timestamp // self.seconds) * self.seconds


def record_now(store: ObjectStore, key: KeyLike, stream: str, events: Iterable[AuditEvent]) -> None:
    """Store events at once as a one-shot segment of `stream` (a CLI's policy change), linked to its latest one.

    Two writers at once both link to the same latest segment (a fork, which verify accepts); removing the newest
    one-shot segment of a stream cannot be told from it never having been written.
    """
    audit_key = as_key(key)
    now = time.time_ns()
    # Nanoseconds first in the name: a stream's one-shot segments sort in the order they were written.
    shot = f"{now % 10**9:09d}{uuid.uuid4().hex[:6]}"
    plan = Plan(place(stream, now // 10**9, shot), 0, _latest_link(store, audit_key, stream), True, True)
    write_segment(store, audit_key, plan, list(events))


def _latest_link(store: ObjectStore, key: AuditKey, stream: str) -> Link | None:
    heads = sorted(i.key for i in store.list(f"{PREFIX}{check_stream(stream)}/") if i.key.endswith(INDEX))
    for object_key in reversed(heads):
        found = parse(object_key)
        if found is not None:
            return read_head(store, key, found[0]).link
    return None

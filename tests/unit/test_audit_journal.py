"""The journal: events durable once recorded, replayed after a crash (duplicates dropped by id), segments on the
cadence (empty ones too), a closed end, a new chain after a lost disk; and the key failing closed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from config import Settings
from tasks.artifacts import ObjectStore
from tasks.audit import (
    AuditConfigError,
    AuditEvent,
    AuditKey,
    Journal,
    Kind,
    audit_key,
    export,
    new_audit_key,
    search,
    verify,
)
from tasks.audit.layout import PREFIX, parse, place
from tasks.audit.segment import read_head
from tests.unit.helpers import AuditClock, audit_event, audit_journal, crash

ROOT = Path(__file__).resolve().parents[2]


def heads(store: ObjectStore, key: AuditKey) -> list[tuple[int, int, bool]]:
    """(period, count, closed) of every stored segment, oldest first."""
    places = sorted(found[0].period for i in store.list(PREFIX) if (found := parse(i.key)) and found[1] == ".idx")
    return [
        (p, (h := read_head(store, key, place("w1", p)).head).count, h.closed) for p in places
    ]  # fmt: skip


def exported_ids(store: ObjectStore, key: AuditKey) -> list[str]:
    return [json.loads(line)["id"] for line in export(store, key)]


def test_events_recorded_but_never_stored_reach_the_store_once_through_the_next_journal(
    audit_store: ObjectStore, audit_key: AuditKey, tmp_path: Path, clock: AuditClock
) -> None:
    crashed = audit_journal(audit_store, audit_key, tmp_path / "spool", clock)
    for n in range(3):
        crashed.record(audit_event(f"e{n}", clock.now + n))
    clock.now += 25  # the worker died before its flusher ran: nothing is in the store
    crash(crashed)
    assert list(audit_store.list(PREFIX)) == []
    audit_journal(audit_store, audit_key, tmp_path / "spool", clock).close()
    assert exported_ids(audit_store, audit_key) == ["e0", "e1", "e2"]
    assert verify(audit_store, audit_key, now=clock.moment).ok


def test_a_killed_process_loses_no_event_it_recorded(audit_store: ObjectStore, tmp_path: Path) -> None:
    key = new_audit_key()
    child = f"""
import os, signal
from pathlib import Path
from tasks.artifacts import open_store
from tasks.audit import AuditEvent, Journal, Kind
journal = Journal(open_store({(tmp_path / "store").as_uri()!r}), {key!r}, "w1", Path({str(tmp_path / "spool")!r}))
for n in range(5):
    journal.record(AuditEvent.new(Kind.RUN_STARTED, tenant="acme", run_id=f"r{{n}}"))
os.kill(os.getpid(), signal.SIGKILL)
"""
    done = subprocess.run([sys.executable, "-c", child], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode == -9
    Journal(audit_store, key, "w1", tmp_path / "spool").close()
    runs = sorted(json.loads(line)["run_id"] for line in export(audit_store, AuditKey.parse(key)))
    assert runs == [f"r{n}" for n in range(5)]


def test_a_replayed_duplicate_is_stored_twice_and_found_once(
    audit_store: ObjectStore, audit_key: AuditKey, tmp_path: Path, clock: AuditClock
) -> None:
    spool = tmp_path / "spool"
    journal = audit_journal(audit_store, audit_key, spool, clock)
    journal.record(audit_event("dup", clock.now + 1, targets=["192.0.2.9"]))
    left = (spool / "w1.spool").read_bytes()
    clock.now += 12
    journal.flush()
    # A crash between storing the segment and emptying the spool: the next journal finds the event again.
    crash(journal)
    (spool / "w1.spool").write_bytes(left)
    clock.now += 20
    audit_journal(audit_store, audit_key, spool, clock).close()
    assert [count for _, count, _ in heads(audit_store, audit_key)].count(1) == 2, "stored twice (at least once)"
    assert [e.id for e in search(audit_store, audit_key, "192.0.2.9").events] == ["dup"]
    assert exported_ids(audit_store, audit_key) == ["dup"]
    assert verify(audit_store, audit_key, now=clock.moment).ok


def test_periods_without_events_get_empty_segments_on_the_cadence(
    audit_store: ObjectStore, audit_key: AuditKey, tmp_path: Path, clock: AuditClock
) -> None:
    journal = audit_journal(audit_store, audit_key, tmp_path / "spool", clock)
    start = int(clock.now)
    clock.now += 31
    assert journal.flush() == 3
    journal.record(audit_event("late-in-period", clock.now))
    assert journal.flush() == 0, "the current period is not complete"
    assert heads(audit_store, audit_key) == [(start, 0, False), (start + 10, 0, False), (start + 20, 0, False)]


def test_close_ends_the_stream_with_a_closed_segment_and_a_restart_never_overwrites_it(
    audit_store: ObjectStore, audit_key: AuditKey, tmp_path: Path, clock: AuditClock
) -> None:
    start = int(clock.now)
    first = audit_journal(audit_store, audit_key, tmp_path / "spool", clock)
    first.record(audit_event("a", clock.now + 1))
    clock.now += 3
    first.close()
    restarted = audit_journal(audit_store, audit_key, tmp_path / "spool", clock)
    restarted.record(audit_event("b", clock.now))
    clock.now += 1
    restarted.close()
    assert heads(audit_store, audit_key) == [(start, 1, True), (start + 10, 1, True)]
    assert exported_ids(audit_store, audit_key) == ["a", "b"]
    assert verify(audit_store, audit_key, now=clock.moment).problems == []


def test_a_worker_down_for_hours_links_its_next_segment_across_the_gap(
    audit_store: ObjectStore, audit_key: AuditKey, tmp_path: Path, clock: AuditClock
) -> None:
    crashed = audit_journal(audit_store, audit_key, tmp_path / "spool", clock)
    crashed.record(audit_event("before", clock.now + 1))
    crash(crashed)
    clock.now += 7200
    audit_journal(audit_store, audit_key, tmp_path / "spool", clock).close()
    report = verify(audit_store, audit_key, now=clock.moment)
    assert report.problems == []
    assert len(report.notes) == 1 and "no writer from" in report.notes[0]


def test_a_worker_that_lost_its_disk_starts_a_new_chain_which_verify_reports(
    audit_store: ObjectStore, audit_key: AuditKey, tmp_path: Path, clock: AuditClock
) -> None:
    crashed = audit_journal(audit_store, audit_key, tmp_path / "spool", clock)
    clock.now += 12
    crashed.flush()
    crash(crashed)
    clock.now += 600
    audit_journal(audit_store, audit_key, tmp_path / "new-disk", clock).close()
    [problem] = verify(audit_store, audit_key, now=clock.moment).problems
    assert "a new chain starts" in problem and "lost its spool" in problem


def test_a_line_torn_by_a_kill_is_dropped_and_the_next_record_is_kept(
    audit_store: ObjectStore, audit_key: AuditKey, tmp_path: Path, clock: AuditClock
) -> None:
    spool = tmp_path / "spool"
    killed = audit_journal(audit_store, audit_key, spool, clock)
    killed.record(audit_event("whole", clock.now))
    crash(killed)
    with (spool / "w1.spool").open("ab") as torn:
        torn.write(audit_event("torn", clock.now).canonical()[:40])
    journal = audit_journal(audit_store, audit_key, spool, clock)
    journal.record(audit_event("next", clock.now + 1))
    journal.close()
    assert exported_ids(audit_store, audit_key) == ["whole", "next"]


def test_the_flusher_thread_stores_each_period_as_it_ends(audit_store: ObjectStore, audit_key: AuditKey,
                                                          tmp_path: Path) -> None:  # fmt: skip
    journal = Journal(audit_store, audit_key, "w1", tmp_path / "spool", segment_seconds=1)
    journal.start()
    journal.record(AuditEvent.new(Kind.RUN_FINISHED, tenant="acme", status="ok", bytes_in=10, bytes_out=20))
    # The event's period is stored once it ends. The first segment stored may be an empty one: recorded just past
    # a period's end, the event belongs to the next period, so wait for the event itself, not for any segment.
    deadline = time.monotonic() + 5
    while not (stored := exported_ids(audit_store, audit_key)) and time.monotonic() < deadline:
        time.sleep(0.05)
    journal.close()
    assert len(stored) == 1, "stored by the thread, before close"
    assert verify(audit_store, audit_key).ok


def test_a_journal_waits_for_another_process_holding_its_stream_and_is_refused_past_its_timeout(
    audit_store: ObjectStore, tmp_path: Path
) -> None:
    key = new_audit_key()
    holder = f"""
import sys, time
from pathlib import Path
from tasks.artifacts import open_store
from tasks.audit import Journal
journal = Journal(open_store({(tmp_path / "store").as_uri()!r}), {key!r}, "w1", Path({str(tmp_path / "spool")!r}))
print("holding", flush=True)
time.sleep(float(sys.stdin.readline()))
journal.close()
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen([sys.executable, "-c", holder], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as child:  # fmt: skip
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline() == "holding\n"
        with pytest.raises(AuditConfigError, match="another journal has held its spool"):
            Journal(audit_store, key, "w1", tmp_path / "spool", lock_timeout=0.2)
        Journal(audit_store, key, "w2", tmp_path / "spool").close()  # another stream may share the directory
        child.stdin.write("0.3\n")
        child.stdin.close()  # it closes its journal in 0.3 s: the next one of the stream waits for it
        Journal(audit_store, key, "w1", tmp_path / "spool", lock_timeout=20).close()
        assert child.wait(timeout=20) == 0


def test_the_key_fails_closed_with_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(AuditConfigError, match="TOOLRUNNER_AUDIT_KEY"):
        audit_key(Settings(artifact_url="s3://bucket/prefix"))  # a shared store needs the operators' key
    url = f"file://{tmp_path}/store"  # one host's store: a generated key beside it, as the artifact master key
    generated = audit_key(Settings(artifact_url=url))
    assert (tmp_path / "store.audit-key").stat().st_mode & 0o777 == 0o600
    assert audit_key(Settings(artifact_url=url)).key_id == generated.key_id
    given = new_audit_key()
    assert audit_key(Settings(artifact_url=url, audit_key=given)).key_id == AuditKey.parse(given).key_id
    with pytest.raises(AuditConfigError, match="not base64"):
        AuditKey.parse("not a key!")
    with pytest.raises(AuditConfigError, match="needs 32"):
        AuditKey.parse("c2hvcnQ=")


def test_an_event_round_trips_through_its_canonical_json() -> None:
    event = AuditEvent.new(Kind.RUN_REFUSED, tenant="acme", reason="out of scope: 198.51.100.1", argv=["-p", "80"])
    assert AuditEvent.from_json(event.canonical()) == event
    assert event.time.tzinfo is not None and event.time <= datetime.now(UTC)

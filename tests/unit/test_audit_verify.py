"""verify finds each tampering of the stored audit: a flipped byte, a removed or reordered event, a dropped or moved
segment, a cut-off tail; an untouched trail verifies clean."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tasks.artifacts import ObjectStore
from tasks.audit import AuditKey, Report, record_now, verify
from tasks.audit.layout import PREFIX, place
from tasks.audit.segment import Plan, write_segment
from tests.unit.helpers import AuditClock, audit_event, audit_journal, reseal


@pytest.fixture
def periods(audit_store: ObjectStore, audit_key: AuditKey, tmp_path: Path, clock: AuditClock) -> list[int]:
    """A stream w1 of three periods of three events each, then closed: four segments, the last empty and closed."""
    journal = audit_journal(audit_store, audit_key, tmp_path / "spool", clock)
    start = int(clock.now)
    for period in range(3):
        for n in range(3):
            journal.record(audit_event(f"e{period}{n}", start + 10 * period + n, targets=[f"192.0.2.{n}"]))
    clock.now = start + 35
    journal.close()
    clock.now = start + 3600
    return [start + 10 * n for n in range(4)]


def check(store: ObjectStore, key: AuditKey, clock: AuditClock, **options: object) -> Report:
    return verify(store, key, now=clock.moment, **options)  # type: ignore[arg-type]


def test_an_untouched_stream_verifies_clean(audit_store: ObjectStore, audit_key: AuditKey, clock: AuditClock,
                                            periods: list[int]) -> None:  # fmt: skip
    report = check(audit_store, audit_key, clock)
    assert report.problems == [] and report.ok
    assert (report.streams, report.segments, report.events) == (1, 4, 9)


def test_a_flipped_byte_in_a_stored_segment_is_reported(
    audit_store: ObjectStore, audit_key: AuditKey, clock: AuditClock, periods: list[int], tmp_path: Path
) -> None:
    stored = tmp_path / "store" / place("w1", periods[1]).segment
    blob = bytearray(stored.read_bytes())
    blob[len(blob) // 2] ^= 1
    stored.write_bytes(bytes(blob))
    [problem] = check(audit_store, audit_key, clock).problems
    assert place("w1", periods[1]).segment in problem and "failed authentication" in problem


def test_a_flipped_byte_in_a_stored_head_is_reported(
    audit_store: ObjectStore, audit_key: AuditKey, clock: AuditClock, periods: list[int], tmp_path: Path
) -> None:
    stored = tmp_path / "store" / place("w1", periods[0]).index
    blob = bytearray(stored.read_bytes())
    blob[-1] ^= 0x80
    stored.write_bytes(bytes(blob))
    problems = check(audit_store, audit_key, clock).problems
    assert any("unreadable head" in p and "failed authentication" in p for p in problems)


def test_a_deleted_event_is_reported(audit_store: ObjectStore, audit_key: AuditKey, clock: AuditClock,
                                     periods: list[int]) -> None:  # fmt: skip
    reseal(audit_store, audit_key, place("w1", periods[1]).segment, lambda lines: [lines[0], lines[2]])
    [problem] = check(audit_store, audit_key, clock).problems
    assert "holds 2 events, its head says 3" in problem


def test_a_deleted_event_is_reported_even_with_the_count_kept(
    audit_store: ObjectStore, audit_key: AuditKey, clock: AuditClock, periods: list[int]
) -> None:
    reseal(audit_store, audit_key, place("w1", periods[1]).segment, lambda lines: [lines[0], lines[2], lines[2]])
    [problem] = check(audit_store, audit_key, clock).problems
    assert "event 1" in problem and "does not follow the one before it" in problem


def test_two_swapped_events_are_reported(audit_store: ObjectStore, audit_key: AuditKey, clock: AuditClock,
                                         periods: list[int]) -> None:  # fmt: skip
    reseal(audit_store, audit_key, place("w1", periods[2]).segment, lambda lines: [lines[1], lines[0], lines[2]])
    [problem] = check(audit_store, audit_key, clock).problems
    assert "event 0" in problem and "removed or reordered" in problem


def test_the_dropped_last_segment_of_a_closed_stream_is_reported(
    audit_store: ObjectStore, audit_key: AuditKey, clock: AuditClock, periods: list[int]
) -> None:
    last = place("w1", periods[-1])
    audit_store.delete([last.segment, last.index])
    [problem] = check(audit_store, audit_key, clock).problems
    assert problem.startswith("w1: ends with") and "not closed" in problem


def test_a_dropped_middle_segment_is_reported(audit_store: ObjectStore, audit_key: AuditKey, clock: AuditClock,
                                              periods: list[int]) -> None:  # fmt: skip
    middle = place("w1", periods[1])
    audit_store.delete([middle.segment, middle.index])
    [problem] = check(audit_store, audit_key, clock).problems
    assert place("w1", periods[2]).base in problem and "which is missing" not in problem and "missing" in problem


def test_a_segment_without_its_head_is_reported(audit_store: ObjectStore, audit_key: AuditKey, clock: AuditClock,
                                                periods: list[int]) -> None:  # fmt: skip
    audit_store.delete([place("w1", periods[1]).index])
    problems = check(audit_store, audit_key, clock).problems
    assert any("has no head" in p for p in problems) and any("missing" in p for p in problems)


def test_a_segment_moved_to_another_stream_and_period_is_reported(
    audit_store: ObjectStore, audit_key: AuditKey, clock: AuditClock, periods: list[int]
) -> None:
    source, moved = place("w1", periods[1]), place("w2", periods[1] + 3600)
    for old, new in ((source.segment, moved.segment), (source.index, moved.index)):
        audit_store.put(new, audit_store.get(old))
    audit_store.delete([source.segment, source.index])
    problems = check(audit_store, audit_key, clock).problems
    assert any(moved.index in p and "failed authentication" in p for p in problems)
    assert any(place("w1", periods[2]).base in p and "missing" in p for p in problems)


def test_a_live_streams_current_tail_is_no_problem_but_a_stale_one_is(
    audit_store: ObjectStore, audit_key: AuditKey, tmp_path: Path, clock: AuditClock
) -> None:
    journal = audit_journal(audit_store, audit_key, tmp_path / "spool", clock)
    journal.record(audit_event("e1", clock.now + 1))
    clock.now += 12
    assert journal.flush() == 1
    assert check(audit_store, audit_key, clock).ok, "the period just stored is the last complete one"
    clock.now += 3600
    [problem] = check(audit_store, audit_key, clock).problems
    assert "not closed, and nothing after it" in problem


def test_verify_since_skips_older_segments_content_but_still_checks_links(
    audit_store: ObjectStore, audit_key: AuditKey, clock: AuditClock, periods: list[int], tmp_path: Path
) -> None:
    reseal(audit_store, audit_key, place("w1", periods[0]).segment, lambda lines: lines[:1])
    since = clock.moment - timedelta(seconds=3600 - 15)
    report = check(audit_store, audit_key, clock, since=since)
    assert report.ok and report.segments == 3, "the segments ending after since: the 2nd, 3rd and closing one"
    middle = place("w1", periods[2])
    audit_store.delete([middle.segment, middle.index])
    assert not check(audit_store, audit_key, clock, since=since).ok


def test_verify_reports_a_removed_one_shot_segment_that_a_later_one_links_to(
    audit_store: ObjectStore, audit_key: AuditKey, clock: AuditClock
) -> None:
    for n in range(3):
        record_now(audit_store, audit_key, "operator", [audit_event(f"p{n}", clock.now, operator="ann@ops")])
    assert check(audit_store, audit_key, clock).ok
    first = sorted(i.key for i in audit_store.list(PREFIX) if i.key.endswith(".idx"))[0]
    audit_store.delete([first, first.removesuffix(".idx") + ".seg"])
    problems = check(audit_store, audit_key, clock).problems
    assert len(problems) == 1 and "links to a segment of operator that is missing" in problems[0]


def reseal_head(
    store: ObjectStore, key: AuditKey, source: str, target: str, edit: Callable[[dict[str, Any]], None]
) -> None:
    """Copy a head to `target` sealed again after `edit` changed its JSON (what only a key holder can do)."""
    text, _, blob = key.open(source, store.get(source)).partition(b"\n")
    stored = json.loads(text)
    edit(stored)
    store.put(target, key.seal(target, json.dumps(stored).encode() + b"\n" + blob))


def test_a_head_changed_without_the_mac_key_fails_its_mac(audit_store: ObjectStore, audit_key: AuditKey,
                                                          clock: AuditClock, periods: list[int]) -> None:  # fmt: skip
    head = place("w1", periods[1]).index
    reseal_head(audit_store, audit_key, head, head, lambda stored: stored["head"].update(count=2))
    assert any("the head's MAC does not match" in p for p in check(audit_store, audit_key, clock).problems)


def test_a_head_copied_to_another_period_and_sealed_again_still_names_its_own(
    audit_store: ObjectStore, audit_key: AuditKey, clock: AuditClock, periods: list[int]
) -> None:
    source, moved = place("w1", periods[1]), place("w1", periods[1] + 7200)
    reseal_head(audit_store, audit_key, source.index, moved.index, lambda stored: None)
    audit_store.put(
        moved.segment, audit_key.seal(moved.segment, audit_key.open(source.segment, audit_store.get(source.segment)))
    )
    assert any("the head names stream w1 period" in p for p in check(audit_store, audit_key, clock).problems)


def test_an_index_that_does_not_match_its_events_is_reported(
    audit_store: ObjectStore, audit_key: AuditKey, clock: AuditClock, periods: list[int]
) -> None:
    head = place("w1", periods[1]).index
    text, _, blob = audit_key.open(head, audit_store.get(head)).partition(b"\n")
    audit_store.put(head, audit_key.seal(head, text + b"\n" + bytes(len(blob))))  # an index that finds nothing
    [problem] = check(audit_store, audit_key, clock).problems
    assert "its search index does not match its events" in problem


def test_an_event_outside_its_segments_period_is_reported(audit_store: ObjectStore, audit_key: AuditKey,
                                                          clock: AuditClock) -> None:  # fmt: skip
    period = int(clock.now)
    plan = Plan(place("w9", period), 10, None, closed=True)
    write_segment(audit_store, audit_key, plan, [audit_event("future", period + 3600)])
    [problem] = check(audit_store, audit_key, clock).problems
    assert "lies outside the segment's period" in problem

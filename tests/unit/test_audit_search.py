"""search finds a run by an address inside its scanned network, by name and by a resolved address, opening only
the segments whose index may hold it; big target lists by digest stay searchable; the retention sweep expires."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from tasks.artifacts import ObjectStore
from tasks.audit import AuditKey, Found, Kind, export, search, sweep_expired, verify
from tasks.audit.index import Query, read_target
from tasks.audit.layout import PREFIX
from tests.unit.helpers import AuditClock, audit_event, audit_journal


@pytest.fixture
def trail(audit_store: ObjectStore, audit_key: AuditKey, tmp_path: Path, clock: AuditClock) -> AuditClock:
    """Four periods: acme scans a /24 and a name (resolved), globex an address, then two quiet periods."""
    journal = audit_journal(audit_store, audit_key, tmp_path / "spool", clock)
    start = clock.now
    journal.record(audit_event("net", start + 1, targets=["203.0.113.0/24", "https://www.example.com/login"]))
    journal.record(audit_event("name", start + 11, kind=Kind.RUN_FINISHED, targets=["shop.example.org"],
                               resolved={"shop.example.org": ["198.51.100.20", "2001:db8::20"]}))  # fmt: skip
    journal.record(audit_event("other", start + 12, tenant="globex", targets=["203.0.113.7"]))
    clock.now = start + 45
    journal.close()
    return clock


def ids(found: Found) -> list[str]:
    return [event.id for event in found.events]


@pytest.mark.parametrize(
    ("text", "query"),
    [
        ("203.0.113.7", Query("203.0.113.7", span=(4, 0xCB007107, 0xCB007107))),
        ("203.0.113.0/30", Query("203.0.113.0/30", span=(4, 0xCB007100, 0xCB007103))),
        ("[2001:db8::1]:443", Query("[2001:db8::1]:443", span=(6, 0x20010DB8 << 96 | 1, 0x20010DB8 << 96 | 1))),
        ("https://WWW.Example.com/x", Query("https://WWW.Example.com/x", name="www.example.com")),
        ("example.com:8080", Query("example.com:8080", name="example.com")),
        ("Example.COM.", Query("Example.COM.", name="example.com")),
        ("10.0.0.1-5", Query("10.0.0.1-5", name="10.0.0.1-5")),
    ],
)
def test_a_target_is_read_as_the_tools_read_it(text: str, query: Query) -> None:
    assert read_target(text) == query


def test_an_address_inside_a_scanned_network_finds_the_run(audit_store: ObjectStore, audit_key: AuditKey,
                                                           trail: AuditClock) -> None:  # fmt: skip
    found = search(audit_store, audit_key, "203.0.113.7")
    assert ids(found) == ["net", "other"]
    assert (found.opened, found.segments) == (2, 5)


def test_a_host_name_finds_the_run_by_name_and_a_url_host(audit_store: ObjectStore, audit_key: AuditKey,
                                                          trail: AuditClock) -> None:  # fmt: skip
    assert ids(search(audit_store, audit_key, "shop.example.org")) == ["name"]
    assert ids(search(audit_store, audit_key, "WWW.example.com")) == ["net"]


def test_an_address_a_name_resolved_to_finds_the_run(audit_store: ObjectStore, audit_key: AuditKey,
                                                     trail: AuditClock) -> None:  # fmt: skip
    assert ids(search(audit_store, audit_key, "198.51.100.20")) == ["name"]
    assert ids(search(audit_store, audit_key, "2001:db8::20")) == ["name"]


def test_with_a_tenant_another_tenants_run_is_neither_found_nor_opened(
    audit_store: ObjectStore, audit_key: AuditKey, trail: AuditClock
) -> None:
    found = search(audit_store, audit_key, "203.0.113.7", tenant="acme")
    assert ids(found) == ["net"] and found.opened == 1
    assert search(audit_store, audit_key, "198.51.100.20", tenant="globex").opened == 0


def test_an_address_no_run_touched_opens_no_segment(audit_store: ObjectStore, audit_key: AuditKey,
                                                    trail: AuditClock) -> None:  # fmt: skip
    found = search(audit_store, audit_key, "192.0.2.1")
    assert ids(found) == [] and found.opened == 0 and found.segments == 5


def test_since_and_until_bound_the_search(audit_store: ObjectStore, audit_key: AuditKey, trail: AuditClock) -> None:
    start = trail.moment - timedelta(seconds=45)
    assert ids(search(audit_store, audit_key, "203.0.113.7", since=start + timedelta(seconds=10))) == ["other"]
    assert ids(search(audit_store, audit_key, "203.0.113.7", until=start + timedelta(seconds=5))) == ["net"]


def test_export_streams_every_event_once_in_time_order(audit_store: ObjectStore, audit_key: AuditKey,
                                                       trail: AuditClock) -> None:  # fmt: skip
    lines = [json.loads(line) for line in export(audit_store, audit_key)]
    assert [line["id"] for line in lines] == ["net", "name", "other"]
    assert lines[1]["resolved"] == {"shop.example.org": ["198.51.100.20", "2001:db8::20"]}


def test_a_big_target_list_is_stored_by_digest_and_reference_and_still_searched(
    audit_store: ObjectStore, audit_key: AuditKey, tmp_path: Path, clock: AuditClock
) -> None:
    targets = [f"10.{n // 256}.{n % 256}.1" for n in range(1500)] + ["big.example.net"]
    journal = audit_journal(audit_store, audit_key, tmp_path / "spool", clock)
    journal.record(audit_event("big", clock.now, targets=targets))
    clock.now += 5
    journal.close()
    [line] = [json.loads(line) for line in export(audit_store, audit_key)]
    assert line["targets"] == [] and len(line["targets_digest"]) == 64
    assert line["targets_ref"].startswith(PREFIX) and line["targets_ref"].endswith(line["targets_digest"])
    assert ids(search(audit_store, audit_key, "10.5.77.1")) == ["big"]
    assert ids(search(audit_store, audit_key, "big.example.net")) == ["big"]
    assert verify(audit_store, audit_key, now=clock.moment).ok
    audit_store.put(line["targets_ref"], audit_key.seal(line["targets_ref"], b'["10.0.0.1"]'))
    [problem] = verify(audit_store, audit_key, now=clock.moment).problems
    assert "does not match its event's digest" in problem


def test_the_sweep_removes_segments_past_the_retention_and_verify_accepts_the_cut(
    audit_store: ObjectStore, audit_key: AuditKey, tmp_path: Path, clock: AuditClock
) -> None:
    journal = audit_journal(audit_store, audit_key, tmp_path / "spool", clock)
    journal.record(audit_event("old", clock.now, targets=[f"10.0.{n // 256}.{n % 256}" for n in range(1200)]))
    clock.now += 5
    journal.close()
    clock.now += 86400 * 2
    restarted = audit_journal(audit_store, audit_key, tmp_path / "spool", clock)
    restarted.record(audit_event("new", clock.now))
    clock.now += 5
    restarted.close()
    stored = len(list(audit_store.list(PREFIX)))
    removed = sweep_expired(audit_store, clock.moment, retention_days=1)
    assert removed == 3, "the first period's events, head and target list"
    assert len(list(audit_store.list(PREFIX))) == stored - 3
    assert [json.loads(line)["id"] for line in export(audit_store, audit_key)] == ["new"]
    assert verify(audit_store, audit_key, now=clock.moment, retention_days=1).ok
    assert not verify(audit_store, audit_key, now=clock.moment, retention_days=400).ok, "too early to be expiry"


def test_an_altered_segment_is_skipped_and_named_while_the_rest_still_answers(
    audit_store: ObjectStore, audit_key: AuditKey, trail: AuditClock, tmp_path: Path
) -> None:
    [first] = sorted((tmp_path / "store").rglob("*.seg"))[:1]
    first.write_bytes(first.read_bytes()[:-1])
    found = search(audit_store, audit_key, "203.0.113.7")
    assert ids(found) == ["other"]
    assert len(found.unreadable) == 1 and "failed authentication" in found.unreadable[0]

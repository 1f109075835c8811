"""`toolrunner audit verify|search|export` against a real file store: output, and exit 0, 1 (problems) or 2 (key)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tasks.artifacts import ObjectStore
from tasks.audit import AuditConfigError, AuditKey
from tasks.audit.layout import place
from tasks.cli import cli
from tasks.cli.audit import AuditAccess, build_app, parse_time
from tasks.errors import UserError
from tests.unit.helpers import AuditClock, audit_event, audit_journal


@pytest.fixture
def stored(audit_store: ObjectStore, audit_key: AuditKey, tmp_path: Path) -> int:
    """A closed stream of acme's /24 scan and globex's name scan, an hour ago; returns its first period."""
    clock = AuditClock(datetime.now(UTC).timestamp() // 10 * 10 - 3600)
    journal = audit_journal(audit_store, audit_key, tmp_path / "spool", clock)
    journal.record(audit_event("net", clock.now + 1, run_id="run-7", tool="naabu", worker="w1",
                               egress_address="192.0.2.250", targets=["203.0.113.0/24"]))  # fmt: skip
    journal.record(audit_event("name", clock.now + 2, tenant="globex", targets=["www.example.com"]))
    clock.now += 5
    journal.close()
    return int(clock.now // 10 * 10)


def invoke(store: ObjectStore, key: AuditKey, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(build_app(lambda: AuditAccess(store, key)), list(args))
    return result.exit_code, result.stdout, result.stderr


def test_verify_of_an_intact_trail_exits_zero(audit_store: ObjectStore, audit_key: AuditKey, stored: int) -> None:
    code, out, _ = invoke(audit_store, audit_key, "verify")
    assert code == 0
    assert "1 streams, 1 segments, 2 events checked" in out and "ok" in out


def test_verify_of_a_tampered_trail_exits_one_listing_the_problem(
    audit_store: ObjectStore, audit_key: AuditKey, stored: int, tmp_path: Path
) -> None:
    segment = tmp_path / "store" / place("w1", stored).segment
    blob = bytearray(segment.read_bytes())
    blob[20] ^= 1
    segment.write_bytes(bytes(blob))
    code, _, err = invoke(audit_store, audit_key, "verify", "--since", "2d")
    assert code == 1
    assert "failed authentication" in err.replace("\n", " ")


def test_search_prints_the_run_that_scanned_an_address_inside_its_network(
    audit_store: ObjectStore, audit_key: AuditKey, stored: int
) -> None:
    code, out, _ = invoke(audit_store, audit_key, "search", "--target", "203.0.113.7", "--since", "1d")
    assert code == 0
    assert "run-7" in out and "naabu" in out and "192.0.2.250" in out
    assert "1 events; 1 of 1 segments opened" in out


def test_search_as_json_with_a_tenant_leaves_out_another_tenants_runs(
    audit_store: ObjectStore, audit_key: AuditKey, stored: int
) -> None:
    code, out, _ = invoke(audit_store, audit_key, "search", "--target", "www.example.com", "--json")
    assert code == 0 and [json.loads(line)["id"] for line in out.splitlines()] == ["name"]
    code, out, _ = invoke(audit_store, audit_key, "search", "--target", "www.example.com", "--tenant", "acme", "--json")
    assert code == 0 and out == ""


def test_export_writes_one_json_line_an_event(audit_store: ObjectStore, audit_key: AuditKey, stored: int) -> None:
    code, out, _ = invoke(audit_store, audit_key, "export", "--since", "2d")
    assert code == 0
    assert [json.loads(line)["id"] for line in out.splitlines()] == ["net", "name"]


def test_a_missing_audit_key_exits_two_saying_how_to_set_it(audit_store: ObjectStore) -> None:
    def no_key() -> AuditAccess:
        return AuditAccess(audit_store, AuditKey.parse(None))

    result = CliRunner().invoke(build_app(no_key), ["verify"])
    assert result.exit_code == 2
    assert "TOOLRUNNER_AUDIT_KEY" in result.stderr


def test_the_audit_group_is_mounted_on_toolrunner() -> None:
    result = CliRunner().invoke(cli, ["audit", "--help"])
    assert result.exit_code == 0
    assert all(command in result.stdout for command in ("verify", "search", "export"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-01T03:12:00Z", datetime(2026, 3, 1, 3, 12, tzinfo=UTC)),
        ("2026-03-01T04:12:00+01:00", datetime(2026, 3, 1, 3, 12, tzinfo=UTC)),
        ("7d", datetime(2026, 3, 8, tzinfo=UTC) - timedelta(days=7)),
        ("12h", datetime(2026, 3, 8, tzinfo=UTC) - timedelta(hours=12)),
    ],
)
def test_times_are_iso_dates_or_times_ago(text: str, expected: datetime) -> None:
    assert parse_time(text, now=datetime(2026, 3, 8, tzinfo=UTC)) == expected


def test_a_time_in_another_form_is_a_user_error() -> None:
    with pytest.raises(UserError, match="time ago"):
        parse_time("last tuesday")


def test_the_key_error_is_a_config_error() -> None:
    assert issubclass(AuditConfigError, ValueError)

"""Names, labels and validation of identifiers and file names (pure functions)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from isolation.errors import InvalidFilenameError, InvalidIdentifierError
from isolation.naming import (
    Label,
    Role,
    deadline_labels,
    format_created,
    format_deadline,
    label,
    label_key,
    managed_filter,
    managed_volume,
    new_identity,
    parse_created,
    parse_deadline,
    prefixed,
    role_labels,
    validate_filename,
    validate_filenames,
    validate_identifier,
)


@pytest.mark.parametrize("value", ["a", "acme", "A-b_9", "x" * 64, "-lead", "_"])
def test_valid_identifiers_are_returned_unchanged(value: str) -> None:
    assert validate_identifier("tenant_id", value) == value


@pytest.mark.parametrize("value", ["", "x" * 65, "a b", "a/b", "a.b", "ünï", "a\n", None, 7, "../x", "a;rm"])
def test_invalid_identifiers_name_the_field_and_the_rule(value: object) -> None:
    with pytest.raises(InvalidIdentifierError, match=r"run_id .* must match \^\[A-Za-z0-9_-\]\{1,64\}\$"):
        validate_identifier("run_id", value)


def test_a_new_identity_has_the_documented_name_shape_and_labels() -> None:
    identity = new_identity("acme", "scan-42")
    assert re.fullmatch(r"tenant-acme-run-scan-42-\d{13}-[0-9a-f]{8}", identity.name)
    labels = identity.labels()
    assert labels["studio.managed"] == "true"
    assert labels["studio.tenant"] == "acme" and labels["studio.run"] == "scan-42"
    assert parse_created(labels["studio.created"]) == identity.created
    assert re.fullmatch(r"[0-9a-f]{32}", labels["studio.nonce"])


def test_two_identities_for_the_same_run_never_share_a_name_or_nonce() -> None:
    first, second = new_identity("acme", "r"), new_identity("acme", "r")
    assert first.name != second.name and first.nonce != second.nonce


def test_a_custom_prefix_heads_every_label() -> None:
    assert all(k.startswith("acme.scan.") for k in new_identity("a", "b", "acme.scan").labels())


@pytest.mark.parametrize("prefix", ["", "Studio", "a..b", "-a", "a b"])
def test_a_label_prefix_that_docker_would_mangle_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="label prefix"):
        new_identity("a", "b", prefix)


@pytest.mark.parametrize("name", ["a", "a.txt", "cfg/a/b.yaml", ".hidden", "a..b", "ünïcode.txt", "x" * 255])
def test_safe_relative_names_are_accepted(name: str) -> None:
    assert validate_filename(name) == name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "empty"),
        ("/etc/passwd", "relative"),
        ("..", r"'\.\.'"),
        ("a/../b", r"'\.\.'"),
        ("./a", r"'\.'"),
        ("a//b", "empty"),
        ("a/", "empty"),
        ("a\\b", "backslash"),
        ("a\x00b", "NUL"),
        ("a\nb", "control"),
        ("a\x7fb", "control"),
        ("x" * 256, "255 bytes"),
        ("/".join(["x" * 200] * 6), "1024 bytes"),
        ("\udc80", "surrogate"),
    ],
)
def test_unsafe_names_are_refused_with_the_reason(name: str, problem: str) -> None:
    with pytest.raises(InvalidFilenameError, match=problem):
        validate_filename(name)


def test_a_name_that_is_both_a_file_and_a_directory_is_refused() -> None:
    with pytest.raises(InvalidFilenameError, match="both a file and a directory"):
        validate_filenames(["cfg", "cfg/a.yaml"])


def test_non_string_names_are_refused() -> None:
    with pytest.raises(InvalidFilenameError, match="must be a str"):
        validate_filename(b"a")


@pytest.mark.parametrize("raw", [None, "", "yesterday", "2026-13-01T00:00:00Z"])
def test_unreadable_created_labels_parse_to_none(raw: str | None) -> None:
    assert parse_created(raw) is None


def test_created_labels_are_utc_iso8601_with_a_z() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert format_created(moment) == "2026-01-02T03:04:05.678Z"
    assert parse_created("2026-01-02T03:04:05.678Z") == moment


def test_every_label_key_is_the_prefix_a_dot_and_the_key() -> None:
    assert label_key("acme.scan", Label.TENANT) == "acme.scan.tenant"
    assert prefixed({"task": "t-1", "worker": "w"}, "studio") == {"studio.task": "t-1", "studio.worker": "w"}
    assert label({"studio.run": "r"}, "studio", Label.RUN) == "r"
    assert label(None, "studio", Label.RUN) is None


def test_the_managed_filter_narrows_by_label_values_and_by_keys_present() -> None:
    assert managed_filter("studio") == {"label": ["studio.managed=true"]}
    assert managed_filter("studio", present=[Label.DEADLINE], tenant="t1", run="r") == {
        "label": ["studio.managed=true", "studio.run=r", "studio.tenant=t1", "studio.deadline"]
    }


def test_a_tool_container_carries_the_volume_labels_and_its_role() -> None:
    volume = new_identity("acme", "scan").labels()
    tool = role_labels(volume, Role.TOOL, prefix="studio")
    assert tool == {**volume, "studio.role": "tool"}
    assert role_labels(volume, Role.HELPER, prefix="studio")["studio.role"] == "helper"


def test_a_deadline_label_is_utc_epoch_seconds_rounded_up() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 1000, tzinfo=UTC)
    assert deadline_labels(moment, prefix="studio") == {"studio.deadline": str(int(moment.timestamp()) + 1)}
    assert parse_deadline(format_deadline(moment)) == moment.replace(microsecond=0) + timedelta(seconds=1)


def test_a_naive_deadline_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_deadline(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        new_identity("a", "b", deadline=datetime(2026, 1, 1))


@pytest.mark.parametrize("raw", [None, "", "soon", "-5", "1.5", "١٢٣", "9" * 40])
def test_unreadable_deadline_labels_parse_to_none(raw: str | None) -> None:
    assert parse_deadline(raw) is None


def test_an_identity_with_a_deadline_labels_the_volume_with_it() -> None:
    deadline = datetime(2030, 1, 1, tzinfo=UTC)
    assert parse_deadline(new_identity("a", "b", deadline=deadline).labels()["studio.deadline"]) == deadline
    assert "studio.deadline" not in new_identity("a", "b").labels()


def test_a_managed_volume_record_is_read_from_dockers_volume_list() -> None:
    labels = new_identity("acme", "scan-1", deadline=datetime(2030, 1, 1, tzinfo=UTC)).labels()
    record = managed_volume({"Name": "v", "Labels": labels}, "studio", in_use=True)
    assert (record.name, record.tenant, record.run, record.in_use) == ("v", "acme", "scan-1", True)
    assert record.created == parse_created(labels["studio.created"])
    assert record.deadline == datetime(2030, 1, 1, tzinfo=UTC)


def test_a_volume_without_labels_falls_back_to_dockers_creation_time() -> None:
    record = managed_volume({"Name": "v", "Labels": None, "CreatedAt": "2026-01-02T03:04:05Z"}, "studio", in_use=False)
    assert (record.tenant, record.run, record.deadline) == ("", "", None)
    assert record.created == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

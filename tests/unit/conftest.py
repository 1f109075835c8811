"""Fixtures several unit test modules share: an audit store in a temp directory, its key and a hand-moved clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.artifacts import ObjectStore, open_store
from tasks.audit import AuditKey, new_audit_key
from tests.unit.helpers import AuditClock


@pytest.fixture
def audit_store(tmp_path: Path) -> ObjectStore:
    """A real file store under the test's temp directory."""
    return open_store((tmp_path / "store").as_uri())


@pytest.fixture
def audit_key() -> AuditKey:
    """A fresh audit key."""
    return AuditKey.parse(new_audit_key())


@pytest.fixture
def clock() -> AuditClock:
    """A clock at the start of a period of every cadence the tests use."""
    return AuditClock()

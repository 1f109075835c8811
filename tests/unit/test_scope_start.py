"""A worker states its scope mode when it starts, and a malformed scope setting stops it, naming the setting."""

from __future__ import annotations

import logging

import pytest

from config import Settings
from tasks.worker.scoping import announce


def test_scope_off_is_announced_as_a_warning_at_worker_start(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="tasks.worker.scoping"):
        announce(Settings(scope="off"))
    [record] = caplog.records
    assert record.levelno == logging.WARNING and "TOOLRUNNER_SCOPE=off" in record.getMessage()


def test_an_enforced_scope_is_announced_with_the_private_ranges_it_allows(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="tasks.worker.scoping"):
        announce(Settings(scope_allow_private=("10.20.0.0/16",)))
    [record] = caplog.records
    assert record.levelno == logging.INFO and "10.20.0.0/16" in record.getMessage()


@pytest.mark.parametrize(
    ("setting", "value"),
    [("scope_deny", ("not a network/x",)), ("scope_allow_private", ("example.com",)), ("scope_resolvers", ("dns",))],
)
def test_a_malformed_scope_setting_stops_the_worker_naming_it(setting: str, value: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match=f"TOOLRUNNER_{setting.upper()}"):
        announce(Settings(**{setting: value}))

"""Settings that contradict each other are refused when they are read, before anything runs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config import Settings


def test_a_sweep_age_below_the_longest_run_is_refused() -> None:
    # max timeout 3600 s + 2 x 120 s margins = 3840 s > 1 h: the sweep would kill running tools.
    with pytest.raises(ValidationError, match="sweep would remove running tool containers"):
        Settings(sweep_max_age_hours=1)


def test_a_sweep_age_above_the_longest_run_is_accepted() -> None:
    assert Settings(sweep_max_age_hours=2).sweep_max_age_hours == 2
    assert Settings(sweep_max_age_hours=1, max_timeout_seconds=600).hard_time_limit == 840


def test_the_defaults_agree_with_each_other() -> None:
    settings = Settings()
    assert settings.sweep_max_age_hours * 3600 > settings.hard_time_limit


def test_container_limits_come_from_the_settings() -> None:
    limits = Settings(memory_limit="256m", pids_limit=64).container_limits()
    assert (limits.memory, limits.pids) == ("256m", 64)

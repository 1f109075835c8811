"""The politeness bench's plan: every run once, the other hosts' runs mixed in, words the recorder finds."""

from __future__ import annotations

import pytest

from bench import loopback
from bench.politeness.plan import TENANTS, Limits, other_addresses, phase_env, phases, plan, production_limits, wordlist
from bench.politeness.table import Parking, parking_of
from bench.recorder import EXISTING
from config import Settings, load_settings


def test_the_plan_holds_each_tenants_shared_runs_and_mixes_the_other_hosts_runs_in() -> None:
    runs = plan("on", 10, 10)
    shared = [r for r in runs if r.other is None]
    assert len(runs) == 40 and len({r.label for r in runs}) == 40
    assert [r.tenant for r in shared[:3]] == list(TENANTS)
    assert sorted(r.other for r in runs if r.other is not None) == list(range(10))
    first_other = next(i for i, r in enumerate(runs) if r.other is not None)
    assert first_other == 3  # after the first round of shared runs, not queued behind all thirty
    assert {r.tenant for r in runs if r.other is not None} == set(TENANTS)


@pytest.mark.parametrize(("runs", "others"), [(1, 0), (1, 5), (3, 1)])
def test_every_run_is_planned_whatever_the_counts(runs: int, others: int) -> None:
    assert len(plan("off", runs, others)) == 3 * runs + others


def test_a_wordlist_has_the_words_asked_for_and_ends_with_the_ones_that_exist() -> None:
    words = wordlist(200)
    assert len(words) == len(set(words)) == 200 and set(words[-len(EXISTING) :]) == EXISTING


def test_other_hosts_are_one_address_each_unless_ports_of_one_are_asked_for() -> None:
    assert other_addresses(3) == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    assert other_addresses(3, ports=True) == ["127.0.0.2"] * 3
    with pytest.raises(ValueError):
        other_addresses(251)


@pytest.mark.parametrize(
    ("pairs", "order"),
    [(1, ["off", "on"]), (2, ["off", "on", "on", "off"]), (3, ["off", "on", "on", "off", "off", "on"])],
)
def test_phases_alternate_so_neither_setting_always_runs_second(pairs: int, order: list[str]) -> None:
    assert phases(pairs) == order


def test_the_limits_are_the_settings_models_defaults_whatever_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLRUNNER_HOST_MAX_RUNNING", "16")
    limits = production_limits()
    assert limits == Limits(
        Settings.model_fields["host_max_running"].default, Settings.model_fields["host_max_rps"].default
    )
    assert limits == Limits(2, 50)


def test_a_phase_runs_its_workers_under_the_production_limits_not_the_test_suites(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in loopback.HOST_LIMITS.items():  # a caller's environment with the suite's limits
        monkeypatch.setenv(name, value)
    env = phase_env("redis://127.0.0.1:6394/7", "on", production_limits())
    for name, value in env.items():  # what start_worker does: os.environ, then env over it
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert (settings.host_max_running, settings.host_max_rps) == (2, 50) and settings.politeness == "on"
    assert env["TOOLRUNNER_TOOL_NETWORK"] == "host"
    assert env["TOOLRUNNER_SCOPE_ALLOW_PRIVATE"] == loopback.ENVIRONMENT["TOOLRUNNER_SCOPE_ALLOW_PRIVATE"]


def test_parking_is_counted_from_the_worker_log_by_what_a_run_waits_for() -> None:
    log = (
        "[t: INFO/ForkPoolWorker-2] parked task=a tenant=B ahead=0 host=127.0.0.1\n"
        "[t: INFO/ForkPoolWorker-1] parked task=b tenant=A ahead=3 host=-\n"
        "[t: INFO/ForkPoolWorker-1] dispatched parked run task=a tenant=B tool=ffuf\n"
    )
    assert parking_of(log) == Parking(for_host=1, for_slot=1, dispatched=1)
    assert parking_of(log) + parking_of(log) == Parking(2, 2, 2)

"""The politeness bench's plan: every run once, the other hosts' runs mixed in, words the recorder finds."""

from __future__ import annotations

import pytest

from bench.politeness.plan import TENANTS, other_addresses, plan, wordlist
from bench.recorder import EXISTING


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


def test_other_hosts_are_ports_of_one_address_or_one_address_each() -> None:
    assert other_addresses(3, spread=False) == ["127.0.0.2"] * 3
    assert other_addresses(3, spread=True) == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    with pytest.raises(ValueError):
        other_addresses(251, spread=True)

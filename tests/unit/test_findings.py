"""Findings stream into the result up to the inline budget; the count and the parse error are never lost."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tasks.service.findings import collect


def many(n: int) -> Iterator[dict[str, int]]:
    for i in range(n):
        yield {"i": i}


def test_findings_within_the_budget_are_all_kept() -> None:
    result = collect(many(3), inline_bytes=1 << 20)
    assert result.inline == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert (result.count, result.truncated, result.parse_error) == (3, False, None)


def test_past_the_budget_the_first_findings_stay_and_every_one_is_counted() -> None:
    result = collect(many(100_000), inline_bytes=1000)
    assert result.truncated and result.count == 100_000
    assert result.inline == [{"i": i} for i in range(len(result.inline))]
    assert len(json.dumps(result.inline, separators=(",", ":"))) <= 1000


def test_every_finding_reaches_the_full_set_sink_even_past_the_budget() -> None:
    seen: list[dict[str, int]] = []
    collect(many(50), inline_bytes=100, also=seen.append)
    assert seen == list(many(50))


def test_a_parser_failing_midway_keeps_what_it_yielded_and_says_why() -> None:
    def broken() -> Iterator[dict[str, int]]:
        yield {"i": 0}
        raise RecursionError("maximum recursion depth exceeded")

    result = collect(broken(), inline_bytes=1 << 20)
    assert result.inline == [{"i": 0}] and result.count == 1
    assert result.parse_error == "RecursionError: maximum recursion depth exceeded"


class Interrupted(Exception):
    """Stands for Celery's soft time limit, which is an Exception too."""


def test_the_callers_interruption_is_not_mistaken_for_a_parse_error() -> None:
    def interrupted() -> Iterator[dict[str, int]]:
        yield {"i": 0}
        raise Interrupted

    with pytest.raises(Interrupted):
        collect(interrupted(), inline_bytes=1 << 20, interruptions=(Interrupted,))

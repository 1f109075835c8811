"""Which progress reports a run publishes (tasks.worker.progress.Throttle): pure, on a clock the test moves."""

from __future__ import annotations

import pytest

from tasks.service import Stage
from tasks.worker.progress import BRIEF, BRIEF_VIA, INTERVAL, Throttle

CREATE = {"files": 1, "via": "create"}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_run_that_ends_within_the_interval_publishes_only_its_first_stage() -> None:
    clock = Clock()
    throttle = Throttle(clock=clock)
    published = []
    stages = [(Stage.VALIDATING, {}), (Stage.PREPARING_INPUTS, CREATE), (Stage.RUNNING, {})]
    for stage, meta in [*stages, (Stage.READING_OUTPUTS, {"via": "stdout"}), (Stage.CLEANING_UP, {})]:
        published.append(throttle.publish(stage, meta))
        clock.now += 0.05
    assert published == [True, False, False, False, False]


def test_every_tick_of_a_running_tool_is_published() -> None:
    clock = Clock()
    throttle = Throttle(clock=clock)
    assert throttle.publish(Stage.PREPARING_INPUTS, CREATE)
    clock.now += 0.01
    assert not throttle.publish(Stage.RUNNING, {})  # the stage itself, a moment after the last publish
    ticks = []
    for _ in range(5):
        clock.now += 1.0  # the tool's tick
        ticks.append(throttle.publish(Stage.RUNNING, {}))
    assert ticks == [True] * 5


@pytest.mark.parametrize("stage", sorted(set(Stage) - BRIEF - set(BRIEF_VIA)))
def test_a_stage_that_can_last_is_published_at_once(stage: Stage) -> None:
    clock = Clock()
    throttle = Throttle(clock=clock)
    assert throttle.publish(Stage.VALIDATING, {})
    clock.now += 0.001
    assert throttle.publish(stage, {})
    assert not throttle.publish(Stage.PREPARING_INPUTS, CREATE), "a brief stage right after it waits for the interval"
    clock.now += INTERVAL + 1e-6
    assert throttle.publish(Stage.PREPARING_INPUTS, CREATE)


@pytest.mark.parametrize(("stage", "via"), [(Stage.PREPARING_INPUTS, "archive"), (Stage.READING_OUTPUTS, "volume")])
def test_inputs_or_outputs_moved_through_the_archive_api_are_published_at_once(stage: Stage, via: str) -> None:
    clock = Clock()
    throttle = Throttle(clock=clock)
    assert throttle.publish(Stage.VALIDATING, {})
    clock.now += 0.001
    assert throttle.publish(stage, {"files": 1, "via": via})
    assert throttle.publish(stage, {"files": 1})  # the archive path says nothing of `via`

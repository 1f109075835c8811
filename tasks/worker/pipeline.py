"""A run's way through the worker: one sequence of steps over one context per delivery.

Each step (tasks/worker/steps/, one module each) does its part and hands the run to the rest of the sequence,
or ends it there: a cache hit returns, a run over its tenant's cap parks, a refused id is dropped. Steps that
need a broker are skipped in eager mode, so a unit test runs the same sequence (plan, then execute). Adding a
step is one module in tasks/worker/steps/ and one line below.
"""

from __future__ import annotations

from collections.abc import Sequence

from tasks.service import RunResult
from tasks.worker.context import Run
from tasks.worker.steps import (
    Proceed,
    Step,
    accepted,
    admission,
    cache,
    cancelled,
    chunk,
    control,
    execute,
    finished,
    identity,
    intrusive,
    lock,
    plan,
    redelivery,
    refused,
    scope,
    split,
)

STEPS: tuple[Step, ...] = (
    chunk.STEP,  # a chunk's end counted once in its parent; a failed chunk run again alone first
    refused.STEP,  # a run refused before admission (bad input, out of scope): its end recorded, its tenant told
    plan.STEP,  # the request validated into a plan: bad input fails at once, before any engine call
    identity.STEP,  # the task id bound to this run: an id of another run is refused
    cancelled.STEP,  # cancelled before it started: REVOKED, nothing made
    intrusive.STEP,  # an intrusive tool only for a tenant an operator opted in; else bad input, nothing made
    scope.STEP,  # every target in the tenant's scope and none denied; else bad input, nothing made
    accepted.STEP,  # audited before anything happens to it: targets, argv, resolved addresses (or the run fails)
    split.STEP,  # more targets than a chunk: published as chunks that run on any worker; the parent holds nothing
    cache.LOOKUP,  # a recent identical run's result is the answer; behind an identical run: parked
    admission.STEP,  # a slot under the tenant's cap; over it: parked (fair share)
    finished.STEP,  # the final state stored before the slot is let go
    chunk.RESULT,  # a chunk's result counted in its parent before it is stored
    cache.KEEP,  # an ok result kept for identical runs
    lock.STEP,  # one delivery at a time; one that already succeeded is returned
    redelivery.STEP,  # deliveries counted and capped; an earlier attempt's leftovers go
    control.STEP,  # cancel, revoke and deploy stop the tool within a second
    execute.STEP,  # the tool in its volumes; an unreachable engine retried with backoff
)


def run_pipeline(run: Run, steps: Sequence[Step] = STEPS) -> RunResult:
    """Take one delivery through the steps (those that need a broker only where there is one)."""
    active = [step for step in steps if not (step.needs_broker and run.eager)]

    def proceed_from(index: int) -> Proceed:
        def proceed(current: Run) -> RunResult:
            if index == len(active):
                raise RuntimeError(f"the last step, {active[-1].name}, must not proceed: nothing follows it")
            return active[index].call(current, proceed_from(index + 1))

        return proceed

    return proceed_from(0)(run)

"""The steps of a run's way through the worker, one module each, in the order tasks/worker/pipeline.py runs them.

Each module defines STEP: a name, `call(run, proceed)` and whether it needs a broker. A step does its part and
calls `proceed(run)` for the rest of the sequence, or ends the run without it (a hit, a park, a refusal).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tasks.service import RunResult
from tasks.worker.context import Run

Proceed = Callable[[Run], RunResult]


@dataclass(frozen=True)
class Step:
    """One step of the pipeline."""

    name: str
    call: Callable[[Run, Proceed], RunResult]
    needs_broker: bool = True  # skipped in eager mode, where no worker, Redis or broker is (see Run.eager)

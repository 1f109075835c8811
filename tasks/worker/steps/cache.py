"""The result cache, in two steps: the lookup before admission (a hit or a wait holds no slot), and keeping an
ok result for identical runs once the run is done (inside the slot, so it is kept before the run is let go)."""

from __future__ import annotations

from tasks.service import RunResult
from tasks.worker import audit
from tasks.worker.cache import result_cache
from tasks.worker.completion import completed
from tasks.worker.context import Run
from tasks.worker.steps import Proceed, Step


def _lookup(run: Run, proceed: Proceed) -> RunResult:
    services = run.services
    with result_cache(run.task, run.plan, services.engine, services.redis, services.settings) as cached:
        if cached.hit is not None:
            hit = cached.hit
            audit.finished(run, hit.status.value, hit.reason or "", hit)  # its image ID: the run it copies had it
            if run.chunk is None:  # a hit is this run's final result too (a chunk's is its parent's business)
                completed(run.task.app, services.redis, services.artifacts, cached.hit.as_dict())
            return cached.hit
        run.cached = cached
        return proceed(run)


def _keep(run: Run, proceed: Proceed) -> RunResult:
    return run.cached.keep(run.services.redis, run.services.settings, proceed(run))


LOOKUP = Step("cache lookup", _lookup)
KEEP = Step("cache keep", _keep)

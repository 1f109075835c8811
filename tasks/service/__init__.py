"""The run service: a request validated into a plan, run on an engine, shaped into a typed result; no Celery."""

from tasks.service.plan import RunPlan, RunRequest, at_rate, plan_run
from tasks.service.result import CacheInfo, Outcome, RunResult, RunStats, Stage, Status, outcome
from tasks.service.runner import Reporter, RunContext, RunMetrics, execute

__all__ = [
    "CacheInfo",
    "Outcome",
    "Reporter",
    "RunContext",
    "RunMetrics",
    "RunPlan",
    "RunRequest",
    "RunResult",
    "RunStats",
    "Stage",
    "Status",
    "at_rate",
    "execute",
    "outcome",
    "plan_run",
]

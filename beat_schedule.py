"""The periodic schedule: the orphan sweep on every worker's Docker daemon, the artifact and audit retention sweeps."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

from config import Settings


def build_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Celery's beat_schedule: `toolrunner.sweep_all` fans the orphan sweep out to every live worker; one
    artifact retention sweep (the store is shared: S3 once there is more than one worker host), and one of the
    audit trail (kept TOOLRUNNER_AUDIT_RETENTION_DAYS, in the same store), at the same time."""
    return {
        "sweep-orphaned-volumes": {
            "task": "toolrunner.sweep_all",
            "schedule": _crontab(settings.sweep_cron),
            "kwargs": {"max_age_hours": settings.sweep_max_age_hours},
            # A sweep that waited longer than an hour is stale: the next one is due.
            "options": {"expires": 3600},
        },
        "sweep-expired-artifacts": {
            "task": "toolrunner.sweep_artifacts",
            "schedule": _crontab(settings.artifact_sweep_cron),
            "options": {"expires": 3600},
        },
        "sweep-expired-audit": {
            "task": "toolrunner.sweep_audit",
            "schedule": _crontab(settings.artifact_sweep_cron),
            "options": {"expires": 3600},
        },
    }


def _crontab(fields: str) -> crontab:
    minute, hour, day_of_month, month_of_year, day_of_week = fields.split()
    return crontab(minute, hour, day_of_week, day_of_month, month_of_year)

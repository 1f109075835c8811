"""The periodic schedule: the orphan sweep on every worker's Docker daemon, on a wall-clock crontab."""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

from config import Settings


def build_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Celery's beat_schedule: `toolrunner.sweep_all` fans the sweep out to every live worker."""
    minute, hour, day_of_month, month_of_year, day_of_week = settings.sweep_cron.split()
    return {
        "sweep-orphaned-volumes": {
            "task": "toolrunner.sweep_all",
            "schedule": crontab(minute, hour, day_of_week, day_of_month, month_of_year),
            "kwargs": {"max_age_hours": settings.sweep_max_age_hours},
            # A sweep that waited longer than an hour is stale: the next one is due.
            "options": {"expires": 3600},
        }
    }

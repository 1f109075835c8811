"""The beat schedule: each periodic task it names is one the workers register, on the crontab its setting gives."""

from __future__ import annotations

from beat_schedule import build_schedule
from config import Settings
from tasks.worker.app import app


def test_every_scheduled_task_is_registered_and_the_audit_is_swept_with_the_artifacts() -> None:
    schedule = build_schedule(Settings(artifact_sweep_cron="15 4 * * *"))
    assert {entry["task"] for entry in schedule.values()} <= set(app.tasks)
    audit, artifacts = schedule["sweep-expired-audit"], schedule["sweep-expired-artifacts"]
    assert audit["task"] == "toolrunner.sweep_audit" and audit["schedule"] == artifacts["schedule"]
    assert (audit["schedule"].hour, audit["schedule"].minute) == ({4}, {15})

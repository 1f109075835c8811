"""Flower's configuration file (`celery -A tasks flower --conf=config/flower.py`): auth from the settings.

Flower executes this file and reads the names it defines as its options (so imports are underscored:
a name like `logging` would collide with an option). It refuses to start without
basic-auth credentials unless TOOLRUNNER_FLOWER_INSECURE_DEV=true says this is a local dev run.
"""

from __future__ import annotations

import logging as _logging

from config.flowertask import format_task as _format_task
from config.settings import load_settings as _load_settings

_settings = _load_settings()

address = _settings.flower_address
port = _settings.flower_port
# Runs' params and files never reach Flower (redacted argsrepr, tasks/worker/monitor.py), but results carry tenants'
# findings: do not let the dashboard keep more history than it needs.
max_tasks = 10000
# The task list shows each run's Result: a running tool's stage there (config/flowertask.py), REVOKED's reason.
tasks_columns = "name,uuid,state,result,received,started,runtime,worker"
format_task = _format_task

if _settings.flower_user and _settings.flower_password:
    basic_auth = [f"{_settings.flower_user}:{_settings.flower_password.get_secret_value()}"]
elif _settings.flower_insecure_dev:
    _logging.getLogger("toolrunner.flower").warning("Flower runs WITHOUT authentication (local dev run)")
    unauthenticated_api = True
else:
    raise SystemExit(
        "refusing to start Flower without credentials: set TOOLRUNNER_FLOWER_USER and "
        "TOOLRUNNER_FLOWER_PASSWORD, or TOOLRUNNER_FLOWER_INSECURE_DEV=true for a local dev run"
    )

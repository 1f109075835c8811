"""Measure cancel, deploy (SIGTERM) and crash (SIGKILL of the process group) end to end and print a table."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import redis
from rich.console import Console
from rich.table import Table

from bench.common import BUSYBOX, SCRIPT_TOOL_MODULE, BenchError

Measure = Callable[[Any, docker.DockerClient, Path], float]


def tool_running(client: docker.DockerClient, task_id: str) -> bool:
    return bool(client.api.containers(filters={"label": [f"studio.task={task_id}", "studio.role=tool"]}))


def runs_on(client: docker.DockerClient, task_id: str) -> str:
    """The worker whose run started the task's tool container (its `worker` label)."""
    found = client.api.containers(filters={"label": [f"studio.task={task_id}", "studio.role=tool"]})
    return str(found[0]["Labels"].get("studio.worker", "")) if found else ""


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise BenchError(f"timed out waiting for {what}")


def send(app: Any, queue: str, script: str) -> Any:
    params = {"script": script, "timeout_seconds": 300}
    return app.send_task("toolrunner.run_tool", ("script", "bench", f"rc-{secrets.token_hex(3)}", params), queue=queue)


def cancel_to_gone(app: Any, client: docker.DockerClient, logs: Path) -> float:
    """Seconds from cancel_run to the tool container being gone."""
    from bench.launch import start_worker
    from tasks import cancel_run

    queue = f"rc-{secrets.token_hex(3)}"
    worker = start_worker(logs, queue, concurrency=1, queues=queue)
    try:
        handle = send(app, queue, "sleep 120")
        wait_for(lambda: tool_running(client, handle.id), 60, "the tool to start")
        started = time.monotonic()
        cancel_run(handle.id, tenant_id="bench")
        wait_for(lambda: not tool_running(client, handle.id), 30, "the container to go")
        return time.monotonic() - started
    finally:
        worker.stop()


def moved(app: Any, client: docker.DockerClient, logs: Path, sig: int) -> float:
    """Seconds from `sig` to the first worker until a 10 s run completes on a second one."""
    from bench.launch import start_worker

    queue = f"rc-{secrets.token_hex(3)}"
    first = start_worker(logs, f"a-{queue}", concurrency=1, queues=queue)
    handle = send(app, queue, "sleep 10; echo done > /outputs/out.txt")
    second = start_worker(logs, f"b-{queue}", concurrency=1, queues=queue)
    try:
        wait_for(lambda: tool_running(client, handle.id), 60, "the tool to start")
        victim = first if runs_on(client, handle.id).startswith(f"a-{queue}@") else second
        started = time.monotonic()
        if sig == signal.SIGKILL:
            victim.kill_group()
        else:
            victim.stop(sig, timeout=30)
        handle.get(timeout=300)
        return time.monotonic() - started
    finally:
        first.stop(signal.SIGKILL)
        second.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.runcontrol", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="cancel rounds (deploy and crash run once each)")
    parser.add_argument("--redis-url", default=os.environ.get("TOOLRUNNER_TEST_REDIS_URL", "redis://127.0.0.1:6379/14"))
    args = parser.parse_args(argv)
    # The bench and the workers it starts share these (the app reads them on first use).
    os.environ.update(
        TOOLRUNNER_BROKER_URL=args.redis_url, TOOLRUNNER_TOOL_NETWORK="none", TOOLRUNNER_LABEL_PREFIX="studio",
        TOOLRUNNER_EXTRA_TOOL_MODULES=f'["{SCRIPT_TOOL_MODULE}"]', TOOLRUNNER_IMAGE_SCRIPT=BUSYBOX,
    )  # fmt: skip
    from tasks import app

    redis.Redis.from_url(args.redis_url).ping()
    client = docker.from_env(timeout=120)
    logs = Path(tempfile.mkdtemp(prefix="bench-runcontrol-"))
    table = Table(
        "what", "seconds (median)", "rounds", title=f"run control (visibility {app.settings.visibility_timeout} s)"
    )
    cancels = [cancel_to_gone(app, client, logs) for _ in range(args.rounds)]
    table.add_row("cancel -> tool container gone", f"{statistics.median(cancels):.2f}", str(len(cancels)))
    table.add_row("SIGTERM -> 10 s run completed elsewhere", f"{moved(app, client, logs, signal.SIGTERM):.1f}", "1")
    table.add_row(
        "SIGKILL (group) -> 10 s run completed elsewhere", f"{moved(app, client, logs, signal.SIGKILL):.1f}", "1"
    )
    Console().print(table)
    Console().print(f"worker logs: {logs}")


if __name__ == "__main__":
    main()

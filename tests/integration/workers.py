"""Starting and stopping real `celery worker` subprocesses for integration tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from celery import Celery

from tasks import app

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Worker:
    """A running worker subprocess and where its log goes."""

    process: subprocess.Popen[bytes]
    name: str
    log: Path
    metrics_url: str = ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
        """Stop the worker (warm shutdown by default) and wait for it; SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def kill_group(self) -> None:
        """SIGKILL the worker and its pool children at once, as a crashed or OOM-killed container would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_worker(
    log_dir: Path,
    name: str,
    *,
    concurrency: int = 4,
    env: dict[str, str] | None = None,
    pool: str = "prefork",
    queues: str | None = None,
    client: Celery = app,
) -> Worker:
    """Start `celery -A tasks worker` from the repo root and wait until it answers a ping."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    command = [
        sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool", pool, "--concurrency", str(concurrency),
        "--hostname", f"{name}@%h", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    if queues:
        command += ["--queues", queues]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # its own process group, so a test can kill worker and children at once
        )
    worker = Worker(process, name, log)
    _wait_ready(worker, client)
    return worker


def _wait_ready(worker: Worker, client: Celery, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise RuntimeError(f"worker {worker.name} exited early:\n{worker.log_text()[-4000:]}")
        replies = client.control.ping(timeout=1.0) or []
        if any(name.startswith(f"{worker.name}@") for reply in replies for name in reply):
            return
    worker.stop(signal.SIGKILL)
    raise RuntimeError(f"worker {worker.name} did not answer a ping within {timeout}s:\n{worker.log_text()[-4000:]}")

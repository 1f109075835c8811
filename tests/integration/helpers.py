"""What several integration test modules share: labels of aged volumes, producers on a Redis of their own, and
what to watch on the engine and in /proc while real workers run."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import docker
import redis
from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded

from bench.launch import Worker
from config import celery_config, load_settings
from isolation.naming import format_created, new_identity

# Small limits so Redis delivers an abandoned message again within about a minute, not an hour.
SHORT_LIMITS = {
    "TOOLRUNNER_MAX_TIMEOUT_SECONDS": "10",
    "TOOLRUNNER_TIME_LIMIT_MARGIN_SECONDS": "2",
    "TOOLRUNNER_VISIBILITY_TIMEOUT_SECONDS": "16",
    "TOOLRUNNER_VISIBILITY_HEARTBEAT_SECONDS": "2",
}


# --- volumes -------------------------------------------------------------------------------------------------------


def aged_labels(tenant: str, hours: float, **extra: str) -> dict[str, str]:
    """Managed labels of a volume created `hours` ago."""
    identity = new_identity(tenant, "sweep")
    labels = identity.labels()
    labels["studio.created"] = format_created(datetime.now(UTC) - timedelta(hours=hours))
    return {**labels, **extra}


def volume_exists(client: docker.DockerClient, name: str) -> bool:
    """Whether the engine has a volume of this name."""
    try:
        client.volumes.get(name)
    except docker.errors.NotFound:
        return False
    return True


# --- producers and Redis -------------------------------------------------------------------------------------------


def client_app(broker: str) -> Celery:
    """A producer app on its own Redis database, configured like the project's."""
    producer = Celery("fault-client", set_as_current=False)
    producer.conf.update(celery_config(load_settings()), broker_url=broker, result_backend=broker)
    return producer


def pings(url: str) -> bool:
    """Whether the Redis at url answers a ping now."""
    try:
        with redis.Redis.from_url(url) as conn:
            return bool(conn.ping())
    except redis.RedisError:
        return False


def final_state(producer: Celery, task_id: str, timeout: float = 180) -> str:
    """SUCCESS or FAILURE once reached (polled: during the outage a client's own connection may fail)."""
    deadline = time.monotonic() + timeout
    state = "PENDING"
    while time.monotonic() < deadline:
        state = producer.AsyncResult(task_id).state
        if state in ("SUCCESS", "FAILURE"):
            return state
        time.sleep(0.5)
    return f"not terminal after {timeout}s: {state}"


# --- what runs on the engine and in the worker ---------------------------------------------------------------------


def tool_containers(client: docker.DockerClient, tenant: str) -> int:
    """How many tool containers of this tenant are running on the engine now."""
    return len(client.api.containers(filters={"label": [f"studio.tenant={tenant}", "studio.role=tool"]}))


@contextmanager
def double_runs(client: docker.DockerClient, tenant: str) -> Iterator[list[str]]:
    """The run ids of tenant seen with two tool containers alive at once (a double run) during the block."""
    overlaps: list[str] = []
    stop = threading.Event()
    with_label = {"label": ["studio.role=tool", f"studio.tenant={tenant}"]}

    def watch() -> None:
        while not stop.wait(0.1):
            runs = [c["Labels"].get("studio.run") for c in client.api.containers(filters=with_label)]
            overlaps.extend(r for r in set(runs) if runs.count(r) > 1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield overlaps
    finally:
        stop.set()
        watcher.join()


def pool_process(worker: Worker) -> int:
    """The pid of the worker's one pool process."""
    children = Path(f"/proc/{worker.process.pid}/task/{worker.process.pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def peak_rss(pid: int) -> int:
    """The process's peak resident memory (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


class InterruptedStream(io.RawIOBase):
    """A seekable 8 MiB input whose third read raises Celery's soft time limit, mid-upload."""

    def __init__(self) -> None:
        self.reads = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return 8 << 20 if whence == io.SEEK_END else 0

    def tell(self) -> int:
        return 0

    def readinto(self, buffer: Any) -> int:
        self.reads += 1
        if self.reads >= 3:
            raise SoftTimeLimitExceeded()
        buffer[: len(buffer)] = b"\0" * len(buffer)
        return len(buffer)


class Zone:
    """A DNS server on 127.0.0.1 (UDP, a port of its own) answering A queries from a table; other names NXDOMAIN."""

    def __init__(self, records: dict[str, str]) -> None:
        self.records = records
        self.asked: list[str] = []
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.1)
        self.port = int(self._socket.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._socket.recvfrom(4096)
            except TimeoutError:
                continue
            self._socket.sendto(self.answer(dns.message.from_wire(data)).to_wire(), peer)

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        self.asked.append(name)
        if name not in self.records:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", self.records[name]))
        return response  # AAAA of a known name: no answer

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()

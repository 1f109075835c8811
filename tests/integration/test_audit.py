"""The audit trail on real workers: every transition of a run and every policy change is recorded with where it came
from, a refused run with its reason, and nothing is lost when Redis is flushed, a worker is SIGTERMed or SIGKILLed
mid-run; `search` finds a run by an address inside the network it scanned, by a name and by what the name resolved
to, and not for another tenant. The tampering `verify` catches is tests/unit/test_audit_verify.py's."""

from __future__ import annotations

import getpass
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import redis
from celery import Celery
from typer.testing import CliRunner

import tasks.webhooks
from bench.launch import Worker, free_port, start_worker, wait_until
from bench.loopback import LOOPBACK
from config import Settings, load_settings
from tasks.artifacts import ObjectStore
from tasks.audit import AuditEvent, AuditKey, Kind, export, search, verify
from tasks.cli import cli
from tasks.cli.audit import configured
from tasks.worker.audit import egress_address
from tasks.worker.cancel import cancel
from tasks.worker.limits import set_limit, unset_limit
from tests.conftest import REDIS_URL, database_url, flushed_database
from tests.integration.helpers import Zone, client_app

pytestmark = pytest.mark.integration
AUDIT_DB = database_url(REDIS_URL, 11)
TENANT, OTHER = "audited", "audited-other"
NAME = "fine.audit-test.example"
WAIT = 120


@pytest.fixture(scope="module")
def zone() -> Iterator[Zone]:
    serving = Zone({NAME: "127.0.0.1"})
    yield serving
    serving.close()


@pytest.fixture(scope="module")
def conn(redis_url: str) -> Iterator[redis.Redis]:
    with flushed_database(AUDIT_DB) as client:
        yield client


@pytest.fixture(scope="module")
def producer(conn: redis.Redis) -> Iterator[Celery]:
    app = client_app(AUDIT_DB)
    yield app
    app.close()


@pytest.fixture(scope="module")
def trail() -> tuple[ObjectStore, AuditKey]:
    """The session's store and its audit key, as `toolrunner audit` opens them."""
    return configured()


@pytest.fixture
def worker(zone: Zone, producer: Celery, tools_image: str, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start workers on this module's database (one process each); all stopped at teardown."""
    started: list[Worker] = []

    def start(name: str, queue: str, segment_seconds: int = 1, network: str = "host", concurrency: int = 1) -> Worker:
        env = {
            "TOOLRUNNER_BROKER_URL": AUDIT_DB,
            "TOOLRUNNER_TOOL_NETWORK": network,
            "TOOLRUNNER_SCOPE_RESOLVER": f"127.0.0.1:{zone.port}",
            "TOOLRUNNER_AUDIT_SEGMENT_SECONDS": str(segment_seconds),  # stored within seconds, not within the hour
        }
        started.append(start_worker(tmp_path, name, concurrency=concurrency, env=env, queues=queue, client=producer))
        return started[-1]

    yield start
    for running in started:
        running.stop()


def exported(trail: tuple[ObjectStore, AuditKey]) -> list[AuditEvent]:
    """Every stored event, each once."""
    return [AuditEvent.from_json(line) for line in export(*trail)]


def found(trail: tuple[ObjectStore, AuditKey], target: str, tenant: str | None = None) -> set[str]:
    """The task ids of the events `audit search` finds for a target."""
    return {event.task_id for event in search(*trail, target, tenant=tenant).events}


def _events(trail: tuple[ObjectStore, AuditKey], segment: str) -> list[AuditEvent]:
    """The events of one stored segment (opened with the key)."""
    store, key = trail
    return [AuditEvent.from_json(line) for line in key.open(segment, store.get(segment)).splitlines() if line]


def policy(*args: str) -> str:
    done = CliRunner().invoke(cli, list(args), env={"TOOLRUNNER_BROKER_URL": AUDIT_DB}, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return done.output


def recorded(trail: tuple[ObjectStore, AuditKey], task_id: str, kinds: set[Kind]) -> dict[Kind, AuditEvent]:
    """The task's events once every kind asked for is stored (each process stores its segment every second)."""
    events: dict[Kind, AuditEvent] = {}

    def stored() -> bool:
        events.update({e.kind: e for e in exported(trail) if e.task_id == task_id})
        return kinds <= set(events)

    wait_until(stored, 30, f"the audit events {sorted(kinds)} of task {task_id}")
    return events


def run(producer: Celery, queue: str, tool: str, tenant: str, params: dict[str, Any]) -> Any:
    return producer.send_task("toolrunner.run_tool", (tool, tenant, f"run-{free_port()}", params), queue=queue)


def test_a_run_and_the_policy_changes_before_it_are_recorded_with_where_they_came_from(
    worker: Callable[..., Worker], producer: Celery, conn: redis.Redis, trail: tuple[ObjectStore, AuditKey],
    docker_client: docker.DockerClient, tmp_path: Path,
) -> None:  # fmt: skip
    worker("audit-runs", "audit-runs")
    (tmp_path / "hook.whsec").write_text(tasks.webhooks.new_secret())
    changes = [
        ("scope", "add", "--tenant", TENANT, LOOPBACK, "audit-test.example"),
        ("limits", "set", "--tenant", TENANT, "--max-running", "3"),
        ("hosts", "set", "--host", "127.0.7.0/30", "--max-running", "8"),
        ("webhooks", "set", "--tenant", TENANT, "--url", "https://hooks.example/t", "--secret-file",
         str(tmp_path / "hook.whsec")),
        ("cache", "clear", "--tenant", TENANT),
        ("artifacts", "purge", "--tenant", OTHER, "--yes"),
    ]  # fmt: skip
    since = time.time()
    for change in changes:
        policy(*change)
    operator = [e for e in exported(trail) if e.kind.value.startswith("policy.") and e.timestamp >= since]
    assert [e.detail["command"] for e in operator] == [" ".join(c[:2]) for c in changes]
    assert {e.operator for e in operator} == {f"{getpass.getuser()}@{socket.gethostname()}"}
    assert operator[0].tenant == TENANT and operator[0].detail["entries"] == [LOOPBACK, "audit-test.example"]

    ports = str(free_port())
    handle = run(producer, "audit-runs", "nmap", TENANT, {"targets": ["127.0.7.0/30", NAME], "ports": ports})
    result = handle.get(timeout=WAIT)
    events = recorded(trail, handle.id, {Kind.RUN_ACCEPTED, Kind.RUN_STARTED, Kind.RUN_FINISHED})
    accepted, started, finished = events[Kind.RUN_ACCEPTED], events[Kind.RUN_STARTED], events[Kind.RUN_FINISHED]
    assert (accepted.tenant, accepted.tool, accepted.run_id) == (TENANT, "nmap", result["run_id"])
    assert accepted.targets == ["127.0.7.0/30", NAME] and accepted.resolved == {NAME: ["127.0.0.1"]}
    assert ports in " ".join(accepted.argv)
    assert started.argv[: len(accepted.argv)] == accepted.argv and "--max-rate" in started.argv  # as it ran: rated
    image_id = docker_client.api.inspect_image(result["image"])["Id"]
    assert started.image_id == finished.image_id == image_id
    daemon = docker_client.info()["ID"]
    origin = {(e.worker, e.daemon_id, e.egress_address) for e in events.values()}
    assert origin == {(f"audit-runs@{socket.gethostname()}", daemon, egress_address(Settings()))}
    assert (finished.status, finished.bytes_out) == (result["status"], result["stats"]["bytes_out"])

    refused = run(producer, "audit-runs", "nmap", TENANT, {"targets": ["198.51.100.7"], "ports": ports})
    with pytest.raises(Exception, match="outside"):
        refused.get(timeout=WAIT)
    (refusal,) = recorded(trail, refused.id, {Kind.RUN_REFUSED}).values()
    assert refusal.targets == ["198.51.100.7"] and "outside tenant audited's scope" in refusal.reason

    conn.flushdb()  # Redis forgets everything: the audit is in the store
    assert handle.id in found(trail, "127.0.7.2")  # inside the network it scanned
    assert handle.id in found(trail, NAME)
    assert handle.id in found(trail, "127.0.0.1")  # what the name resolved to at admission
    assert refused.id in found(trail, "198.51.100.7", tenant=TENANT)
    assert not found(trail, "127.0.7.2", tenant=OTHER)
    streams = {f"audit-runs_{socket.gethostname()}.0", "operator"}
    report = verify(*trail)
    assert not [p for p in report.problems if any(s in str(p) for s in streams)], report.problems
    store = trail[0]  # a byte flipped in the segment that holds the run's accepted event: verify says where
    segment = next(
        i.key for i in store.list(f"audit/v1/audit-runs_{socket.gethostname()}.0/")
        if i.key.endswith(".seg") and handle.id in {e.task_id for e in _events(trail, i.key)}
    )  # fmt: skip
    original = store.get(segment)
    sealed = bytearray(original)
    sealed[len(sealed) // 2] ^= 0x01
    store.put(segment, bytes(sealed))
    try:
        assert [p for p in verify(*trail).problems if segment in p]
    finally:
        store.put(segment, original)  # the session's trail stays whole for the tests after this one


def test_no_event_is_lost_when_a_worker_is_sigtermed_or_sigkilled_mid_run(
    worker: Callable[..., Worker], producer: Celery, conn: redis.Redis, trail: tuple[ObjectStore, AuditKey],
    scoped: Callable[..., None],
) -> None:  # fmt: skip
    scoped(TENANT, url=AUDIT_DB)
    # An hour's segments: nothing reaches the store on the cadence while the runs run, all of it from the spools.
    for name, stop in (("audit-term", "SIGTERM"), ("audit-kill", "SIGKILL")):
        running = worker(name, name, segment_seconds=3600, network="none")
        handle = run(producer, name, "script", TENANT, {"script": "sleep 60"})
        wait_until(lambda h=handle: (h.info or {}).get("stage") == "running", WAIT, f"{name}'s run to be running")
        if stop == "SIGTERM":
            running.stop()  # warm shutdown: the run goes back on the queue, each process stores its spool
            kinds = {Kind.RUN_ACCEPTED, Kind.RUN_STARTED, Kind.RUN_PUT_BACK}
        else:
            running.kill_group()  # nothing stored: the child's spool holds accepted and started
            assert not [e for e in exported(trail) if e.task_id == handle.id]
            worker(
                name, f"{name}-after", network="none"
            )  # its successor, same name: the spools are stored at its start
            kinds = {Kind.RUN_ACCEPTED, Kind.RUN_STARTED}
        events = recorded(trail, handle.id, kinds)
        assert all(e.worker == f"{name}@{socket.gethostname()}" for e in events.values())


def test_a_parked_run_cancelled_from_the_api_tier_is_recorded_by_a_run_worker(
    worker: Callable[..., Worker], producer: Celery, conn: redis.Redis, trail: tuple[ObjectStore, AuditKey],
    scoped: Callable[..., None],
) -> None:  # fmt: skip
    scoped(TENANT, url=AUDIT_DB)
    set_limit(conn, TENANT, 1)  # one at a time: the second run parks behind the first
    # The default queue too, where the cancel's audit goes, and a second slot to take it while the first run runs.
    worker("audit-park", "audit-park,celery", network="none", concurrency=2)
    busy = run(producer, "audit-park", "script", TENANT, {"script": "sleep 60"})
    parked = run(producer, "audit-park", "script", TENANT, {"script": "true"})
    try:
        wait_until(lambda: (parked.info or {}).get("stage") == "waiting_for_slot", WAIT, "the second run to park")
        cancel(producer, conn, load_settings(), parked.id, TENANT)  # as the API tier does: no audit key there
        event = recorded(trail, parked.id, {Kind.RUN_CANCELLED, Kind.RUN_ACCEPTED})[Kind.RUN_CANCELLED]
        assert event.worker == f"audit-park@{socket.gethostname()}" and event.reason.startswith("cancelled")
    finally:
        cancel(producer, conn, load_settings(), busy.id, TENANT)
        unset_limit(conn, TENANT)


def test_a_worker_whose_audit_cannot_be_set_up_refuses_to_start(producer: Celery, tmp_path: Path) -> None:
    env = {"TOOLRUNNER_BROKER_URL": AUDIT_DB, "TOOLRUNNER_ARTIFACT_URL": "s3://audit-bucket/prefix",
           "TOOLRUNNER_ARTIFACT_MASTER_KEY": os.environ.get("TOOLRUNNER_TEST_MASTER_KEY", "A" * 43 + "=")}  # fmt: skip
    with pytest.raises(Exception, match="exited early") as refused:
        start_worker(tmp_path, "audit-unset", concurrency=1, env=env, queues="audit-unset", client=producer)
    assert "refusing to start: audit: no audit key" in (tmp_path / "audit-unset.log").read_text(), refused

"""Scope on real workers: a refused run makes nothing on the engine, a change made anywhere reaches every worker's
next admission, a name is refused by what the worker's resolver says it is, a malformed scope setting stops a worker
at start, and a producer's Redis user may read a scope but not write one (docs/redis-acl.md's ACL, as written)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import redis
from celery import Celery
from typer.testing import CliRunner

import tasks.scope
from bench.launch import ROOT, LaunchError, Worker, free_port, start_worker, wait_until
from config import Settings
from tasks.cli import cli
from tasks.worker.backlog import drain
from tasks.worker.limits import set_limit
from tests.conftest import REDIS_URL, database_url, flushed_database
from tests.integration.helpers import Zone, client_app, pings

pytestmark = pytest.mark.integration
SCOPE_DB = database_url(REDIS_URL, 14)
FIRST, SECOND = "scope-first", "scope-second"  # each worker consumes a queue of its own
WAIT = 120
NO_SCOPE = "has no scope, so it may scan nothing: add one with `toolrunner scope add --tenant {}"
ZONE = {  # what the test's DNS server answers; every name is in the tenant's domain entry
    "meta.scan-test.example": "169.254.169.254",  # cloud metadata: denied whatever a scope says
    "inside.scan-test.example": "10.1.2.3",  # private, and not in TOOLRUNNER_SCOPE_ALLOW_PRIVATE (127.0.0.0/8)
    "fine.scan-test.example": "127.0.0.1",
}
ACL_PAGE = ROOT / "docs" / "redis-acl.md"


# --- a DNS server of the test's own -------------------------------------------------------------------------------


# --- two workers on a Redis database of this module's own ---------------------------------------------------------


@pytest.fixture(scope="module")
def zone() -> Iterator[Zone]:
    serving = Zone(ZONE)
    yield serving
    serving.close()


@pytest.fixture(scope="module")
def scope_redis(redis_url: str) -> Iterator[redis.Redis]:
    """The module's own database, flushed before and after: an operator's client (the CLI's, the API's)."""
    with flushed_database(SCOPE_DB) as client:
        yield client


@pytest.fixture(scope="module")
def producer(scope_redis: redis.Redis) -> Iterator[Celery]:
    app = client_app(SCOPE_DB)
    yield app
    app.close()


def _worker(name: str, queue: str, zone: Zone, producer: Celery, log_dir: Path) -> Worker:
    # One process (concurrency 1): every run of a queue meets the same per-process cache of compiled scopes.
    env = {
        "TOOLRUNNER_BROKER_URL": SCOPE_DB,
        "TOOLRUNNER_TOOL_NETWORK": "host",  # nmap reaches 127.0.0.1 as test_real_tools does
        "TOOLRUNNER_SCOPE_RESOLVER": f"127.0.0.1:{zone.port}",
    }
    return start_worker(log_dir, name, concurrency=1, env=env, queues=queue, client=producer)


@pytest.fixture(scope="module")
def first(zone: Zone, producer: Celery, tools_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    running = _worker(FIRST, FIRST, zone, producer, tmp_path_factory.mktemp("scope"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def second(
    zone: Zone, producer: Celery, tools_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Worker]:
    running = _worker(SECOND, SECOND, zone, producer, tmp_path_factory.mktemp("scope"))
    yield running
    running.stop()


def nmap(producer: Celery, queue: str, tenant: str, run: str, *targets: str) -> Any:
    """Publish an nmap run of these targets (one port of 127.0.0.1 that nothing listens on) to a queue."""
    params = {"targets": list(targets), "ports": str(free_port())}
    return producer.send_task("toolrunner.run_tool", ("nmap", tenant, run, params), queue=queue)


def refusal(handle: Any) -> str:
    """The error a run failed with (it must fail)."""
    with pytest.raises(Exception) as failed:
        handle.get(timeout=WAIT)
    assert handle.state == "FAILURE"
    return str(failed.value)


def made_for(client: docker.DockerClient, since: float, tenant: str) -> list[str]:
    """Every container the engine created for this tenant's runs since then, from its event stream.

    A run's volumes are anonymous volumes its tool container (isolation.StreamedWorkspace) or its helper container
    (isolation.RunWorkspace) creates, and the engine's volume events carry no labels: no container for the tenant
    means no volume for it either.
    Whole seconds, widened by one each way: the engine compares event times at second granularity.
    """
    events = client.events(
        since=int(since) - 1, until=int(time.time()) + 1, decode=True,
        filters={"type": ["container"], "event": "create"},
    )  # fmt: skip
    made = []
    for event in events:
        actor = event.get("Actor", {})
        labels, name = actor.get("Attributes", {}), str(actor.get("ID", ""))
        if labels.get("studio.tenant") == tenant:
            made.append(f"{labels.get('studio.role', 'container')}:{labels.get('name', name)}")
    return made


# --- refused before anything exists -------------------------------------------------------------------------------


def test_a_run_with_a_target_outside_its_tenants_scope_is_refused_naming_it_and_makes_nothing_on_the_engine(
    first: Worker, producer: Celery, scope_redis: redis.Redis, docker_client: docker.DockerClient
) -> None:
    tasks.scope.add("scope-engine", ["127.0.0.0/24"], connection=scope_redis)
    since = time.time()
    outside = refusal(nmap(producer, FIRST, "scope-engine", "outside", "127.0.0.1", "127.0.1.1", "10.0.0.1"))
    assert "2 target(s) outside tenant scope-engine's scope or denied" in outside
    assert "'127.0.1.1': outside the tenant's scope" in outside
    assert "'10.0.0.1': a private, loopback or reserved address not in TOOLRUNNER_SCOPE_ALLOW_PRIVATE" in outside
    assert "'127.0.0.1'" not in outside, "only the refused targets are named"
    assert made_for(docker_client, since, "scope-engine") == [], "a refused run created something on the engine"
    since = time.time()
    inside = nmap(producer, FIRST, "scope-engine", "inside", "127.0.0.1").get(timeout=WAIT)
    assert inside["status"] == "ok", inside["stderr_tail"]
    made = made_for(docker_client, since, "scope-engine")
    assert "tool" in {m.split(":")[0] for m in made}, made  # the tool container made its volumes


def test_a_cached_result_is_not_served_to_a_run_whose_target_has_left_the_scope(
    first: Worker, producer: Celery, scope_redis: redis.Redis
) -> None:
    tasks.scope.add("scope-cache", ["127.0.0.1"], connection=scope_redis)
    params = {"targets": ["127.0.0.1"], "ports": str(free_port()), "cache_max_age_seconds": 3600}

    def send(run: str) -> Any:
        return producer.send_task("toolrunner.run_tool", ("nmap", "scope-cache", run, params), queue=FIRST)

    assert send("cached-1").get(timeout=WAIT)["status"] == "ok"
    assert send("cached-2").get(timeout=WAIT)["cache"]["hit"] is True  # the cache holds it
    tasks.scope.remove("scope-cache", ["127.0.0.1"], connection=scope_redis)
    tasks.scope.add("scope-cache", ["127.0.0.2"], connection=scope_redis)
    assert "'127.0.0.1': outside the tenant's scope" in refusal(send("cached-3"))


def test_a_tenant_without_a_scope_is_refused_with_the_command_that_adds_one(first: Worker, producer: Celery) -> None:
    error = refusal(nmap(producer, FIRST, "scope-none", "r1", "127.0.0.1"))
    assert NO_SCOPE.format("scope-none") in error


# --- a change made anywhere reaches every worker ------------------------------------------------------------------


def test_a_scope_changed_through_another_client_takes_effect_at_the_next_admission_on_every_worker(
    first: Worker, second: Worker, producer: Celery, scope_redis: redis.Redis
) -> None:
    tenant, no_scope = "scope-shared", NO_SCOPE.format("scope-shared")
    assert no_scope in refusal(nmap(producer, FIRST, tenant, "before", "127.0.0.1"))  # the first caches "none"
    added = CliRunner().invoke(
        cli, ["scope", "add", "--tenant", tenant, "127.0.0.0/24"], env={"TOOLRUNNER_BROKER_URL": SCOPE_DB}
    )
    assert added.exit_code == 0, added.output
    handles = [nmap(producer, queue, tenant, f"on-{queue}", "127.0.0.1") for queue in (SECOND, FIRST)]
    assert [handle.get(timeout=WAIT)["status"] for handle in handles] == ["ok", "ok"]
    # The first worker now holds the scope compiled: every later change must replace it there.
    assert tasks.scope.remove(tenant, ["127.0.0.0/24"], connection=scope_redis) == 1
    assert no_scope in refusal(nmap(producer, FIRST, tenant, "removed", "127.0.0.1"))
    tasks.scope.add(tenant, ["127.0.0.0/24"], connection=scope_redis)
    assert "'127.0.1.1': outside the tenant's scope" in refusal(nmap(producer, FIRST, tenant, "again", "127.0.1.1"))
    assert tasks.scope.clear(tenant, connection=scope_redis) == 1
    assert no_scope in refusal(nmap(producer, FIRST, tenant, "cleared", "127.0.0.1"))
    assert no_scope in refusal(nmap(producer, SECOND, tenant, "cleared-too", "127.0.0.1"))


# --- names, through the worker's resolver -------------------------------------------------------------------------


def test_a_name_in_scope_that_resolves_to_a_denied_or_private_address_is_refused_naming_the_address(
    first: Worker, zone: Zone, producer: Celery, scope_redis: redis.Redis, docker_client: docker.DockerClient
) -> None:
    tenant = "scope-names"
    tasks.scope.add(tenant, ["scan-test.example", "127.0.0.0/24"], connection=scope_redis)
    since = time.time()
    meta = refusal(nmap(producer, FIRST, tenant, "meta", "meta.scan-test.example"))
    inside = refusal(nmap(producer, FIRST, tenant, "inside", "inside.scan-test.example"))
    assert "meta.scan-test.example resolves to 169.254.169.254, on the deny list" in meta
    assert "inside.scan-test.example resolves to 10.1.2.3, a private, loopback or reserved address" in inside
    assert made_for(docker_client, since, tenant) == [], "a refused run created something on the engine"
    fine = nmap(producer, FIRST, tenant, "fine", "fine.scan-test.example").get(timeout=WAIT)
    assert fine["status"] == "ok", fine["stderr_tail"]  # in scope; what nmap's own lookup then finds is its own
    assert {"meta.scan-test.example", "inside.scan-test.example", "fine.scan-test.example"} <= set(zone.asked)


# --- the operator's settings ---------------------------------------------------------------------------------------


def test_a_worker_with_a_malformed_scope_setting_refuses_to_start_rather_than_fail_every_run(
    producer: Celery, tmp_path: Path
) -> None:
    env = {"TOOLRUNNER_BROKER_URL": SCOPE_DB, "TOOLRUNNER_SCOPE_DENY": "*.example.com"}
    with pytest.raises(LaunchError, match="exited early") as refused:
        start_worker(tmp_path, "scope-malformed", concurrency=1, env=env, queues="scope-malformed", client=producer)
    assert "refusing to start: TOOLRUNNER_SCOPE_DENY: '*.example.com': wildcards are not entries" in str(refused.value)


# --- who may write a scope: the Redis ACL of docs/redis-acl.md ----------------------------------------------------

# The API tier's side, as it runs: a process of its own whose TOOLRUNNER_BROKER_URL names the producers' user.
PRODUCER = """
import json, sys
import redis
import tasks.hosts
import tasks.scope
from tasks import cancel_run, result_for, run_tool
from tasks.worker.limits import set_limit

tenant, step = sys.argv[1], sys.argv[2]
out = {}

def refused(call):
    try:
        call()
    except redis.RedisError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None

if step == "publish":
    params = {"targets": ["127.0.0.1"], "ports": "80"}
    out["ids"] = [run_tool.delay("nmap", tenant, "r0", params).id,
                  run_tool.apply_async(("nmap", tenant, "r1", params)).id]
    out["scope"] = [line.entry for line in tasks.scope.show(tenant)]
    out["add"] = refused(lambda: tasks.scope.add(tenant, ["192.0.2.0/24"]))
    out["remove"] = refused(lambda: tasks.scope.remove(tenant, ["127.0.0.0/24"]))
    out["clear"] = refused(lambda: tasks.scope.clear(tenant))
    out["limit"] = refused(lambda: set_limit(redis.Redis.from_url(run_tool.app.settings.broker), tenant, 100))
    out["hosts"] = refused(lambda: tasks.hosts.set("127.0.0.1", max_running=100))
else:
    task_id = sys.argv[3]
    out["cancel"] = cancel_run(task_id, tenant_id=tenant).outcome.value
    try:
        result_for(task_id, "nmap", tenant, "r0", timeout=10)
    except Exception as exc:
        out["result"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


def acl_lines(page: Path) -> list[str]:
    """The ACL SETUSER lines of the page's code blocks, in order."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", page.read_text(), flags=re.M | re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip().startswith("ACL ")]


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """A redis-server of this test's own (no persistence) with the page's ACL applied, real passwords put in."""
    port = free_port()
    command = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
               "--dir", str(tmp_path)]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        wait_until(lambda: pings(f"redis://127.0.0.1:{port}/0"), 10, "redis to start")
        passwords = {"PRODUCER_PASSWORD": "producer-" + str(port) * 3, "TOOLRUNNER_PASSWORD": "operator-" + str(port)}
        with redis.Redis(port=port) as admin:
            for line in acl_lines(ACL_PAGE):
                for placeholder, password in passwords.items():
                    line = line.replace(placeholder, password)
                admin.execute_command(*shlex.split(line))
        yield port, passwords
    finally:
        server.terminate()
        server.wait(30)


def run_producer(url: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", PRODUCER, *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "TOOLRUNNER_BROKER_URL": url},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_a_producers_redis_user_publishes_cancels_and_reads_scope_but_cannot_write_a_scope(
    acl_redis: tuple[int, dict[str, str]],
) -> None:
    port, passwords = acl_redis
    # Database 3, not 0: redis-py then selects it, and Kombu's channel names carry it ("/3.celeryev/...").
    producer_url = f"redis://producer:{passwords['PRODUCER_PASSWORD']}@127.0.0.1:{port}/3"
    operator_url = f"redis://toolrunner:{passwords['TOOLRUNNER_PASSWORD']}@127.0.0.1:{port}/3"
    tenant = "acl"
    with redis.Redis.from_url(operator_url) as operator:
        assert tasks.scope.add(tenant, ["127.0.0.0/24"], connection=operator) == ["127.0.0.0/24"]
        published = run_producer(producer_url, tenant, "publish")
        assert published["scope"] == ["127.0.0.0/24"], "the producer reads its tenants' scopes"
        for change in ("add", "remove", "clear", "limit", "hosts"):
            assert published[change] is not None and published[change].startswith("NoPermissionError"), published
        assert "no permissions to access one of the keys" in published["remove"], "refused by the key, not the command"
        assert [line.entry for line in tasks.scope.show(tenant, connection=operator)] == ["127.0.0.0/24"]
        # A worker (the operators' user) parks both runs; the producer cancels one while it waits, which
        # hands its slot to the other and publishes that one again: the whole of a cancel, as the producer.
        worker_side = client_app(operator_url)
        try:
            parked = drain(worker_side, operator, Settings(broker_url=operator_url, tool_network="host"), "celery")
        finally:
            worker_side.close()
        assert parked == 2
        cancelled = run_producer(producer_url, tenant, "cancel", published["ids"][0])
        assert cancelled["cancel"] == "sent"
        assert cancelled["result"].startswith("TaskRevokedError"), "the producer reads the run's final state"
        queued = sorted(json.loads(raw)["headers"]["task"] for raw in operator.lrange("celery", 0, -1))
        # The other run published again by the producer's cancel, and the audit's run.cancelled asked of a run worker.
        assert queued == ["toolrunner.audit.cancelled", "toolrunner.run_tool"], queued
        assert operator.llen("webhooks") == 1, "the cancel asked a webhook worker for its run.cancelled event"
        assert tasks.scope.add(tenant, ["192.0.2.0/24"], connection=operator) == ["192.0.2.0/24"]
        set_limit(operator, tenant, 100)
        refused = {(entry[b"reason"], entry[b"object"]) for entry in operator.execute_command("ACL", "LOG")}
    # Every refusal Redis logged is one of the producer's writes above: nothing a producer needs was refused.
    assert refused == {
        (b"command", b"watch"),  # scope.add prunes expired entries under WATCH: refused first
        # HSET and DEL are allowed (release.lua writes host leases): the writes are refused by their keys.
        (b"key", b"toolrunner:fs:limits"),  # limits set
        (b"key", b"toolrunner:fs:hosts"),  # hosts set
        (b"key", f"toolrunner:scope:tenant:{tenant}".encode()),  # scope remove and clear
    }
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port).ping()  # the default user, without a password, is off

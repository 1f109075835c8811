"""Endpoints, the outbox and one attempt, against a real Redis and a real HTTP receiver on loopback."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from standardwebhooks.webhooks import Webhook

import tasks.webhooks
from config import Settings
from tasks.errors import WebhookConfigError
from tasks.scope.matcher import Ranges
from tasks.scope.policy import policy
from tasks.webhooks import delivery, event, outbox
from tasks.webhooks.delivery import Delivering
from tasks.webhooks.policy import AddressPolicy
from tasks.webhooks.schedule import Backoff
from tasks.webhooks.sender import Sender, system_resolve, tls_context
from tasks.worker import keys
from tests.conftest import database_url, flushed_database

DB = 7
SECRET = tasks.webhooks.new_secret()
RESULT = {"tool": "nmap", "tenant_id": "acme", "run_id": "r-1", "task_id": "t-1", "status": "ok", "findings": []}


class Receiver(ThreadingHTTPServer):
    """Answers each POST with the next scripted status (200 once they run out) and keeps what it got."""

    def __init__(self, statuses: list[int]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.statuses, self.got = list(statuses), list[tuple[dict[str, str], bytes]]()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.server.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(self.server.statuses.pop(0) if self.server.statuses else 200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def conn(redis_url: str) -> Iterator[redis.Redis]:
    with flushed_database(database_url(redis_url, DB)) as client:
        yield client


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver([])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def delivering(allow: list[str] | None = None, max_age: float = 3600) -> Delivering:
    allowed = Ranges(ipaddress.ip_network(a) for a in (["127.0.0.0/8"] if allow is None else allow))
    sender = Sender(AddressPolicy(policy(Settings()), allowed), tls_context(None), 1, 2, system_resolve)
    return Delivering(sender, Backoff(0.05, 0.2, max_age), allow_http=True, log_days=1, lease_ms=5000,
                      jitter=lambda: 0.5)  # fmt: skip


def recorded(conn: redis.Redis, how: Delivering) -> event.Event:
    found = event.for_result(RESULT, time.time())
    assert outbox.add(conn, found, due_ms=int(time.time() * 1000), ttl=how.pending_ttl())
    return found


def attempt_now(conn: redis.Redis, how: Delivering, event_id: str) -> delivery.Report | None:
    deadline = time.monotonic() + 5
    while (token := outbox.claim(conn, event_id, int(time.time() * 1000), how.lease_ms)) is None:
        assert time.monotonic() < deadline, "the event never came due"
        time.sleep(0.02)
    return delivery.attempt(conn, how, event_id, token)


def test_a_delivered_event_is_signed_logged_and_leaves_the_schedule(conn: redis.Redis, receiver: Receiver) -> None:
    how = delivering()
    tasks.webhooks.set("acme", receiver.url, SECRET, connection=conn, allow_http=True)
    found = recorded(conn, how)
    report = attempt_now(conn, how, found.id)
    assert report is not None and report.outcome == "delivered" and report.lag_seconds is not None
    ((headers, body),) = receiver.got
    assert Webhook(SECRET).verify(body, headers)["type"] == "run.succeeded"
    assert headers["webhook-id"] == found.id and body == found.body.encode()
    assert conn.zcard(outbox.DUE) == 0
    assert outbox.load(conn, found.id).state == outbox.DELIVERED  # type: ignore[union-attr]
    assert [e["outcome"] for e in tasks.webhooks.log("acme", connection=conn)] == ["delivered"]


def test_500_three_times_then_200_is_delivered_with_one_webhook_id(conn: redis.Redis, receiver: Receiver) -> None:
    how = delivering()
    receiver.statuses = [500, 500, 500]
    tasks.webhooks.set("acme", receiver.url, SECRET, connection=conn, allow_http=True)
    found = recorded(conn, how)
    outcomes = [attempt_now(conn, how, found.id).outcome for _ in range(4)]  # type: ignore[union-attr]
    assert outcomes == ["failed", "failed", "failed", "delivered"]
    assert {headers["webhook-id"] for headers, _ in receiver.got} == {found.id} and len(receiver.got) == 4
    log = tasks.webhooks.log("acme", connection=conn)
    assert [(e["attempt"], e["status"]) for e in log] == [(4, 200), (3, 500), (2, 500), (1, 500)]


def test_410_disables_the_endpoint_and_ends_the_event(conn: redis.Redis, receiver: Receiver) -> None:
    how = delivering()
    receiver.statuses = [410]
    tasks.webhooks.set("acme", receiver.url, SECRET, connection=conn, allow_http=True)
    found = recorded(conn, how)
    assert attempt_now(conn, how, found.id).outcome == "gone"  # type: ignore[union-attr]
    assert "410" in (tasks.webhooks.get("acme", connection=conn).disabled or "")  # type: ignore[union-attr]
    assert conn.zcard(outbox.DUE) == 0


def test_a_loopback_receiver_is_refused_without_the_allowance_and_nothing_is_sent(
    conn: redis.Redis, receiver: Receiver
) -> None:
    how = delivering(allow=[])
    tasks.webhooks.set("acme", receiver.url, SECRET, connection=conn, allow_http=True)
    found = recorded(conn, how)
    report = attempt_now(conn, how, found.id)
    assert report is not None and report.outcome == "refused" and receiver.got == []
    assert "TOOLRUNNER_WEBHOOK_ALLOW_NETWORKS" in tasks.webhooks.log("acme", connection=conn)[0]["error"]


def test_an_endpoint_unset_mid_retry_drops_the_event(conn: redis.Redis, receiver: Receiver) -> None:
    how = delivering()
    receiver.statuses = [503]
    tasks.webhooks.set("acme", receiver.url, SECRET, connection=conn, allow_http=True)
    found = recorded(conn, how)
    assert attempt_now(conn, how, found.id).outcome == "failed"  # type: ignore[union-attr]
    tasks.webhooks.unset("acme", connection=conn)
    assert attempt_now(conn, how, found.id).outcome == "dropped"  # type: ignore[union-attr]
    assert conn.zcard(outbox.DUE) == 0 and len(receiver.got) == 1


def test_a_stale_claim_sends_nothing(conn: redis.Redis, receiver: Receiver) -> None:
    how = delivering()
    tasks.webhooks.set("acme", receiver.url, SECRET, connection=conn, allow_http=True)
    found = recorded(conn, how)
    token = outbox.claim(conn, found.id, int(time.time() * 1000), how.lease_ms)
    assert token is not None and outbox.claim(conn, found.id, int(time.time() * 1000), how.lease_ms) is None
    assert delivery.attempt(conn, how, found.id, token - 1) is None and receiver.got == []


def test_past_its_max_age_an_event_is_dead_lettered_and_can_be_redelivered(
    conn: redis.Redis, receiver: Receiver
) -> None:
    how = delivering(max_age=0.01)
    receiver.statuses = [500]
    tasks.webhooks.set("acme", receiver.url, SECRET, connection=conn, allow_http=True)
    found = recorded(conn, how)
    report = attempt_now(conn, how, found.id)
    assert report is not None and report.dead_letter and conn.zcard(outbox.DUE) == 0
    assert outbox.load(conn, found.id).state == outbox.DEAD  # type: ignore[union-attr]
    assert delivery.redeliver(conn, delivering(), found.id) is not None
    assert attempt_now(conn, delivering(), found.id).outcome == "delivered"  # type: ignore[union-attr]
    assert [h["webhook-id"] for h, _ in receiver.got] == [found.id, found.id]


def test_an_event_is_recorded_once(conn: redis.Redis) -> None:
    how = delivering()
    found = recorded(conn, how)
    assert not outbox.add(conn, found, due_ms=0, ttl=how.pending_ttl())


def test_a_rotation_signs_with_both_secrets_until_its_overlap_ends(conn: redis.Redis, receiver: Receiver) -> None:
    newer = tasks.webhooks.new_secret()
    tasks.webhooks.set("acme", receiver.url, SECRET, connection=conn, allow_http=True)
    rotated = tasks.webhooks.rotate("acme", newer, connection=conn, overlap_seconds=60)
    assert rotated.signing(time.time()) == [newer, SECRET]
    assert rotated.signing(time.time() + 61) == [newer]
    found = recorded(conn, delivering())
    attempt_now(conn, delivering(), found.id)
    ((headers, body),) = receiver.got
    Webhook(SECRET).verify(body, headers)
    Webhook(newer).verify(body, headers)


def test_endpoints_are_set_by_operators_with_checked_urls_and_secrets(conn: redis.Redis) -> None:
    with pytest.raises(WebhookConfigError):
        tasks.webhooks.set("acme", "http://hooks.example.com/", SECRET, connection=conn)
    with pytest.raises(WebhookConfigError):
        tasks.webhooks.set("acme", "https://hooks.example.com/", "hunter2", connection=conn)
    tasks.webhooks.set("acme", "https://hooks.example.com/", SECRET, connection=conn)
    shown = tasks.webhooks.show(connection=conn)
    assert [e.url for e in shown] == ["https://hooks.example.com/"] and SECRET not in repr(shown)
    assert keys.declared(keys.WEBHOOK_ENDPOINTS()) is keys.WEBHOOK_ENDPOINTS
    assert all(keys.declared(k.decode()) is not None for k in conn.keys("*"))


class _Publisher:
    """Records what the poller publishes (the broker is not what this test is about)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any], str]] = []

    def send_task(self, name: str, args: list[Any], queue: str) -> None:
        self.sent.append((name, args, queue))


def test_the_poller_claims_due_events_and_holds_off_while_nobody_takes_the_queue(conn: redis.Redis) -> None:
    from tasks.worker import webhooks

    how = delivering()
    found = recorded(conn, how)
    conn.rpush(webhooks.QUEUE, *[b"waiting"] * webhooks.POLL_BATCH)
    publisher = _Publisher()
    assert webhooks.poll(publisher, conn, how) == 0 and outbox.due(conn, int(time.time() * 1000)) == [found.id]
    conn.delete(webhooks.QUEUE)
    assert webhooks.poll(publisher, conn, how) == 1
    ((name, (event_id, token), queue),) = publisher.sent
    assert (name, event_id, queue) == (webhooks.DELIVER_TASK, found.id, "webhooks")
    assert outbox.holds(conn, found.id, token) and webhooks.poll(publisher, conn, how) == 0


def toolrunner(url: str, *args: str) -> Any:
    from typer.testing import CliRunner

    from tasks.cli import cli

    env = {"TOOLRUNNER_BROKER_URL": url, "COLUMNS": "200"}
    return CliRunner().invoke(cli, ["webhooks", *args], env=env)


def test_the_webhooks_commands_set_show_rotate_log_redeliver_and_unset(
    redis_url: str, conn: redis.Redis, tmp_path: Any
) -> None:
    url = database_url(redis_url, DB)
    first, second = tmp_path / "first.whsec", tmp_path / "second.whsec"
    first.write_text(SECRET + "\n")
    second.write_text(tasks.webhooks.new_secret())
    assert toolrunner(url, "set", "--tenant", "acme", "--url", "http://x/", "--secret-file", str(first)).exit_code != 0
    done = toolrunner(
        url, "set", "--tenant", "acme", "--url", "https://hooks.example.com/", "--secret-file", str(first)
    )
    assert done.exit_code == 0, done.output
    assert toolrunner(url, "rotate", "--tenant", "acme", "--secret-file", str(second)).exit_code == 0
    shown = toolrunner(url, "show")
    assert "https://hooks.example.com/" in shown.stdout and "until" in shown.stdout and SECRET not in shown.stdout
    found = recorded(conn, delivering())
    outbox.record(conn, "acme", {"event": found.id, "type": "run.succeeded", "attempt": 1, "status": 500,
                                 "latency_ms": 3, "outcome": "failed", "error": None}, time.time(), 1)  # fmt: skip
    assert found.id in toolrunner(url, "log", "--tenant", "acme").stdout
    assert toolrunner(url, "redeliver", found.id).exit_code == 0
    assert toolrunner(url, "redeliver", "evt_unknown").exit_code != 0
    assert toolrunner(url, "unset", "--tenant", "acme").stdout.strip() == "removed"
    assert tasks.webhooks.show(connection=conn) == []


# --- the sender: where it connects, what it follows, what it reads ---------------------------------------------------


class _Odd(BaseHTTPRequestHandler):
    """A receiver that redirects (/redirect), or answers 200 with a 50 MB body that would take long to read."""

    seen: list[tuple[str, dict[str, str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        _Odd.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("location", "/landed")
            self.send_header("content-length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("content-length", str(50 << 20))
        self.end_headers()
        for _ in range(50):
            self.wfile.write(b"\0" * (1 << 20))

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def odd() -> Iterator[int]:
    _Odd.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Odd)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def sender(resolve: Any, allow: str = "127.0.0.0/8") -> Sender:
    policy_ = AddressPolicy(policy(Settings()), Ranges([ipaddress.ip_network(allow)]))
    return Sender(policy_, tls_context(None), 1, 2, resolve)


def send(found: Sender, url: str) -> Any:
    from tasks.webhooks.policy import target

    return found.send(target(url, allow_http=True), b"{}", {"webhook-id": "evt_1"})


def test_the_connection_goes_to_the_checked_address_with_the_urls_name_as_host(odd: int) -> None:
    resolved = [ipaddress.ip_address("127.0.0.1")]
    done = send(sender(lambda host, port: resolved), f"http://hooks.example.test:{odd}/in")
    assert done.status == 200 and done.address == "127.0.0.1"
    assert _Odd.seen[0][1]["host"] == f"hooks.example.test:{odd}"


def test_one_refused_address_among_the_resolved_ones_refuses_the_attempt(odd: int) -> None:
    resolved = [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("127.0.0.1")]
    done = send(sender(lambda host, port: resolved, allow="127.0.0.2/32"), f"http://hooks.example.test:{odd}/in")
    assert done.refused and done.status is None and _Odd.seen == []


def test_a_redirect_is_not_followed(odd: int) -> None:
    done = send(sender(lambda host, port: [ipaddress.ip_address("127.0.0.1")]), f"http://localhost:{odd}/redirect")
    assert done.status == 302 and [path for path, _ in _Odd.seen] == ["/redirect"]


def test_the_response_body_is_never_read(odd: int) -> None:
    done = send(sender(lambda host, port: [ipaddress.ip_address("127.0.0.1")]), f"http://localhost:{odd}/big")
    assert done.status == 200 and done.latency_ms < 1000

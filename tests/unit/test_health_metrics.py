"""The gauges the alert rules read at scrape time: queue age and slots on a real Redis, disk, TLS certificates."""

from __future__ import annotations

import datetime
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.utils
import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from config import Settings, docker_tls_files
from tasks.worker import fairshare, health, keys
from tasks.worker.delivery import Delivery, claim_identity
from tests.conftest import database_url, flushed_database
from tests.unit.helpers import envelope, register

DB = 10
GIB = 1 << 30


@pytest.fixture
def conn(redis_url: str) -> Iterator[redis.Redis]:
    with flushed_database(database_url(redis_url, DB)) as client:
        yield client


def samples(collector: Any) -> dict[str, dict[tuple[str, ...], float]]:
    """Each family's samples by label values."""
    return {f.name: {tuple(s.labels.values()): s.value for s in f.samples} for f in collector.collect()}


def test_the_queue_gauges_count_slots_leases_and_the_oldest_parked_runs_age(conn: redis.Redis) -> None:
    register(conn, 8)
    settings = Settings(tenant_max_running=2, lease_ttl_seconds=30)
    for task_id in ("a1", "a2", "a3", "a4"):
        fairshare.admit(conn, envelope(task_id, "a"), settings)
    parked_at = time.time()
    state = health.queue_state(conn, parked_at + 20)  # within the leases' 30 s and the registration's 60 s
    assert (state.slots, state.slots_used) == (8, 2)
    assert 19 <= state.oldest_waiting_seconds <= 21
    gauges = samples(health.QueueCollector(conn))
    assert gauges["toolrunner_slots"] == {(): 8} and gauges["toolrunner_slots_used"] == {(): 2}
    assert 0 <= gauges["toolrunner_oldest_waiting_seconds"][()] < 5


def test_the_oldest_waiting_age_is_zero_and_dead_workers_have_no_slots_when_nothing_waits(conn: redis.Redis) -> None:
    conn.zadd("toolrunner:fs:workers", {"dead|16": int(time.time() * 1000) - 1})
    register(conn, 4)
    assert health.queue_state(conn, time.time()) == health.QueueState(0.0, 4, 0)


@pytest.mark.parametrize(("member", "slots"), [(b"worker@host|4", 4), ("w|16", 16), ("a|b@c|2", 2)])
def test_a_registered_workers_slots_are_read_after_its_last_bar(member: bytes | str, slots: int) -> None:
    assert health.slots_of(member) == slots


def test_the_spool_and_a_file_artifact_store_are_watched_and_an_s3_store_is_not() -> None:
    spool = Path(tempfile.gettempdir())
    assert health.watched_directories("file:///srv/artifacts") == {"spool": spool, "artifacts": Path("/srv/artifacts")}
    assert health.watched_directories("s3://bucket/prefix") == {"spool": spool}


def test_free_disk_is_read_from_the_directorys_filesystem_even_before_it_exists(tmp_path: Path) -> None:
    later = tmp_path / "not" / "yet"
    gauges = samples(health.DiskCollector({"spool": tmp_path, "artifacts": later}))["toolrunner_free_disk_bytes"]
    free = shutil.disk_usage(tmp_path).free
    assert set(gauges) == {(str(tmp_path),), (str(later),)}
    assert all(abs(value - free) < GIB for value in gauges.values())  # other engineers write to this disk too


def certificate(path: Path, days: int) -> float:
    """Write a self-signed certificate valid for `days`; return its notAfter as a timestamp."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, path.stem)])
    start = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .issuer_name(name)
        .subject_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return (start + datetime.timedelta(days=days)).timestamp()


def test_the_client_certificate_and_ca_expiry_are_read_from_the_files_the_docker_client_loads(tmp_path: Path) -> None:
    client, ca = certificate(tmp_path / "cert.pem", 825), certificate(tmp_path / "ca.pem", 3650)
    files = docker_tls_files(
        {"DOCKER_HOST": "tcp://dind:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(tmp_path)}
    )
    gauges = samples(health.CertificateCollector(files))
    assert gauges == {"toolrunner_dind_certificate_expiry_timestamp_seconds": {("client",): client, ("ca",): ca}}


def test_an_unreadable_certificate_is_left_out_not_raised(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("not a certificate")
    ca = certificate(tmp_path / "ca.pem", 30)
    gauges = samples(health.CertificateCollector(docker_tls_files({"DOCKER_CERT_PATH": str(tmp_path)})))
    assert gauges == {"toolrunner_dind_certificate_expiry_timestamp_seconds": {("ca",): ca}}


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"DOCKER_HOST": "unix:///var/run/docker.sock"},
        {"DOCKER_TLS_VERIFY": ""},
        {"DOCKER_TLS_VERIFY": "1"},
        {"DOCKER_TLS_VERIFY": "0"},
        {"DOCKER_CERT_PATH": "{certs}"},
        {"DOCKER_CERT_PATH": "", "DOCKER_TLS_VERIFY": "1"},
        {"DOCKER_HOST": "tcp://dind:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "{certs}"},
    ],
)
def test_the_certificates_watched_are_the_ones_the_docker_sdk_would_load(
    environ: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # the SDK's default directory, ~/.docker
    for directory in (tmp_path / ".docker", tmp_path / "certs"):
        directory.mkdir()
        for name in ("cert.pem", "key.pem", "ca.pem"):  # the SDK checks that they exist
            (directory / name).touch()
    environ = {name: value.format(certs=tmp_path / "certs") for name, value in environ.items()}
    tls = docker.utils.kwargs_from_env(environment=environ or {"DOCKER_HOST": ""}).get("tls")
    expected = {} if tls is None else {"client": Path(tls.cert[0]), "ca": Path(tls.ca_cert)}
    assert docker_tls_files(environ) == expected


def test_leases_no_worker_runs_runs_dispatching_and_the_queue_are_counted(conn: redis.Redis) -> None:
    register(conn, 8)
    settings = Settings(tenant_max_running=1, lease_ttl_seconds=30)
    for task_id in ("a1", "a2", "b1"):
        claim_identity(conn, Delivery(task_id, "script", task_id[0], task_id), ttl=600)
        fairshare.admit(conn, envelope(task_id, task_id[0]), settings)  # a1, b1 leased; a2 parked
    conn.set(keys.RUNNING(Delivery("a1", "script", "a", "a1").key), "token", ex=60)  # a1 runs: its lock is held
    conn.rpush("q", b"message", b"message")
    state = health.queue_state(conn, time.time(), "q")
    assert (state.slots_used, state.orphaned_leases, state.dispatching, state.queued) == (2, 1, 0, 2), state
    assert state.parked_bytes > 0, "a2's envelope"
    assert fairshare.release(conn, envelope("a1", "a"), settings) == ["a2"]  # a2 picked: leased and dispatching
    state = health.queue_state(conn, time.time(), "q")
    assert (state.slots_used, state.orphaned_leases, state.dispatching) == (2, 1, 1), "b1 only: a2 is on its way"
    gauges = samples(health.QueueCollector(conn, "q"))
    assert gauges["toolrunner_orphaned_leases"] == {(): 1} and gauges["toolrunner_queue_depth"] == {(): 2}

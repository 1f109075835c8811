"""docker-compose.yml: rendered by the real compose tool, then checked property by property.

The tool (`docker-compose`, v1 or v2, or the `docker compose` plugin) validates the file and interpolates
the variables. Without it a developer machine falls back to PyYAML and a small interpolation of our own,
and under CI=true its absence is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

import pytest

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
REQUIRED = {
    "REDIS_PASSWORD": "dummy-redis-password",
    "TOOLRUNNER_FLOWER_USER": "dummy-flower-user",
    "TOOLRUNNER_FLOWER_PASSWORD": "dummy-flower-password",
}
# Variables of the caller that must not leak into the rendering (conftest.py sets TOOLRUNNER_* ones).
FOREIGN_PREFIXES = ("TOOLRUNNER_", "COMPOSE_", "DIND_", "REDIS_")
DOCKER_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")
LOOPBACK = {"127.0.0.1", "::1"}
COMMANDS = {
    "worker": "celery -A tasks worker --loglevel INFO --concurrency 4 --hostname worker@%h",
    "webhooks": "celery -A tasks worker --loglevel INFO -Q webhooks --concurrency 4 --hostname webhooks@%h",
    "beat": "celery -A tasks beat --loglevel INFO --schedule /var/lib/toolrunner/celerybeat-schedule",
    "flower": "celery -A tasks flower --conf=config/flower.py",
}
INTERPOLATION = re.compile(r"\$\$|\$\{(?P<name>\w+)(?P<op>:?[-?])?(?P<arg>[^}]*)\}|\$(?P<bare>\w+)")


def _missing(what: str, why: object) -> NoReturn:
    message = f"{what} is not available ({why}); apt-get install docker-compose, and pyyaml in .venv"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class ComposeTool:
    """A compose command line found on this machine, and whether its `config` can print JSON (v2)."""

    argv: tuple[str, ...]
    prints_json: bool

    def config(self, environment: Mapping[str, str], env_file: Path) -> subprocess.CompletedProcess[str]:
        """`config` of our file with exactly these variables (env_file: an empty file, so no .env is read)."""
        fmt = ["--format", "json"] if self.prints_json else []
        argv = [*self.argv, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config", *fmt]
        return subprocess.run(argv, env=dict(environment), capture_output=True, text=True, timeout=120, check=False)


@cache
def _find_tool() -> ComposeTool | None:
    candidates = [("docker-compose",)] if shutil.which("docker-compose") else []
    candidates += [("docker", "compose")] if shutil.which("docker") else []
    for argv in candidates:
        done = subprocess.run([*argv, "version", "--short"], capture_output=True, text=True, timeout=60, check=False)
        if done.returncode == 0:
            return ComposeTool(argv, prints_json=not done.stdout.strip().lstrip("v").startswith("1."))
    return None


def _environment(**overrides: str | None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_PREFIXES)}
    wanted = {**REQUIRED, **overrides}
    return {**base, **{k: v for k, v in wanted.items() if v is not None}}


def _load_yaml(text: str) -> Any:
    try:
        import yaml
    except ImportError as exc:
        _missing("PyYAML", exc)
    return yaml.safe_load(text)


def _interpolate(value: Any, environment: Mapping[str, str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} and $$, for the fallback without the tool."""
    if isinstance(value, dict):
        return {k: _interpolate(v, environment) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, environment) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name") or match.group("bare"), match.group("op") or "", match.group("arg")
        current = environment.get(name)
        unset = current is None or (op.startswith(":") and current == "")
        if unset and op.endswith("?"):
            raise ValueError(f"{name}: {arg}")
        return arg if unset and op.endswith("-") else current or ""

    return INTERPOLATION.sub(substitute, value)


@pytest.fixture(scope="module")
def compose_tool() -> ComposeTool:
    """The real compose tool (a failure under CI=true, a skip elsewhere, when there is none)."""
    tool = _find_tool()
    if tool is None:
        _missing("docker-compose", "neither docker-compose nor docker compose is on PATH")
    return tool


@pytest.fixture(scope="module")
def empty_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty file for --env-file, so a developer's .env never changes what the tests see."""
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("")
    return path


@pytest.fixture(scope="module")
def services(empty_env_file: Path) -> dict[str, dict[str, Any]]:
    """The services of docker-compose.yml with the required variables set to dummy values."""
    tool = _find_tool()
    if tool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("docker-compose is not available under CI=true: install it (apt-get install docker-compose)")
        config = _interpolate(_load_yaml(COMPOSE_FILE.read_text()), _environment())
    else:
        done = tool.config(_environment(), empty_env_file)
        assert done.returncode == 0, f"{' '.join(tool.argv)} config failed:\n{done.stderr}"
        config = json.loads(done.stdout) if tool.prints_json else _load_yaml(done.stdout)
    return dict(config["services"])


def _argv(service: Mapping[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]


def _env(service: Mapping[str, Any]) -> dict[str, str | None]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        pairs = (item.partition("=") for item in environment)
        return {key: value if sep else None for key, sep, value in pairs}
    return {key: None if value is None else str(value) for key, value in environment.items()}


def _mounts(service: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read-only) of every volume, from the short ("src:dst:ro") or the long syntax."""
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            mounts.append((str(volume.get("source") or ""), str(volume["target"]), bool(volume.get("read_only"))))
            continue
        parts = str(volume).split(":")
        if len(parts) == 1:
            mounts.append(("", parts[0], False))
        else:
            mounts.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
    return mounts


def _exposes_docker_socket(service: Mapping[str, Any]) -> bool:
    """Whether a mount names a docker socket, or binds a host directory that holds one (/var/run, /run, /)."""
    for source, target, _ in _mounts(service):
        if "docker.sock" in source or "docker.sock" in target:
            return True
        if source.startswith("/") and any(sock.startswith(source.rstrip("/") + "/") for sock in DOCKER_SOCKETS):
            return True
    return False


def _host_ip(port: Any) -> str:
    """The host address a port is published on; "" for every interface."""
    if isinstance(port, dict):
        return str(port.get("host_ip") or "")
    text = str(port)  # [host_ip:][published:]target[/protocol]
    if text.startswith("["):
        return text[1:].partition("]")[0]
    parts = text.split(":")
    return parts[0] if len(parts) == 3 else ""


def _networks(service: Mapping[str, Any]) -> set[str]:
    return set(service.get("networks") or ["default"])


@pytest.mark.parametrize("name", sorted(REQUIRED))
@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_config_fails_when_a_required_secret_is_unset_or_empty(
    compose_tool: ComposeTool, empty_env_file: Path, name: str, value: str | None
) -> None:
    done = compose_tool.config(_environment(**{name: value}), empty_env_file)
    assert done.returncode != 0
    assert name in done.stderr


def test_the_file_defines_the_six_services(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {"redis", "dind", "worker", "webhooks", "beat", "flower"}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_celery_process_runs_its_documented_command(services: dict[str, dict[str, Any]], name: str) -> None:
    assert _argv(services[name]) == COMMANDS[name].split()


@pytest.mark.parametrize(
    "volume",
    [
        "/var/run/docker.sock:/var/run/docker.sock",
        "/var/run/docker.sock:/var/run/docker.sock:ro",
        "/run/docker.sock:/tmp/engine",
        "/var/run:/host-run:ro",
        "/:/host",
        {"type": "bind", "source": "/var/run/docker.sock", "target": "/var/run/docker.sock"},
        {"type": "bind", "source": "/run/user/1000/docker.sock", "target": "/engine", "read_only": True},
    ],
)
def test_the_socket_check_sees_a_docker_socket_in_every_volume_syntax(volume: Any) -> None:
    assert _exposes_docker_socket({"volumes": [volume]})


def test_no_service_mounts_a_docker_socket(services: dict[str, dict[str, Any]]) -> None:
    assert [name for name, service in services.items() if _exposes_docker_socket(service)] == []


def test_no_service_points_docker_at_a_unix_socket(services: dict[str, dict[str, Any]]) -> None:
    hosts = {name: _env(service).get("DOCKER_HOST") or "" for name, service in services.items()}
    assert [name for name, host in hosts.items() if host.startswith("unix:")] == []


def test_the_worker_talks_to_dind_over_verified_tls(services: dict[str, dict[str, Any]]) -> None:
    env = _env(services["worker"])
    assert env["DOCKER_HOST"] == "tcp://dind:2376"
    assert env["DOCKER_TLS_VERIFY"] == "1"
    assert env["DOCKER_CERT_PATH"] == "/certs/client"


def test_the_worker_reads_the_client_certificates_dind_writes_read_only(services: dict[str, dict[str, Any]]) -> None:
    certdir = _env(services["dind"])["DOCKER_TLS_CERTDIR"]
    dind_client = {source for source, target, _ in _mounts(services["dind"]) if target == f"{certdir}/client"}
    worker_client = [(source, ro) for source, target, ro in _mounts(services["worker"]) if target == "/certs/client"]
    assert len(dind_client) == 1
    assert worker_client == [(dind_client.pop(), True)]


def test_the_worker_waits_for_a_healthy_redis_and_dind(services: dict[str, dict[str, Any]]) -> None:
    depends_on = services["worker"].get("depends_on") or {}
    assert {name: depends_on[name].get("condition") for name in ("redis", "dind")} == {
        "redis": "service_healthy",
        "dind": "service_healthy",
    }


def test_the_worker_healthcheck_pings_its_own_node(services: dict[str, dict[str, Any]]) -> None:
    # The tool prints $$ (escaped) back; either way the container's shell must get a literal $HOSTNAME.
    test = services["worker"]["healthcheck"]["test"]
    assert "worker@$HOSTNAME" in (test if isinstance(test, str) else " ".join(test)).replace("$$", "$")


def test_exactly_one_service_runs_beat(services: dict[str, dict[str, Any]]) -> None:
    assert [name for name, service in services.items() if "beat" in _argv(service)] == ["beat"]


def test_beat_is_never_scaled_beyond_one_replica(services: dict[str, dict[str, Any]]) -> None:
    beat = services["beat"]
    assert (beat.get("deploy") or {}).get("replicas", 1) == 1
    assert beat.get("scale", 1) == 1


def test_beat_keeps_its_schedule_in_a_volume(services: dict[str, dict[str, Any]]) -> None:
    assert "/var/lib/toolrunner" in [target for _, target, _ in _mounts(services["beat"])]


@pytest.mark.parametrize(
    ("port", "host_ip"),
    [
        ("127.0.0.1:5555:5555", "127.0.0.1"),
        ("127.0.0.1:5555:5555/tcp", "127.0.0.1"),
        ("[::1]:5555:5555", "::1"),
        ("0.0.0.0:5555:5555", "0.0.0.0"),
        ("5555:5555", ""),
        ("5555", ""),
        (5555, ""),
        ({"target": 5555, "published": "5555", "host_ip": "127.0.0.1"}, "127.0.0.1"),
        ({"target": 5555, "published": "5555"}, ""),
    ],
)
def test_the_port_check_reads_the_host_address_of_every_port_syntax(port: Any, host_ip: str) -> None:
    assert _host_ip(port) == host_ip


def test_flower_is_published_on_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    ports = services["flower"].get("ports") or []
    assert ports
    assert {_host_ip(port) for port in ports} <= LOOPBACK


def test_flower_takes_its_credentials_from_the_environment(services: dict[str, dict[str, Any]]) -> None:
    env = _env(services["flower"])
    assert env["TOOLRUNNER_FLOWER_USER"] == REQUIRED["TOOLRUNNER_FLOWER_USER"]
    assert env["TOOLRUNNER_FLOWER_PASSWORD"] == REQUIRED["TOOLRUNNER_FLOWER_PASSWORD"]
    assert env.get("TOOLRUNNER_FLOWER_INSECURE_DEV") in (None, "", "false")


@pytest.mark.parametrize("name", ["worker", "webhooks", "beat", "flower"])
def test_every_celery_process_reaches_redis_with_its_password(services: dict[str, dict[str, Any]], name: str) -> None:
    url = f"redis://:{REQUIRED['REDIS_PASSWORD']}@redis:6379/0"
    assert _env(services[name])["TOOLRUNNER_BROKER_URL"] == url


def test_worker_beat_and_flower_share_the_celery_settings(services: dict[str, dict[str, Any]]) -> None:
    shared = _env(services["beat"])
    for name in ("worker", "webhooks", "flower"):
        env = _env(services[name])
        assert {key: env.get(key) for key in shared} == shared, name


def test_redis_requires_a_password_that_never_stands_in_its_command_line(services: dict[str, dict[str, Any]]) -> None:
    argv = _argv(services["redis"])
    assert not [arg for arg in argv if REQUIRED["REDIS_PASSWORD"] in arg], "the password would show in ps and inspect"
    script = argv[2].replace("$$", "$")  # compose's escape, as `docker compose config` resolves it
    assert argv[:2] == ["sh", "-c"] and "requirepass $REDISCLI_AUTH" in script and "redis-server -" in script
    assert _env(services["redis"])["REDISCLI_AUTH"] == REQUIRED["REDIS_PASSWORD"]


@pytest.mark.parametrize("name", ["redis", "dind"])
def test_the_backing_service_publishes_no_port(services: dict[str, dict[str, Any]], name: str) -> None:
    assert not services[name].get("ports")


def test_dind_serves_tls_with_certificates_it_generates(services: dict[str, dict[str, Any]]) -> None:
    assert _env(services["dind"]).get("DOCKER_TLS_CERTDIR") == "/certs"
    assert not any(arg.startswith(("--tls=false", "--host=tcp://0.0.0.0:2375")) for arg in _argv(services["dind"]))


def test_dind_keeps_var_lib_docker_in_a_named_volume_of_its_own(services: dict[str, dict[str, Any]]) -> None:
    sources = [source for source, target, _ in _mounts(services["dind"]) if target == "/var/lib/docker"]
    assert len(sources) == 1
    assert sources[0] and not sources[0].startswith(("/", "."))
    users = {name for name, service in services.items() for source, _, _ in _mounts(service) if source == sources[0]}
    assert users == {"dind"}


def test_only_the_worker_shares_a_network_with_dind(services: dict[str, dict[str, Any]]) -> None:
    dind_networks = _networks(services["dind"])
    neighbours = {name for name, service in services.items() if _networks(service) & dind_networks}
    assert neighbours == {"dind", "worker"}


@pytest.mark.parametrize("name", ["redis", "dind", "worker", "webhooks", "flower"])
def test_the_service_has_a_healthcheck(services: dict[str, dict[str, Any]], name: str) -> None:
    healthcheck = services[name].get("healthcheck") or {}
    assert not healthcheck.get("disable")
    assert healthcheck.get("test") not in (None, [], "", ["NONE"])


def test_the_celery_processes_and_dind_build_their_own_dockerfile_targets(services: dict[str, dict[str, Any]]) -> None:
    targets = {name: (service.get("build") or {}).get("target") for name, service in services.items()}
    assert targets == {
        "redis": None, "dind": "dind", "worker": "worker", "webhooks": "worker", "beat": "worker", "flower": "worker",
    }  # fmt: skip


def test_dind_isolates_tool_containers_from_one_another(services: dict[str, dict[str, Any]]) -> None:
    assert "--icc=false" in _argv(services["dind"])


def test_dind_takes_the_egress_allow_and_deny_lists_from_the_environment(services: dict[str, dict[str, Any]]) -> None:
    env = _env(services["dind"])
    assert {key: env.get(key, "absent") for key in ("TOOLRUNNER_EGRESS_ALLOW", "TOOLRUNNER_EGRESS_DENY")} == {
        "TOOLRUNNER_EGRESS_ALLOW": None,
        "TOOLRUNNER_EGRESS_DENY": None,
    }


def test_the_workers_serve_metrics_only_on_their_addresses_in_the_internal_metrics_network(
    compose_tool: ComposeTool, empty_env_file: Path, services: dict[str, dict[str, Any]]
) -> None:
    addresses = []
    for name in ("worker", "webhooks"):
        address = _env(services[name])["TOOLRUNNER_METRICS_ADDRESS"]
        assert address not in ("0.0.0.0", "::", ""), name
        assert services[name]["networks"]["metrics"]["ipv4_address"] == address, name
        addresses.append(address)
    assert len(set(addresses)) == 2
    assert sorted(name for name, service in services.items() if "metrics" in _networks(service)) == [
        "webhooks", "worker",
    ]  # fmt: skip
    done = compose_tool.config(_environment(), empty_env_file)
    rendered = json.loads(done.stdout) if compose_tool.prints_json else _load_yaml(done.stdout)
    assert rendered["networks"]["metrics"]["internal"] is True


def test_a_further_pairs_worker_name_sets_its_hostname_node_name_and_healthcheck(
    compose_tool: ComposeTool, empty_env_file: Path
) -> None:
    done = compose_tool.config(_environment(TOOLRUNNER_WORKER_NAME="worker-2"), empty_env_file)
    rendered = json.loads(done.stdout) if compose_tool.prints_json else _load_yaml(done.stdout)
    worker = rendered["services"]["worker"]
    assert worker["hostname"] == "worker-2"
    assert "worker-2@%h" in _argv(worker)
    test = worker["healthcheck"]["test"]
    assert "worker-2@$HOSTNAME" in (test if isinstance(test, str) else " ".join(test)).replace("$$", "$")


@pytest.mark.parametrize("name", ["webhooks", "beat", "flower"])
def test_only_the_worker_gets_the_artifact_store_and_its_secrets(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    assert "TOOLRUNNER_ARTIFACT_MASTER_KEY" in _env(services["worker"])
    assert not [key for key in _env(services[name]) if key.startswith("TOOLRUNNER_ARTIFACT_")], name

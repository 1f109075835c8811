"""scripts/stack.py: the production compose file adapted to this machine changes exactly what it lists."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {"REDIS_PASSWORD": "pw", "TOOLRUNNER_FLOWER_USER": "u", "TOOLRUNNER_FLOWER_PASSWORD": "p"}
BASE = 16300


stack = load_script("stack")


def render(tmp_path: Path, worker_name: str) -> dict[str, Any]:
    """The production file as `docker-compose config` renders it, as scripts/stack does."""
    if shutil.which("docker-compose") is None:
        message = "docker-compose is not installed (apt-get install docker-compose)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    (tmp_path / "empty.env").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOOLRUNNER_", "REDIS_", "DIND_", "COMPOSE_"))}
    env |= SECRETS | {"TOOLRUNNER_WORKER_NAME": worker_name}
    argv = [
        "docker-compose",
        "-f",
        str(ROOT / "docker-compose.yml"),
        "--env-file",
        str(tmp_path / "empty.env"),
        "config",
    ]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=True)
    rendered: dict[str, Any] = yaml.safe_load(done.stdout)
    return rendered


@pytest.fixture(scope="module")
def renderings(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    directory = tmp_path_factory.mktemp("renderings")
    return [render(directory, "worker"), render(directory, "worker-2")]


@pytest.fixture(scope="module")
def adapted(renderings: list[dict[str, Any]]) -> dict[str, Any]:
    adapted: dict[str, Any] = stack.adapt(renderings[0], renderings[1:], stack.Ports.from_base(BASE, 2))
    return adapted


def differences(before: Any, after: Any, path: str = "") -> Iterator[str]:
    """Dotted paths (services.* without the prefix) where two configurations differ; lists compare whole."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for key in sorted(set(before) | set(after)):
            inner = f"{path}.{key}" if path else str(key)
            yield from differences(before.get(key), after.get(key), inner)
    elif before != after:
        yield path.removeprefix("services.")


def test_the_adapted_file_differs_from_production_only_where_a_listed_change_says(
    renderings: list[dict[str, Any]], adapted: dict[str, Any]
) -> None:
    unlisted = [p for p in differences(renderings[0], adapted) if not any(fnmatch.fnmatch(p, c) for c in stack.CHANGES)]
    assert unlisted == []


def test_every_listed_change_is_made(renderings: list[dict[str, Any]], adapted: dict[str, Any]) -> None:
    made = list(differences(renderings[0], adapted))
    assert [c for c in stack.CHANGES if not any(fnmatch.fnmatch(p, c) for p in made)] == []


def test_no_service_joins_a_network_and_no_network_is_declared(adapted: dict[str, Any]) -> None:
    assert "networks" not in adapted
    assert {name: s.get("network_mode") for name, s in adapted["services"].items()} == dict.fromkeys(
        adapted["services"], "host"
    )
    assert not any("networks" in s or "ports" in s or "hostname" in s for s in adapted["services"].values())


def test_no_dind_is_privileged_and_each_gets_the_explicit_capability_list(adapted: dict[str, Any]) -> None:
    for name in ("dind", "dind-2"):
        service = adapted["services"][name]
        assert "privileged" not in service
        assert service["cap_add"] == ["SYS_ADMIN", "NET_ADMIN"]
        assert service["command"] == ["--mtu=1500", "--bridge=none", "--iptables=false"]


def test_the_second_pair_has_its_own_daemon_volumes_port_and_node_name(adapted: dict[str, Any]) -> None:
    worker, dind = adapted["services"]["worker-2"], adapted["services"]["dind-2"]
    assert worker["environment"]["DOCKER_HOST"] == f"tcp://127.0.0.1:{BASE + 11}"
    assert dind["environment"]["DIND_PORT"] == str(BASE + 11)
    assert "worker-2@%h" in worker["command"]
    assert "worker-2@$$HOSTNAME" in worker["healthcheck"]["test"][1]
    assert set(worker["depends_on"]) == {"redis", "dind-2"}
    # Its own client certificates and spool; the artifact store is the host's one store, shared by its pairs.
    assert {v.split(":")[0] for v in worker["volumes"]} == {"dind-certs-client-2", "worker-spool-2", "artifacts"}
    assert {v.split(":")[0] for v in dind["volumes"]} == {
        "dind-certs-ca-2",
        "dind-certs-client-2",
        "dind-data-2",
        "/sys/fs/cgroup",
    }


def test_the_two_pairs_and_the_services_use_distinct_loopback_ports(adapted: dict[str, Any]) -> None:
    services = adapted["services"]
    ports = [
        *(services[d]["environment"]["DIND_PORT"] for d in ("dind", "dind-2")),
        *(services[w]["environment"]["TOOLRUNNER_METRICS_PORT"] for w in ("worker", "worker-2")),
        services["flower"]["environment"]["TOOLRUNNER_FLOWER_PORT"],
        services["redis"]["command"][-1],
    ]
    assert len(set(ports)) == len(ports)
    assert all(not 6379 <= int(port) <= 6384 for port in ports), "the Redis ports of the other test sessions"


def test_the_secrets_reach_every_process_unchanged_but_for_the_broker_address(adapted: dict[str, Any]) -> None:
    services = adapted["services"]
    for name in ("worker", "worker-2", "beat", "flower"):
        assert services[name]["environment"]["TOOLRUNNER_BROKER_URL"] == f"redis://:pw@127.0.0.1:{BASE}/0"
    assert services["redis"]["environment"]["REDISCLI_AUTH"] == "pw"
    assert "pw" not in " ".join(services["redis"]["command"])

"""The production docker-compose.yml, adapted to a machine without registry, bridges or privileged mode.

`scripts/stack` renders the production file with `docker-compose config` (variables interpolated, anchors
merged) and pipes it through `adapt`, which applies exactly the changes in CHANGES, each for the reason
given there; everything else (commands, TLS between worker and DinD, the Redis password, Flower's auth,
one beat, volumes, healthchecks, stop settings) is the production file's. Compose 1.29 cannot combine
`network_mode` with `networks`, and an override file cannot delete keys: hence a transform, not an override.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

# Every change to the production configuration, with its reason; tests/unit/test_stack_transform.py
# checks that the adapted file differs from the production one in these places and nowhere else.
CHANGES: dict[str, str] = {
    "networks": "no bridge may be created here: every service shares the host's network namespace",
    "*.networks": "replaced by network_mode: host (compose refuses both on one service)",
    "*.network_mode": "host: the only networking besides none that this machine allows",
    "*.hostname": "Docker refuses a hostname with host networking; the worker's node name comes from "
    "TOOLRUNNER_WORKER_NAME@<host name> instead",
    "flower.ports": "published ports mean nothing with host networking: Flower binds 127.0.0.1 itself",
    "redis.image": "redis:7-alpine cannot be pulled (no registry): redis-server from Debian, built locally",
    "redis.command": "two options appended: --bind 127.0.0.1 --port PORT (host networking; 6379 is taken)",
    "redis.healthcheck.test": "redis-cli asks the chosen port",
    "*.environment.TOOLRUNNER_BROKER_URL": "redis:6379 becomes 127.0.0.1:PORT; the password stays",
    "*.environment.TOOLRUNNER_IMAGE_NMAP": "tool images built here (toolrunner-tools:local, loaded into each "
    "DinD) instead of the catalogue's registry pins",
    "*.environment.TOOLRUNNER_IMAGE_FFUF": "as TOOLRUNNER_IMAGE_NMAP",
    "dind*.privileged": "--privileged fails here (the kernel's bounding set lacks CAP_SYS_RESOURCE)",
    "dind*.cap_add": "instead of privileged: Docker's default set + SYS_ADMIN (mounts, docker load) and "
    "NET_ADMIN (runc and libnetwork set up each container's namespaces)",
    "dind*.security_opt": "instead of privileged: no seccomp/AppArmor profile, which would block the "
    "inner daemon's mount and clone calls",
    "dind*.device_cgroup_rules": "instead of privileged: the inner daemon manages its containers' devices",
    "dind*.volumes": "/sys/fs/cgroup bind-mounted read-write (cgroup v1 here): instead of privileged",
    "dind*.command": "--bridge=none --iptables=false (no bridge, no iptables here) instead of --icc=false, "
    "which needs iptables; the MTU argument is kept",
    "dind*.environment.DIND_ADDRESS": "the TLS endpoint listens on 127.0.0.1 only (host networking)",
    "dind*.environment.DIND_PORT": "BASE+10+i for pair i instead of 2376 (TOOLRUNNER_STACK_PORT_BASE)",
    "dind*.environment.DIND_EGRESS": "off: with host networking the fence would be installed in the host's "
    "own tables; config/egress.py's rules are checked with iptables-restore in a test instead",
    "worker*.environment.DOCKER_HOST": "tcp://dind:2376 becomes tcp://127.0.0.1:PORT of the pair's DinD "
    "(still verified mutual TLS; the server certificate names 127.0.0.1)",
    "worker*.environment.TOOLRUNNER_TOOL_NETWORK": "host: the inner daemon has no bridge, and the smoke's "
    "targets listen on 127.0.0.1",
    "worker*.environment.TOOLRUNNER_METRICS_ADDRESS": "127.0.0.1: no metrics network here",
    "worker*.environment.TOOLRUNNER_SCOPE_ALLOW_PRIVATE": "127.0.0.0/8: the smoke's targets listen on loopback, "
    "which is out of every scope unless allowed (tenants still need a scope: the smoke gives theirs)",
    "worker*.environment.TOOLRUNNER_METRICS_PORT": "BASE+20+i for pair i instead of 9808",
    "webhooks.environment.TOOLRUNNER_METRICS_ADDRESS": "127.0.0.1: no metrics network here",
    "webhooks.environment.TOOLRUNNER_METRICS_PORT": "BASE+30 instead of 9808 (the workers' port, on one host)",
    "flower.environment.TOOLRUNNER_FLOWER_ADDRESS": "127.0.0.1 instead of 0.0.0.0 behind a loopback publish",
    "flower.environment.TOOLRUNNER_FLOWER_PORT": "BASE+1 instead of 5555",
    "worker-*": "a further (worker, DinD) pair: the production worker rendered with its own "
    "TOOLRUNNER_WORKER_NAME, its own DinD and volumes (the scale-out recipe)",
    "dind-*": "the DinD of a further pair",
    "volumes.dind-*": "the volumes of a further pair's DinD",
    "volumes.worker-spool-*": "the outputs' spool of a further pair's worker",
}

PAIRED_VOLUMES = ("dind-certs-ca", "dind-certs-client", "dind-data", "worker-spool")
CAPABILITIES = ["SYS_ADMIN", "NET_ADMIN"]
SECURITY_OPTIONS = ["seccomp=unconfined", "apparmor=unconfined"]
LOCAL_IMAGES = {"TOOLRUNNER_IMAGE_NMAP": "toolrunner-tools:local", "TOOLRUNNER_IMAGE_FFUF": "toolrunner-tools:local"}


@dataclass(frozen=True)
class Ports:
    """The 127.0.0.1 ports of one stack; pair i (0-based) uses dind[i] and metrics[i]."""

    redis: int
    flower: int
    dind: tuple[int, ...]
    metrics: tuple[int, ...] = field(default=())
    webhooks_metrics: int = 0

    @classmethod
    def from_base(cls, base: int, pairs: int) -> Ports:
        """Consecutive ports from base: Redis, Flower, then per pair its DinD and its worker's metrics, then the
        webhook worker's metrics."""
        dind, metrics = tuple(base + 10 + i for i in range(pairs)), tuple(base + 20 + i for i in range(pairs))
        return cls(base, base + 1, dind, metrics, base + 30)


def suffix(pair: int) -> str:
    """The name suffix of pair i: "" for the first (the production names), "-2", "-3", ... after."""
    return "" if pair == 0 else f"-{pair + 1}"


def adapt(production: Mapping[str, Any], further: Sequence[Mapping[str, Any]], ports: Ports) -> dict[str, Any]:
    """The production configuration adapted to this machine, with a (worker, DinD) pair per rendering.

    further: the production configuration rendered again with TOOLRUNNER_WORKER_NAME=worker-2, ... (one
    per pair after the first), whose worker and dind become worker-2 and dind-2 with volumes of their own.
    """
    config = copy.deepcopy(dict(production))
    services: dict[str, Any] = config["services"]
    for pair, rendering in enumerate(further, start=1):
        _add_pair(config, rendering, suffix(pair))
    config.pop("networks", None)
    for service in services.values():
        _host_network(service)
        _local_images(service)
        _broker_on_loopback(service, ports.redis)
    _local_redis(services["redis"], ports.redis)
    _local_flower(services["flower"], ports.flower)
    services["webhooks"]["environment"].update(
        TOOLRUNNER_METRICS_ADDRESS="127.0.0.1", TOOLRUNNER_METRICS_PORT=str(ports.webhooks_metrics)
    )
    for pair in range(len(further) + 1):
        _local_dind(services[f"dind{suffix(pair)}"], ports.dind[pair])
        _local_worker(services[f"worker{suffix(pair)}"], ports.dind[pair], ports.metrics[pair])
    return config


def _add_pair(config: dict[str, Any], rendering: Mapping[str, Any], tail: str) -> None:
    renamed = {name: f"{name}{tail}" for name in PAIRED_VOLUMES}
    worker = copy.deepcopy(rendering["services"]["worker"])
    dind = copy.deepcopy(rendering["services"]["dind"])
    worker["depends_on"] = {("dind" + tail if k == "dind" else k): v for k, v in worker["depends_on"].items()}
    worker["environment"]["DOCKER_HOST"] = worker["environment"]["DOCKER_HOST"].replace("dind:", f"dind{tail}:")
    for service in (worker, dind):
        service["volumes"] = [_rename_volume(volume, renamed) for volume in service.get("volumes") or []]
    config["services"][f"worker{tail}"] = worker
    config["services"][f"dind{tail}"] = dind
    for name, new in renamed.items():
        config["volumes"][new] = copy.deepcopy(config["volumes"][name])


def _rename_volume(volume: str, renamed: Mapping[str, str]) -> str:
    source, sep, rest = volume.partition(":")
    return renamed.get(source, source) + sep + rest


def _host_network(service: dict[str, Any]) -> None:
    service.pop("networks", None)
    service.pop("hostname", None)
    service.pop("ports", None)
    service["network_mode"] = "host"


def _local_images(service: dict[str, Any]) -> None:
    environment = service.get("environment")
    if environment is not None and "TOOLRUNNER_BROKER_URL" in environment and "DOCKER_HOST" in environment:
        environment.update(LOCAL_IMAGES)


def _broker_on_loopback(service: dict[str, Any], port: int) -> None:
    environment = service.get("environment") or {}
    if url := environment.get("TOOLRUNNER_BROKER_URL"):
        environment["TOOLRUNNER_BROKER_URL"] = url.replace("@redis:6379/", f"@127.0.0.1:{port}/")


def _local_redis(service: dict[str, Any], port: int) -> None:
    service["image"] = "toolrunner-redis:local"
    service["command"] = [*service["command"], "--bind", "127.0.0.1", "--port", str(port)]
    service["healthcheck"]["test"] = ["CMD-SHELL", f"redis-cli -p {port} ping | grep -q PONG"]


def _local_flower(service: dict[str, Any], port: int) -> None:
    service["environment"].update(TOOLRUNNER_FLOWER_ADDRESS="127.0.0.1", TOOLRUNNER_FLOWER_PORT=str(port))


def _local_dind(service: dict[str, Any], port: int) -> None:
    service.pop("privileged", None)
    service["cap_add"] = list(CAPABILITIES)
    service["security_opt"] = list(SECURITY_OPTIONS)
    service["device_cgroup_rules"] = ["a *:* rwm"]
    service["volumes"] = [*service["volumes"], "/sys/fs/cgroup:/sys/fs/cgroup:rw"]
    mtu = [arg for arg in service["command"] if arg.startswith("--mtu=")]
    service["command"] = [*mtu, "--bridge=none", "--iptables=false"]
    service["environment"].update(DIND_ADDRESS="127.0.0.1", DIND_PORT=str(port), DIND_EGRESS="off")


def _local_worker(service: dict[str, Any], dind_port: int, metrics_port: int) -> None:
    environment = service["environment"]
    environment["DOCKER_HOST"] = f"tcp://127.0.0.1:{dind_port}"
    environment["TOOLRUNNER_TOOL_NETWORK"] = "host"
    environment["TOOLRUNNER_SCOPE_ALLOW_PRIVATE"] = "127.0.0.0/8"
    environment["TOOLRUNNER_METRICS_ADDRESS"] = "127.0.0.1"
    environment["TOOLRUNNER_METRICS_PORT"] = str(metrics_port)


def main(argv: list[str] | None = None) -> int:
    """Read renderings (production first, then one per further pair) and print the adapted file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("renderings", nargs="+", help="`docker-compose config` outputs: production, then pairs")
    parser.add_argument("--port-base", type=int, required=True)
    parser.add_argument("--list-changes", action="store_true", help="print each change and its reason instead")
    args = parser.parse_args(argv)
    if args.list_changes:
        sys.stdout.writelines(f"{path}: {reason}\n" for path, reason in CHANGES.items())
        return 0
    production, *further = (_load(path) for path in args.renderings)
    adapted = adapt(production, further, Ports.from_base(args.port_base, len(args.renderings)))
    yaml.safe_dump(adapted, sys.stdout, sort_keys=True)
    return 0


def _load(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as stream:
        loaded: dict[str, Any] = yaml.safe_load(stream)
    return loaded


if __name__ == "__main__":
    sys.exit(main())

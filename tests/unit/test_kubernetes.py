"""deploy/kubernetes: rendered by kustomize, valid for a pinned Kubernetes, in step with docker-compose.yml.

kubectl comes from Debian's `kubernetes-client` (kubectl 1.20, an old built-in kustomize) unless the machine has
one already; kubernetes-validate checks every rendered object against the schemas of KUBERNETES, strictly.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.conftest import program

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "kubernetes"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
# Native sidecars (an init container with restartPolicy: Always) are in the API from 1.28, on by default from 1.29.
KUBERNETES = "1.30.0"
# Compose service -> (kind, name, container) in the rendering; dind is the worker pod's sidecar.
CONTAINERS = {
    "worker": ("StatefulSet", "worker", "worker"),
    "dind": ("StatefulSet", "worker", "dind"),
    "beat": ("Deployment", "beat", "beat"),
    "flower": ("Deployment", "flower", "flower"),
    "webhooks": ("Deployment", "webhooks", "webhooks"),
    "redis": ("StatefulSet", "redis", "redis"),
}
# Values that differ on purpose, by variable: the pod's value and why.
DIFFERENT = {
    "DOCKER_HOST": "tcp://127.0.0.1:2376",  # the sidecar shares the pod's network namespace
    "TOOLRUNNER_METRICS_ADDRESS": "status.podIP",  # the pod's address; compose's is on its internal network
}
# Variables only the pods set: the worker name is the pod's (compose interpolates it), the Redis password is
# what the broker URL's $(REDIS_PASSWORD) refers to (compose interpolates it), DinD listens on loopback only.
EXTRA = {"TOOLRUNNER_WORKER_NAME", "REDIS_PASSWORD", "DIND_ADDRESS"}
# What kustomize v2.0 (kubectl 1.20) understands and the base uses; newer fields would render nowhere old.
PLAIN_KUSTOMIZATION = {"resources", "images"}
INTERPOLATION = re.compile(r"\$\$|\$\{(\w+)(?::?[-?]([^}]*))?\}")


@cache
def rendered() -> tuple[dict[str, Any], ...]:
    """Every object `kubectl kustomize deploy/kubernetes` prints."""
    argv = [program("kubectl", "kubernetes-client"), "kustomize", str(BASE)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def find(kind: str, name: str) -> dict[str, Any]:
    """The one rendered object of this kind and name."""
    (found,) = [o for o in rendered() if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def pod(kind: str, name: str) -> dict[str, Any]:
    """The pod spec of a workload."""
    spec: dict[str, Any] = find(kind, name)["spec"]["template"]["spec"]
    return spec


def container(service: str) -> dict[str, Any]:
    """The container (or native sidecar) that plays a compose service."""
    kind, name, container_name = CONTAINERS[service]
    spec = pod(kind, name)
    (found,) = [c for c in [*spec.get("initContainers", []), *spec["containers"]] if c["name"] == container_name]
    return found


def interpolated(value: str, defined: set[str]) -> str:
    """A compose value as the pod should hold it: `$$` is `$`, a variable the container defines is referenced as
    Kubernetes does, `$(NAME)`, and any other takes its compose default."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2) or ""
        return f"$({name})" if name in defined else default

    return INTERPOLATION.sub(one, value)


def env(service: str) -> dict[str, dict[str, Any]]:
    """The container's env entries by name."""
    return {e["name"]: e for e in container(service).get("env", [])}


def test_kubectl_kustomize_renders_the_base() -> None:
    kinds = sorted({o["kind"] for o in rendered()})
    assert kinds == [
        "Deployment", "NetworkPolicy", "PersistentVolumeClaim", "PodDisruptionBudget", "Service", "StatefulSet",
    ]  # fmt: skip


def test_every_rendered_object_is_valid_for_the_pinned_kubernetes_strictly() -> None:
    errors = []
    for obj in rendered():
        try:
            kubernetes_validate.validate(obj, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message}")
    assert errors == []


def test_the_kustomization_stays_plain_enough_for_kubectl_1_20() -> None:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert set(kustomization) <= PLAIN_KUSTOMIZATION
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml"
    )


def test_dind_is_a_native_sidecar_of_the_workers_statefulset_pod() -> None:
    spec = pod("StatefulSet", "worker")
    assert [(c["name"], c.get("restartPolicy")) for c in spec["initContainers"]] == [("dind", "Always")]
    assert [c["name"] for c in spec["containers"]] == ["worker"]
    assert "startupProbe" in spec["initContainers"][0]  # the worker starts once its daemon answers


def test_beat_is_one_replica_recreated_and_flower_is_behind_a_service() -> None:
    beat = find("Deployment", "beat")["spec"]
    assert (beat["replicas"], beat["strategy"]) == (1, {"type": "Recreate"})
    flower = find("Service", "flower")["spec"]
    assert flower["selector"] == find("Deployment", "flower")["spec"]["template"]["metadata"]["labels"]
    assert [p["port"] for p in flower["ports"]] == [5555]


def test_workers_are_covered_by_a_disruption_budget_and_every_pod_by_a_default_deny_policy() -> None:
    budget = find("PodDisruptionBudget", "worker")["spec"]
    assert budget["selector"] == find("StatefulSet", "worker")["spec"]["selector"]
    deny = find("NetworkPolicy", "toolrunner-default-deny")["spec"]
    assert (deny["policyTypes"], deny.get("ingress"), deny.get("egress")) == (["Ingress", "Egress"], None, None)
    for kind in ("StatefulSet", "Deployment"):
        for obj in (o for o in rendered() if o["kind"] == kind):
            labels = obj["spec"]["template"]["metadata"]["labels"]
            assert deny["podSelector"]["matchLabels"].items() <= labels.items(), obj["metadata"]["name"]


def test_secrets_are_referenced_never_written_in_the_manifests() -> None:
    assert [o["metadata"]["name"] for o in rendered() if o["kind"] in ("Secret", "ConfigMap")] == []
    for service in CONTAINERS:
        for name, entry in env(service).items():
            if re.search(r"PASSWORD|AUTH|KEY|SECRET", name):
                assert "secretKeyRef" in entry.get("valueFrom", {}), f"{service}: {name} is not from a Secret"


@pytest.mark.parametrize("service", sorted(CONTAINERS))
def test_each_containers_environment_agrees_with_the_compose_service(service: str) -> None:
    compose_env = COMPOSE["services"][service].get("environment", {})
    pod_env = env(service)
    shared = set(COMPOSE["x-toolrunner-environment"])
    artifacts = set(COMPOSE["x-toolrunner-artifacts"])
    sources = {(s.get("configMapRef") or s.get("secretRef"))["name"] for s in container(service).get("envFrom", [])}
    for name, value in compose_env.items():
        if value is None:  # passed through from the environment of `docker compose`: here from a ConfigMap
            where = "toolrunner-artifacts" if name in artifacts else "toolrunner-settings" if name in shared else None
            if where:
                assert where in sources, f"{service}: {name} comes from no envFrom {where}"
            else:
                assert pod_env[name]["valueFrom"]["configMapKeyRef"]["key"] == name
        elif "${" in value and ":?" in value and name in pod_env and "valueFrom" in pod_env[name]:
            assert "secretKeyRef" in pod_env[name]["valueFrom"]  # a required secret of compose's: a Secret's
        elif name in DIFFERENT:
            entry = pod_env[name]
            assert (
                entry.get("value", entry.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")) == DIFFERENT[name]
            )
        else:
            assert pod_env[name].get("value") == interpolated(value, set(pod_env)), name
    assert set(pod_env) - set(compose_env) <= EXTRA
    if "toolrunner-artifacts" in sources:
        assert service == "worker"  # beat and Flower never open the store: its secrets stay out of them


@pytest.mark.parametrize("service", sorted(CONTAINERS))
def test_each_containers_image_and_command_are_the_compose_services(service: str) -> None:
    compose, pod_container = COMPOSE["services"][service], container(service)
    defined = set(env(service))
    if service == "redis":
        assert pod_container["image"] == compose["image"]
    else:  # compose's tag is a local build's; the kustomization's `images` sets the registry's
        assert pod_container["image"].split(":")[0] == compose["image"].split(":")[0]
    command = [interpolated(part, defined) for part in compose.get("command", [])]
    assert pod_container.get("command", []) + pod_container.get("args", []) == command


@pytest.mark.parametrize("service", ["worker", "webhooks", "beat", "flower", "redis"])
def test_each_pods_grace_period_is_the_compose_services_stop_grace_period(service: str) -> None:
    kind, name, _ = CONTAINERS[service]
    grace = COMPOSE["services"][service].get("stop_grace_period", "10s")  # Docker's default
    assert pod(kind, name)["terminationGracePeriodSeconds"] == int(grace.removesuffix("s"))


@pytest.mark.parametrize("service", sorted(CONTAINERS))
def test_each_containers_volumes_are_mounted_where_compose_mounts_them(service: str) -> None:
    compose = COMPOSE["services"][service]
    expected = set()
    for volume in compose.get("volumes", []):
        source, target, *mode = volume.split(":")
        expected.add((source, target, mode == ["ro"]))
    expected |= {("tmp", path, False) for path in compose.get("tmpfs", [])}
    mounts = {(m["name"], m["mountPath"], m.get("readOnly", False)) for m in container(service).get("volumeMounts", [])}
    assert mounts == expected


@pytest.mark.parametrize("service", sorted(CONTAINERS))
def test_each_containers_hardening_is_the_compose_services(service: str) -> None:
    compose, context = COMPOSE["services"][service], container(service).get("securityContext", {})
    assert context.get("privileged", False) == compose.get("privileged", False)
    if compose.get("read_only"):
        assert context["readOnlyRootFilesystem"] is True
    if "ALL" in compose.get("cap_drop", []):
        assert context["capabilities"]["drop"] == ["ALL"]
    if "no-new-privileges:true" in compose.get("security_opt", []):
        assert context["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("service", sorted(CONTAINERS))
def test_each_containers_liveness_probe_keeps_the_compose_healthchecks_timing(service: str) -> None:
    check = COMPOSE["services"][service].get("healthcheck")
    probe = container(service).get("livenessProbe")
    assert (check is None) == (probe is None)
    if check:
        timing = (probe["periodSeconds"], probe["timeoutSeconds"], probe["failureThreshold"])
        assert timing == (int(check["interval"][:-1]), int(check["timeout"][:-1]), check["retries"])

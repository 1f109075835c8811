"""RunWorkspace on a real engine: a run's two volumes made with one helper, checked by nonce, removed with it."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import closing, suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import docker
import pytest
from celery.exceptions import SoftTimeLimitExceeded

import isolation.owned
import isolation.workspace
from bench.engineproxy import EngineProxy
from isolation import ContainerSpec, Role, RunWorkspace, VolumeConflictError, run_container
from isolation.naming import new_identity, parse_deadline
from tests.integration.helpers import InterruptedStream

pytestmark = pytest.mark.integration
DEADLINE = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def volumes_of(client: docker.DockerClient, workspace: RunWorkspace) -> list[dict[str, Any]]:
    nonce = workspace.identity.nonce
    return list(client.api.volumes(filters={"label": [f"studio.nonce={nonce}"]}).get("Volumes") or [])


def tool(client: docker.DockerClient, image: str, workspace: RunWorkspace, script: str) -> isolation.ContainerResult:
    """Run a hardened busybox script as the non-root tool user against the workspace's mounts."""
    spec = ContainerSpec(
        image=image,
        entrypoint=["sh", "-c"],
        argv=[script],
        mounts=workspace.mounts("/inputs", "/outputs"),
        labels=workspace.container_labels(Role.TOOL),
    )
    return run_container(client, spec, 60)


def test_a_workspace_is_two_volumes_labelled_for_the_run_and_one_helper_named_for_it(
    docker_client: docker.DockerClient,
) -> None:
    with RunWorkspace("acme", "ws-1", docker_client, deadline=DEADLINE, extra_labels={"task": "t-1"}) as workspace:
        workspace.open({})
        volumes = volumes_of(docker_client, workspace)
        (helper,) = docker_client.api.containers(all=True, filters={"label": ["studio.run=ws-1"]})
    assert workspace.name.startswith("tenant-acme-run-ws-1-") and helper["Names"] == [f"/{workspace.name}"]
    assert helper["Labels"]["studio.role"] == "helper" and helper["State"] == "created"
    assert sorted(v["Labels"]["studio.contents"] for v in volumes) == ["inputs", "outputs"]
    for volume in volumes:
        labels = volume["Labels"]
        assert (labels["studio.managed"], labels["studio.tenant"], labels["studio.run"]) == ("true", "acme", "ws-1")
        assert labels["studio.task"] == "t-1" and parse_deadline(labels["studio.deadline"]) == DEADLINE
        assert len(volume["Name"]) == 64, "the engine names an anonymous volume afresh: nothing earlier is reused"


def test_a_non_root_tool_reads_its_inputs_cannot_change_them_and_writes_its_outputs(
    docker_client: docker.DockerClient, busybox_image: str
) -> None:
    payload = bytes(range(256))
    script = (
        "id -u > /outputs/uid.txt; cp /inputs/d/blob.bin /outputs/copy.bin;"
        " (echo x > /inputs/new.txt || rm /inputs/d/blob.bin || echo x >> /inputs/d/blob.bin) 2>/dev/null"
        " && echo inputs-writable > /outputs/flag.txt; mkdir /outputs/sub && echo y > /outputs/sub/f; true"
    )
    with RunWorkspace("acme", "ws-2", docker_client) as workspace:
        workspace.open({"d/blob.bin": payload})
        assert tool(docker_client, busybox_image, workspace, script).exit_code == 0
        got = workspace.read_files(["uid.txt", "copy.bin", "sub/f"])
        with pytest.raises(isolation.MissingOutputError):
            workspace.read_files(["flag.txt"])
    assert got == {"uid.txt": b"65532\n", "copy.bin": payload, "sub/f": b"y\n"}


def test_two_tenants_workspaces_share_nothing(docker_client: docker.DockerClient, busybox_image: str) -> None:
    with (
        RunWorkspace("tenant-a", "same", docker_client) as a,
        RunWorkspace("tenant-b", "same", docker_client) as b,
    ):
        a.open({"secret.txt": "a"})
        b.open({"secret.txt": "b"})
        assert tool(docker_client, busybox_image, b, "cat /inputs/secret.txt > /outputs/out.txt").exit_code == 0
        assert b.read_files(["out.txt"]) == {"out.txt": b"b"}
        names_a = {v["Name"] for v in volumes_of(docker_client, a)}
        names_b = {v["Name"] for v in volumes_of(docker_client, b)}
    assert len(names_a) == len(names_b) == 2 and not names_a & names_b


def test_cleanup_after_the_tool_is_gone_is_one_call_and_leaves_nothing(
    docker_client: docker.DockerClient, busybox_image: str
) -> None:
    with EngineProxy() as proxy, closing(docker.DockerClient(base_url=proxy.base_url, timeout=60)) as client:
        workspace = RunWorkspace("acme", "ws-3", client)
        workspace.open({"a.txt": "a"})
        assert tool(client, busybox_image, workspace, "cp /inputs/a.txt /outputs/").removed
        proxy.log.take()
        assert workspace.cleanup() is True
        assert proxy.log.take() == ["DELETE /containers/{id}"]
    assert volumes_of(docker_client, workspace) == []
    assert workspace.cleanup() is True  # idempotent


def test_cleanup_when_the_tool_container_was_not_removed_removes_it_and_both_volumes(
    docker_client: docker.DockerClient, busybox_image: str
) -> None:
    workspace = RunWorkspace("acme", "ws-4", docker_client)
    workspace.open({})
    # A tool container still running (its removal failed): it holds both volumes.
    leftover = docker_client.containers.run(
        busybox_image, ["sleep", "300"], mounts=workspace.mounts("/inputs", "/outputs"),
        labels=workspace.container_labels(Role.TOOL), network_mode="none", detach=True,
    )  # fmt: skip
    assert workspace.cleanup(verify=True) is True
    assert volumes_of(docker_client, workspace) == []
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(leftover.id)


def test_a_helper_name_already_taken_is_refused_and_that_container_is_left_alone(
    docker_client: docker.DockerClient,
    busybox_image: str,
    make_container: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    identity = new_identity("acme", "clash")
    other = make_container(busybox_image, ["true"], name=identity.name)
    monkeypatch.setattr(isolation.owned, "new_identity", lambda *args, **kwargs: identity)
    workspace = RunWorkspace("acme", "clash", docker_client)
    with pytest.raises(VolumeConflictError, match="already exists"):
        workspace.open({"a.txt": "a"})
    assert docker_client.containers.get(other).name == identity.name
    assert volumes_of(docker_client, workspace) == []


@pytest.fixture
def unlabelled_volumes(monkeypatch: pytest.MonkeyPatch, docker_client: docker.DockerClient) -> Iterator[list[str]]:
    """Make workspaces whose volumes the engine leaves unlabelled (as one ignoring volume options would); yield the
    names of the volumes their helpers made."""
    made: list[str] = []
    create_helper = isolation.workspace.create_helper

    def unlabelled(client: docker.DockerClient, mounts: list[Any], *args: Any, **kwargs: Any) -> str:
        for mount in mounts:
            mount["VolumeOptions"].pop("Labels", None)
        helper = create_helper(client, mounts, *args, **kwargs)
        made.extend(m["Name"] for m in docker_client.api.inspect_container(helper)["Mounts"])
        return helper

    monkeypatch.setattr(isolation.workspace, "create_helper", unlabelled)
    yield made
    for name in made:  # should all be gone already; never leave them on a shared engine
        with suppress(docker.errors.NotFound):
            docker_client.api.remove_volume(name)


def test_volumes_the_engine_did_not_label_are_refused_before_anything_is_written_and_removed(
    docker_client: docker.DockerClient, unlabelled_volumes: list[str]
) -> None:
    workspace = RunWorkspace("acme", "unlabelled", docker_client)
    with pytest.raises(VolumeConflictError, match="did not label"):
        workspace.open({"a.txt": "a"})
    assert len(unlabelled_volumes) == 2
    for name in unlabelled_volumes:
        with pytest.raises(docker.errors.NotFound):
            docker_client.volumes.get(name)


def test_the_soft_time_limit_in_the_middle_of_an_upload_removes_the_helper_and_both_volumes(
    docker_client: docker.DockerClient,
) -> None:
    workspace = RunWorkspace("acme", "upload", docker_client, deadline=datetime.now(UTC) + timedelta(minutes=5))
    with pytest.raises(SoftTimeLimitExceeded):
        workspace.open({"big.bin": io.BufferedReader(InterruptedStream())})
    assert volumes_of(docker_client, workspace) == []
    assert docker_client.api.containers(all=True, filters={"name": workspace.name}) == []

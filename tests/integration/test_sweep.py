"""cleanup_orphaned_volumes on a real engine: aged managed leftovers go, everything else stays."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import docker
import pytest

from isolation import IsolatedContainerVolume, Role, cleanup_orphaned_volumes, list_managed_volumes, remove_labelled
from isolation.naming import format_created, new_identity
from tests.integration.helpers import aged_labels, volume_exists

pytestmark = pytest.mark.integration


def test_sweep_removes_aged_volumes_and_keeps_young_unmanaged_and_in_use_ones(
    docker_client: docker.DockerClient,
    busybox_image: str,
    make_volume: Callable[..., str],
    make_container: Callable[..., str],
) -> None:
    aged = make_volume("sweep-aged", aged_labels("t1", 30))
    young = make_volume("sweep-young", aged_labels("t1", 1))
    unmanaged = make_volume("sweep-unmanaged", {"studio.created": format_created(datetime(2000, 1, 1, tzinfo=UTC))})
    in_use = make_volume("sweep-in-use", aged_labels("t2", 48))
    make_container(
        busybox_image,
        ["sleep", "300"],
        start=True,
        network_mode="none",
        mounts=[docker.types.Mount("/outputs", in_use, type="volume")],
    )

    report = cleanup_orphaned_volumes(24, docker_client)

    assert aged in report.removed
    assert in_use in report.kept_in_use
    assert young not in report.removed and unmanaged not in report.removed
    assert not volume_exists(docker_client, aged)
    assert all(volume_exists(docker_client, v) for v in (young, unmanaged, in_use))


def test_sweep_removes_an_aged_managed_container_and_then_the_volume_it_held(
    docker_client: docker.DockerClient, busybox_image: str, make_volume: Callable[..., str]
) -> None:
    labels = aged_labels("t3", 25)
    volume = make_volume("sweep-held", labels)
    container = docker_client.containers.run(
        busybox_image,
        ["sleep", "300"],
        labels=labels,
        network_mode="none",
        detach=True,
        mounts=[docker.types.Mount("/outputs", volume, type="volume")],
    )
    report = cleanup_orphaned_volumes(24, docker_client)
    assert container.name in report.removed_containers
    assert volume in report.removed
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(container.id)


def test_a_dry_run_reports_without_removing(
    docker_client: docker.DockerClient, make_volume: Callable[..., str]
) -> None:
    aged = make_volume("sweep-dry", aged_labels("t4", 100))
    report = cleanup_orphaned_volumes(24, docker_client, dry_run=True)
    assert aged in report.removed and report.dry_run
    assert volume_exists(docker_client, aged)


def test_a_volume_without_a_readable_age_uses_dockers_own_creation_time(
    docker_client: docker.DockerClient, make_volume: Callable[..., str]
) -> None:
    odd = make_volume("sweep-odd", {"studio.managed": "true", "studio.created": "yesterday-ish"})
    assert odd not in cleanup_orphaned_volumes(24, docker_client).removed
    assert odd in cleanup_orphaned_volumes(0, docker_client).removed


def test_a_young_volume_of_a_live_run_survives_a_sweep(docker_client: docker.DockerClient, busybox_image: str) -> None:
    with IsolatedContainerVolume("acme", "live", docker_client) as volume:
        volume.initialize({})
        report = cleanup_orphaned_volumes(24, docker_client)
        assert volume.name not in report.removed
        assert volume_exists(docker_client, volume.name)


def test_remove_labelled_removes_one_tasks_resources_whatever_their_age(docker_client: docker.DockerClient) -> None:
    mine = IsolatedContainerVolume("acme", "crash", docker_client, extra_labels={"task": "task-123"})
    other = IsolatedContainerVolume("acme", "crash", docker_client, extra_labels={"task": "task-456"})
    mine.initialize({"a": "a"})
    other.initialize({"b": "b"})
    try:
        report = remove_labelled({"task": "task-123"}, docker_client)
        assert report.removed == (mine.name,)
        assert len(report.removed_containers) == 1
        assert other.read_files(["b"]) == {"b": b"b"}
    finally:
        assert mine.cleanup() and other.cleanup()


def test_removing_a_runs_resources_kills_its_running_tool_with_sigkill_at_once(
    docker_client: docker.DockerClient, busybox_image: str, make_container: Callable[..., str]
) -> None:
    # What cancel relies on: the tool ignores SIGTERM, so only an immediate SIGKILL ends it within the call.
    since = datetime.now(UTC) - timedelta(seconds=1)
    with IsolatedContainerVolume("acme", "cancel", docker_client, extra_labels={"task": "task-cancel"}) as volume:
        volume.initialize({})
        tool = make_container(
            busybox_image,
            ["sh", "-c", "trap '' TERM; echo up; while :; do sleep 1; done"],
            start=True,
            labels=volume.container_labels(Role.TOOL),
            network_mode="none",
        )
        report = remove_labelled({"task": "task-cancel"}, docker_client)
        assert len(report.removed_containers) == 2 and report.removed == (volume.name,)
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(tool)
    kills = docker_client.events(
        since=since,
        until=datetime.now(UTC) + timedelta(seconds=1),
        filters={"container": tool, "event": "kill"},
        decode=True,
    )
    assert [e["Actor"]["Attributes"]["signal"] for e in kills] == ["9"]


def test_managed_volumes_are_listed_as_records_with_owner_and_use(
    docker_client: docker.DockerClient, make_volume: Callable[..., str]
) -> None:
    identity = new_identity("lister", "idle")
    idle = make_volume("lister-idle", identity.labels())
    make_volume("lister-unmanaged", {"studio.tenant": "lister"})
    with IsolatedContainerVolume("lister-2", "busy", docker_client) as busy:
        busy.initialize({})  # its helper container holds it
        listed = list_managed_volumes(docker_client, tenant="lister")
        assert [(v.name, v.tenant, v.run, v.created, v.in_use) for v in listed] == [
            (idle, "lister", "idle", identity.created, False)
        ]
        assert {v.name: v.in_use for v in list_managed_volumes(docker_client)}[busy.name] is True

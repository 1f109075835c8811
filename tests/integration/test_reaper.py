"""reap_past_deadline on a real engine: what outlived its deadline goes, nothing else is touched."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import docker
import pytest

from isolation import IsolatedContainerVolume, Role, reap_past_deadline
from isolation.naming import deadline_labels, new_identity

pytestmark = pytest.mark.integration

PAST = datetime.now(UTC) - timedelta(minutes=5)
FUTURE = datetime.now(UTC) + timedelta(hours=1)


def exists(client: docker.DockerClient, kind: str, name: str) -> bool:
    try:
        (client.volumes if kind == "volume" else client.containers).get(name)
    except docker.errors.NotFound:
        return False
    return True


def sleeper(make: Callable[..., str], image: str, labels: dict[str, str], volume: str | None = None) -> str:
    """A running container with these labels that would sleep for five minutes (holding volume, if given)."""
    mounts = [docker.types.Mount("/outputs", volume, type="volume")] if volume else []
    return make(image, ["sleep", "300"], start=True, labels=labels, network_mode="none", mounts=mounts)


def test_a_running_tool_container_past_its_deadline_is_killed_and_removed(
    docker_client: docker.DockerClient, busybox_image: str, make_container: Callable[..., str]
) -> None:
    with IsolatedContainerVolume("acme", "late", docker_client, deadline=FUTURE) as volume:
        volume.initialize({})
        tool = sleeper(make_container, busybox_image, volume.container_labels(Role.TOOL, deadline=PAST))
        report = reap_past_deadline(docker_client)
        assert not exists(docker_client, "container", tool)
        assert len(report.removed_containers) == 1 and report.removed == ()
        assert exists(docker_client, "volume", volume.name), "the volume's own deadline has not passed"


def test_a_volume_past_its_deadline_goes_with_the_managed_containers_that_hold_it(
    docker_client: docker.DockerClient, busybox_image: str, make_container: Callable[..., str]
) -> None:
    volume = IsolatedContainerVolume("acme", "orphan", docker_client, deadline=PAST)
    volume.initialize({"targets.txt": "127.0.0.1\n"})
    # A holder without a deadline of its own (as a helper container has): it goes with the volume.
    holder = sleeper(make_container, busybox_image, volume.container_labels(Role.TOOL), volume.name)
    report = reap_past_deadline(docker_client)
    assert volume.name in report.removed
    assert not exists(docker_client, "volume", volume.name)
    assert not exists(docker_client, "container", holder)
    assert volume.cleanup(), "cleanup after the reaper finds nothing left and says so"


def test_resources_without_a_deadline_or_unmanaged_or_still_in_time_are_never_touched(
    docker_client: docker.DockerClient,
    busybox_image: str,
    make_volume: Callable[..., str],
    make_container: Callable[..., str],
) -> None:
    past = deadline_labels(PAST, prefix="studio")
    unmanaged_volume = make_volume("reaper-unmanaged", past)
    unmanaged_container = sleeper(make_container, busybox_image, past)
    no_deadline = make_volume("reaper-no-deadline", new_identity("acme", "old").labels())
    in_time = make_volume("reaper-in-time", new_identity("acme", "young", deadline=FUTURE).labels())
    in_time_container = sleeper(make_container, busybox_image, new_identity("acme", "young", deadline=FUTURE).labels())

    report = reap_past_deadline(docker_client)

    assert report.removed == () and report.removed_containers == ()
    assert all(exists(docker_client, "volume", v) for v in (unmanaged_volume, no_deadline, in_time))
    assert all(exists(docker_client, "container", c) for c in (unmanaged_container, in_time_container))


def test_a_deadline_that_passes_later_is_reaped_then(
    docker_client: docker.DockerClient, make_volume: Callable[..., str]
) -> None:
    volume = make_volume("reaper-later", new_identity("acme", "later", deadline=FUTURE).labels())
    assert volume not in reap_past_deadline(docker_client).removed
    assert volume in reap_past_deadline(docker_client, now=FUTURE + timedelta(seconds=1)).removed
    assert not exists(docker_client, "volume", volume)


def test_a_volume_past_its_deadline_that_an_unmanaged_container_holds_is_kept_and_reported(
    docker_client: docker.DockerClient,
    busybox_image: str,
    make_volume: Callable[..., str],
    make_container: Callable[..., str],
) -> None:
    volume = make_volume("reaper-held", new_identity("acme", "held", deadline=PAST).labels())
    stranger = sleeper(make_container, busybox_image, {}, volume)
    report = reap_past_deadline(docker_client)
    assert volume in report.kept_in_use and volume not in report.removed
    assert exists(docker_client, "volume", volume) and exists(docker_client, "container", stranger)


def test_an_unreadable_deadline_is_reported_and_left_alone(
    docker_client: docker.DockerClient, make_volume: Callable[..., str]
) -> None:
    labels = {**new_identity("acme", "odd").labels(), "studio.deadline": "whenever"}
    volume = make_volume("reaper-odd", labels)
    report = reap_past_deadline(docker_client)
    assert (volume, "unreadable deadline label; left alone") in report.failed
    assert exists(docker_client, "volume", volume)

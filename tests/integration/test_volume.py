"""IsolatedContainerVolume on a real Docker Engine: exact bytes in and out, isolation, links refused."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker
import pytest

from isolation import (
    InvalidFilenameError,
    IsolatedContainerVolume,
    MissingOutputError,
    OutputTooLargeError,
    Role,
    UnsafeOutputError,
    VolumeConflictError,
    VolumeStateError,
)
from isolation.naming import new_identity, parse_deadline

pytestmark = pytest.mark.integration


def run_in(client: docker.DockerClient, image: str, script: str, *mounts: object, user: str = "65532:65532") -> int:
    """Run a shell script in a hardened busybox container with the given mounts; return its exit code."""
    container = client.containers.run(
        image,
        ["sh", "-c", script],
        mounts=list(mounts),
        user=user,
        network_mode="none",
        cap_drop=["ALL"],
        read_only=True,
        detach=True,
    )
    try:
        return int(container.wait(timeout=60)["StatusCode"])
    finally:
        container.remove(force=True)


def test_all_256_byte_values_round_trip_exactly(docker_client: docker.DockerClient) -> None:
    payload = bytes(range(256)) * 4
    with IsolatedContainerVolume("acme", "bin-1", docker_client) as volume:
        volume.initialize({"blob.bin": payload})
        assert volume.read_files(["blob.bin"]) == {"blob.bin": payload}


def test_a_tool_reads_the_exact_bytes_and_its_copy_comes_back_exactly(
    docker_client: docker.DockerClient, busybox_image: str
) -> None:
    payload = bytes(range(256))
    with (
        IsolatedContainerVolume("acme", "bin-2", docker_client) as inputs,
        IsolatedContainerVolume("acme", "bin-2", docker_client) as outputs,
    ):
        inputs.initialize({"blob.bin": payload})
        outputs.initialize({})
        code = run_in(
            docker_client,
            busybox_image,
            "cp /inputs/blob.bin /outputs/copy.bin",
            inputs.get_volume_config("/inputs", True),
            outputs.get_volume_config("/outputs", False),
        )
        assert code == 0
        assert outputs.read_files(["copy.bin"]) == {"copy.bin": payload}


def test_nested_names_create_their_directories(docker_client: docker.DockerClient) -> None:
    files = {"cfg/a/b.yaml": "k: v\n", "cfg/a/c.txt": "c", "cfg/d.txt": "d", "top.txt": "t"}
    with IsolatedContainerVolume("acme", "nested", docker_client) as volume:
        volume.initialize(files)
        got = volume.read_files(files)
    assert got == {k: v.encode() for k, v in files.items()}


def test_str_bytes_path_and_file_objects_are_all_accepted(docker_client: docker.DockerClient, tmp_path: Path) -> None:
    on_disk = tmp_path / "disk.bin"
    on_disk.write_bytes(b"\x00from disk\xff")
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"from a pipe\n")
    os.close(write_fd)
    with open(read_fd, "rb") as pipe, IsolatedContainerVolume("acme", "kinds", docker_client) as volume:
        volume.initialize(
            {
                "text.txt": "héllo",
                "raw.bin": b"\x00\x01",
                "disk.bin": on_disk,
                "buffer.bin": io.BytesIO(b"from memory"),
                "pipe.txt": pipe,
            }
        )
        got = volume.read_files(["text.txt", "raw.bin", "disk.bin", "buffer.bin", "pipe.txt"])
    assert got == {
        "text.txt": "héllo".encode(),
        "raw.bin": b"\x00\x01",
        "disk.bin": b"\x00from disk\xff",
        "buffer.bin": b"from memory",
        "pipe.txt": b"from a pipe\n",
    }


def test_two_tenants_at_once_each_read_only_their_own_files(docker_client: docker.DockerClient) -> None:
    results: dict[str, dict[str, bytes]] = {}
    names: dict[str, str] = {}

    def run(tenant: str) -> None:
        with IsolatedContainerVolume(tenant, "same-run", docker_client) as volume:
            volume.initialize({"secret.txt": f"secret of {tenant}"})
            names[tenant] = volume.name
            results[tenant] = volume.read_files(["secret.txt"])

    threads = [threading.Thread(target=run, args=(t,)) for t in ("tenant-a", "tenant-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {
        "tenant-a": {"secret.txt": b"secret of tenant-a"},
        "tenant-b": {"secret.txt": b"secret of tenant-b"},
    }
    assert names["tenant-a"] != names["tenant-b"]
    assert names["tenant-a"].startswith("tenant-tenant-a-run-same-run-")


def test_a_non_root_tool_can_write_at_the_root_of_an_empty_volume(
    docker_client: docker.DockerClient, busybox_image: str
) -> None:
    with IsolatedContainerVolume("acme", "nonroot", docker_client) as volume:
        volume.initialize({})
        code = run_in(
            docker_client,
            busybox_image,
            "id -u > /outputs/uid.txt && mkdir /outputs/sub && echo x > /outputs/sub/f",
            volume.get_volume_config("/outputs", False),
            user="65532:65532",
        )
        assert code == 0
        assert volume.read_files(["uid.txt", "sub/f"]) == {"uid.txt": b"65532\n", "sub/f": b"x\n"}


def test_a_non_root_tool_can_write_into_nested_input_directories(
    docker_client: docker.DockerClient, busybox_image: str
) -> None:
    with IsolatedContainerVolume("acme", "nonroot-dirs", docker_client) as volume:
        volume.initialize({"work/in.txt": "in"})
        code = run_in(
            docker_client,
            busybox_image,
            "cat /data/work/in.txt > /data/work/out.txt",
            volume.get_volume_config("/data", False),
        )
        assert code == 0
        assert volume.read_files(["work/out.txt"]) == {"work/out.txt": b"in"}


def test_the_input_mount_is_read_only_for_the_tool(docker_client: docker.DockerClient, busybox_image: str) -> None:
    with IsolatedContainerVolume("acme", "ro", docker_client) as volume:
        volume.initialize({"a.txt": "a"})
        code = run_in(docker_client, busybox_image, "echo x > /inputs/a.txt", volume.get_volume_config())
        assert code != 0
        assert volume.read_files(["a.txt"]) == {"a.txt": b"a"}


def test_volume_is_removed_when_the_tool_exits_nonzero(docker_client: docker.DockerClient, busybox_image: str) -> None:
    volume = IsolatedContainerVolume("acme", "fails", docker_client)
    volume.initialize({"a.txt": "a"})
    assert run_in(docker_client, busybox_image, "exit 3", volume.get_volume_config()) == 3
    assert volume.cleanup() is True
    assert volume.cleanup() is True  # idempotent
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(volume.name)


def test_cleanup_removes_a_managed_container_still_holding_the_volume(
    docker_client: docker.DockerClient, busybox_image: str
) -> None:
    volume = IsolatedContainerVolume("acme", "held", docker_client)
    volume.initialize({})
    holder = docker_client.containers.run(
        busybox_image,
        ["sleep", "300"],
        mounts=[volume.get_volume_config("/outputs", False)],
        labels=volume.labels,
        network_mode="none",
        detach=True,
    )
    assert volume.cleanup() is True
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(holder.id)


def test_cleanup_does_not_remove_an_unmanaged_container_and_reports_failure(
    docker_client: docker.DockerClient, busybox_image: str, make_container: Callable[..., str]
) -> None:
    volume = IsolatedContainerVolume("acme", "foreign", docker_client, cleanup_timeout=0.5)
    volume.initialize({})
    foreign = make_container(
        busybox_image,
        ["sleep", "300"],
        start=True,
        network_mode="none",
        mounts=[volume.get_volume_config("/outputs", False)],
    )
    assert volume.cleanup() is False
    assert docker_client.containers.get(foreign).status == "running"
    docker_client.api.remove_container(foreign, force=True)
    assert volume.cleanup() is True


def test_leaving_the_with_block_on_an_error_removes_everything(docker_client: docker.DockerClient) -> None:
    with pytest.raises(RuntimeError, match="boom"), IsolatedContainerVolume("acme", "boom", docker_client) as volume:
        volume.initialize({"a.txt": "a"})
        raise RuntimeError("boom")
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(volume.name)


def test_volume_carries_the_documented_name_and_labels(docker_client: docker.DockerClient) -> None:
    with IsolatedContainerVolume("acme", "labels", docker_client, extra_labels={"task": "t-1"}) as volume:
        volume.initialize({})
        labels = docker_client.volumes.get(volume.name).attrs["Labels"]
    assert labels["studio.managed"] == "true"
    assert labels["studio.tenant"] == "acme"
    assert labels["studio.run"] == "labels"
    assert labels["studio.created"].endswith("Z")
    assert len(labels["studio.nonce"]) == 32
    assert labels["studio.task"] == "t-1"


def test_a_deadline_labels_the_volume_its_helper_and_the_containers_it_labels(
    docker_client: docker.DockerClient,
) -> None:
    deadline = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    with IsolatedContainerVolume("acme", "deadline", docker_client, deadline=deadline) as volume:
        volume.initialize({})
        on_volume = docker_client.volumes.get(volume.name).attrs["Labels"]
        (helper,) = docker_client.api.containers(all=True, filters={"label": ["studio.run=deadline"]})
        tool = volume.container_labels(Role.TOOL, deadline=deadline + timedelta(minutes=1))
    assert parse_deadline(on_volume["studio.deadline"]) == deadline
    assert helper["Labels"]["studio.deadline"] == on_volume["studio.deadline"]
    assert helper["Labels"]["studio.role"] == "helper"
    assert tool["studio.role"] == "tool" and parse_deadline(tool["studio.deadline"]) == deadline + timedelta(minutes=1)


def test_a_custom_label_prefix_is_used_everywhere(docker_client: docker.DockerClient) -> None:
    with IsolatedContainerVolume("acme", "prefix", docker_client, label_prefix="acme.scan") as volume:
        volume.initialize({})
        labels = docker_client.volumes.get(volume.name).attrs["Labels"]
        helpers = docker_client.api.containers(all=True, filters={"label": ["acme.scan.managed=true"]})
        assert len(helpers) == 1
    assert set(labels) == {f"acme.scan.{k}" for k in ("managed", "tenant", "run", "created", "nonce")}


def test_a_reused_name_is_refused_and_the_existing_volume_is_untouched(
    docker_client: docker.DockerClient, make_volume: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    identity = new_identity("acme", "clash")
    make_volume(identity.name, {"studio.nonce": "someone-else"})
    monkeypatch.setattr("isolation.owned.new_identity", lambda *args, **kwargs: identity)
    volume = IsolatedContainerVolume("acme", "clash", docker_client)
    with pytest.raises(VolumeConflictError, match="not ours"):
        volume.initialize({"a.txt": "a"})
    assert docker_client.volumes.get(identity.name).attrs["Labels"] == {"studio.nonce": "someone-else"}


@pytest.mark.parametrize(
    ("script", "name", "message"),
    [
        ("ln -s /etc/passwd /outputs/out", "out", "symlink"),
        ("echo x > /outputs/real && ln /outputs/real /outputs/hard", "hard,real", "hard link"),
        ("mkfifo /outputs/fifo", "fifo", "FIFO"),
        ("mkdir /outputs/dir", "dir", "directory"),
        ("ln -s /etc /outputs/sub", "sub/passwd", "symlink"),
        ("mkdir /outputs/d && ln -s /etc /outputs/d/e", "d/e/passwd", "symlink"),
    ],
)
def test_links_devices_and_fifos_among_outputs_are_refused(
    docker_client: docker.DockerClient, busybox_image: str, script: str, name: str, message: str
) -> None:
    with IsolatedContainerVolume("acme", "unsafe", docker_client) as volume:
        volume.initialize({})
        assert run_in(docker_client, busybox_image, script, volume.get_volume_config("/outputs", False)) == 0
        with pytest.raises(UnsafeOutputError, match=message):
            volume.read_files(name.split(","))


def test_a_device_node_among_outputs_is_refused(docker_client: docker.DockerClient, busybox_image: str) -> None:
    with IsolatedContainerVolume("acme", "device", docker_client) as volume:
        volume.initialize({})
        code = run_in(
            docker_client,
            busybox_image,
            "mknod /outputs/null c 1 3",
            volume.get_volume_config("/outputs", False),
            user="0:0",
        )
        if code != 0:  # without CAP_MKNOD: try again with it, still dropping everything else
            container = docker_client.containers.run(
                busybox_image,
                ["mknod", "/outputs/null", "c", "1", "3"],
                cap_drop=["ALL"],
                cap_add=["MKNOD"],
                mounts=[volume.get_volume_config("/outputs", False)],
                network_mode="none",
                detach=True,
            )
            assert container.wait(timeout=60)["StatusCode"] == 0
            container.remove(force=True)
        with pytest.raises(UnsafeOutputError, match="device"):
            volume.read_files(["null"])


def test_a_missing_output_names_every_missing_file(docker_client: docker.DockerClient) -> None:
    with IsolatedContainerVolume("acme", "missing", docker_client) as volume:
        volume.initialize({"here.txt": "x", "d/here.txt": "y"})
        with pytest.raises(MissingOutputError) as caught:
            volume.read_files(["here.txt", "gone.txt", "d/gone.txt"])
    assert caught.value.missing == ["d/gone.txt", "gone.txt"]


def test_a_file_over_the_per_file_cap_is_refused_and_cleanup_still_works(
    docker_client: docker.DockerClient, busybox_image: str
) -> None:
    volume = IsolatedContainerVolume("acme", "big", docker_client, max_file_bytes=1 << 20)
    volume.initialize({})
    script = "dd if=/dev/zero of=/outputs/big bs=1M count=64 2>/dev/null; echo small > /outputs/small"
    assert run_in(docker_client, busybox_image, script, volume.get_volume_config("/outputs", False)) == 0
    with pytest.raises(OutputTooLargeError, match="per-file cap"):
        volume.read_files(["big"])
    assert volume.read_files(["small"]) == {"small": b"small\n"}
    assert volume.cleanup() is True


def test_files_over_the_per_call_cap_are_refused(docker_client: docker.DockerClient) -> None:
    with IsolatedContainerVolume("acme", "total", docker_client, max_total_bytes=3000) as volume:
        volume.initialize({"a": b"a" * 2000, "b": b"b" * 2000})
        assert volume.read_files(["a"]) == {"a": b"a" * 2000}
        with pytest.raises(OutputTooLargeError):
            volume.read_files(["a", "b"])
        assert volume.read_files(["b"], max_total_bytes=10_000) == {"b": b"b" * 2000}


def test_copy_files_to_streams_into_a_directory_without_overwriting(
    docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    with IsolatedContainerVolume("acme", "copy", docker_client) as volume:
        volume.initialize({"out/report.bin": bytes(range(256)), "x.txt": "x"})
        sizes = volume.copy_files_to(["out/report.bin", "x.txt"], tmp_path / "dest")
        assert sizes == {"out/report.bin": 256, "x.txt": 1}
        assert (tmp_path / "dest/out/report.bin").read_bytes() == bytes(range(256))
        with pytest.raises(FileExistsError):
            volume.copy_files_to(["x.txt"], tmp_path / "dest")


def test_a_bad_filename_raises_before_any_volume_exists(docker_client: docker.DockerClient) -> None:
    volume = IsolatedContainerVolume("acme", "badname", docker_client)
    with pytest.raises(InvalidFilenameError):
        volume.initialize({"../escape": "x"})
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(volume.name)


def test_reading_before_initialize_says_what_to_do(docker_client: docker.DockerClient) -> None:
    volume = IsolatedContainerVolume("acme", "early", docker_client)
    with pytest.raises(VolumeStateError, match="initialize"):
        volume.read_files(["a"])


def test_the_helper_image_is_provisioned_when_absent(docker_client: docker.DockerClient) -> None:
    from isolation.engine import helper_image_ref

    ref = helper_image_ref()
    try:
        docker_client.images.remove(ref)
    except docker.errors.APIError:
        pytest.skip("the helper image is in use by another container; cannot remove it to test provisioning")
    with IsolatedContainerVolume("acme", "provision", docker_client) as volume:
        volume.initialize({"a.txt": "a"})
        assert volume.read_files(["a.txt"]) == {"a.txt": b"a"}
    assert docker_client.images.get(ref).attrs["Size"] == 0

"""The hardening and limits every tool container is created with (pure: no engine is contacted)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import docker
import pytest

from isolation import TOOL_USER, ContainerLimits, ContainerResult, ContainerSpec
from isolation.container import _create_options


def options(limits: ContainerLimits) -> dict[str, Any]:
    """The create_container arguments for a spec with these limits (an API client never connects here)."""
    api = docker.APIClient(base_url="unix:///nonexistent.sock", version="1.45")
    spec = ContainerSpec(image="tool:1", entrypoint=["tool"], argv=["-x"], mounts=[], labels={}, limits=limits)
    return _create_options(SimpleNamespace(api=api), spec)


def test_a_tool_runs_as_the_unprivileged_user_with_every_capability_dropped() -> None:
    created = options(ContainerLimits())
    host = created["host_config"]
    assert created["user"] == TOOL_USER == "65532:65532"
    assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
    assert host["ReadonlyRootfs"] is True and host["NetworkMode"] == "none"


def test_a_tool_gets_the_documented_default_limits_including_open_files() -> None:
    host = options(ContainerLimits())["host_config"]
    ulimits = {u["Name"]: (u["Soft"], u["Hard"]) for u in host["Ulimits"]}
    assert ulimits == {"fsize": (1 << 30, 1 << 30), "nofile": (1024, 1024)}
    assert host["Memory"] == host["MemorySwap"] == 1 << 30
    assert host["NanoCpus"] == 1_000_000_000 and host["PidsLimit"] == 256


def test_a_custom_nofile_limit_is_soft_and_hard() -> None:
    ulimits = options(ContainerLimits(nofile=4096))["host_config"]["Ulimits"]
    assert {"Name": "nofile", "Soft": 4096, "Hard": 4096} in ulimits


def test_limits_and_results_are_built_by_keyword_only() -> None:
    with pytest.raises(TypeError):
        ContainerLimits("1g")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        ContainerResult(None, True)  # type: ignore[call-arg]
    assert ContainerResult(exit_code=None, timed_out=True) == ContainerResult(
        exit_code=None, timed_out=True, oom_killed=False, duration_ms=0, stdout_tail="", stderr_tail="", stdout_lines=0
    )


@pytest.mark.parametrize("bad", [{"cpus": 0}, {"pids": 0}, {"nofile": 8}, {"file_size_bytes": 0}])
def test_limits_out_of_range_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="out of range"):
        ContainerLimits(**bad)

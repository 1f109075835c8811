"""The hardening and limits every tool container is created with, and when its end needs an inspect (pure: no engine
is contacted)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import docker
import pytest

from isolation import TOOL_USER, ContainerLimits, ContainerResult, ContainerSpec
from isolation.container import _create_options, _result
from isolation.logs import Output


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


class _Api:
    """The one engine call _result may make besides the log read: an inspect that says the OOM killer struck."""

    def __init__(self) -> None:
        self.inspected = False

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        self.inspected = True
        return {"State": {"Running": False, "ExitCode": 137, "OOMKilled": True}}


@pytest.mark.parametrize(("exited", "inspected"), [(0, False), (137, True), (None, True)], ids=["ok", "137", "timeout"])
def test_the_oom_inspect_is_made_only_for_a_tool_that_did_not_exit_0(
    exited: int | None, inspected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("isolation.container.read_logs", lambda client, container_id: Output(b"out\n", b""))
    api = _Api()
    result = _result(SimpleNamespace(api=api), "c1", exited, 0.0, 100)
    assert api.inspected is inspected and result.stdout_lines == 1
    assert result.oom_killed is inspected and result.timed_out is (exited is None)
    assert result.exit_code == (137 if inspected else 0)

"""A loopback target is refused unless the tool runs on the host's network: on any other its open ports read closed."""

from __future__ import annotations

from typing import Any
from unittest import mock

import docker
import pytest
from celery import Celery, Task

from config import Settings
from tasks.errors import TaskInputError, UnreachableTargetError
from tasks.scope.check import check, on_loopback
from tasks.scope.policy import checker
from tasks.scope.store import Scopes
from tasks.service import RunRequest
from tasks.tools import TargetKind, load_catalogue
from tasks.worker import pipeline
from tasks.worker.context import Run, Services
from tests.unit.helpers import Answers, scope_checker, scope_of, targets_spec

HOST, WEB, URL = TargetKind.HOST, TargetKind.WEB, TargetKind.URL
LOOPBACK_ALLOWED = {"scope_allow_private": ("127.0.0.0/8", "::1/128", "10.0.0.0/8")}
SCOPE = scope_of("127.0.0.0/16", "::1", "10.0.0.0/8", "example.com")


def checked(targets: list[tuple[TargetKind, str]], network: str, *, scope: Any = SCOPE, **answers: Any) -> None:
    """Check tenant acme's run of the fake tool on these targets, loopback allowed by the operator and in scope."""
    names = Answers({name.replace("_", "."): found for name, found in answers.items()})
    check(
        targets_spec(), targets, "acme", scope=scope, network=network, checker=scope_checker(names, **LOOPBACK_ALLOWED)
    )


@pytest.mark.parametrize("network", ["bridge", "none", "tools-net"])
@pytest.mark.parametrize(
    ("target", "named"),
    [
        ((HOST, "127.0.0.1"), "127.0.0.1"),
        ((HOST, "127.0.0.0/30"), "127.0.0.0/30"),
        ((HOST, "::1"), "::1"),
        ((WEB, "127.0.0.1:8080"), "127.0.0.1"),
        ((URL, "http://127.0.0.2:8080/FUZZ"), "127.0.0.2"),
        ((HOST, "local.example.com"), "127.0.0.1"),  # a name resolving to loopback at admission
    ],
)
def test_a_loopback_target_off_the_host_network_is_refused_naming_the_setting(
    network: str, target: tuple[TargetKind, str], named: str
) -> None:
    with pytest.raises(UnreachableTargetError) as refused:
        checked([target], network, local_example_com=["127.0.0.1"])
    message = str(refused.value)
    assert "TOOLRUNNER_TOOL_NETWORK=host" in message and f"network {network}" in message
    assert f"loopback {named}:" in message and "report open ports closed" in message


def test_the_refusal_is_bad_input_and_holds_with_scope_off() -> None:
    with pytest.raises(TaskInputError, match=r"loopback 127\.0\.0\.1"):
        checked([(HOST, "127.0.0.1")], "bridge", scope=None)


@pytest.mark.parametrize(
    "targets",
    [
        [(HOST, "127.0.0.1"), (HOST, "::1"), (URL, "http://127.0.0.1:8080/")],
        [(HOST, "local.example.com")],
    ],
)
def test_loopback_targets_on_the_host_network_pass(targets: list[tuple[TargetKind, str]]) -> None:
    checked(targets, "host", local_example_com=["127.0.0.1"])


@pytest.mark.parametrize("network", ["bridge", "none"])
def test_targets_that_are_not_loopback_are_not_refused_for_the_network(network: str) -> None:
    checked([(HOST, "10.0.0.7"), (HOST, "public.example.com")], network, public_example_com=["93.184.215.14"])


def test_a_tool_that_declares_no_targets_on_network_none_is_not_refused() -> None:
    spec = targets_spec(declares_targets=False)
    assert check(spec, [], "acme", scope=SCOPE, network="none", checker=scope_checker(**LOOPBACK_ALLOWED)) == []


def test_only_the_loopback_part_of_a_network_reached_is_named_each_once() -> None:
    reached = [
        (4, 0x7E000000, 0x7FFFFFFF),
        (4, 0x7F000001, 0x7F000001),
        (6, 0, (1 << 128) - 1),
        (4, 0x0A000001, 0x0A000001),
    ]
    assert on_loopback(reached) == ["127.0.0.0/8", "127.0.0.1", "::1"]


def test_a_worker_on_bridge_refuses_an_nmap_of_loopback_before_any_docker_call() -> None:
    client = mock.create_autospec(docker.DockerClient, instance=True)
    settings = Settings(scope="off", tool_network="bridge", scope_allow_private=("127.0.0.0/8",))
    services = Services(
        lambda: client, mock.MagicMock(), settings, load_catalogue(), Scopes(mock.MagicMock()), checker(settings)
    )
    probe = Celery("loopback-probe", set_as_current=False)
    probe.conf.update(task_always_eager=True)

    @probe.task(bind=True)  # type: ignore[misc]
    def run(self: Task, *args: Any) -> dict[str, Any]:
        return pipeline.run_pipeline(Run(self, RunRequest(*args), services), pipeline.STEPS).as_dict()

    with pytest.raises(UnreachableTargetError, match="TOOLRUNNER_TOOL_NETWORK=host"):
        run.apply(("nmap", "acme", "r", {"targets": ["127.0.0.1"], "ports": "80"})).get()
    assert client.mock_calls == []
    probe.close()

"""deploy/preflight.py: the image's entrypoint refuses exactly the configurations it documents."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

PATH = Path(__file__).resolve().parents[2] / "deploy" / "preflight.py"
GOOD = {
    "TOOLRUNNER_BROKER_URL": "redis://:s3cret@redis:6379/0",
    "DOCKER_HOST": "tcp://dind:2376",
    "DOCKER_TLS_VERIFY": "1",
    "DOCKER_CERT_PATH": "/certs/client",
}


def _load() -> ModuleType:
    # A file the image copies to /usr/local/lib/toolrunner, not a package of the project: loaded by path.
    spec = importlib.util.spec_from_file_location("preflight", PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


preflight = _load()


def everything_readable(path: Path) -> bool:
    return True


def test_the_stacks_worker_configuration_may_start() -> None:
    assert preflight.problems(GOOD, everything_readable) == []


@pytest.mark.parametrize(
    "url",
    ["", "redis://redis:6379/0", "redis://:@redis:6379/0", "redis://user@redis:6379/0", "rediss://redis:6380/0"],
)
def test_a_broker_url_without_a_password_is_refused(url: str) -> None:
    [problem] = preflight.problems(GOOD | {"TOOLRUNNER_BROKER_URL": url}, everything_readable)
    assert "TOOLRUNNER_BROKER_URL" in problem


@pytest.mark.parametrize("url", ["rediss://:pw@redis.example:6380/0", "redis://user:pw@redis:6379/0"])
def test_a_broker_url_with_a_password_or_an_acl_user_may_start(url: str) -> None:
    assert preflight.problems(GOOD | {"TOOLRUNNER_BROKER_URL": url}, everything_readable) == []


@pytest.mark.parametrize("verify", ["", "0", "true"])
def test_a_tcp_docker_host_without_tls_verification_is_refused(verify: str) -> None:
    [problem] = preflight.problems(GOOD | {"DOCKER_TLS_VERIFY": verify}, everything_readable)
    assert "DOCKER_TLS_VERIFY=1" in problem


def test_missing_client_certificates_are_named() -> None:
    def only_ca(path: Path) -> bool:
        return path.name == "ca.pem"

    [problem] = preflight.problems(GOOD, only_ca)
    assert problem.endswith("/certs/client: cert.pem, key.pem")


def test_beat_and_flower_need_no_docker_host_and_no_certificates() -> None:
    env = {"TOOLRUNNER_BROKER_URL": GOOD["TOOLRUNNER_BROKER_URL"]}
    assert preflight.problems(env, lambda path: False) == []


def test_main_refuses_with_ex_config_and_says_why(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOOLRUNNER_BROKER_URL", raising=False)
    assert preflight.main(["true"]) == 78
    assert "refusing to start: TOOLRUNNER_BROKER_URL is not set" in capsys.readouterr().err

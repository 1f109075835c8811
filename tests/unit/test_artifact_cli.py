"""The `artifacts` sub-app against a file store: list, get to a file or stdout, purge."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tasks.artifacts import ArtifactConfig, Artifacts, new_master_key, open_artifacts
from tasks.cli.artifacts import build_app


@pytest.fixture
def artifacts(tmp_path: Path) -> Artifacts:
    store = open_artifacts(ArtifactConfig(url=(tmp_path / "store").as_uri(), master_key=new_master_key()))
    sink = store.for_task("acme", "run-1", "task-1")
    with sink.open("out.bin") as target:
        target.write(b"\x00\xffbinary" * 1000)
    return store


def invoke(artifacts: Artifacts, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(build_app(lambda: artifacts), list(args))
    return result.exit_code, result.stdout, result.stderr


def test_list_shows_each_artifact_with_its_sha256(artifacts: Artifacts) -> None:
    code, out, _ = invoke(artifacts, "list", "task-1", "--tenant", "acme")
    assert code == 0
    assert "out.bin" in out
    assert artifacts.list_artifacts("task-1", tenant="acme")[0].sha256[:16] in out.replace("\n", "").replace(" ", "")


def test_get_writes_the_decrypted_artifact_to_a_file(artifacts: Artifacts, tmp_path: Path) -> None:
    target = tmp_path / "copy.bin"
    code, _, _ = invoke(artifacts, "get", "task-1", "out.bin", "--tenant", "acme", "-o", str(target))
    assert code == 0
    assert target.read_bytes() == b"\x00\xffbinary" * 1000
    assert oct(target.stat().st_mode & 0o777) == "0o600", "the plaintext is its owner's only"


def test_get_streams_to_stdout_without_an_output_path(artifacts: Artifacts) -> None:
    result = CliRunner().invoke(build_app(lambda: artifacts), ["get", "task-1", "out.bin", "--tenant", "acme"])
    assert result.exit_code == 0
    assert result.stdout_bytes == b"\x00\xffbinary" * 1000


def test_get_of_a_tampered_artifact_fails_and_leaves_no_file(artifacts: Artifacts, tmp_path: Path) -> None:
    [stored] = [p for p in (tmp_path / "store").rglob("out.bin")]
    blob = bytearray(stored.read_bytes())
    blob[-3] ^= 1
    stored.write_bytes(blob)
    code, _, err = invoke(artifacts, "get", "task-1", "out.bin", "--tenant", "acme", "-o", str(tmp_path / "copy.bin"))
    assert code == 1
    assert "failed authentication" in err
    assert not any(p.name.startswith(".copy.bin") or p.name == "copy.bin" for p in tmp_path.iterdir())


def test_an_unknown_task_exits_2_with_one_line(artifacts: Artifacts) -> None:
    code, _, err = invoke(artifacts, "list", "no-such-task", "--tenant", "acme")
    assert code == 2
    assert "has no artifacts" in err


def test_another_tenants_task_is_not_found_exactly_as_a_missing_one(artifacts: Artifacts) -> None:
    theirs = invoke(artifacts, "get", "task-1", "out.bin", "--tenant", "globex")
    nobodys = invoke(artifacts, "get", "task-9", "out.bin", "--tenant", "globex")
    assert theirs[0] == nobodys[0] == 2
    assert theirs[2].replace("task-1", "ID") == nobodys[2].replace("task-9", "ID")
    assert invoke(artifacts, "list", "task-1")[0] == 2, "--tenant is required"


def test_purge_removes_the_tenants_artifacts(artifacts: Artifacts) -> None:
    code, out, _ = invoke(artifacts, "purge", "--tenant", "acme", "--yes")
    assert code == 0
    assert "removed 1 tasks, 1 objects" in out
    assert invoke(artifacts, "list", "task-1", "--tenant", "acme")[0] == 2


def test_the_url_option_opens_a_store_with_a_key_file(artifacts: Artifacts, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(new_master_key())
    os.chmod(key_file, 0o600)
    result = CliRunner().invoke(
        build_app(),
        [
            "--url",
            (tmp_path / "other").as_uri(),
            "--master-key-file",
            str(key_file),
            "list",
            "task-1",
            "--tenant",
            "acme",
        ],
    )
    assert result.exit_code == 2
    assert "has no artifacts" in result.stderr


def test_without_a_store_the_commands_say_how_to_configure_one() -> None:
    result = CliRunner().invoke(build_app(), ["list", "task-1", "--tenant", "acme"])
    assert result.exit_code == 1
    assert "--url" in result.stderr

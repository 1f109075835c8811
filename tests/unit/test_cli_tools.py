"""`toolrunner tools TOOL`: a tool's params (from its params model) and finding fields, without the engine."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest
from pydantic import Field
from typer.testing import CliRunner

from tasks import app
from tasks.cli import cli
from tasks.cli.tools import describe, type_name


@pytest.mark.parametrize(
    ("annotation", "shown"),
    [
        (int, "int"),
        (int | None, "int | None"),
        (tuple[str, ...], "list[str]"),
        (tuple[Annotated[int, Field(ge=1)], ...] | None, "list[int] | None"),
        (Annotated[str, "meta"] | None, "str | None"),
        (dict[str, int], "dict[str, int]"),
    ],
)
def test_a_fields_type_reads_as_a_person_writes_it(annotation: Any, shown: str) -> None:
    assert type_name(annotation) == shown


def test_a_tool_is_described_by_its_params_model_and_finding_fields() -> None:
    described = describe(app.catalogue["nmap"])
    params = {p["name"]: p for p in described["params"]}
    assert params["targets"] == {
        "name": "targets", "type": "list[str]", "required": True, "default": None, "description": "",
    }  # fmt: skip
    assert params["timeout_seconds"]["description"] == "wall-clock limit for the tool container"
    assert params["service_detection"]["default"] is False and params["service_detection"]["type"] == "bool"
    assert set(described["finding_fields"]) >= {"host", "port", "state"}
    assert described["intrusive"] is False and describe(app.catalogue["sqlmap"])["intrusive"] is True


def test_the_command_prints_params_defaults_and_finding_fields_without_the_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")  # not needed to describe a tool
    result = CliRunner().invoke(cli, ["tools", "ffuf"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for shown in ("wordlist", "list[str]", "(required)", "follow_redirects", "false", "finding fields", "url"):
        assert shown in result.output
    as_json = CliRunner().invoke(cli, ["tools", "ffuf", "--json"])
    assert as_json.exit_code == 0 and json.loads(as_json.output)["tool"] == "ffuf"

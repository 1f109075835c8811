"""The README's "Adding a tool" example runs as written: a module on PYTHONPATH, loaded through
TOOLRUNNER_EXTRA_TOOL_MODULES, is in the catalogue the CLI and the worker load, and plans a run."""

from __future__ import annotations

import importlib
import io
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from config import load_settings
from tasks.cli import cli
from tasks.service import RunRequest, plan_run
from tasks.tools import TargetKind, load_catalogue
from tests import readme

MODULE = "mytools_readme.webscan"  # the README's mytools/webscan.py, under a name no other test takes


@pytest.fixture
def extra_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The README's example written to <tmp>/mytools_readme/webscan.py, that directory on sys.path and the module
    named in TOOLRUNNER_EXTRA_TOOL_MODULES, as the README says to."""
    package = tmp_path / MODULE.split(".")[0]
    package.mkdir()
    (package / "webscan.py").write_text(readme.block("adding a tool: example"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("TOOLRUNNER_EXTRA_TOOL_MODULES", f'["{MODULE}"]')
    importlib.invalidate_caches()
    yield MODULE
    for name in (MODULE, MODULE.split(".")[0]):
        sys.modules.pop(name, None)


def test_the_readmes_tool_loads_through_the_setting_and_plans_a_run(extra_tool: str) -> None:
    catalogue = load_catalogue(load_settings().extra_tool_modules)
    spec = catalogue["webscan"]
    request = RunRequest("webscan", "acme", "r-1", {"targets": ["https://example.com"]}, None)
    plan = plan_run(catalogue, request, max_input_bytes=1 << 20, max_timeout_seconds=3600)
    assert plan.spec is spec and plan.invocation.output_files == ["webscan.json"]
    assert plan.invocation.input_files == {"targets.txt": "https://example.com\n"}
    assert spec.targets is not None and list(spec.targets(plan.params)) == [(TargetKind.WEB, "https://example.com")]


def test_the_readmes_tool_is_listed_by_the_cli_given_the_setting(extra_tool: str) -> None:
    listed = CliRunner().invoke(cli, ["tools"])
    assert listed.exit_code == 0, listed.output
    assert "webscan" in listed.output


def test_the_readmes_tool_parses_its_output_as_a_stream(extra_tool: str) -> None:
    parse = load_catalogue([extra_tool])["webscan"].parse
    stream = io.BytesIO(b'{"target": "https://example.com", "http_status": 200}\n{"plugins": {}}\n')
    findings = list(parse({"webscan.json": stream}))
    assert findings == [{"url": "https://example.com", "status": 200}]

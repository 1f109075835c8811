"""The API reference, the troubleshooting page and the README's result table keep up with the code: every name
docs/api.md documents imports, every public name is documented, the stages are `Stage`'s and the result's keys
`RunResult`'s."""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path
from typing import Any

import pytest

import tasks
import tasks.hosts
import tasks.scope
from tasks.service import RunResult, Stage
from tests.readme import section

ROOT = Path(__file__).resolve().parents[2]
API = (ROOT / "docs" / "api.md").read_text()
README = (ROOT / "README.md").read_text()
DOCUMENTED = re.findall(r"^### `([\w.]+)`$", API, re.M)
FUNCTIONS = {tasks.scope: ("add", "remove", "show", "clear"), tasks.hosts: ("set", "show", "unset", "limits")}


def resolve(path: str) -> Any:
    """The object a dotted path names: the longest importable module, then attributes."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            found = getattr(found, attribute)
        return found
    raise ImportError(path)


@pytest.mark.parametrize("path", DOCUMENTED)
def test_every_name_the_api_reference_documents_imports_as_written(path: str) -> None:
    assert resolve(path) is not None


def test_every_public_name_of_tasks_is_in_the_api_reference() -> None:
    documented = {path.rsplit(".", 1)[1] for path in DOCUMENTED if path.startswith("tasks.")}
    assert sorted(set(tasks.__all__) - documented) == []


@pytest.mark.parametrize(("module", "name"), [(m, n) for m, names in FUNCTIONS.items() for n in names])
def test_every_scope_and_hosts_function_is_in_the_api_reference(module: Any, name: str) -> None:
    assert f"{module.__name__}.{name}" in DOCUMENTED


def test_every_documented_exception_is_an_exception_class() -> None:
    errors = [path for path in DOCUMENTED if path.endswith("Error")]
    assert errors and all(isinstance(resolve(p), type) and issubclass(resolve(p), Exception) for p in errors)


def test_the_stage_table_is_exactly_the_stages_of_the_code() -> None:
    table = section(API, "## Progress stages")
    assert re.findall(r"^\| `(\w+)` \|", table, re.M) == [stage.value for stage in Stage]


@pytest.mark.parametrize("stage", [stage.value for stage in Stage])
def test_the_readme_names_every_stage(stage: str) -> None:
    assert f"`{stage}`" in section(README, "## Calling it from the API tier")


def test_the_readmes_result_table_has_exactly_the_keys_of_a_result() -> None:
    """Derived from RunResult (its fields and properties, which as_dict stores), so a key added there must be
    documented here."""
    properties = {name for name, value in vars(RunResult).items() if isinstance(value, property)}
    keys = {field.name for field in dataclasses.fields(RunResult)} | properties
    table = section(README, "## The result")
    documented = {key for row in re.findall(r"^\| (.+?) \|", table, re.M) for key in re.findall(r"`(\w+)`", row)}
    assert documented == keys


@pytest.mark.parametrize("page", ["api.md", "troubleshooting.md"])
def test_the_readmes_docs_table_links_the_page(page: str) -> None:
    assert f"| [docs/{page}](docs/{page}) |" in section(README, "## Where to read on")

"""The layers point one way: the import contracts hold, a breach of them is caught, and tests stand alone."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=120, check=False
    )


def copy_of_the_tree(tmp_path: Path) -> Path:
    for package in ("isolation", "tasks", "config"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copy(ROOT / "beat_schedule.py", tmp_path)
    return tmp_path


def test_the_import_contracts_hold_for_the_tree() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("tasks/service/runner.py", "import celery", "the run service imports no Celery BROKEN"),
        ("isolation/naming.py", "import config", "isolation knows Docker only BROKEN"),
        ("tasks/tools/base.py", "import docker", "tool specs and parsers are pure BROKEN"),
        ("tasks/service/plan.py", "import tasks.worker", "tasks is layered BROKEN"),
        ("tasks/worker/limits.py", "import tasks.cli.limits", "tasks is layered BROKEN"),
        ("tasks/artifacts/store.py", "import tasks.cli.artifacts", "the run service imports no Celery BROKEN"),
        ("tasks/audit/event.py", "import redis", "the audit trail knows the store, not the worker BROKEN"),
        ("tasks/audit/journal.py", "import docker", "the audit trail calls no Docker BROKEN"),
        ("tasks/webhooks/event.py", "import celery", "webhooks know Redis and the scope's policy, not Celery BROKEN"),
    ],
)
def test_an_import_against_the_layers_breaks_a_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    tree = copy_of_the_tree(tmp_path)
    with (tree / module).open("a") as source:
        source.write(f"\n{line}  # noqa\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert contract in result.stdout


def test_importing_the_catalogue_and_the_service_does_not_load_celery() -> None:
    probe = (
        "import sys, tasks.service, tasks.tools; print(sorted(m for m in sys.modules if m.split('.')[0] == 'celery'))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def imported_names(source: str) -> Iterator[str]:
    """Every module (and `from` name) a Python source imports, relative ones with their leading dots."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def imported_test_modules(source: str) -> list[str]:
    """The test modules (tests.*.test_x, a relative .test_x, or a bare test_x) that a source imports from."""
    found = []
    for name in imported_names(source):
        parts = name.lstrip(".").split(".")
        ours = name.startswith(".") or parts[0] in ("tests", "") or parts[0].startswith("test_")
        if ours and any(part.startswith("test_") for part in parts):
            found.append(name)
    return found


def test_no_test_module_imports_from_another_test_module() -> None:
    # Shared helpers live in tests/*/helpers.py, shared fixtures in a conftest.py.
    importing = {
        str(path.relative_to(ROOT)): names
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if (names := imported_test_modules(path.read_text()))
    }
    assert importing == {}


@pytest.mark.parametrize(
    "line",
    [
        "from tests.unit.test_backlog import raw_message",
        "import tests.integration.test_sweep",
        "from tests.unit import test_archive",
        "from .test_faults import own_redis",
        "from test_backlog import raw_message",
    ],
)
def test_an_import_from_a_test_module_is_found(line: str) -> None:
    assert imported_test_modules(line)


@pytest.mark.parametrize("line", ["from tests.unit.helpers import raw_message", "from tests.conftest import REDIS_URL"])
def test_an_import_from_helpers_or_a_conftest_is_allowed(line: str) -> None:
    assert imported_test_modules(line) == []

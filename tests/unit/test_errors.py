"""One exception tree: every exception the task layer defines descends from ToolrunnerError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import tasks
from tasks.errors import NoBrokerError, ParseError, ToolrunnerError, UserError


def exceptions_defined_in_the_task_layer() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module_info in pkgutil.walk_packages(tasks.__path__, prefix="tasks."):
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.__name__:
                found[f"{value.__module__}.{name}"] = value
    return [found[key] for key in sorted(found)]


def test_every_exception_the_task_layer_defines_is_a_toolrunner_error() -> None:
    defined = exceptions_defined_in_the_task_layer()
    assert ParseError in defined and UserError in defined and NoBrokerError in defined
    outside = [f"{e.__module__}.{e.__qualname__}" for e in defined if not issubclass(e, ToolrunnerError)]
    assert outside == []


@pytest.mark.parametrize("error", [ParseError, UserError, NoBrokerError])
def test_the_parser_and_cli_errors_are_caught_by_catching_the_root(error: type[ToolrunnerError]) -> None:
    with pytest.raises(ToolrunnerError):
        raise error("x")

"""The tool catalogue: every module in this package that defines SPEC is a tool; adding a tool is adding a file."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterable, Mapping

from tasks.tools.base import Finding, Invocation, Target, TargetKind, ToolParams, ToolSpec, tool_version

__all__ = ["Finding", "Invocation", "Target", "TargetKind", "ToolParams", "ToolSpec", "load_catalogue", "tool_version"]
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # as tenant and run ids (isolation.naming): no ':' in key names


def load_catalogue(extra_modules: Iterable[str] = ()) -> Mapping[str, ToolSpec]:
    """Collect SPEC from every module of this package, then from each extra module (e.g. test tools)."""
    names = [f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__) if m.name != "base"]
    catalogue: dict[str, ToolSpec] = {}
    for module_name in [*names, *extra_modules]:
        spec = getattr(importlib.import_module(module_name), "SPEC", None)
        if isinstance(spec, ToolSpec):
            if not _TOOL_NAME.fullmatch(spec.name):  # it names task names, Redis keys and labels
                raise ValueError(f"tool name {spec.name!r} must match {_TOOL_NAME.pattern} (in {module_name})")
            if spec.name in catalogue:
                raise ValueError(f"tool {spec.name!r} is defined twice (second time in {module_name})")
            catalogue[spec.name] = spec
    return dict(sorted(catalogue.items()))

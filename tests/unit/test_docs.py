"""The docs keep up with the code: every setting and every tool is documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import Settings
from tasks import app

DOCS = Path(__file__).resolve().parents[2] / "docs"
CONFIGURATION = (DOCS / "configuration.md").read_text()
TOOLS = (DOCS / "tools.md").read_text()


@pytest.mark.parametrize("field", sorted(set(Settings.model_fields) - {"image_overrides"}))
def test_every_setting_is_in_the_configuration_pages_table(field: str) -> None:
    assert f"| `TOOLRUNNER_{field.upper()}` |" in CONFIGURATION


@pytest.mark.parametrize("tool", [t for t, s in app.catalogue.items() if not s.parse.__module__.startswith("tests.")])
def test_every_tool_is_in_the_tools_pages_table_with_its_pinned_image(tool: str) -> None:
    spec = app.catalogue[tool]
    assert f"| {tool} | `{spec.image}`" in TOOLS
    for field in spec.finding_fields:
        assert field in TOOLS.split(f"| {tool} |", 1)[1].split("\n", 1)[0]

"""The docs keep up with the code: every setting, tool, module and link they name exists, and nothing more."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest

from config import Settings
from config.settings import IMAGE_PREFIX
from tasks import app
from tests.readme import section

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
CONFIGURATION = (DOCS / "configuration.md").read_text()
TOOLS = (DOCS / "tools.md").read_text()
LAYOUT = (DOCS / "layout.md").read_text()
README = (ROOT / "README.md").read_text()
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
LIFECYCLE = ("admitted", "parked", "locked", "cancelled", "cleaned up")
SHIPPED = ("tasks", "isolation", "config")  # the packages pyproject.toml's import contracts cover


def unfenced(text: str) -> str:
    """Markdown without its fenced code blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def prose(text: str) -> str:
    """Markdown without its code: fenced blocks and inline code spans hold no links."""
    return re.sub(r"`[^`\n]*`", "", unfenced(text))


def repository_paths(text: str) -> list[str]:
    """The code spans that name a file or folder of the repository (a `/` in them, no placeholder)."""
    return [span for span in re.findall(r"`([^`\s]+)`", text) if "/" in span and "<" not in span]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings."""
    return {slug(heading) for heading in re.findall(r"^#+ (.+)$", unfenced(page.read_text()), re.M)}


def links() -> list[tuple[Path, str]]:
    """Every relative link of every page, once per page (a scheme such as https: marks an absolute one)."""
    return [
        (page, target)
        for page in PAGES
        for target in sorted(set(re.findall(r"\]\(([^)\s]+)\)", prose(page.read_text()))))
        if not re.match(r"[a-z]+:", target)
    ]


# The configuration page against Settings.


@pytest.mark.parametrize("field", sorted(set(Settings.model_fields) - {"image_overrides"}))
def test_every_setting_is_in_the_configuration_pages_table(field: str) -> None:
    assert f"| `TOOLRUNNER_{field.upper()}` |" in CONFIGURATION


def test_the_configuration_page_documents_no_variable_that_settings_lacks() -> None:
    known = {field.upper() for field in Settings.model_fields}
    named = set(re.findall(r"TOOLRUNNER_([A-Z0-9_]*[A-Z0-9])", CONFIGURATION))
    overrides = {name for name in named if f"TOOLRUNNER_{name}_".startswith(IMAGE_PREFIX)}  # TOOLRUNNER_IMAGE_<TOOL>
    assert overrides, "the per-tool image overrides (TOOLRUNNER_IMAGE_<TOOL>) are documented"
    assert sorted(named - known - overrides) == []


# The tools page against the catalogue.


@pytest.mark.parametrize("tool", [t for t, s in app.catalogue.items() if not s.parse.__module__.startswith("tests.")])
def test_every_tool_is_in_the_tools_pages_table_with_its_pinned_image(tool: str) -> None:
    spec = app.catalogue[tool]
    assert f"| {tool} | `{spec.image}`" in TOOLS
    for field in spec.finding_fields:
        assert field in TOOLS.split(f"| {tool} |", 1)[1].split("\n", 1)[0]


def test_the_readmes_tool_table_lists_exactly_the_catalogues_tools_with_their_images() -> None:
    rows = re.findall(r"^\| ([\w-]+) \| [^|]+ \| `([^`]+)`", section(README, "## The tools"), re.M)
    shipped = {t: s.image for t, s in app.catalogue.items() if not s.parse.__module__.startswith("tests.")}
    assert len(rows) == len(dict(rows)) and dict(rows).keys() == shipped.keys()
    assert all(image == shipped[tool] for tool, image in rows)


def test_the_tools_page_lists_no_tool_the_catalogue_lacks() -> None:
    assert sorted(set(re.findall(r"^\| ([\w-]+) \| `", TOOLS, re.M)) - set(app.catalogue)) == []


# The layout page against the repository.


@pytest.mark.parametrize("stage", LIFECYCLE)
def test_the_layout_table_names_the_modules_where_a_run_is(stage: str) -> None:
    table = section(LAYOUT, "## Where a run is admitted, parked, locked, cancelled and cleaned up")
    rows = [row for row in table.splitlines() if row.startswith(f"| **{stage}** |")]
    assert len(rows) == 1
    where = rows[0].split(" | ")[1]
    assert repository_paths(where), f"the row of a run {stage} names no module"
    assert repository_paths(where) == re.findall(r"`([^`]+)`", where), "modules are named by their whole path"


@pytest.mark.parametrize("path", sorted(set(repository_paths(LAYOUT))))
def test_every_module_the_layout_page_names_exists(path: str) -> None:
    assert (ROOT / path).exists(), f"docs/layout.md names {path}, which is not in the repository"


def test_the_readmes_layout_names_every_top_level_folder_and_package() -> None:
    ignored = [line.strip("/") for line in (ROOT / ".gitignore").read_text().split() if line.endswith("/")]
    folders = [
        path.name
        for path in ROOT.iterdir()
        if path.is_dir() and not path.name.startswith(".") and not any(fnmatch.fnmatch(path.name, i) for i in ignored)
    ]
    packages = [str(init.parent.relative_to(ROOT)) for top in SHIPPED for init in (ROOT / top).rglob("__init__.py")]
    layout = section((ROOT / "README.md").read_text(), "## Layout")
    assert sorted(f"{name}/" for name in {*folders, *packages} if f"{name}/" not in layout) == []


# Links between the pages.


@pytest.mark.parametrize(("page", "target"), links(), ids=lambda value: getattr(value, "name", value))
def test_every_relative_link_points_at_an_existing_file(page: Path, target: str) -> None:
    path, _, anchor = target.partition("#")
    linked = (page.parent / path).resolve() if path else page
    assert linked.exists(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"
    if anchor and linked.suffix == ".md":
        assert anchor in anchors(linked), f"{page.relative_to(ROOT)} links to {target}: no such heading"

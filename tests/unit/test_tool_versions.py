"""Each tool module's source is pinned next to its SPEC.version, so a change to build or parse bumps it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tasks.tools import load_catalogue

TOOLS = Path(__file__).resolve().parents[2] / "tasks" / "tools"
# tool: (SPEC.version, sha256 of tasks/tools/<tool>.py). Change the module, bump the version, update the digest.
PINNED: dict[str, tuple[int, str]] = {
    "dnsx": (3, "ffe3519cd5f2616e9a7cad651b9d33038f559fa613def35c61e30f3b40f36f67"),
    "ffuf": (3, "f6dba3f7941d5d846c4a75aab9d9d8fc45bc5d3025b92a33aa932a4f3b94c415"),
    "httpx": (3, "cf64f6438911986cf95505396ed2be37c51f92eab5553baf0ad6a7e0895db925"),
    "naabu": (3, "45d4c549fc0c456cb11fd4b0ec2896c468e4360bf40bedb142e5fa1922b55b97"),
    "nmap": (3, "df1f302ad72c24a1f29d6a195e64591acc2e1a6c059fed297fb44be5f2c82454"),
    "nuclei": (3, "014053f1afb4beb73332e23b46e3d17385c92898f6854eb9ab1add71c77390b7"),
    "subfinder": (3, "5522766e196806a9f30edc231b923c7481ff507b8cb31b6efa0a84f2a4b60d18"),
}


@pytest.mark.parametrize("tool", sorted(PINNED))
def test_a_changed_tool_module_has_a_bumped_version_and_a_new_digest(tool: str) -> None:
    version, digest = PINNED[tool]
    actual = hashlib.sha256((TOOLS / f"{tool}.py").read_bytes()).hexdigest()
    assert (load_catalogue()[tool].version, actual) == (version, digest), (
        f"tasks/tools/{tool}.py changed: bump SPEC.version and update this digest"
    )


def test_every_tool_of_the_package_is_pinned() -> None:
    package_tools = {name for name, spec in load_catalogue().items() if spec.parse.__module__.startswith("tasks.")}
    assert package_tools == set(PINNED)

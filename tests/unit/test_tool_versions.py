"""Each tool module's source is pinned next to its SPEC.version, so a change to build or parse bumps it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tasks.tools import load_catalogue

TOOLS = Path(__file__).resolve().parents[2] / "tasks" / "tools"
# tool: (SPEC.version, sha256 of tasks/tools/<tool>.py). Change the module, bump the version, update the digest.
PINNED: dict[str, tuple[int, str]] = {
    "dnsx": (2, "f1f616fdbb84cfdbe89397e02c786c08404132e0f4ae038c6018d0bc5fa9d763"),
    "ffuf": (2, "89e451869a8fc0e316da2d27459c9d6d39be707c9c2ce4bfbab1a977fed2a34a"),
    "httpx": (2, "37fd29970f2cb8f4d0b4a9f0c86e9bf2ca3164ea071e9280e60e127cd1abeddd"),
    "naabu": (2, "212635f5b84bb72eb05f436f090aac9b699396a6fbcaaf784da32d67f882f340"),
    "nmap": (2, "4ba0da8d273dc37ab22ff488fac6bf738ff9e22b4f10c3d412b1dd102197e0a4"),
    "nuclei": (2, "5dfca5ccfc778964c5d1bf02cfb9966b572bcd75fa761585cdfdf4ba2120e5e6"),
    "subfinder": (2, "c136fa159ed8f80970d9f77ac69cf3c55263c78abf9a3e3004a62d8287a3fea6"),
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

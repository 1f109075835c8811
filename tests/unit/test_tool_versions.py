"""Each tool module's source is pinned next to its SPEC.version, so a change to build or parse bumps it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tasks.tools import load_catalogue

TOOLS = Path(__file__).resolve().parents[2] / "tasks" / "tools"
# tool: (SPEC.version, sha256 of tasks/tools/<tool>.py). Change the module, bump the version, update the digest.
PINNED: dict[str, tuple[int, str]] = {
    "dnsx": (4, "a73637306e532c9a1a3734f02d1fd2f3e88f0834c77b7214ef6dfe6f1536d242"),
    "ffuf": (4, "5cfd01bc76dcc3e10a4f49759f3268673c852fe4697580564509957a4ad762d5"),
    "gobuster": (1, "322bb36bfb3e8c9c59c0d971d77c10bb338ada85c2bb70d15e8499cf3990f01d"),
    "httpx": (4, "ca0b32dc7a7a4a7fa7f0d83f6cd0015264c9f1c40557b4d574703bbe8730ccfa"),
    "naabu": (4, "2ab0e2d4f79070cb36e78a00a11715e17ee77ac0661352b2f2c445fca94bd9d2"),
    "nmap": (4, "bd1ab06e5eb94427670d80e6672cbbe3e6034cc7ff7ebb4c65e88b63b84ff9da"),
    "nuclei": (4, "ec903a3de01423b5b3be4529ceeb3d66c531776e31b8494e488a20d4543a45b4"),
    "sslscan": (1, "f6dbd4a86a557e2b2f8cf1f368629c3419757d0c1a52a2414bbe087bc359c0e1"),
    "subfinder": (4, "19ee5f80d6e1dcc96d1e72379cf8450021b79d6c7fad0ea8288b3fc3d6ef6c7f"),
    "whatweb": (1, "cc39e0c08c6295078e11f06182c36369da5134b6bd31b98806e78978137e44be"),
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

"""Each tool module's source is pinned next to its SPEC.version, so a change to build or parse bumps it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tasks.tools import load_catalogue

TOOLS = Path(__file__).resolve().parents[2] / "tasks" / "tools"
# tool: (SPEC.version, sha256 of tasks/tools/<tool>.py). Change the module, bump the version, update the digest.
PINNED: dict[str, tuple[int, str]] = {
    "dnsx": (5, "31803dca1936a6724c6fe27c37c5dadb183989ebbf07cf63fe872fc54aac7285"),
    "ffuf": (5, "b4b56400c10117d1a0ecf924053c8e9612617f9ca41c8c5efdb52e495e507a76"),
    "gobuster": (2, "28130f1b829bc391b4ee1923590a0aad3548281d55f1f83df8c17140d160ddab"),
    "httpx": (5, "9165e4c317c2234c1eb0b4df9efd19445492261855e54146dae57e701c8a2ecf"),
    "naabu": (5, "3cf895d6a0eb7db6b4d4406b9e917b2380fc6a51e42a2cf1a22c2ce7a2fb3c32"),
    "nmap": (5, "f92d9a4a34bf9c03e4cf74653bbe2de20f4c2db0bd6303950b30ddedc13f93ef"),
    "nuclei": (5, "60653803d68c34e1d402628a2533ff71f76d8d87f2468e58fc46eb92d1d74b6b"),
    "sqlmap": (1, "6627fcbb80420171b0a40fc9be1cd80c8bd9e6b7b622ff6963f1cde2d9dd10c6"),
    "sslscan": (2, "419ee6e37394985514046076a4f9c8ecfe0fe862d754596ecbee19e8a5eb35dd"),
    "subfinder": (5, "5bbbf2307b336bd1056a26b7ab17e2cc45417237f928b8535541c16fcdd58971"),
    "wafw00f": (1, "45a97fa552d11fe1733ad84e5fa8ca566d73ce1b4f9f7e9600bc1c16402515e8"),
    "whatweb": (2, "de9d8b7a9c9de071016189f5843e0e03420bc826e5d95ae1d62d9462f50b8525"),
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

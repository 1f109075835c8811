"""Every tool in the catalogue is well-formed: pinned image, bare entrypoint, strict params, sane argv."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

import isolation
from tasks.tools import ToolSpec, load_catalogue, tool_version
from tasks.tools.base import parse_bytes

CATALOGUE = load_catalogue()

# The smallest valid params of each tool; a tool missing here must accept empty params.
EXAMPLES: dict[str, dict[str, Any]] = {
    "dnsx": {"domains": ["example.com"]},
    "ffuf": {"url": "https://example.com/FUZZ", "wordlist": ["admin"]},
    "httpx": {"targets": ["example.com"]},
    "naabu": {"hosts": ["192.0.2.1"], "ports": "80"},
    "nmap": {"targets": ["192.0.2.1"], "ports": "80"},
    "nuclei": {"targets": ["https://example.com"]},
    "subfinder": {"domains": ["example.com"]},
    "whatweb": {"targets": ["https://example.com"]},
    "sslscan": {"targets": ["example.com"]},
    "gobuster": {"url": "https://example.com/", "wordlist": ["admin"]},
    "sqlmap": {"targets": ["https://example.com/item?id=1"]},
    "wafw00f": {"targets": ["https://example.com/"]},
}
# name[:tag] or name@sha256:digest, where the tag is explicit and is not "latest".
_PINNED = re.compile(r"[a-z0-9][a-z0-9._/:-]*?(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})|@sha256:[0-9a-f]{64})")
_RELATIVE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")

specs = pytest.mark.parametrize("spec", list(CATALOGUE.values()), ids=list(CATALOGUE))


def example(spec: ToolSpec) -> dict[str, Any]:
    return dict(EXAMPLES.get(spec.name, {}))


def test_the_catalogue_holds_the_security_tools() -> None:
    assert set(EXAMPLES) <= set(CATALOGUE)


@specs
def test_the_image_is_pinned_to_an_explicit_tag_that_is_not_latest(spec: ToolSpec) -> None:
    match = _PINNED.fullmatch(spec.image)
    assert match, f"{spec.image!r} names no explicit tag or digest"
    assert match["tag"] != "latest"


@specs
def test_the_entrypoint_is_a_bare_binary_name(spec: ToolSpec) -> None:
    assert spec.entrypoint and all(isinstance(part, str) and part for part in spec.entrypoint)
    assert "/" not in spec.entrypoint[0] and not spec.entrypoint[0].startswith("-")


@specs
def test_the_description_and_finding_fields_are_documented(spec: ToolSpec) -> None:
    assert spec.description and spec.finding_fields
    assert all(isinstance(k, str) and v for k, v in spec.finding_fields.items())
    assert spec.default_timeout > 0


@specs
def test_the_params_model_rejects_unknown_keys(spec: ToolSpec) -> None:
    with pytest.raises(ValidationError, match="extra"):
        spec.params_model.model_validate({**example(spec), "no_such_option": True})


@specs
def test_the_params_model_accepts_timeout_seconds(spec: ToolSpec) -> None:
    params = spec.params_model.model_validate({**example(spec), "timeout_seconds": 120})
    assert params.timeout_seconds == 120
    with pytest.raises(ValidationError):
        spec.params_model.model_validate({**example(spec), "timeout_seconds": 0})


@specs
def test_the_invocation_is_an_argv_of_str_with_relative_input_and_output_names(spec: ToolSpec) -> None:
    invocation = spec.build(spec.params_model.model_validate(example(spec)))
    assert isinstance(invocation.argv, list) and all(isinstance(arg, str) for arg in invocation.argv)
    for name in [*invocation.input_files, *invocation.output_files]:
        assert _RELATIVE_NAME.fullmatch(name) and ".." not in name.split("/"), name


@specs
def test_the_argv_names_the_output_files_under_outputs_and_the_input_files_under_inputs(
    spec: ToolSpec,
) -> None:
    if spec.name not in EXAMPLES:
        pytest.skip("only the security tools are held to the /inputs and /outputs layout")
    invocation = spec.build(spec.params_model.model_validate(example(spec)))
    # As an argv item of its own, or an option's value joined with = (sslscan reads only --xml=FILE).
    for name in invocation.output_files:
        assert any(arg.partition("=")[2] == f"/outputs/{name}" or arg == f"/outputs/{name}" for arg in invocation.argv)
    for name in invocation.input_files:
        assert any(arg.partition("=")[2] == f"/inputs/{name}" or arg == f"/inputs/{name}" for arg in invocation.argv)


@specs
def test_parsing_empty_or_missing_outputs_gives_no_findings(spec: ToolSpec) -> None:
    invocation = spec.build(spec.params_model.model_validate(example(spec)))
    assert parse_bytes(spec, {}) == []
    assert parse_bytes(spec, dict.fromkeys(invocation.output_files, b"")) == []


@specs
def test_security_tools_run_as_the_unprivileged_user_without_added_capabilities(spec: ToolSpec) -> None:
    if spec.name not in EXAMPLES:
        pytest.skip("not one of the security tools")
    assert spec.user is None, "None runs the tool as isolation's non-root default user"
    assert isolation.TOOL_USER == "65532:65532"
    assert spec.cap_add == ()


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("projectdiscovery/nuclei:v3.10.0", True),
        ("registry.example:5000/team/nmap:7.95", True),
        ("nmap@sha256:" + "a" * 64, True),
        ("nmap", False),
        ("nmap:latest", False),
        ("registry.example:5000/team/nmap", False),
    ],
)
def test_the_pin_rule_wants_an_explicit_tag_or_digest(image: str, pinned: bool) -> None:
    match = _PINNED.fullmatch(image)
    assert bool(match and match["tag"] != "latest") is pinned


@pytest.mark.parametrize(
    ("image", "labels", "version"),
    [
        (
            "toolrunner-tools:local",
            {"toolrunner.package.nmap": "7.93+dfsg1-1", "toolrunner.package.ffuf": "1"},
            "7.93+dfsg1-1",
        ),
        ("instrumentisto/nmap:7.95", {}, "7.95"),
        ("registry.local:5000/nmap:7.94@sha256:" + "a" * 64, {}, "7.94"),
        ("registry.local:5000/nmap", {}, "unknown"),
        ("nmap:latest", {"org.opencontainers.image.version": "7.92"}, "7.92"),
        ("toolrunner-tools:local", {"toolrunner.package.ffuf": "1.5"}, "unknown"),
    ],
)
def test_a_tools_version_comes_from_what_its_image_records(image: str, labels: dict[str, str], version: str) -> None:
    assert tool_version("nmap", image, labels) == version

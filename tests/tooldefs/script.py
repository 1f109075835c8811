"""A test-only tool: runs a shell script in the local busybox image and reports each output line."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from tasks.tools import Finding, Invocation, ToolParams, ToolSpec


class ScriptParams(ToolParams):
    """A shell script to run and the output files (under /outputs) it writes."""

    script: str = Field(min_length=1, max_length=10_000)
    outputs: list[str] = Field(default_factory=lambda: ["out.txt"], max_length=20)


def build(params: ScriptParams) -> Invocation:
    """Run the script with `sh -c`; the outputs it names are read back."""
    return Invocation(argv=["-c", params.script], output_files=list(params.outputs))


def parse(outputs: Mapping[str, bytes]) -> list[Finding]:
    """One finding per line of every output file."""
    return [
        {"file": name, "line": line}
        for name, data in sorted(outputs.items())
        for line in data.decode("utf-8", errors="replace").splitlines()
    ]


SPEC = ToolSpec(
    name="script",
    image="toolrunner-busybox:local",
    entrypoint=["sh"],
    params_model=ScriptParams,
    build=build,
    parse=parse,
    default_timeout=60,
    description="test-only: a busybox shell script",
    finding_fields={"file": "output file name", "line": "one line of it"},
)

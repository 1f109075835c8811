"""A test-only tool: runs a shell script in the local busybox image and reports each output line."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import Field

from tasks.tools import Finding, Invocation, ToolParams, ToolSpec
from tasks.tools.base import Outputs


class ScriptParams(ToolParams):
    """A shell script to run and the output files (under /outputs) it writes."""

    script: str = Field(min_length=1, max_length=10_000)
    outputs: list[str] = Field(default_factory=lambda: ["out.txt"], max_length=20)


def build(params: ScriptParams) -> Invocation:
    """Run the script with `sh -c`; the outputs it names are read back."""
    return Invocation(argv=["-c", params.script], output_files=list(params.outputs))


def parse(outputs: Outputs) -> Iterator[Finding]:
    """One finding per line of every output file, read as it streams."""
    for name, stream in sorted(outputs.items()):
        for raw in stream:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            yield {"file": name, "line": line}


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

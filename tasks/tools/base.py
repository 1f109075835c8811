"""What a tool is: its image, params model, argv and input files, output files, and a pure parser."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

INPUTS = "/inputs"
OUTPUTS = "/outputs"

Finding = dict[str, Any]


class ToolParams(BaseModel):
    """Base of every tool's params: unknown keys are rejected; every tool takes timeout_seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_seconds: int | None = Field(default=None, ge=1, description="wall-clock limit for the tool container")


@dataclass(frozen=True)
class Invocation:
    """One run of a tool: argv after the entrypoint, files for /inputs, files it writes in /outputs."""

    argv: list[str]
    input_files: dict[str, str | bytes] = field(default_factory=dict)
    output_files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ToolSpec:
    """Everything the worker needs to run one tool; each module in tasks/tools/ exports one as SPEC."""

    name: str
    image: str
    entrypoint: list[str]
    params_model: type[ToolParams]
    build: Callable[[Any], Invocation]
    parse: Callable[[Mapping[str, bytes]], list[Finding]]
    default_timeout: int = 600
    description: str = ""
    cap_add: tuple[str, ...] = ()
    user: str | None = "65532:65532"
    network: str | None = None
    finding_fields: Mapping[str, str] = field(default_factory=dict)


def parse_jsonl(data: bytes) -> list[dict[str, Any]]:
    """Parse JSON lines, skipping blank lines and a truncated (undecodable) last line."""
    lines = data.decode("utf-8", errors="replace").splitlines()
    records: list[dict[str, Any]] = []
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if index == len(lines) - 1:
                break  # a tool killed mid-write leaves half a line: keep what was complete
            raise ValueError(f"line {index + 1} of the output is not JSON: {line[:80]!r}") from None
        if isinstance(record, dict):
            records.append(record)
    return records


def output_path(name: str) -> str:
    """The in-container path of an output file."""
    return f"{OUTPUTS}/{name}"


def input_path(name: str) -> str:
    """The in-container path of an input file."""
    return f"{INPUTS}/{name}"

"""The benchmark's tool: busybox waits `per_target_ms` for each target and reports it (waiting, not CPU).

Its targets are loopback addresses, read as hosts, so the scope check and host politeness see them as they see
nmap's; it splits by targets (a chunk of 10,000: a run is whole unless a request lowers it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pydantic import Field

from tasks.tools import Finding, Invocation, Target, TargetKind, ToolParams, ToolSpec
from tasks.tools.base import Outputs, input_path, jsonl_records, output_path
from tasks.tools.chunking import Chunking, Unit

TARGETS_FILE, OUT_FILE = "targets.txt", "out.jsonl"


class SleepyParams(ToolParams):
    """Targets, and how long to wait for each."""

    targets: tuple[str, ...] = Field(min_length=1, max_length=10_000)
    per_target_ms: int = Field(default=10, ge=0, le=10_000)


def build(params: SleepyParams) -> Invocation:
    """One `usleep` and one JSON line per target."""
    script = (
        f'while read -r t; do usleep {params.per_target_ms * 1000}; echo "{{\\"host\\":\\"$t\\"}}"; '
        f"done < {input_path(TARGETS_FILE)} > {output_path(OUT_FILE)}"
    )
    return Invocation(
        argv=["-c", script], input_files={TARGETS_FILE: "".join(f"{t}\n" for t in params.targets)},
        output_files=[OUT_FILE],
    )  # fmt: skip


def parse(outputs: Outputs) -> Iterator[Finding]:
    """Each target's line."""
    yield from jsonl_records(outputs.get(OUT_FILE))


def targets(params: SleepyParams) -> Iterable[Target]:
    """Its targets, as hosts."""
    return [(TargetKind.HOST, t) for t in params.targets]


SPEC = ToolSpec(
    name="sleepy",
    image="toolrunner-busybox:local",
    entrypoint=["sh"],
    params_model=SleepyParams,
    build=build,
    parse=parse,
    default_timeout=600,
    description="benchmark-only: waits per target",
    network="host",
    targets=targets,
    finding_hosts=("host",),
    chunking=Chunking("targets", 10_000, Unit.ITEMS),
    finding_fields={"host": "the target"},
)

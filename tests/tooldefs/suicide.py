"""A test-only tool whose parser SIGKILLs the worker process running it, on every delivery."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

from tasks.tools import Finding, Invocation, ToolParams, ToolSpec
from tasks.tools.base import Outputs


def parse(outputs: Outputs) -> Iterator[Finding]:
    """Kill this pool process outright, as an out-of-memory kill would, when the runner reads findings."""
    os.kill(os.getpid(), signal.SIGKILL)
    yield from ()


SPEC = ToolSpec(
    name="suicide",
    image="toolrunner-busybox:local",
    entrypoint=["true"],
    params_model=ToolParams,
    build=lambda params: Invocation(argv=[]),
    parse=parse,
    default_timeout=30,
    description="test-only: kills its worker process every time",
)

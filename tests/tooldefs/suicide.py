"""A test-only tool whose parser SIGKILLs the worker process running it, on every delivery."""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping

from tasks.tools import Finding, Invocation, ToolParams, ToolSpec


def parse(outputs: Mapping[str, bytes]) -> list[Finding]:
    """Kill this pool process outright, as an out-of-memory kill would."""
    os.kill(os.getpid(), signal.SIGKILL)
    return []


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

"""A test-only tool whose image exists nowhere: the run must fail naming the image and its override."""

from __future__ import annotations

from tasks.tools import Invocation, ToolParams, ToolSpec

SPEC = ToolSpec(
    name="absent",
    image="toolrunner-absent-image:0.0.0",
    entrypoint=["true"],
    params_model=ToolParams,
    build=lambda params: Invocation(argv=[]),
    parse=lambda outputs: iter(()),
    default_timeout=10,
    description="test-only: an image that cannot be found or pulled",
)

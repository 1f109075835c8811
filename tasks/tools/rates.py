"""A run's granted request rate written into its tool's params, which only ever lowers what the request asked for."""

from __future__ import annotations

import math
from typing import TypeVar

from tasks.tools.base import ToolParams, ToolSpec

P = TypeVar("P", bound=ToolParams)


def with_rate(spec: ToolSpec, params: P, granted: float) -> P:
    """A copy of params whose rate field is the lower of the request's own value and granted.

    For a tool that takes whole numbers (spec.rate_integer) the result is floored, never below 1; params come
    back unchanged when the tool's rate cannot be set (spec.rate_param is None). granted must be finite and > 0.
    """
    if not (math.isfinite(granted) and granted > 0):
        raise ValueError(f"a granted rate must be a finite number above 0, not {granted!r}")
    if spec.rate_param is None:
        return params
    asked: float | None = getattr(params, spec.rate_param)
    rate = granted if asked is None else min(asked, granted)
    value = max(1, math.floor(rate)) if spec.rate_integer else float(rate)
    # model_copy does not validate: the value is a number of the field's own kind (int or float), at most what
    # the request already passed validation with, or the worker's grant.
    return params.model_copy(update={spec.rate_param: value})

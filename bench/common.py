"""What the benchmarks share: their error, timed Docker API requests, percentiles, rich tables, labels and signals."""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.table import Table

from isolation import Label, managed_filter

BUSYBOX = "toolrunner-busybox:local"
# The test-only `script` tool the worker benchmarks run, named by string in the worker's environment: that is
# configuration the worker reads at start, not an import of tests/ by the benchmarks.
SCRIPT_TOOL_MODULE = "tests.tooldefs.script"

Call = tuple[str, float]


class BenchError(RuntimeError):
    """Raised when a benchmark cannot measure: a variant did not do the job, results never arrive, a daemon hangs."""


@dataclass
class CallLog:
    """Every timed Docker API request (or, for lifecycle, docker CLI command), in order: (what, milliseconds)."""

    calls: list[Call] = field(default_factory=list)

    def attach(self, client: Any) -> None:
        """Time every HTTP request this client sends (the instance attribute shadows Session.send)."""
        send = client.api.send

        def timed_send(request: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return send(request, **kwargs)
            finally:
                self.calls.append((endpoint(request.method, request.url), ms_since(start)))

        client.api.send = timed_send


def endpoint(method: str, url: str) -> str:
    """`POST /containers/{id}/wait` from a full engine URL: version prefix, ids and query dropped."""
    parts = re.sub(r"^/v\d+\.\d+", "", urlsplit(url).path).split("/")
    if len(parts) > 2 and parts[1] in ("containers", "volumes", "images") and parts[2] not in ("create", "json"):
        parts[2] = "{id}"
    return f"{method} {'/'.join(parts)}"


def ms_since(start: float) -> float:
    """Milliseconds since a time.perf_counter() reading."""
    return (time.perf_counter() - start) * 1000


def percentile(values: Sequence[float], percent: int) -> float:
    """The inclusive `percent`th percentile; the value itself when there is only one."""
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1] if len(values) > 1 else values[0]


# --- output ---------------------------------------------------------------------------------------------------------


def console(piped_width: int) -> Console:
    """A console for the tables: the terminal's width, or `piped_width` (rich's default of 80 is too narrow)."""
    return Console() if sys.stdout.isatty() else Console(width=piped_width)


def table(title: str, *columns: str) -> Table:
    """A table titled on the left, its first column left-aligned and the others right-aligned."""
    result = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        result.add_column(column, justify="left" if index == 0 else "right")
    return result


def verdict(ok: bool, word: str = "met") -> str:
    """The status cell of a target or expectation: `met`, or `NOT met` in bold red."""
    return word if ok else f"[bold red]NOT {word}[/]"


def usable_cpus() -> str:
    """The machine's CPUs and, in brackets, how many this process may run on."""
    return f"{os.cpu_count()} ({len(os.sched_getaffinity(0))})"


# --- resources, signals and the worker's environment ----------------------------------------------------------------


def count_managed(client: Any, prefix: str, tenant: str | None = None) -> tuple[int, int]:
    """(volumes, containers) on the engine labelled `prefix`.managed=true, and with this tenant if one is given."""
    filters = managed_filter(prefix, **({Label.TENANT.value: tenant} if tenant else {}))
    volumes = client.api.volumes(filters=filters).get("Volumes") or []
    return len(volumes), len(client.api.containers(all=True, filters=filters))


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so every `finally` (workers, reapers, Redis databases) still runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def worker_env(redis_url: str) -> dict[str, str]:
    """The environment of a bench worker: broker and results on `redis_url`, no network, the `script` tool."""
    return {
        "TOOLRUNNER_BROKER_URL": redis_url,
        "TOOLRUNNER_RESULT_BACKEND": redis_url,
        "TOOLRUNNER_TOOL_NETWORK": "none",
        "TOOLRUNNER_EXTRA_TOOL_MODULES": json.dumps([SCRIPT_TOOL_MODULE]),
    }

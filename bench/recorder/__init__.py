"""A recording HTTP server for politeness tests and benchmarks, and the pure analysis of what it recorded."""

from bench.recorder.server import EXISTING, Recorder, RecorderError
from bench.recorder.traffic import (
    Connection,
    Request,
    Second,
    Summary,
    Traffic,
    format_seconds,
    peak_connections,
    peak_requests_per_second,
    peak_runs_at_once,
    per_second,
    requests_by_run,
    run_of,
    run_spans,
    summarize,
)

__all__ = [
    "EXISTING",
    "Connection",
    "Recorder",
    "RecorderError",
    "Request",
    "Second",
    "Summary",
    "Traffic",
    "format_seconds",
    "peak_connections",
    "peak_requests_per_second",
    "peak_runs_at_once",
    "per_second",
    "requests_by_run",
    "run_of",
    "run_spans",
    "summarize",
]

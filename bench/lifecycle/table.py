"""The lifecycle benchmark's tables: the machine, small files, the big file, the targets and the call profile."""

from __future__ import annotations

import platform
import statistics
from collections.abc import Mapping
from typing import Any

import docker
from rich.table import Table

from bench.common import table, usable_cpus, verdict
from bench.lifecycle.big import MIB
from bench.lifecycle.variant import FLOOR2, FLOOR20, OURS2, OURS20, SEED2, Sample, median, p90

TARGET_OURS_VS_FLOOR, TARGET_SPEEDUP, TARGET_20_VS_2, TARGET_RSS_MIB = 1.2, 3.5, 1.3, 150.0


def machine_table(client: Any) -> Table:
    """The engine's and the SDK's versions and the CPUs."""
    server = client.version()
    result = table("Machine", "what", "value")
    result.add_row("Docker Engine", str(server.get("Version")))
    result.add_row("engine API version (min)", f"{server.get('ApiVersion')} ({server.get('MinAPIVersion')})")
    result.add_row("API version used by the SDK", str(client.api.api_version))
    result.add_row("docker SDK / Python", f"{docker.__version__} / {platform.python_version()}")
    result.add_row("CPUs (usable by this process)", usable_cpus())
    return result


def small_table(samples: Mapping[str, list[Sample]], runs: int) -> Table:
    """Median and p90 per small-file variant, and their ratios to the floor and to ours."""
    result = table(f"Small files: one full lifecycle, {runs} interleaved runs", "variant", "median ms", "p90 ms")
    result.add_column("x floor", justify="right")
    result.add_column("x ours 2 files", justify="right")
    for name, floor_name in ((OURS2, FLOOR2), (SEED2, FLOOR2), (FLOOR2, FLOOR2), (OURS20, FLOOR20), (FLOOR20, FLOOR20)):
        rows = samples[name]
        ratio, vs_ours = median(rows) / median(samples[floor_name]), median(rows) / median(samples[OURS2])
        label = name if "20" in name else f"{name}, 2 files"
        result.add_row(label, f"{median(rows):.1f}", f"{p90(rows):.1f}", f"{ratio:.2f}", f"{vs_ours:.2f}")
    result.caption = f"seed / ours speed-up: {median(samples[SEED2]) / median(samples[OURS2]):.2f}x"
    return result


def big_table(big: Mapping[str, Any]) -> Table:
    """The big file's throughput both ways, peak RSS and whether the copy is identical."""
    mb = big["bytes"] / 1e6
    result = table(f"Big file: {big['bytes'] // MIB} MiB in and out (fresh process)", "what", "value")
    result.add_row("initialize (in): s, MB/s", f"{big['in_ms'] / 1000:.2f} s, {mb / big['in_ms'] * 1000:.0f} MB/s")
    result.add_row(
        "copy_files_to (out): s, MB/s", f"{big['out_ms'] / 1000:.2f} s, {mb / big['out_ms'] * 1000:.0f} MB/s"
    )
    result.add_row("peak RSS before the round trip", f"{big['rss_before_mib']:.1f} MiB")
    result.add_row("peak RSS after the round trip", f"{big['peak_rss_mib']:.1f} MiB")
    result.add_row("sha256 of the original", big["sha_source"])
    result.add_row("sha256 of the copy", big["sha_copy"])
    result.add_row("copy identical", "yes" if big["sha_source"] == big["sha_copy"] else "NO")
    result.caption = "MB = 10^6 bytes; 'in' includes creating the volume and the helper"
    return result


def targets_table(samples: Mapping[str, list[Sample]], big: Mapping[str, Any] | None) -> Table:
    """Each target with what was measured and whether it is met."""
    result = table("Targets (shown, not asserted)", "target", "measured", "status")
    ours2 = median(samples[OURS2])
    rows = [  # (target, measured, unit, limit, whether the measured value must be at least the limit)
        ("ours <= {:g}x floor (2 files)", ours2 / median(samples[FLOOR2]), "x", TARGET_OURS_VS_FLOOR, False),
        ("seed / ours >= {:g}x", median(samples[SEED2]) / ours2, "x", TARGET_SPEEDUP, True),
        ("ours 20 files <= {:g}x ours 2 files", median(samples[OURS20]) / ours2, "x", TARGET_20_VS_2, False),
    ]
    if big is not None:
        rows.append(("big round trip peak RSS <= {:g} MiB", big["peak_rss_mib"], " MiB", TARGET_RSS_MIB, False))
    for what, value, unit, limit, at_least in rows:
        met = value >= limit if at_least else value <= limit
        result.add_row(what.format(limit), f"{value:.2f}{unit}", verdict(met))
    return result


def profile_table(samples: Mapping[str, list[Sample]], runs: int) -> Table:
    """Per variant, the calls of an iteration: how many, how long, and the time outside them."""
    result = table(f"Where the time goes: calls per iteration ({runs} profiled runs)", "variant / call", "calls")
    for column in ("median ms per call", "mean ms per iteration"):
        result.add_column(column, justify="right")
    for name, rows in samples.items():
        per_call: dict[str, list[float]] = {}
        for sample in rows:
            for what, ms in sample.calls:
                per_call.setdefault(what, []).append(ms)
        result.add_row(f"[bold]{name}[/]", "", "", f"[bold]{statistics.fmean(s.ms for s in rows):.1f}[/]")
        for what, times in per_call.items():
            result.add_row(
                f"  {what}",
                f"{len(times) / len(rows):g}",
                f"{statistics.median(times):.1f}",
                f"{sum(times) / len(rows):.1f}",
            )
        outside = statistics.fmean(s.ms for s in rows) - sum(map(sum, per_call.values())) / len(rows)
        result.add_row("  client side (not inside a call)", "", "", f"{outside:.1f}", end_section=True)
    return result

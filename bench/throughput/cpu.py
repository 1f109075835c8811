"""CPU accounting from /proc for the throughput benchmark: who burns the machine's CPUs during a round."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from bench.throughput.variant import Measurement, ThroughputBench

TICKS = os.sysconf("SC_CLK_TCK")
MACHINE = "whole machine (all CPUs, everyone's load)"


DOCKERD_CHILDREN = "dockerd's exited children (archive calls)"


def process_seconds(pid: int, *, children: bool = False) -> float:
    """utime + stime of one process, or with children=True the cutime + cstime of the children it reaped; 0 when
    it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    first = 13 if children else 11
    return (int(fields[first]) + int(fields[first + 1])) / TICKS


def _processes() -> list[tuple[int, int, str]]:
    """(pid, ppid, command name) of every process."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                head, tail = (entry / "stat").read_text().rsplit(")", 1)
            except OSError:
                continue
            found.append((int(entry.name), int(tail.split()[1]), head.split("(", 1)[1]))
    return found


def busy_seconds() -> float:
    """CPU seconds the whole machine spent neither idle nor waiting for I/O (summed over all CPUs)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:8]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICKS  # user nice system [idle iowait] irq softirq


def cpu_snapshot(worker_pid: int) -> dict[str, float]:
    """Cumulative CPU seconds: whole machine, worker main process, its pool children, dockerd, containerd, us."""
    processes = _processes()
    children = [pid for pid, ppid, _ in processes if ppid == worker_pid]
    named = {name: [pid for pid, _, comm in processes if comm == name] for name in ("dockerd", "containerd")}
    return {
        MACHINE: busy_seconds(),
        "celery worker main process": process_seconds(worker_pid),
        "celery worker pool children": sum(map(process_seconds, children)),
        "dockerd": sum(map(process_seconds, named["dockerd"])),
        # Every archive call (put_archive, get_archive) re-executes the dockerd binary in a chroot (docker-untar,
        # docker-tar on Engine 20.10): its CPU lands here once dockerd reaps it, never in dockerd's own.
        DOCKERD_CHILDREN: sum(process_seconds(pid, children=True) for pid in named["dockerd"]),
        "containerd": sum(map(process_seconds, named["containerd"])),
        "this benchmark process": process_seconds(os.getpid()),
    }


def with_cpu(bench: ThroughputBench, variant: Callable[[], Measurement]) -> Measurement:
    """Run one round and attach the CPU seconds each group spent during it."""
    before = cpu_snapshot(bench.worker_pid)
    measurement = variant()
    after = cpu_snapshot(bench.worker_pid)
    return replace(measurement, cpu_seconds={name: after[name] - before[name] for name in before})

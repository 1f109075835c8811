"""`python -m bench.throughput`: its options, the alternating rounds, the tables, and what was left behind."""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import tempfile
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import replace
from functools import partial
from pathlib import Path

import docker
import redis
from rich.console import Console

import isolation
from bench import common, loopback, throughput
from bench.common import count_managed
from bench.launch import inner_daemon, start_worker
from bench.throughput import archive
from bench.throughput.cpu import with_cpu
from bench.throughput.profile import profile
from bench.throughput.table import (
    breakdown_table,
    cpu_table,
    endpoint_table,
    machine_table,
    print_failures,
    results_table,
    stage_table,
    targets_table,
)
from bench.throughput.variant import (
    BROKER,
    FLOOR_LABEL,
    Measurement,
    ThroughputBench,
    configure_environment,
    floor_round,
    new_client,
    toolrunner_round,
    worker_timings,
)
from bench.throughput.workload import Workload, busybox, listening_ports, nmap
from tasks import app

# --- leftovers -----------------------------------------------------------------------------------------------------


def leftovers(bench: ThroughputBench, console: Console) -> None:
    """Print what this benchmark's tenants left labelled managed, then remove it and the floors' leftovers."""
    prefix = app.settings.label_prefix
    volumes = containers = 0
    for tenant in bench.tenants:
        tenant_volumes, tenant_containers = count_managed(bench.client, prefix, tenant)
        volumes, containers = volumes + tenant_volumes, containers + tenant_containers
        isolation.remove_labelled({isolation.Label.TENANT: tenant}, bench.client, label_prefix=prefix)
    floor = {"label": f"{FLOOR_LABEL}={bench.nonce}"}
    plain = bench.client.containers.list(all=True, filters=floor)
    for container in plain:
        container.remove(force=True)
    floor_volumes = bench.client.api.volumes(filters=floor).get("Volumes") or []
    for volume in floor_volumes:
        bench.client.api.remove_volume(volume["Name"], force=True)
    every, _ = count_managed(bench.client, prefix)
    console.print(
        f"left behind, labelled {prefix}.managed=true by this benchmark's tenants: {volumes} volumes, "
        f"{containers} containers; floor containers and volumes removed: {len(plain)}, {len(floor_volumes)} "
        f"(managed volumes on the whole shared engine now: {every})"
    )


# --- main ----------------------------------------------------------------------------------------------------------

RoundFunction = Callable[[ThroughputBench, int, str], Measurement]


VARIANTS: dict[str, RoundFunction] = {
    "toolrunner": toolrunner_round,
    "bare floor": partial(floor_round, files=False),
    "files floor": partial(floor_round, files=True),
}
Results = dict[str, list[Measurement]]


def measure(bench: ThroughputBench, args: argparse.Namespace, console: Console) -> tuple[Results, Results]:
    """Warm every variant up, then alternate them for `rounds` rounds, the order turning each round: in each, first
    `sequential` runs one at a time, then `runs` handed over at once (CPU counted). Returns (saturated, sequential)."""
    for variant in VARIANTS.values():
        if args.warmup:
            variant(bench, args.warmup, "warm")
    saturated: Results = {name: [] for name in VARIANTS}
    sequential: Results = {name: [] for name in VARIANTS}
    names = list(VARIANTS)
    for number in range(1, args.rounds + 1):
        shift = (number - 1) % len(names)
        for name in names[shift:] + names[:shift]:
            label = f"round {number}"
            if args.sequential:
                sequential[name].append(one_at_a_time(VARIANTS[name], bench, args.sequential, label))
            measurement = with_cpu(bench, partial(VARIANTS[name], bench, args.runs, label))
            saturated[name].append(measurement)
            console.log(f"round {number} {name}: {measurement.runs_per_second:.2f} runs/s")
    return saturated, sequential


def one_at_a_time(variant: RoundFunction, bench: ThroughputBench, runs: int, label: str) -> Measurement:
    """`runs` runs of a variant, each submitted once the one before has its result."""
    rounds = [variant(bench, 1, label) for _ in range(runs)]
    every = [run for m in rounds for run in m.runs]
    return Measurement(rounds[0].variant, label, every, sum(m.wall_seconds for m in rounds))


def workload(name: str, ports: list[int]) -> Workload:
    """The --tool's workload."""
    return nmap(ports) if name == "nmap" else busybox()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The benchmark's options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.throughput", description=(throughput.__doc__ or "").split("\n", 1)[0]
    )
    parser.add_argument("--runs", type=int, default=100, help="runs per variant per round")
    parser.add_argument("--tool", choices=("nmap", "busybox"), default="nmap", help="what every variant runs")
    parser.add_argument("--sequential", type=int, default=10, help="runs one at a time per variant per round")
    parser.add_argument("--concurrency", type=int, default=4, help="worker --concurrency and floor pool size")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, the variant order flipping each round")
    parser.add_argument("--warmup", type=int, default=8, help="uncounted runs per variant before the rounds")
    parser.add_argument("--tenants", type=int, default=4, help="tenants the toolrunner runs are spread over")
    parser.add_argument("--profile-runs", type=int, default=40, help="runs of the stage profile; 0 skips it")
    parser.add_argument(
        "--cpus", default=None, help="e.g. 0 or 0-1: an inner dockerd held to these CPUs, the worker and us too"
    )
    parser.add_argument("--archive-calls", type=int, default=10, help="calls per archive probe; 0 skips the probe")
    parser.add_argument("--redis-url", default=BROKER, help="the Redis database of broker and results; flushed")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Start the worker, run the rounds and the profile, print every table, then remove what was left."""
    args = parse_args(argv)
    console = common.console(140)  # piped: wide enough for every table
    with listening_ports(2) as ports, contextlib.ExitStack() as stack:
        chosen = workload(args.tool, ports)
        engine = pinned_engine(stack, args.cpus, chosen.image, console) if args.cpus else {}
        env = configure_environment(args.redis_url, {**loopback.ENVIRONMENT, **chosen.worker_env, **engine})
        nonce = secrets.token_hex(3)
        tenants = [f"bench-{nonce}-t{i}" for i in range(args.tenants)]
        with redis.Redis.from_url(args.redis_url) as conn:  # the suite's scope and host limits: bench/loopback.py
            loopback.grant(conn, *tenants)
        bench = ThroughputBench(new_client(args.concurrency), args.concurrency, tenants, nonce, chosen)
        try:
            run_all(bench, args, env, console)
        finally:
            leftovers(bench, console)


def pinned_engine(stack: contextlib.ExitStack, cpus: str, image: str, console: Console) -> dict[str, str]:
    """An inner dockerd (DinD) held to `cpus` with the tool image loaded, and this process on those CPUs too;
    returns the DOCKER_HOST setting that reaches it (the worker is pinned by start_worker)."""
    with closing(docker.from_env()) as host:
        daemon = stack.enter_context(inner_daemon(host, [image], cpuset=cpus))
    os.sched_setaffinity(0, cpu_list(cpus))
    console.print(f"engine: an inner dockerd on CPUs {cpus} (started in {daemon.startup_seconds:.1f}s)")
    return {"DOCKER_HOST": daemon.docker_host}


def cpu_list(cpus: str) -> set[int]:
    """The CPUs of a `taskset -c` list such as `0`, `0-1` or `0,2`."""
    found: set[int] = set()
    for part in cpus.split(","):
        first, _, last = part.partition("-")
        found.update(range(int(first), int(last or first) + 1))
    return found


def run_all(bench: ThroughputBench, args: argparse.Namespace, env: dict[str, str], console: Console) -> None:
    """Start the worker, measure, stop it, print every table."""
    log_dir, name = Path(tempfile.mkdtemp(prefix="bench-throughput-")), f"bench-throughput-{secrets.token_hex(3)}"
    worker = start_worker(log_dir, name, concurrency=args.concurrency, env=env, cpus=args.cpus)
    bench = replace(bench, worker_pid=worker.process.pid)
    console.print(machine_table(bench.client, args, worker))
    try:
        saturated, sequential = measure(bench, args, console)
    finally:
        worker.stop()  # SIGTERM to its pid, then wait
    console.print(results_table(saturated, sequential))
    print_failures({**saturated, **sequential}, console)
    timings = worker_timings(worker.log)
    console.print(breakdown_table(saturated, timings, args.concurrency, "saturated"))
    if args.sequential:  # one run at a time: the worker's own path beside execute(), without the wait for a slot
        console.print(breakdown_table(sequential, timings, 1, "sequential"))
    console.print(cpu_table(saturated))
    console.print(targets_table(saturated, sequential))
    if args.archive_calls:
        costs = archive.measure(bench.client, [bench.workload.image], args.archive_calls)
        console.print(archive.archive_table(costs, args.archive_calls))
    if args.profile_runs:
        result = profile(bench, args.profile_runs)
        console.print(stage_table(result))
        console.print(endpoint_table(result))


if __name__ == "__main__":
    main()

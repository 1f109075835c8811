"""`python -m bench.throughput`: its options, the alternating rounds, the tables, and what was left behind."""

from __future__ import annotations

import argparse
import secrets
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

from rich.console import Console

import isolation
from bench import common, throughput
from bench.common import count_managed
from bench.launch import start_worker
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
)
from bench.throughput.variant import (
    BROKER,
    PLAIN_LABEL,
    Measurement,
    ThroughputBench,
    configure_environment,
    new_client,
    plain_round,
    toolrunner_round,
    worker_timings,
)
from tasks import app

# --- leftovers -----------------------------------------------------------------------------------------------------


def leftovers(bench: ThroughputBench, console: Console) -> None:
    """Print what this benchmark's tenants left labelled managed, then remove it and the plain-loop containers."""
    prefix = app.settings.label_prefix
    volumes = containers = 0
    for tenant in bench.tenants:
        tenant_volumes, tenant_containers = count_managed(bench.client, prefix, tenant)
        volumes, containers = volumes + tenant_volumes, containers + tenant_containers
        isolation.remove_labelled({isolation.Label.TENANT: tenant}, bench.client, label_prefix=prefix)
    plain = bench.client.containers.list(all=True, filters={"label": f"{PLAIN_LABEL}={bench.nonce}"})
    for container in plain:
        container.remove(force=True)
    every, _ = count_managed(bench.client, prefix)
    console.print(
        f"left behind, labelled {prefix}.managed=true by this benchmark's tenants: {volumes} volumes, "
        f"{containers} containers; plain-loop containers removed: {len(plain)} "
        f"(managed volumes on the whole shared engine now: {every})"
    )


# --- main ----------------------------------------------------------------------------------------------------------

RoundFunction = Callable[[ThroughputBench, int, str], Measurement]


def measure(bench: ThroughputBench, args: argparse.Namespace, console: Console) -> dict[str, list[Measurement]]:
    """Warm both variants up, then alternate them for `rounds` rounds, flipping the order each round."""
    variants: dict[str, RoundFunction] = {"toolrunner": toolrunner_round, "plain": plain_round}
    for variant in variants.values():
        if args.warmup:
            variant(bench, args.warmup, "warm")
    results: dict[str, list[Measurement]] = {name: [] for name in variants}
    for number in range(1, args.rounds + 1):
        for name in list(variants) if number % 2 else list(reversed(variants)):
            measurement = with_cpu(bench, partial(variants[name], bench, args.runs, f"round {number}"))
            results[name].append(measurement)
            console.log(f"round {number} {name}: {measurement.runs_per_second:.2f} runs/s")
    return results


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The benchmark's options."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.throughput", description=(throughput.__doc__ or "").split("\n", 1)[0]
    )
    parser.add_argument("--runs", type=int, default=100, help="runs per variant per round")
    parser.add_argument("--concurrency", type=int, default=4, help="worker --concurrency and plain pool size")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, the variant order flipping each round")
    parser.add_argument("--warmup", type=int, default=8, help="uncounted runs per variant before the rounds")
    parser.add_argument("--tenants", type=int, default=4, help="tenants the toolrunner runs are spread over")
    parser.add_argument("--profile-runs", type=int, default=40, help="runs of the stage profile; 0 skips it")
    parser.add_argument("--redis-url", default=BROKER, help="the Redis database of broker and results; flushed")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Start the worker, run the rounds and the profile, print every table, then remove what was left."""
    args = parse_args(argv)
    console = common.console(140)  # piped: wide enough for every table
    env = configure_environment(args.redis_url)
    nonce = secrets.token_hex(3)
    tenants = [f"bench-{nonce}-t{i}" for i in range(args.tenants)]
    bench = ThroughputBench(new_client(args.concurrency), args.concurrency, tenants, nonce)
    try:
        log_dir, name = Path(tempfile.mkdtemp(prefix="bench-throughput-")), f"bench-throughput-{secrets.token_hex(3)}"
        worker = start_worker(log_dir, name, concurrency=args.concurrency, env=env)
        bench = replace(bench, worker_pid=worker.process.pid)
        console.print(machine_table(bench.client, args, worker))
        try:
            results = measure(bench, args, console)
        finally:
            worker.stop()  # SIGTERM to its pid, then wait
        console.print(results_table(results))
        print_failures(results, console)
        console.print(breakdown_table(results, worker_timings(worker.log), args.concurrency))
        console.print(cpu_table(results))
        if args.profile_runs:
            result = profile(bench, args.profile_runs)
            console.print(stage_table(result))
            console.print(endpoint_table(result))
    finally:
        leftovers(bench, console)


if __name__ == "__main__":
    main()

"""Throughput benchmark: runs through a real Celery worker vs a plain docker SDK loop at the same concurrency.

Run:  .venv/bin/python bench/throughput.py [--runs 100] [--concurrency 4] [--rounds 2] [--warmup 8]
                                           [--tenants 4] [--profile-runs 40]

Needs the Docker Engine, Redis on 127.0.0.1:6379 (db 14 is flushed, then used by the worker alone) and the image
toolrunner-busybox:local (scripts/build-images). Nothing is asserted: the tables show the numbers and each target.

Variants, each handed all `--runs` runs at once:
  toolrunner  a real `celery -A tasks worker --pool prefork --concurrency N` subprocess (TOOLRUNNER_TOOL_NETWORK=none,
              the test-only `script` tool enabled) gets `run_tool.delay("script", tenant, run, {"script":
              "echo ok > /outputs/out.txt"})` per run, tenants taken round-robin from `--tenants`; each run creates
              two volumes, runs the tool container, reads out.txt back, removes everything and stores its result.
  plain       a ThreadPoolExecutor(N) doing `containers.run(busybox, ["sh", "-c", "echo ok"], network_mode="none",
              detach=True)`, wait, logs, remove: no volumes, no hardening, no queue.
Both warm up with `--warmup` runs first (not counted). The variants alternate over `--rounds` rounds (default 2),
the order flipping each round (toolrunner then plain, then plain then toolrunner), so drift on a shared machine hits
both alike. The worker runs from before the first round to after the last.

Numbers:
  runs/s       runs / wall time from the first submission (enqueue, or pool submit) to the last result seen.
  p50/p95 ms   per-run latency from its submission to its result. With every run submitted at once this is
               mostly waiting for a free slot, so it grows with runs / throughput: a small throughput gap
               becomes a large p50 gap.
  ratios       from all rounds pooled (runs / summed wall times; latencies pooled): toolrunner runs/s divided by
               plain runs/s (target >= 0.8) and toolrunner p50 minus plain p50 (target <= +250 ms).
  breakdown    means per run: submission -> started (queue and slot wait), started -> result (service time),
               slot time = concurrency / runs/s. toolrunner's "started" is when its result key first appears
               (STARTED state). From the worker log: received -> running in a child, task runtime ("succeeded
               in"), of which execute() (the result's stats.duration_ms), and the slot time no task ran in
               (ack, result, fetching and dispatching the next message).
  CPU          CPU ms per run during the rounds, from /proc: the whole machine (other people's load included),
               the worker's main process and pool children, dockerd, containerd, this process; and how busy
               the machine's CPUs were. Near 100% busy, every extra CPU ms per run costs throughput.
  profile      `--profile-runs` runs of tasks.runner.execute in this process (the same isolation calls in
               the same order, no Celery) at the same concurrency with every stage timed, and every Docker API
               request timed by endpoint next to the plain loop's. Requests overlap under concurrency, so their
               milliseconds add up to more than the wall time.
Results are polled client-side: one Redis MGET over all pending result keys every 10 ms, time.monotonic() stamps.
At the end it prints how many volumes and containers labelled `studio.managed=true` this benchmark's tenants left
(and removes them and any plain-loop container).
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

if __name__ == "__main__":  # run as a script, bench/ (not the repository root) heads sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console

import isolation
from bench import common
from bench.common import count_managed, start_bench_worker
from bench.throughput_cpu import with_cpu
from bench.throughput_profile import profile
from bench.throughput_round import (
    PLAIN_LABEL,
    Bench,
    Measurement,
    configure_environment,
    new_client,
    plain_round,
    toolrunner_round,
    worker_timings,
)
from bench.throughput_table import (
    breakdown_table,
    cpu_table,
    endpoint_table,
    machine_table,
    print_failures,
    results_table,
    stage_table,
)
from tasks import app

# --- leftovers -----------------------------------------------------------------------------------------------------


def leftovers(bench: Bench, console: Console) -> None:
    """Print what this benchmark's tenants left labelled managed, then remove it and the plain-loop containers."""
    prefix = app.settings.label_prefix
    volumes = containers = 0
    for tenant in bench.tenants:
        tenant_volumes, tenant_containers = count_managed(bench.client, prefix, tenant)
        volumes, containers = volumes + tenant_volumes, containers + tenant_containers
        isolation.remove_labelled({"tenant": tenant}, bench.client, label_prefix=prefix)
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

Variant = Callable[[Bench, int, str], Measurement]


def measure(bench: Bench, args: argparse.Namespace, console: Console) -> dict[str, list[Measurement]]:
    """Warm both variants up, then alternate them for `rounds` rounds, flipping the order each round."""
    variants: dict[str, Variant] = {"toolrunner": toolrunner_round, "plain": plain_round}
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=100, help="runs per variant per round")
    parser.add_argument("--concurrency", type=int, default=4, help="worker --concurrency and plain pool size")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, the variant order flipping each round")
    parser.add_argument("--warmup", type=int, default=8, help="uncounted runs per variant before the rounds")
    parser.add_argument("--tenants", type=int, default=4, help="tenants the toolrunner runs are spread over")
    parser.add_argument("--profile-runs", type=int, default=40, help="runs of the stage profile; 0 skips it")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Start the worker, run the rounds and the profile, print every table, then remove what was left."""
    args = parse_args(argv)
    console = common.console(140)  # piped: wide enough for every table
    env = configure_environment()
    nonce = secrets.token_hex(3)
    tenants = [f"bench-{nonce}-t{i}" for i in range(args.tenants)]
    bench = Bench(new_client(args.concurrency), args.concurrency, tenants, nonce)
    try:
        log_dir, name = Path(tempfile.mkdtemp(prefix="bench-throughput-")), f"bench-throughput-{secrets.token_hex(3)}"
        worker = start_bench_worker(log_dir, name, args.concurrency, env)
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

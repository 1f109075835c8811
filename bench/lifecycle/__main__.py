"""`python -m bench.lifecycle`: its options, its phases, and the reaper of whatever a run labelled."""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import sys
from typing import Any

import docker
import docker.errors
from rich.console import Console

from bench import common, lifecycle
from bench.common import CallLog, count_managed, exit_on_sigterm
from bench.lifecycle.big import big_round_trip, run_big_child
from bench.lifecycle.table import big_table, machine_table, profile_table, small_table, targets_table
from bench.lifecycle.variant import LifecycleBench, measure, variants
from isolation import DEFAULT_LABEL_PREFIX, managed_filter


def reap(client: Any, tenant: str) -> int:
    """Force-remove every container, then every volume, labelled with this run's tenant; volumes found."""
    filters = managed_filter(DEFAULT_LABEL_PREFIX, tenant=tenant)
    for holder in client.api.containers(all=True, filters=filters):
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(holder["Id"], force=True)
    volumes = client.api.volumes(filters=filters).get("Volumes") or []
    for volume in volumes:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_volume(volume["Name"], force=True)
    return len(volumes)


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's options (and the child process's hidden ones)."""
    parser = argparse.ArgumentParser(prog="python -m bench.lifecycle", description=_summary())
    parser.add_argument("--runs", type=int, default=20, help="measured rounds after 2 warm-up rounds")
    parser.add_argument("--big-mib", type=int, default=1024, help="size of the big file in MiB")
    parser.add_argument("--skip-big", action="store_true", help="skip the big-file phase")
    parser.add_argument("--profile-runs", type=int, default=10, help="rounds of the profiled pass (0: skip it)")
    parser.add_argument("--only-big", action="store_true", help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--tenant", default=f"bench-lifecycle-{secrets.token_hex(4)}", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _summary() -> str | None:
    """The first line of the package's docstring."""
    return lifecycle.__doc__.splitlines()[0] if lifecycle.__doc__ else None


def main_child(args: argparse.Namespace) -> None:
    """The big-file phase alone; prints one JSON line for the parent."""
    client = docker.from_env()
    try:
        print(json.dumps(big_round_trip(client, args.tenant, args.big_mib)))
    finally:
        reap(client, args.tenant)


def run_phases(args: argparse.Namespace, client: Any, console: Console) -> None:
    """Print the machine, the small-file, big-file and target tables, then the profiled pass."""
    setup = LifecycleBench(client, args.tenant)
    console.print(machine_table(client))
    samples = measure(setup, variants(setup), args.runs, console)
    console.print(small_table(samples, args.runs))
    big = None
    if not args.skip_big:
        with console.status(f"streaming {args.big_mib} MiB in and out in a child process"):
            big = run_big_child(args.tenant, args.big_mib)
        console.print(big_table(big))
    console.print(targets_table(samples, big))
    if args.profile_runs > 0:
        log, profiled_client = CallLog(), docker.from_env()
        log.attach(profiled_client)
        profiled = LifecycleBench(profiled_client, args.tenant, log)
        console.print(
            profile_table(measure(profiled, variants(profiled), args.profile_runs, console), args.profile_runs)
        )


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark (or, with --only-big, the big-file child) and reap whatever this run labelled."""
    args = parse_args(argv)
    exit_on_sigterm()
    if args.only_big:
        main_child(args)
        return
    console, client = common.console(120), docker.from_env()  # piped: wide enough for the profile table
    try:
        run_phases(args, client, console)
    finally:
        leaked = reap(client, args.tenant)
        left, _ = count_managed(client, DEFAULT_LABEL_PREFIX, args.tenant)
        everyone, _ = count_managed(client, DEFAULT_LABEL_PREFIX)
        console.print(
            f"Volumes labelled {DEFAULT_LABEL_PREFIX}.managed=true by this run (tenant {args.tenant}): "
            f"{leaked} found at the end and reaped, {left} left (0 expected). "
            f"All managed volumes on the engine, other users' included: {everyone}."
        )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)  # everything was already removed by the `finally` blocks; no traceback needed

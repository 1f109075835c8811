"""`python -m bench.soak`: its options, the soak, and its report."""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench import common, soak
from bench.common import exit_on_sigterm
from bench.soak.check import expectations
from bench.soak.plan import SOAK_DB, SoakConfig
from bench.soak.run import run_soak
from bench.soak.table import report, seeds_table


def parse_args(argv: Sequence[str] | None) -> tuple[SoakConfig, list[int]]:
    """The soak's size and injections from the command line, and the seeds to run it with."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=(soak.__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=500, help="runs enqueued")
    parser.add_argument("--tenants", type=int, default=10, help="tenants the runs are spread over, round-robin")
    parser.add_argument("--concurrency", type=int, default=4, help="worker --concurrency")
    parser.add_argument("--seed", type=int, default=1, help="seed of the injected failures and disruption points")
    parser.add_argument("--seeds", type=_seeds, default=None, help="several seeds, one soak each: 1,2,3 (or 1-10)")
    parser.add_argument("--exit-rate", type=float, default=0.10, help="share of runs that exit 3")
    parser.add_argument("--timeout-rate", type=float, default=0.05, help="share of runs that time out")
    parser.add_argument("--kill-rate", type=float, default=0.02, help="worker SIGKILLs per run")
    parser.add_argument("--no-daemon-restart", action="store_true", help="skip the inner dockerd restart")
    parser.add_argument("--no-dind", action="store_true", help="use the host engine (implies no daemon restart)")
    parser.add_argument("--stall-seconds", type=float, default=150.0, help="give up after this long without progress")
    parser.add_argument("--redis-url", default=SOAK_DB, help="the Redis database of broker and results; flushed")
    args = parser.parse_args(argv)
    config = SoakConfig(
        args.runs, args.tenants, args.concurrency, args.seed, args.exit_rate, args.timeout_rate, args.kill_rate,
        not args.no_daemon_restart, not args.no_dind, args.stall_seconds, args.redis_url,
    )  # fmt: skip
    return config, args.seeds or [args.seed]


def _seeds(text: str) -> list[int]:
    """ "1,2,5" or "1-10" (or both: "1-3,7") as a list of seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        seeds += range(int(first), int(last or first) + 1)
    if not seeds:
        raise argparse.ArgumentTypeError("no seed given")
    return seeds


def main(argv: Sequence[str] | None = None) -> None:
    """Run a soak per seed, logging progress, then print each report and, for several seeds, one line each."""
    config, seeds = parse_args(argv)
    exit_on_sigterm()
    console = common.console(150)
    verdicts = []
    for seed in seeds:
        seeded = replace(config, seed=seed)
        log_dir = Path(tempfile.mkdtemp(prefix=f"soak-{secrets.token_hex(3)}-"))
        plan, observed = run_soak(seeded, log_dir, console)
        report(seeded, plan, observed, console)
        verdicts.append((seed, expectations(plan, observed)))
    if len(seeds) > 1:
        console.print(seeds_table(verdicts))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)  # workers, the inner daemon and the database were already cleaned by the `finally` blocks

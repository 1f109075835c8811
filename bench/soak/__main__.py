"""`python -m bench.soak`: its options, the soak, and its report."""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench import common, soak
from bench.common import exit_on_sigterm
from bench.soak.plan import SOAK_DB, SoakConfig
from bench.soak.run import run_soak
from bench.soak.table import report


def parse_args(argv: Sequence[str] | None) -> SoakConfig:
    """The soak's size and injections from the command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=(soak.__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=500, help="runs enqueued")
    parser.add_argument("--tenants", type=int, default=10, help="tenants the runs are spread over, round-robin")
    parser.add_argument("--concurrency", type=int, default=4, help="worker --concurrency")
    parser.add_argument("--seed", type=int, default=1, help="seed of the injected failures and disruption points")
    parser.add_argument("--exit-rate", type=float, default=0.10, help="share of runs that exit 3")
    parser.add_argument("--timeout-rate", type=float, default=0.05, help="share of runs that time out")
    parser.add_argument("--kill-rate", type=float, default=0.02, help="worker SIGKILLs per run")
    parser.add_argument("--no-daemon-restart", action="store_true", help="skip the inner dockerd restart")
    parser.add_argument("--no-dind", action="store_true", help="use the host engine (implies no daemon restart)")
    parser.add_argument("--stall-seconds", type=float, default=150.0, help="give up after this long without progress")
    parser.add_argument("--redis-url", default=SOAK_DB, help="the Redis database of broker and results; flushed")
    args = parser.parse_args(argv)
    return SoakConfig(
        args.runs, args.tenants, args.concurrency, args.seed, args.exit_rate, args.timeout_rate, args.kill_rate,
        not args.no_daemon_restart, not args.no_dind, args.stall_seconds, args.redis_url,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    """Run a soak, logging progress, then print its report."""
    config = parse_args(argv)
    exit_on_sigterm()
    console = common.console(150)
    log_dir = Path(tempfile.mkdtemp(prefix=f"soak-{secrets.token_hex(3)}-"))
    plan, observed = run_soak(config, log_dir, console)
    report(config, plan, observed, console)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)  # workers, the inner daemon and the database were already cleaned by the `finally` blocks

"""Soak benchmark: many runs across tenants through a real worker while the harness injects failures.

Run:  .venv/bin/python bench/soak.py [--runs 500] [--tenants 10] [--concurrency 4] [--seed N] [--no-dind]

Needs the Docker Engine, Redis on 127.0.0.1:6379 (db 11 is flushed, then used by this soak alone) and the images
toolrunner-busybox:local and toolrunner-dind:local (scripts/build-images). Nothing is asserted: the tables show
every measurement and, for each expectation, "ok" or "NOT ok". tests/integration/test_soak.py runs a short soak.

What runs:
  engine   an inner dockerd in a DinD container of the host engine (tests/integration/dind.py); the worker's
           DOCKER_HOST points at it, so the harness can restart that daemon. The host's dockerd is never
           restarted. With --no-dind the worker uses the host engine and there is no daemon restart.
  worker   a real `celery worker --pool prefork` (tests/integration/workers.py) with label prefix `soak`
           (its volumes and containers are labelled soak.*, invisible to the suite's studio.* leak checks),
           the test-only `script` tool, network none and short limits (soft 12 s, hard 14 s, visibility 16 s),
           so a killed worker's runs are delivered again within about half a minute.
  runs     all enqueued at once, tenants round-robin. Each run's input file marker.txt holds a tenant- and
           run-specific marker; its tool copies it to /outputs/out.txt, then appends a random execution id
           (/proc/sys/kernel/random/uuid: a new one for every time the tool really runs).
Injected, deterministic by --seed:
  exit     --exit-rate of the runs exit 3 after writing their output          -> expected tool_failed
  timeout  --timeout-rate of the runs sleep past a 2 s timeout_seconds          -> expected timed_out
  kill     round(--kill-rate x runs) times (at seeded points of the progress), with runs in flight, the
           harness SIGKILLs the worker's process group and starts a new worker with the same hostname; its
           start-up sweep removes the predecessor's leftovers and the unacked runs are delivered again.
  restart  once, half-way, the inner dockerd is stopped (SIGTERM, as `systemctl restart docker` would) and
           started again.
Checks:
  lost          runs without a terminal state (SUCCESS/FAILURE) when nothing finished for --stall-seconds.
  duplicates    (a) results published as SUCCESS (Redis pub/sub of the result keys, subscribed before any
                run is sent) carrying more than one execution id for one task; (b) `succeeded` lines per task id
                in all worker logs, minus the lines of deliveries that returned an earlier delivery's result.
  cross reads   a result whose out.txt carries another tenant's (or another run's) marker, or none.
  leftovers     soak.managed volumes and containers on the worker's engine after the worker's own sweep task
                (max age 0) ran at the end.
  peak RSS      the largest sum of VmRSS over the worker process and its pool children, sampled every 0.5 s.
The disruptions table's "in flight" counts runs started and not yet terminal (STARTED, PROGRESS or RETRY): runs
running at that moment, and also runs an earlier kill stranded or a retry countdown holds, until they come back.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

if __name__ == "__main__":  # run as a script, bench/ (not the repository root) heads sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common
from bench.common import exit_on_sigterm
from bench.soak_plan import SoakConfig
from bench.soak_run import run_soak
from bench.soak_table import report


def parse_args(argv: Sequence[str] | None) -> SoakConfig:
    """The soak's size and injections from the command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
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
    args = parser.parse_args(argv)
    return SoakConfig(
        args.runs, args.tenants, args.concurrency, args.seed, args.exit_rate, args.timeout_rate, args.kill_rate,
        not args.no_daemon_restart, not args.no_dind, args.stall_seconds,
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
        sys.exit(130)  # workers, the inner daemon and db 11 were already cleaned by the `finally` blocks

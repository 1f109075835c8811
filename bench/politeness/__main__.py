"""Three tenants' ffuf runs against one shared host and runs against other hosts, politeness off and on.

    python -m bench.politeness [--redis-url URL] [--runs 10] [--others 10] [--words 200] [--pairs 2] [--ports]
                               [--per-second]

Phases run in off/on pairs, every other pair reversed (off on on off), so neither setting always runs second.
Each phase starts its own worker pair (two workers at concurrency 4 on one flushed Redis database, tool
containers on the host network so ffuf reaches loopback, TOOLRUNNER_POLITENESS off or on and the host limits at
their production defaults), a Recorder on 127.0.0.1 (the shared host) and one per other host, and submits every
run at once: each tenant's shared-host runs round-robin, the other-host runs (spread over the same tenants) mixed
in. Every run fuzzes `/<its label>/FUZZ` with --words words, so each server tells the runs apart. The shared
host's figures come from its Recorder (bench.recorder: sliding one-second windows; a run active from its first
request to its last); the other hosts' throughput is their runs over the seconds from submission to the last of
their results. Other hosts are one address each from 127.0.0.2 on, or with --ports ports of 127.0.0.2 (one host
to politeness, so capped like the shared one).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import redis
from celery import Celery
from celery.result import AsyncResult

from bench import loopback
from bench.common import BenchError, exit_on_sigterm
from bench.launch import Worker, start_worker
from bench.politeness.plan import (
    SHARED,
    TENANTS,
    Limits,
    PlannedRun,
    other_addresses,
    phase_env,
    phases,
    plan,
    production_limits,
    wordlist,
)
from bench.politeness.table import Parking, Phase, parking_of, print_phases
from bench.recorder import Recorder, format_seconds, per_second, requests_by_run, run_spans, summarize
from config import celery_config, load_settings

DEFAULT_REDIS = os.environ.get("TOOLRUNNER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15").rsplit("/", 1)[0] + "/7"
RESULT_TIMEOUT = 600


def options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.politeness", description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default=DEFAULT_REDIS, help="broker and results (flushed): %(default)s")
    parser.add_argument("--runs", type=int, default=10, help="shared-host runs per tenant (%(default)s)")
    parser.add_argument("--others", type=int, default=10, help="runs against other hosts, one host each")
    parser.add_argument("--words", type=int, default=100, help="words per run, so requests per run (%(default)s)")
    parser.add_argument("--pairs", type=int, default=2, help="off/on pairs, every other one reversed (%(default)s)")
    parser.add_argument("--ports", action="store_true", help="other hosts as ports of 127.0.0.2, not one address each")
    parser.add_argument("--per-second", action="store_true", help="print the shared host's per-second tables")
    return parser.parse_args(argv)


def producer(redis_url: str) -> Celery:
    """A client app on the bench's Redis database."""
    app = Celery("politeness", set_as_current=False)
    app.conf.update(celery_config(load_settings()), broker_url=redis_url, result_backend=redis_url)
    return app


@contextlib.contextmanager
def workers(app: Celery, redis_url: str, env: dict[str, str], name: str) -> Iterator[list[Worker]]:
    """Two workers at concurrency 4 on a flushed database whose tenants may scan loopback; their logs are kept."""
    with redis.Redis.from_url(redis_url) as conn:
        conn.flushdb()
        loopback.grant(conn, *TENANTS)
    logs = Path(tempfile.mkdtemp(prefix=f"bench-politeness-{name}-"))
    started: list[Worker] = []
    try:
        for i in (1, 2):
            started.append(start_worker(logs, f"polite{i}", concurrency=4, env=env, client=app))
        yield started
    finally:
        for worker in started:
            worker.stop()


@contextlib.contextmanager
def recorders(addresses: Sequence[str]) -> Iterator[tuple[Recorder, list[Recorder]]]:
    """The shared host's recorder and one per other host, all stopped on the way out."""
    with contextlib.ExitStack() as stack:
        shared = stack.enter_context(Recorder(SHARED))
        yield shared, [stack.enter_context(Recorder(address)) for address in addresses]


def submit(app: Celery, run: PlannedRun, url: str, words: list[str]) -> AsyncResult:
    """Send one ffuf run fuzzing `url`/<label>/FUZZ."""
    params = {"url": f"{url}/{run.label}/FUZZ", "wordlist": words}
    return app.send_task("toolrunner.run_tool", ("ffuf", run.tenant, run.label, params))


def wait(handles: Sequence[tuple[PlannedRun, AsyncResult]], started: float) -> dict[str, float]:
    """Seconds from `started` to each run's result, by label; BenchError when one fails or they take too long."""
    done: dict[str, float] = {}
    while len(done) < len(handles):
        if time.monotonic() - started > RESULT_TIMEOUT:
            raise BenchError(f"{len(handles) - len(done)} results did not arrive within {RESULT_TIMEOUT} s")
        for run, handle in handles:
            if run.label not in done and handle.ready():
                result = handle.get()
                if result["status"] != "ok":
                    raise BenchError(f"run {run.label} ended {result['status']}: {result.get('stderr_tail')}")
                done[run.label] = time.monotonic() - started
        time.sleep(0.05)
    return done


def run_phase(app: Celery, args: argparse.Namespace, politeness: str, number: int, limits: Limits) -> Phase:
    """Start the phase's workers and recorders, submit every run at once, and read what the servers saw."""
    name = f"{politeness}{number}"
    runs, words = plan(name, args.runs, args.others), wordlist(args.words)
    env = phase_env(args.redis_url, politeness, limits)
    with (
        workers(app, args.redis_url, env, name) as started,
        recorders(other_addresses(args.others, ports=args.ports)) as (shared, others),
    ):
        began = time.monotonic()
        handles = [(run, submit(app, run, (shared if run.other is None else others[run.other]).url, words))
                   for run in runs]  # fmt: skip
        done = wait(handles, began)
        traffic = [shared.traffic(), *(other.traffic() for other in others)]
    seen = {label: count for t in traffic for label, count in requests_by_run(t.requests).items()}
    other_done = [done[run.label] for run in runs if run.other is not None]
    spans = {label: span for t in traffic[1:] for label, span in run_spans(t.requests).items()}
    return Phase(
        name=f"{politeness} #{number}",
        politeness=politeness,
        shared=summarize(traffic[0]),
        shared_traffic=traffic[0],
        others=tuple(summarize(t) for t in traffic[1:]),
        other_runs=len(other_done),
        other_seconds=max(other_done, default=0.0),
        wall=max(done.values()),
        other_wait=_median([first - began for first, _ in spans.values()]),
        other_span=_median([last - first for first, last in spans.values()]),
        short=tuple(run.label for run in runs if seen.get(run.label) != len(words)),
        parking=sum((parking_of(w.log_text()) for w in started), Parking()),
        logs=str(started[0].log.parent),
    )


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def main(argv: Sequence[str] | None = None) -> None:
    """Measure the phases in alternating order and print them side by side."""
    exit_on_sigterm()
    args = options(argv)
    app, limits = producer(args.redis_url), production_limits()
    measured = [run_phase(app, args, politeness, number, limits)
                for number, politeness in enumerate(phases(args.pairs), 1)]  # fmt: skip
    print_phases(measured, args, limits)
    if args.per_second:
        for phase in measured:
            print(f"\nshared host, politeness {phase.name}, per aligned second:")
            print(format_seconds(per_second(phase.shared_traffic.requests)))


if __name__ == "__main__":
    main()

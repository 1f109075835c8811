"""Soak benchmark: many runs across tenants through a real worker while the harness injects failures.

Run:  .venv/bin/python -m bench.soak [--runs 500] [--tenants 10] [--concurrency 4] [--seed N | --seeds 1-10]
                                      [--no-dind] [--redis-url URL]
      (--seeds runs one whole soak per seed, one after another, each with its report, then a line per seed)
      (from the repository root; a short pass: --runs 24 --tenants 3 --kill-rate 0.04 --no-dind)

Needs the Docker Engine, Redis at --redis-url (default redis://127.0.0.1:6379/11; that database is flushed, then
used by this soak alone) and the images toolrunner-busybox:local and toolrunner-dind:local (scripts/build-images).
Nothing is asserted: the tables show every measurement and, for each expectation, "ok" or "NOT ok".
tests/integration/test_soak.py runs a short soak.

What runs:
  engine   an inner dockerd in a DinD container of the host engine (bench/launch.py); the worker's
           DOCKER_HOST points at it, so the harness can restart that daemon. The host's dockerd is never
           restarted. With --no-dind the worker uses the host engine and there is no daemon restart.
  worker   a real `celery worker --pool prefork` (bench/launch.py) with label prefix `soak`
           (its volumes and containers are labelled soak.*, invisible to the suite's studio.* leak checks),
           the test-only `script` tool, network none and short limits (soft 12 s, hard 14 s, visibility
           16 s, renewed every 5 s),
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

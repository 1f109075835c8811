"""Throughput benchmark: runs through a real Celery worker vs the bare-container floor, on a real tool.

Run:  .venv/bin/python -m bench.throughput [--tool nmap|busybox] [--runs 100] [--sequential 10] [--concurrency 4]
                                            [--rounds 2] [--warmup 8] [--tenants 4] [--profile-runs 40]
                                            [--archive-calls 10] [--cpus LIST] [--redis-url URL]
      (from the repository root; a short pass: --runs 8 --rounds 1 --warmup 2 --sequential 3 --profile-runs 4)

Needs the Docker Engine, Redis at --redis-url (default redis://127.0.0.1:6379/14; that database is flushed, then
used by the worker alone) and the images toolrunner-tools:local and toolrunner-busybox:local (scripts/build-images).
Nothing is asserted: the tables show the numbers and each target.

What runs (--tool): `nmap` (the default) is tasks/tools/nmap.py's connect scan of two ports of listeners this process
opens on 127.0.0.1, from the tools image, on the host's network; `busybox` is an `echo ok` no-op with no network,
which hides most of the cost. Variants, each handed all `--runs` runs at once, and `--sequential` runs one at a time:
  toolrunner   a real `celery -A tasks worker --pool prefork --concurrency N` subprocess with production defaults
               (fair share, artifacts on, no result cache asked for), TOOLRUNNER_TOOL_NETWORK=host for nmap, its
               tenants (round-robin over `--tenants`) given loopback scope and the suite's host limits from
               bench/loopback.py, so it measures the run path and not a policy.
  bare floor   a ThreadPoolExecutor(N) doing `containers.run` of the same image and argv (the report to stdout),
               wait, logs, remove: no volumes, no hardening, no queue. 7 engine calls.
  files floor  the same plus moving files as a run must: one volume, one put_archive (the input and a directory the
               non-root tool writes), the run, one get_archive of the report, container and volume removed.
With `--cpus 0` (or `0-1`) the engine is an inner dockerd (DinD) held to those CPUs, the worker runs under
`taskset -c`, and this process on the same CPUs: what a worker host of that many cores does.
All warm up with `--warmup` runs first (not counted), then alternate over `--rounds` rounds, the order turning each
round, so drift on a shared machine hits them alike. The worker runs from before the first round to after the last.

Numbers:
  runs/s       runs / wall time from the first submission (enqueue, or pool submit) to the last result seen.
  p50/p95 ms   per-run latency from its submission to its result. With every run submitted at once this is
               mostly waiting for a free slot, so it grows with runs / throughput: a small throughput gap
               becomes a large p50 gap.
  targets      from all rounds pooled (runs / summed wall times; latencies pooled), each round's median beside it:
               saturated toolrunner runs/s >= 0.8x the bare floor's; dockerd CPU per run (its re-executed archive
               children included) <= 2x the bare floor's; sequential toolrunner p50 <= the files floor's + 25 ms.
  breakdown    means per run: submission -> started (queue and slot wait), started -> result (service time),
               slot time = concurrency / runs/s. toolrunner's "started" is when its result key first appears
               (its first PROGRESS, once admitted). From the worker log: received -> running in a child, task
               runtime ("succeeded in"), of which execute() (the result's stats.duration_ms), and the slot time
               no task ran in (ack, result, fetching and dispatching the next message).
  CPU          CPU ms per run during the rounds, from /proc: the whole machine (other people's load included),
               the worker's main process and pool children, dockerd, the dockerd children it reaped (every archive call
               re-executes dockerd in a chroot), containerd, this process; and how busy
               the machine's CPUs were. Near 100% busy, every extra CPU ms per run costs throughput.
  archive      `--archive-calls` put_archive and get_archive calls, one at a time, through a never-started
               container of the helper image and of the tool's, beside a create and removal alone: wall time, the
               machine's CPU, dockerd's own and its reaped children's per call (bench/throughput/archive.py).
  profile      `--profile-runs` runs of tasks.service.execute in this process (the same isolation calls in
               the same order, no Celery) at the same concurrency with every stage timed, and every Docker API
               request timed by endpoint next to the bare floor's. Requests overlap under concurrency, so their
               milliseconds add up to more than the wall time.
Results are polled client-side: one Redis MGET over all pending result keys every 10 ms, time.monotonic() stamps.
At the end it prints how many volumes and containers labelled `studio.managed=true` this benchmark's tenants left
(and removes them and the floors' containers and volumes).
"""

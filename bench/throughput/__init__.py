"""Throughput benchmark: runs through a real Celery worker vs a plain docker SDK loop at the same concurrency.

Run:  .venv/bin/python -m bench.throughput [--runs 100] [--concurrency 4] [--rounds 2] [--warmup 8]
                                            [--tenants 4] [--profile-runs 40] [--redis-url URL]
      (from the repository root; a short pass: --runs 8 --rounds 2 --warmup 2 --profile-runs 4)

Needs the Docker Engine, Redis at --redis-url (default redis://127.0.0.1:6379/14; that database is flushed, then
used by the worker alone) and the image toolrunner-busybox:local (scripts/build-images). Nothing is asserted: the
tables show the numbers and each target.

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
               (its first PROGRESS, once admitted). From the worker log: received -> running in a child, task
               runtime ("succeeded in"), of which execute() (the result's stats.duration_ms), and the slot time
               no task ran in (ack, result, fetching and dispatching the next message).
  CPU          CPU ms per run during the rounds, from /proc: the whole machine (other people's load included),
               the worker's main process and pool children, dockerd, containerd, this process; and how busy
               the machine's CPUs were. Near 100% busy, every extra CPU ms per run costs throughput.
  profile      `--profile-runs` runs of tasks.service.execute in this process (the same isolation calls in
               the same order, no Celery) at the same concurrency with every stage timed, and every Docker API
               request timed by endpoint next to the plain loop's. Requests overlap under concurrency, so their
               milliseconds add up to more than the wall time.
Results are polled client-side: one Redis MGET over all pending result keys every 10 ms, time.monotonic() stamps.
At the end it prints how many volumes and containers labelled `studio.managed=true` this benchmark's tenants left
(and removes them and any plain-loop container).
"""

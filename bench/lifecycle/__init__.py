"""Benchmark of one volume's lifecycle: ours vs the seed's docker-CLI approach vs the raw-SDK floor.

Run:  .venv/bin/python -m bench.lifecycle [--runs 20] [--big-mib 1024] [--skip-big] [--profile-runs 10]
      (from the repository root; a short pass: --runs 3 --big-mib 64 --profile-runs 2)

Everything runs in one process on one machine (the big-file phase in a fresh child process, so its
peak RSS is its own). Each iteration of the small-file phases creates a volume, writes the inputs plus
the tool's output `results.json` (so that every variant has something to read back), reads
`results.json` back, and removes everything: "2 files" writes 3 files, "20 files" writes 21.
After 2 warm-up rounds the variants run round-robin, the starting variant rotating per round, so
machine drift hits all alike. Nothing is asserted: the tables show the numbers and each target.

Variants:
  ours   IsolatedContainerVolume: initialize(files), read_files(["results.json"]), cleanup().
  seed   the seed's approach through the docker CLI: `volume create`, one `docker run ... cat > FILE`
         per file written, one `chmod -R 777`, one `docker run ... cat FILE` per file read,
         `volume rm` (busybox instead of alpine; its containers get our labels so a Ctrl-C leaves
         nothing the reaper cannot find).
  floor  the fewest raw SDK calls doing the same job: create volume, create helper container (never
         started), put_archive, get_archive, remove container, remove volume.

Columns: median and p90 are milliseconds per iteration; "x floor" is the median divided by the
floor's median for the same number of files; "x ours 2 files" divides by ours' 2-file median.
Machines here are noisy: read the ratios, not the absolute times.
The profile table comes from a separate, shorter pass with every HTTP request to the engine timed
(to response headers; a streamed body is read after) and every docker CLI command timed; its
"client side" row is the mean iteration time minus the time spent inside those calls.
"""

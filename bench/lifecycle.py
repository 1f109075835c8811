"""Benchmark of one volume's lifecycle: ours vs the seed's docker-CLI approach vs the raw-SDK floor.

Run:  .venv/bin/python bench/lifecycle.py [--runs 20] [--big-mib 1024] [--skip-big] [--profile-runs 10]

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

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import platform
import re
import resource
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import docker
import docker.errors
from docker.types import Mount
from rich.console import Console
from rich.table import Table

from isolation import IsolatedContainerVolume
from isolation.engine import HELPER_MOUNT, helper_image_ref
from isolation.naming import DEFAULT_LABEL_PREFIX, new_identity

BUSYBOX = "toolrunner-busybox:local"
OUTPUT = "results.json"
WARMUP_ROUNDS = 2
MIB = 1 << 20
OURS2, SEED2, FLOOR2, OURS20, FLOOR20 = "ours", "seed", "floor", "ours, 20 files", "floor, 20 files"
TARGET_OURS_VS_FLOOR, TARGET_SPEEDUP, TARGET_20_VS_2, TARGET_RSS_MIB = 1.2, 3.5, 1.3, 150.0

Variant = Callable[[], bytes]
Call = tuple[str, float]


class BenchError(RuntimeError):
    """Raised when a variant did not do the job (wrong bytes read back, a failed docker command)."""


@dataclass
class CallLog:
    """Every timed Docker API request or docker CLI command, in order: (what, milliseconds)."""

    calls: list[Call] = field(default_factory=list)

    def attach(self, client: Any) -> None:
        """Time every HTTP request this client sends (the instance attribute shadows Session.send)."""
        send = client.api.send

        def timed_send(request: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return send(request, **kwargs)
            finally:
                self.calls.append((endpoint(request.method, request.url), _ms_since(start)))

        client.api.send = timed_send


@dataclass(frozen=True)
class Bench:
    """What every variant needs: a client, the tenant id labelling all we create, an optional call log."""

    client: Any
    tenant: str
    log: CallLog | None = None


@dataclass(frozen=True)
class Sample:
    """One timed iteration and the calls it made (empty unless a CallLog was attached)."""

    ms: float
    calls: tuple[Call, ...] = ()


def endpoint(method: str, url: str) -> str:
    """`POST /containers/{id}/archive` from a full engine URL: version prefix, ids and query dropped."""
    parts = re.sub(r"^/v\d+\.\d+", "", urlsplit(url).path).split("/")
    if len(parts) > 2 and parts[1] in ("containers", "volumes") and parts[2] not in ("create", "json"):
        parts[2] = "{id}"
    return f"{method} {'/'.join(parts)}"


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


# --- the files ---------------------------------------------------------------------------------


def small_files(inputs: int) -> dict[str, bytes]:
    """targets.txt (~1 KB), resolvers.txt (~200 B), more ~1 KB inputs up to `inputs`, then results.json."""
    targets = "".join(f"host{i:03d}.example.test\n" for i in range(48)).encode()
    files = {"targets.txt": targets, "resolvers.txt": "".join(f"10.0.0.{i}\n" for i in range(1, 21)).encode()}
    files.update({f"input-{i:02d}.txt": targets for i in range(3, inputs + 1)})
    files[OUTPUT] = json.dumps([{"host": f"host{i:03d}.example.test", "a": ["10.0.0.1"]} for i in range(6)]).encode()
    return files


def tar_of(files: Mapping[str, bytes]) -> bytes:
    """An uncompressed tar of the files, root-owned 0644, built in memory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def untar_one(data: bytes, name: str) -> bytes:
    """The bytes of one regular file in a tar."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as archive:
        member = archive.extractfile(name)
        if member is None:
            raise BenchError(f"{name} is not a regular file in the archive")
        return member.read()


# --- the variants --------------------------------------------------------------------------------


def ours(bench: Bench, files: Mapping[str, bytes]) -> bytes:
    """The module under test, used the way a task uses it."""
    with IsolatedContainerVolume(bench.tenant, secrets.token_hex(4), bench.client) as volume:
        volume.initialize(files)
        return volume.read_files([OUTPUT])[OUTPUT]


def floor(bench: Bench, files: Mapping[str, bytes]) -> bytes:
    """The fewest raw SDK calls that do the same job: six requests, no checks, no streaming."""
    api, identity = bench.client.api, new_identity(bench.tenant, secrets.token_hex(4))
    api.create_volume(identity.name, driver="local", labels=identity.labels())
    try:
        mounts = [Mount(target=HELPER_MOUNT, source=identity.name, type="volume")]
        host_config = api.create_host_config(mounts=mounts, network_mode="none")
        options = {"labels": identity.labels(), "network_disabled": True, "host_config": host_config}
        helper = api.create_container(helper_image_ref(), ["/nonexistent"], **options)["Id"]
        try:
            api.put_archive(helper, HELPER_MOUNT, tar_of(files))
            chunks, _stat = api.get_archive(helper, f"{HELPER_MOUNT}/{OUTPUT}")
            return untar_one(b"".join(chunks), OUTPUT)
        finally:
            api.remove_container(helper, force=True)
    finally:
        api.remove_volume(identity.name)


def seed(bench: Bench, files: Mapping[str, bytes]) -> bytes:
    """The seed's approach: a `docker run` per file written and per file read, all through the CLI."""
    identity = new_identity(bench.tenant, secrets.token_hex(4))
    labels = {k: v for k, v in identity.labels().items() if not k.endswith(".nonce")}
    cli(bench, "volume create", ["volume", "create", *(f"--label={k}={v}" for k, v in labels.items()), identity.name])
    # Not in the seed: labels on its containers, so that the reaper finds any a Ctrl-C leaves behind.
    reapable = [f"--label={k}={labels[k]}" for k in (f"{identity.prefix}.managed", f"{identity.prefix}.tenant")]
    run = ["run", "--rm", "--network=none", *reapable, "-v", f"{identity.name}:/data"]
    try:
        for name, data in files.items():
            script = f"cat > /data/{shlex.quote(name)}"
            cli(bench, "run cat > FILE", [*run, "-i", BUSYBOX, "sh", "-c", script], stdin=data)
        cli(bench, "run chmod -R 777", [*run, BUSYBOX, "chmod", "-R", "777", "/data"])
        return cli(bench, "run cat FILE", [*run, BUSYBOX, "cat", f"/data/{OUTPUT}"])
    finally:
        cli(bench, "volume rm", ["volume", "rm", identity.name])


def cli(bench: Bench, step: str, args: list[str], stdin: bytes = b"") -> bytes:
    """Run one docker CLI command, timing it as `step` when profiling; its stdout."""
    start = time.perf_counter()
    done = subprocess.run(["docker", *args], input=stdin, capture_output=True, check=False)
    if bench.log is not None:
        bench.log.calls.append((f"docker {step}", _ms_since(start)))
    if done.returncode:
        raise BenchError(f"docker {' '.join(args[:2])} failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def variants(bench: Bench) -> dict[str, Variant]:
    """Every small-file variant, in the order of the first round (ours first: it provisions the helper)."""
    two, twenty = small_files(2), small_files(20)
    return {
        OURS2: partial(ours, bench, two),
        SEED2: partial(seed, bench, two),
        FLOOR2: partial(floor, bench, two),
        OURS20: partial(ours, bench, twenty),
        FLOOR20: partial(floor, bench, twenty),
    }


# --- measuring -----------------------------------------------------------------------------------


def measure(bench: Bench, chosen: Mapping[str, Variant], runs: int, console: Console) -> dict[str, list[Sample]]:
    """Warm up, then run every variant once per round, rotating which goes first; samples per variant."""
    names, expected = list(chosen), small_files(2)[OUTPUT]
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    with console.status("") as status:
        for round_no in range(WARMUP_ROUNDS + runs):
            status.update(f"round {round_no + 1 - WARMUP_ROUNDS} of {runs}" if round_no >= WARMUP_ROUNDS else "warm-up")
            shift = round_no % len(names)
            for name in names[shift:] + names[:shift]:
                sample = timed(bench, chosen[name], name, expected)
                if round_no >= WARMUP_ROUNDS:
                    samples[name].append(sample)
    return samples


def timed(bench: Bench, variant: Variant, name: str, expected: bytes) -> Sample:
    """Run a variant once; its time and, when profiling, the calls it made."""
    first_call = len(bench.log.calls) if bench.log else 0
    start = time.perf_counter()
    got = variant()
    elapsed = _ms_since(start)
    if got != expected:
        raise BenchError(f"{name} read back {len(got)} bytes that differ from what was written")
    return Sample(elapsed, tuple(bench.log.calls[first_call:]) if bench.log else ())


def median(samples: list[Sample]) -> float:
    return statistics.median(s.ms for s in samples)


def p90(samples: list[Sample]) -> float:
    values = [s.ms for s in samples]
    return statistics.quantiles(values, n=10, method="inclusive")[8] if len(values) > 1 else values[0]


# --- the big file, in a child process ------------------------------------------------------------


def write_pattern(path: Path, mib: int) -> str:
    """Write `mib` MiB of real (not sparse) data, each 1 MiB block distinct; its sha256."""
    digest, block = hashlib.sha256(), bytearray(os.urandom(MIB))
    with path.open("wb") as fh:
        for index in range(mib):
            block[:8] = index.to_bytes(8, "little")
            digest.update(block)
            fh.write(block)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def big_round_trip(client: Any, tenant: str, mib: int) -> dict[str, Any]:
    """Stream a file into a fresh volume and back out to disk; timings, peak RSS and both hashes."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-lifecycle-"))
    try:
        source, size = workdir / "big.bin", mib * MIB
        result: dict[str, Any] = {"bytes": size, "sha_source": write_pattern(source, mib)}
        result["rss_before_mib"] = peak_rss_mib()
        volume = IsolatedContainerVolume(
            tenant, "big", client, max_file_bytes=size, max_total_bytes=size, read_timeout=3600
        )
        with volume:
            start = time.perf_counter()
            volume.initialize({"big.bin": source})
            result["in_ms"], start = _ms_since(start), time.perf_counter()
            volume.copy_files_to(["big.bin"], workdir / "out")
            result["out_ms"] = _ms_since(start)
        result["peak_rss_mib"] = peak_rss_mib()
        result["sha_copy"] = sha256_of(workdir / "out" / "big.bin")
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_big_child(tenant: str, mib: int) -> dict[str, Any]:
    """Run the big round trip in a fresh interpreter so its peak RSS reflects only the streaming."""
    command = [sys.executable, __file__, "--only-big", "--big-mib", str(mib), "--tenant", tenant]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
        try:
            out, _ = child.communicate()
        except BaseException as exc:
            # A terminal's Ctrl-C reached the child too; anything else must be passed on. Let it clean up.
            if not isinstance(exc, KeyboardInterrupt):
                child.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=60)
            raise
    if child.returncode:
        raise BenchError(f"the big-file child process failed with exit code {child.returncode}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


# --- cleaning up ---------------------------------------------------------------------------------


def managed_filter(tenant: str | None) -> dict[str, list[str]]:
    labels = [f"{DEFAULT_LABEL_PREFIX}.managed=true"]
    return {"label": labels + ([f"{DEFAULT_LABEL_PREFIX}.tenant={tenant}"] if tenant else [])}


def count_volumes(client: Any, tenant: str | None) -> int:
    return len(client.api.volumes(filters=managed_filter(tenant)).get("Volumes") or [])


def reap(client: Any, tenant: str) -> int:
    """Force-remove every container, then every volume, labelled with this run's tenant; volumes found."""
    for holder in client.api.containers(all=True, filters=managed_filter(tenant)):
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(holder["Id"], force=True)
    volumes = client.api.volumes(filters=managed_filter(tenant)).get("Volumes") or []
    for volume in volumes:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_volume(volume["Name"], force=True)
    return len(volumes)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so every `finally` (and the reaper) still runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


# --- tables --------------------------------------------------------------------------------------


def table(title: str, *columns: str) -> Table:
    result = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        result.add_column(column, justify="left" if index == 0 else "right")
    return result


def machine_table(client: Any) -> Table:
    server = client.version()
    result = table("Machine", "what", "value")
    result.add_row("Docker Engine", str(server.get("Version")))
    result.add_row("engine API version (min)", f"{server.get('ApiVersion')} ({server.get('MinAPIVersion')})")
    result.add_row("API version used by the SDK", str(client.api.api_version))
    result.add_row("docker SDK / Python", f"{docker.__version__} / {platform.python_version()}")
    result.add_row("CPUs (usable by this process)", f"{os.cpu_count()} ({len(os.sched_getaffinity(0))})")
    return result


def small_table(samples: Mapping[str, list[Sample]], runs: int) -> Table:
    result = table(f"Small files: one full lifecycle, {runs} interleaved runs", "variant", "median ms", "p90 ms")
    result.add_column("x floor", justify="right")
    result.add_column("x ours 2 files", justify="right")
    for name, floor_name in ((OURS2, FLOOR2), (SEED2, FLOOR2), (FLOOR2, FLOOR2), (OURS20, FLOOR20), (FLOOR20, FLOOR20)):
        rows = samples[name]
        ratio, vs_ours = median(rows) / median(samples[floor_name]), median(rows) / median(samples[OURS2])
        label = name if "20" in name else f"{name}, 2 files"
        result.add_row(label, f"{median(rows):.1f}", f"{p90(rows):.1f}", f"{ratio:.2f}", f"{vs_ours:.2f}")
    result.caption = f"seed / ours speed-up: {median(samples[SEED2]) / median(samples[OURS2]):.2f}x"
    return result


def big_table(big: Mapping[str, Any]) -> Table:
    mb = big["bytes"] / 1e6
    result = table(f"Big file: {big['bytes'] // MIB} MiB in and out (fresh process)", "what", "value")
    result.add_row("initialize (in): s, MB/s", f"{big['in_ms'] / 1000:.2f} s, {mb / big['in_ms'] * 1000:.0f} MB/s")
    result.add_row(
        "copy_files_to (out): s, MB/s", f"{big['out_ms'] / 1000:.2f} s, {mb / big['out_ms'] * 1000:.0f} MB/s"
    )
    result.add_row("peak RSS before the round trip", f"{big['rss_before_mib']:.1f} MiB")
    result.add_row("peak RSS after the round trip", f"{big['peak_rss_mib']:.1f} MiB")
    result.add_row("sha256 of the original", big["sha_source"])
    result.add_row("sha256 of the copy", big["sha_copy"])
    result.add_row("copy identical", "yes" if big["sha_source"] == big["sha_copy"] else "NO")
    result.caption = "MB = 10^6 bytes; 'in' includes creating the volume and the helper"
    return result


def targets_table(samples: Mapping[str, list[Sample]], big: Mapping[str, Any] | None) -> Table:
    result = table("Targets (shown, not asserted)", "target", "measured", "status")
    ours2 = median(samples[OURS2])
    rows = [  # (target, measured, unit, limit, whether the measured value must be at least the limit)
        ("ours <= {:g}x floor (2 files)", ours2 / median(samples[FLOOR2]), "x", TARGET_OURS_VS_FLOOR, False),
        ("seed / ours >= {:g}x", median(samples[SEED2]) / ours2, "x", TARGET_SPEEDUP, True),
        ("ours 20 files <= {:g}x ours 2 files", median(samples[OURS20]) / ours2, "x", TARGET_20_VS_2, False),
    ]
    if big is not None:
        rows.append(("big round trip peak RSS <= {:g} MiB", big["peak_rss_mib"], " MiB", TARGET_RSS_MIB, False))
    for what, value, unit, limit, at_least in rows:
        met = value >= limit if at_least else value <= limit
        result.add_row(what.format(limit), f"{value:.2f}{unit}", "met" if met else "[bold red]NOT met[/]")
    return result


def profile_table(samples: Mapping[str, list[Sample]], runs: int) -> Table:
    result = table(f"Where the time goes: calls per iteration ({runs} profiled runs)", "variant / call", "calls")
    for column in ("median ms per call", "mean ms per iteration"):
        result.add_column(column, justify="right")
    for name, rows in samples.items():
        per_call: dict[str, list[float]] = {}
        for sample in rows:
            for what, ms in sample.calls:
                per_call.setdefault(what, []).append(ms)
        result.add_row(f"[bold]{name}[/]", "", "", f"[bold]{statistics.fmean(s.ms for s in rows):.1f}[/]")
        for what, times in per_call.items():
            result.add_row(
                f"  {what}",
                f"{len(times) / len(rows):g}",
                f"{statistics.median(times):.1f}",
                f"{sum(times) / len(rows):.1f}",
            )
        outside = statistics.fmean(s.ms for s in rows) - sum(map(sum, per_call.values())) / len(rows)
        result.add_row("  client side (not inside a call)", "", "", f"{outside:.1f}", end_section=True)
    return result


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=20, help="measured rounds after 2 warm-up rounds")
    parser.add_argument("--big-mib", type=int, default=1024, help="size of the big file in MiB")
    parser.add_argument("--skip-big", action="store_true", help="skip the big-file phase")
    parser.add_argument("--profile-runs", type=int, default=10, help="rounds of the profiled pass (0: skip it)")
    parser.add_argument("--only-big", action="store_true", help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--tenant", default=f"bench-lifecycle-{secrets.token_hex(4)}", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main_child(args: argparse.Namespace) -> None:
    """The big-file phase alone; prints one JSON line for the parent."""
    client = docker.from_env()
    try:
        print(json.dumps(big_round_trip(client, args.tenant, args.big_mib)))
    finally:
        reap(client, args.tenant)


def run_phases(args: argparse.Namespace, client: Any, console: Console) -> None:
    bench = Bench(client, args.tenant)
    console.print(machine_table(client))
    samples = measure(bench, variants(bench), args.runs, console)
    console.print(small_table(samples, args.runs))
    big = None
    if not args.skip_big:
        with console.status(f"streaming {args.big_mib} MiB in and out in a child process"):
            big = run_big_child(args.tenant, args.big_mib)
        console.print(big_table(big))
    console.print(targets_table(samples, big))
    if args.profile_runs > 0:
        profiled = Bench(docker.from_env(), args.tenant, CallLog())
        assert profiled.log is not None
        profiled.log.attach(profiled.client)
        console.print(
            profile_table(measure(profiled, variants(profiled), args.profile_runs, console), args.profile_runs)
        )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    exit_on_sigterm()
    if args.only_big:
        main_child(args)
        return
    # Piped output gets rich's default of 80 columns, too narrow for the profile table.
    console, client = Console(width=None if sys.stdout.isatty() else 120), docker.from_env()
    try:
        run_phases(args, client, console)
    finally:
        leaked = reap(client, args.tenant)
        left = count_volumes(client, args.tenant)
        console.print(
            f"Volumes labelled {DEFAULT_LABEL_PREFIX}.managed=true by this run (tenant {args.tenant}): "
            f"{leaked} found at the end and reaped, {left} left (0 expected). "
            f"All managed volumes on the engine, other users' included: {count_volumes(client, None)}."
        )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)  # everything was already removed by the `finally` blocks; no traceback needed

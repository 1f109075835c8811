"""The lifecycle benchmark's small-file variants (ours, the seed's docker CLI, the raw-SDK floor) and their timing."""

from __future__ import annotations

import io
import json
import secrets
import shlex
import statistics
import subprocess
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from docker.types import Mount
from rich.console import Console

from bench.common import BUSYBOX, BenchError, Call, CallLog, ms_since, percentile
from isolation import IsolatedContainerVolume
from isolation.engine import HELPER_MOUNT, helper_image_ref
from isolation.naming import new_identity

OUTPUT = "results.json"
WARMUP_ROUNDS = 2
OURS2, SEED2, FLOOR2, OURS20, FLOOR20 = "ours", "seed", "floor", "ours, 20 files", "floor, 20 files"

Variant = Callable[[], bytes]


@dataclass(frozen=True)
class LifecycleBench:
    """What every variant needs: a client, the tenant id labelling all we create, an optional call log."""

    client: Any
    tenant: str
    log: CallLog | None = None


@dataclass(frozen=True)
class Sample:
    """One timed iteration and the calls it made (empty unless a CallLog was attached)."""

    ms: float
    calls: tuple[Call, ...] = ()


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


def ours(bench: LifecycleBench, files: Mapping[str, bytes]) -> bytes:
    """The module under test, used the way a task uses it."""
    with IsolatedContainerVolume(bench.tenant, secrets.token_hex(4), bench.client) as volume:
        volume.initialize(files)
        return volume.read_files([OUTPUT])[OUTPUT]


def floor(bench: LifecycleBench, files: Mapping[str, bytes]) -> bytes:
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


def seed(bench: LifecycleBench, files: Mapping[str, bytes]) -> bytes:
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


def cli(bench: LifecycleBench, step: str, args: list[str], stdin: bytes = b"") -> bytes:
    """Run one docker CLI command, timing it as `step` when profiling; its stdout."""
    start = time.perf_counter()
    done = subprocess.run(["docker", *args], input=stdin, capture_output=True, check=False)
    if bench.log is not None:
        bench.log.calls.append((f"docker {step}", ms_since(start)))
    if done.returncode:
        raise BenchError(f"docker {' '.join(args[:2])} failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def variants(bench: LifecycleBench) -> dict[str, Variant]:
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


def measure(
    bench: LifecycleBench, chosen: Mapping[str, Variant], runs: int, console: Console
) -> dict[str, list[Sample]]:
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


def timed(bench: LifecycleBench, variant: Variant, name: str, expected: bytes) -> Sample:
    """Run a variant once; its time and, when profiling, the calls it made."""
    first_call = len(bench.log.calls) if bench.log else 0
    start = time.perf_counter()
    got = variant()
    elapsed = ms_since(start)
    if got != expected:
        raise BenchError(f"{name} read back {len(got)} bytes that differ from what was written")
    return Sample(elapsed, tuple(bench.log.calls[first_call:]) if bench.log else ())


def median(samples: list[Sample]) -> float:
    """The median of the samples' milliseconds."""
    return statistics.median(s.ms for s in samples)


def p90(samples: list[Sample]) -> float:
    """The 90th percentile of the samples' milliseconds."""
    return percentile([s.ms for s in samples], 90)

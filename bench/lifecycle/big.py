"""The lifecycle benchmark's big-file phase: a large file streamed in and out, run in a fresh child process."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import BenchError, ms_since
from isolation import IsolatedContainerVolume

MIB = 1 << 20
ROOT = Path(__file__).resolve().parents[2]  # the child runs `python -m bench.lifecycle` from the repository root


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
    """The sha256 of a file, read 1 MiB at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def peak_rss_mib() -> float:
    """This process's peak resident set size so far."""
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
            result["in_ms"], start = ms_since(start), time.perf_counter()
            volume.copy_files_to(["big.bin"], workdir / "out")
            result["out_ms"] = ms_since(start)
        result["peak_rss_mib"] = peak_rss_mib()
        result["sha_copy"] = sha256_of(workdir / "out" / "big.bin")
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_big_child(tenant: str, mib: int) -> dict[str, Any]:
    """Run the big round trip in a fresh interpreter so its peak RSS reflects only the streaming."""
    # The child is the benchmark itself, run with --only-big.
    command = [sys.executable, "-m", "bench.lifecycle", "--only-big", "--big-mib", str(mib), "--tenant", tenant]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as child:
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

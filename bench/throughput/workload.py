"""What the throughput benchmark runs: a busybox no-op or nmap from the tools image against two local ports.

Every variant runs the same image and the same command. The bare floor is `containers.run` with no volume (its
report goes to stdout); the file-moving floor adds what a run must do to hand files in and out: one volume, one
put_archive (the input file and a directory the non-root tool may write), the run, one get_archive, removal.
"""

from __future__ import annotations

import contextlib
import io
import socket
import tarfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.common import BUSYBOX
from isolation import defaults

TOOLS_IMAGE = "toolrunner-tools:local"  # scripts/build-images: Debian's nmap, as the suite runs it
WORK = "/work"  # where the file-moving floor mounts its one volume
ToolCheck = Callable[[Any], bool]


@dataclass(frozen=True)
class Workload:
    """One tool as the three variants run it: toolrunner's tool and params, the floors' image and argv."""

    name: str
    image: str
    entrypoint: Sequence[str]
    bare_argv: Sequence[str]  # no files: the report goes to stdout
    files_argv: Sequence[str]  # reads WORK/<input_name>, writes WORK/out/<output_name>
    input_name: str
    input_bytes: bytes
    output_name: str
    tool: str
    params: Mapping[str, Any]
    network: str
    report_ok: Callable[[bytes], bool]  # the floors' check of the report bytes
    findings_ok: ToolCheck  # toolrunner's check of a result's findings
    worker_env: Mapping[str, str] = field(default_factory=dict)
    user: str = defaults.TOOL_USER


def busybox() -> Workload:
    """The no-op: `echo ok` into a file (toolrunner's test-only `script` tool), no network."""
    return Workload(
        name="busybox",
        image=BUSYBOX,
        entrypoint=["sh"],
        bare_argv=["-c", "echo ok"],
        files_argv=["-c", f"cat {WORK}/in.txt > {WORK}/out/out.txt"],
        input_name="in.txt",
        input_bytes=b"ok\n",
        output_name="out.txt",
        tool="script",
        params={"script": "echo ok > /outputs/out.txt", "outputs": ["out.txt"]},
        network="none",
        report_ok=lambda data: data == b"ok\n",
        findings_ok=lambda findings: findings == [{"file": "out.txt", "line": "ok"}],
    )


def nmap(ports: Sequence[int]) -> Workload:
    """nmap's connect scan (tasks/tools/nmap.py's argv) of `ports` on 127.0.0.1, on the host's network."""
    listed = ",".join(map(str, ports))
    wanted = {(port, "open") for port in ports}
    return Workload(
        name="nmap",
        image=TOOLS_IMAGE,
        entrypoint=["nmap"],
        bare_argv=["-sT", "-Pn", "-n", "-oX", "-", "-p", listed, "127.0.0.1"],
        files_argv=["-sT", "-Pn", "-n", "-oX", f"{WORK}/out/nmap.xml", "-iL", f"{WORK}/targets.txt", "-p", listed],
        input_name="targets.txt",
        input_bytes=b"127.0.0.1\n",
        output_name="nmap.xml",
        tool="nmap",
        params={"targets": ["127.0.0.1"], "ports": listed},
        network="host",
        report_ok=lambda data: data.count(b'state="open"') == len(ports) and data.rstrip().endswith(b"</nmaprun>"),
        findings_ok=lambda findings: {(f.get("port"), f.get("state")) for f in findings or []} == wanted,
        worker_env={"TOOLRUNNER_TOOL_NETWORK": "host", "TOOLRUNNER_IMAGE_NMAP": TOOLS_IMAGE},
    )


def inputs_archive(workload: Workload) -> bytes:
    """The file-moving floor's one upload: the input file and an `out` directory the tool's uid may write."""
    uid, gid = (int(part) for part in workload.user.split(":"))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        directory = tarfile.TarInfo("out")
        directory.type, directory.mode, directory.uid, directory.gid = tarfile.DIRTYPE, 0o755, uid, gid
        archive.addfile(directory)
        item = tarfile.TarInfo(workload.input_name)
        item.size, item.mode = len(workload.input_bytes), 0o644
        archive.addfile(item, io.BytesIO(workload.input_bytes))
    return buffer.getvalue()


def archived_file(chunks: Iterator[bytes]) -> bytes:
    """The one regular file of a get_archive stream."""
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks)), mode="r") as archive:
        member = next(m for m in archive.getmembers() if m.isfile())
        extracted = archive.extractfile(member)
        return extracted.read() if extracted is not None else b""


@contextlib.contextmanager
def listening_ports(count: int) -> Iterator[list[int]]:
    """`count` TCP listeners on 127.0.0.1 that accept and close every connection, until the block ends."""
    sockets = [socket.create_server(("127.0.0.1", 0), backlog=128) for _ in range(count)]
    stop = threading.Event()
    threads = [threading.Thread(target=_accept, args=(s, stop), daemon=True) for s in sockets]
    for thread in threads:
        thread.start()
    try:
        yield [int(s.getsockname()[1]) for s in sockets]
    finally:
        stop.set()
        for sock in sockets:
            sock.close()


def _accept(sock: socket.socket, stop: threading.Event) -> None:
    sock.settimeout(0.5)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError, OSError):
            connection, _ = sock.accept()
            connection.close()

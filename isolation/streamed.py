"""A run whose files travel in its own tool container: no helper container and no archive call on the common path.

On the Engine these machines run (20.10) every archive call re-executes dockerd in a chroot: ~80-90 ms of CPU and
~160 ms of wall time each, more than the rest of a run's engine work together (`bench.throughput --archive-calls`).
An image labelled `toolrunner.io=stream-v1` promises /bin/sh, base64, tar, setsid and head, and empty,
world-writable /inputs and /outputs directories (each run's volumes copy them up); its tool then runs under a small
POSIX sh entry program (ENTRY, below):

- the inputs, as one tar of at most INLINE_INPUT_BYTES, ride base64-encoded in the create call's environment; the
  entry program unpacks them into the inputs volume and drops them from the environment before the tool starts;
- the tool runs in a session of its own; when it exits, whatever it left running is killed (as the engine does when
  a container's first process exits); then the entry program writes a marker line with the tool's exit code and a
  tar of the requested outputs to stdout. The worker reads that through an attach made before the start, and the
  tar through the same reader as an engine archive (isolation.tarread: links, devices, FIFOs and sparse files
  refused, the caps enforced as it reads).

Both volumes are the tool container's anonymous volumes, labelled through its mounts and checked by nonce before
the start: the container's removal with `v` removes them. Engine calls: the create, the volume list, the attach, the
start and the removal, plus an inspect when the tool exits non-zero (for OOMKilled). When no marker comes (the tool
timed out, the run was interrupted, the entry program died), the outputs are read from the exited container's mount
with one get_archive, as RunWorkspace reads them.

What changes against RunWorkspace: the stream carries what the tool's own user can read; the tool could rewrite its
inputs (the worker never reads them back); the tool's stdout is read live instead of from a log, keeping only the
last `limits.log_max_size` of it, as the log did. A hostile tool can forge the marker: that only chooses its own
outputs, which it can do anyway, and they pass the same checks.
"""

from __future__ import annotations

import base64
import logging
import re
import secrets
import struct
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import suppress
from dataclasses import replace
from typing import Any

import docker
import docker.errors
from docker.types import Mount

from isolation.archive import Content, prepare_inputs, tar_stream
from isolation.container import (
    ContainerResult,
    ContainerSpec,
    Watch,
    create_container,
    kill_container,
    wait_exit,
)
from isolation.engine import translate
from isolation.errors import (
    DockerUnavailableError,
    IsolationError,
    OutputReadError,
    OutputReadTimeoutError,
    VolumeConflictError,
    VolumeStateError,
)
from isolation.helper import read_mount, remove_volume
from isolation.naming import Label, prefixed, validate_filenames
from isolation.tarread import ChunkReader, ReadLimits, Sink, read_archive
from isolation.workspace import CLEANUP_ERRORS, RunWorkspace

logger = logging.getLogger(__name__)

STREAM_LABEL = "toolrunner.io"
STREAM_VERSION = "stream-v1"
# One environment string may hold 128 KiB (MAX_ARG_STRLEN); base64 makes 64 KiB of tar 87,384 characters.
INLINE_INPUT_BYTES = 64 << 10

# $1... is the tool's argv. set -f: output names are never globbed; IFS is a newline only for the names' loop. In a
# shell without job control (POSIX: a non-interactive one) a background job stays in the shell's process group, so
# setsid execs the tool in place as the leader of a new one ($! is the tool) and kill -9 -$pid ends what it left.
ENTRY = r"""set -f
mark=$TOOLRUNNER_IO_MARK in_dir=$TOOLRUNNER_IO_IN out_dir=$TOOLRUNNER_IO_OUT outs=$TOOLRUNNER_IO_OUTPUTS
if [ -n "${TOOLRUNNER_IO_INPUTS-}" ]; then
  printf '%s' "$TOOLRUNNER_IO_INPUTS" | base64 -d | tar -x -f - -C "$in_dir" ||
    { echo "toolrunner-io: could not unpack the inputs into $in_dir" >&2; exit 125; }
fi
unset TOOLRUNNER_IO_MARK TOOLRUNNER_IO_IN TOOLRUNNER_IO_OUT TOOLRUNNER_IO_OUTPUTS TOOLRUNNER_IO_INPUTS
setsid "$@" &
pid=$!
wait "$pid"
rc=$?
kill -9 "-$pid" 2>/dev/null
cd "$out_dir" || exit 125
set --
IFS='
'
for name in $outs; do
  if [ -e "$name" ] || [ -L "$name" ]; then set -- "$@" "$name"; fi
done
printf '%s %d\n' "$mark" "$rc"
if [ "$#" -gt 0 ]; then tar -c -f - -- "$@"; else head -c 1024 /dev/zero; fi
exit "$rc"
"""

_HEADER = struct.Struct(">BxxxL")  # an attach frame: stream (1 stdout, 2 stderr), three zero bytes, payload size
_STDOUT, _STDERR = 1, 2
_RECV = 1 << 20
_RC_DIGITS = 4  # room for the exit code after the marker: 0-255 and its newline
_MAX_RC = 255
_NO_WATCH = Watch()
_EXIT_GRACE = 10.0  # seconds a container that sent its marker line has to exit before it is killed
_SIZE = re.compile(r"(\d+(?:\.\d+)?)([kmgt]?)b?", re.IGNORECASE)


def streams(labels: Mapping[str, str]) -> bool:
    """Whether an image with these labels can carry a run's files in its own container (see the module's doc)."""
    return labels.get(STREAM_LABEL) == STREAM_VERSION


def inline_inputs(files: Mapping[str, Content]) -> str | None:
    """The inputs as the base64 text of one tar, or None when that tar would exceed INLINE_INPUT_BYTES.

    Names are validated here, before any engine call, as RunWorkspace.open validates them.
    """
    inputs = prepare_inputs(files)
    try:
        if not inputs:
            return ""
        if sum(item.size + 3 * 512 for item in inputs) > INLINE_INPUT_BYTES:
            return None
        archive = b"".join(tar_stream(inputs))
    finally:
        for item in inputs:
            item.release()
    return base64.b64encode(archive).decode("ascii") if len(archive) <= INLINE_INPUT_BYTES else None


def size_bytes(text: str) -> int:
    """A Docker-style size ("1m", "64k", "512") in bytes, counted in binary units."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a size: {text!r}")
    return int(float(match[1]) * (1 << {"": 0, "k": 10, "m": 20, "g": 30, "t": 40}[match[2].lower()]))


class StreamedWorkspace(RunWorkspace):
    """A run's two volumes, made by its tool container, its files carried by that container's create and stdout.

    open(inline_inputs(files), outputs=, sink=) takes the encoded inputs (no engine call); mounts() gives the
    tool's mounts; run() runs the tool and streams the outputs into sink as it ends; read_into() returns what
    arrived, or reads the outputs from the exited container when the stream did not carry them; cleanup() removes
    the container with its volumes.
    """

    def _start(self) -> None:
        super()._start()
        self._inputs = ""  # base64 of the inputs' tar
        self._outputs: list[str] = []
        self._sink: Sink | None = None
        self._at = ("", "")  # where the tool mounts inputs and outputs
        self._got: dict[str, int] | None = None  # what the stream delivered
        self._failed: Exception | None = None  # why reading the stream's outputs failed: read_into raises it

    @property
    def outputs_streamed(self) -> bool:
        """Whether the outputs came on the tool's stdout (read_into then makes no engine call)."""
        return self._got is not None or self._failed is not None

    @property
    def exists(self) -> bool:
        return self._helper is not None and self._state in ("creating", "ready")

    def open(  # type: ignore[override]
        self, inputs: str = "", *, outputs: Iterable[str] = (), sink: Sink | None = None
    ) -> None:
        """Take the inputs as inline_inputs() encoded them and name the outputs and the sink they stream into;
        nothing is made on the engine yet."""
        if self._state != "new":
            raise VolumeStateError(f"workspace {self.name} was already opened; make a new one per run")
        if len(inputs) > len(base64.b64encode(bytes(INLINE_INPUT_BYTES))):
            raise VolumeStateError(f"workspace {self.name}: the inputs exceed {INLINE_INPUT_BYTES} bytes as a tar")
        self._inputs, self._outputs, self._sink = inputs, validate_filenames(outputs), sink
        self._state = "ready"

    def mounts(self, inputs_at: str, outputs_at: str) -> list[Mount]:
        """The tool container's mounts: two anonymous labelled volumes it makes itself, both writable (its entry
        program fills the inputs), each copying up the image's world-writable directory at its first mount."""
        self._require_ready()
        self._at = (inputs_at, outputs_at)
        return [self._volume_mount("inputs", inputs_at), self._volume_mount("outputs", outputs_at)]

    def _volume_mount(self, contents: str, where: str) -> Mount:
        labels = {**self.labels, **prefixed({Label.CONTENTS: contents}, self.identity.prefix)}
        return Mount(target=where, source=None, type="volume", no_copy=False, labels=labels)

    def run(self, spec: ContainerSpec, timeout: float, *, watch: Watch = _NO_WATCH) -> ContainerResult:
        """Run spec (its mounts from mounts()) under the entry program until it ends or timeout; kill it then.

        The container is kept until cleanup(): read_into() may still read the outputs from it. Whatever stops
        this call (an interruption included) kills the container first.
        """
        self._require_ready()
        if self._helper is not None:
            raise VolumeStateError(f"workspace {self.name} already ran its tool; make a new one per run")
        client = self._connected()
        keep = size_bytes(spec.limits.log_max_size)
        mark = f"toolrunner-io-{secrets.token_hex(16)}"
        self._state, self._helper = "creating", self.name  # until the create answers, cleanup finds it by name
        with translate("run the tool container", context=spec.image):
            self._helper = self._create(client, self._wrapped(spec, mark))
            self._volumes = self._checked_volumes(client)
            self._state = "ready"
            attached = client.api.attach_socket(self._helper, params={"stdout": 1, "stderr": 1, "stream": 1})
        stream = _Stream(attached, mark.encode(), keep, watch.tail_bytes)
        started = time.monotonic()
        try:
            with translate("run the tool container", context=spec.image):
                client.api.start(self._helper)
                started = time.monotonic()
                marked, timed_out = self._follow(stream, started, timeout, watch)
                # Nothing more is read from here on: the attach is closed before any wait or kill. Left open and
                # unread, it stops the engine's copy of the container's stdout, and with it the container's exit.
                stream.close()
                state, timed_out = self._end(client, stream.rc if marked else None, timed_out, started + timeout)
        except BaseException:
            stream.close()
            self._kill_quietly(client)
            raise
        return ContainerResult(
            exit_code=None if state.get("Running") else state.get("ExitCode"),
            timed_out=timed_out,
            oom_killed=bool(state.get("OOMKilled")),
            duration_ms=int((time.monotonic() - started) * 1000),
            stdout_tail=stream.stdout_tail(),
            stderr_tail=stream.stderr_tail(),
            stdout_lines=stream.stdout_lines(),
        )

    def _create(self, client: docker.DockerClient, spec: ContainerSpec) -> str:
        try:
            return create_container(client, spec, pull=False)
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                self._helper = None  # a container of that name exists and is not ours: never remove it
                raise VolumeConflictError(f"a container named {self.name} already exists; nothing was made") from exc
            raise

    def _wrapped(self, spec: ContainerSpec, mark: str) -> ContainerSpec:
        inputs_at, outputs_at = self._at
        tops = dict.fromkeys(name.split("/")[0] for name in self._outputs)
        environment = {
            **spec.environment,
            "TOOLRUNNER_IO_MARK": mark,
            "TOOLRUNNER_IO_IN": inputs_at,
            "TOOLRUNNER_IO_OUT": outputs_at,
            "TOOLRUNNER_IO_OUTPUTS": "\n".join(tops),
            **({"TOOLRUNNER_IO_INPUTS": self._inputs} if self._inputs else {}),
        }
        return replace(
            spec,
            entrypoint=("/bin/sh", "-c", ENTRY, "toolrunner-io"),
            argv=(*spec.entrypoint, *spec.argv),
            environment=environment,
            name=self.name,
            logs=False,
        )

    def _follow(self, stream: _Stream, started: float, timeout: float, watch: Watch) -> tuple[bool, bool]:
        """Read the stream until the marker (then the outputs), its end or the deadline: (marked, timed out)."""
        deadline, next_tick = started + timeout, started + watch.tick_seconds
        while stream.rc is None and not stream.ended:
            now = time.monotonic()
            if now >= deadline:
                return False, True
            if now >= next_tick:
                if watch.on_tick is not None:
                    watch.on_tick(now - started, stream.stdout_lines())
                next_tick = now + watch.tick_seconds
            stream.pump(min(deadline, next_tick) - now)
        if stream.rc is None:
            return False, False
        self._take_outputs(stream)
        return True, False

    def _end(
        self, client: docker.DockerClient, code: int | None, timed_out: bool, deadline: float
    ) -> tuple[dict[str, Any], bool]:
        """The container's state once the stream is done with, and whether it ran past its deadline: the tool's code
        from its marker line (inspected for OOMKilled when not 0), or killed at the deadline, or waited for when the
        stream ended without a marker."""
        assert self._helper is not None
        if code == 0:
            return {"ExitCode": 0}, False
        if timed_out:
            logger.info("tool container %s timed out: killing it", self._helper[:12])
            kill_container(client, self._helper)
        elif code is not None:  # the entry program only finishes its tar: a few seconds at most, then it is killed
            wait_exit(client, self._helper, _EXIT_GRACE, time.monotonic(), _NO_WATCH)
        else:  # no marker: the stream ended with the container, or it is killed at the deadline
            left = max(deadline - time.monotonic(), 1.0)
            timed_out = wait_exit(client, self._helper, left, time.monotonic(), _NO_WATCH) is None
        state = self._inspected(client)
        if code is not None:
            state.update(ExitCode=code, Running=False)
        return state, timed_out

    def _inspected(self, client: docker.DockerClient) -> dict[str, Any]:
        """The container's state (OOMKilled is only in an inspect)."""
        assert self._helper is not None
        with translate("inspect the tool container", context=self._helper[:12]):
            return dict(client.api.inspect_container(self._helper)["State"])

    def _take_outputs(self, stream: _Stream) -> None:
        """Read the tar after the marker into the sink; any failure is kept for read_into to raise, as a read from
        the volume would have raised it then."""
        limits = self._limits
        try:
            if self._sink is None:
                raise VolumeStateError(f"workspace {self.name} was opened without a sink for its outputs")
            reader = ChunkReader(stream.outputs(time.monotonic() + limits.timeout_seconds), limits)
            self._got = read_archive(reader, set(self._outputs), False, limits, self._sink)
        except Exception as exc:
            self._failed = exc

    def _kill_quietly(self, client: docker.DockerClient) -> None:
        if self._helper is None:
            return
        try:
            kill_container(client, self._helper)
        except Exception as exc:
            logger.warning("tool container %s not killed: %s", self._helper[:12], exc)

    def read_into(
        self, names: Iterable[str], sink: Sink, *, max_file_bytes: int | None = None, max_total_bytes: int | None = None
    ) -> dict[str, int]:
        """The outputs the stream carried into sink (name -> size), or read now from the exited container's mount
        when no stream carried them; a failure of the stream's reading is raised here."""
        self._require_ready()
        wanted = validate_filenames(names)
        if self._failed is not None:
            failed, self._failed = self._failed, None
            raise failed
        if self._got is not None:
            if sorted(wanted) != sorted(self._outputs) or sink is not self._sink:
                raise VolumeStateError(f"workspace {self.name} streamed {self._outputs} into another sink")
            return dict(self._got)
        if self._helper is None or self._state != "ready":
            raise VolumeStateError(f"workspace {self.name} has not run its tool")
        limits = ReadLimits(
            max_file_bytes if max_file_bytes is not None else self._limits.max_file_bytes,
            max_total_bytes if max_total_bytes is not None else self._limits.max_total_bytes,
            self._limits.timeout_seconds,
        )
        return read_mount(self._connected(), self._helper, self._at[1], wanted, sink, limits, context=self.name)

    def _remove(self, client: docker.DockerClient, verify: bool) -> bool:
        """Remove the tool container and its volumes with it. The volumes are looked up by nonce (and removed) when
        the check that they were its own never passed, when the container was already gone (removed by another
        hand, without them perhaps), or when the caller asks."""
        if self._helper:
            with translate("remove the tool container", context=self._helper[:12]):
                try:
                    client.api.remove_container(self._helper, force=True, v=True)
                except docker.errors.NotFound:
                    verify = True
            self._helper = None
        if not verify and self._volumes:
            return True
        who = f"tenant={self.identity.tenant_id} run={self.identity.run_id}"
        left = self._listed(client)
        return all([remove_volume(client, v["Name"], self.identity.prefix, self._cleanup_timeout, who) for v in left])

    def cleanup(self, *, verify: bool = False) -> bool:
        """Remove the tool container and both volumes; never raises. Returns True when they are gone.

        An engine that does not answer is asked again for up to the cleanup timeout: the outputs may have come
        over the attach while the daemon was going down (it keeps serving an attach as it stops), and a daemon
        that restarts is back within seconds. Past that, the reaper and the sweep remove them by their labels.
        """
        if self._state in ("new", "removed") or (self._helper is None and not self._volumes):
            self._state = "removed"
            return True
        deadline, delay = time.monotonic() + self._cleanup_timeout, 0.25
        while True:
            try:
                gone = self._remove(self._connected(), verify or self._state != "ready")
                break
            except DockerUnavailableError as exc:
                if time.monotonic() + delay > deadline:
                    logger.warning("cleanup failed tenant=%s run=%s workspace=%s: %s", *self._who(), exc)
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
            except CLEANUP_ERRORS as exc:
                logger.warning("cleanup failed tenant=%s run=%s workspace=%s: %s", *self._who(), exc)
                return False
        if gone:
            self._state = "removed"
            logger.info("workspace removed tenant=%s run=%s workspace=%s", *self._who())
        return gone


class _Stream:
    """The tool container's stdout and stderr over an attach made before its start: the frames demultiplexed, the
    last `keep` bytes of stdout and `tail` bytes of stderr kept, the marker line found, the outputs handed on."""

    def __init__(self, attached: Any, mark: bytes, keep: int, tail: int) -> None:
        self._attached = attached  # holds the HTTP response: dropping it would close a TLS connection
        self._sock = getattr(attached, "_sock", attached)  # docker's SocketIO over a unix or tcp socket
        self._buffer = bytearray()
        self._needle = mark + b" "
        self._keep, self._tail = max(keep, len(self._needle) + _RC_DIGITS), tail
        self._stdout = bytearray()
        self._stderr = bytearray()
        self._scan = 0  # where the marker search resumes in _stdout
        self._pending: list[bytes] = []  # stdout after the marker line, not yet handed on
        self.rc: int | None = None  # the tool's exit code, from the marker line
        self.ended = False

    def pump(self, timeout: float) -> None:
        """Wait up to timeout for bytes: stderr into its tail, stdout into the kept window until the marker line and
        into the pending outputs after it. Raises DockerUnavailableError when the connection breaks."""
        self._sock.settimeout(max(timeout, 0.001))
        try:
            data = self._sock.recv(_RECV)
        except TimeoutError:
            return
        except OSError as exc:
            raise DockerUnavailableError(f"the tool container's attach broke off: {exc}") from exc
        if not data:
            self.ended = True
            return
        self._buffer += data
        self._frames()

    def _frames(self) -> None:
        view, offset = memoryview(self._buffer), 0
        while len(view) - offset >= _HEADER.size:
            kind, size = _HEADER.unpack_from(view, offset)
            if len(view) - offset - _HEADER.size < size:
                break
            payload = bytes(view[offset + _HEADER.size : offset + _HEADER.size + size])
            offset += _HEADER.size + size
            if kind == _STDERR:
                self._stderr += payload
                if len(self._stderr) > 2 * self._tail:
                    del self._stderr[: -self._tail or None]
            elif kind == _STDOUT and payload:
                if self.rc is None:
                    payload = self._before_mark(payload)
                if payload:
                    self._pending.append(payload)
        view.release()
        del self._buffer[:offset]

    def _before_mark(self, data: bytes) -> bytes:
        """Keep data as the tool's stdout up to the marker line; return what follows that line.

        Whatever the tool writes, what is kept stays within 2 x keep: the window is trimmed to its last `keep` bytes
        once past that, a marker line still being written included (it is shorter than `keep`).
        """
        self._stdout += data
        pending: int | None = None  # where a marker line still being written starts
        at = self._stdout.find(self._needle, self._scan)
        while at >= 0:
            start = at + len(self._needle)
            newline = self._stdout.find(b"\n", start, start + _RC_DIGITS)
            digits = bytes(self._stdout[start:newline]) if newline >= 0 else b""
            if newline >= 0 and digits.isdigit() and int(digits) <= _MAX_RC:
                self.rc, after = int(digits), bytes(self._stdout[newline + 1 :])
                del self._stdout[at:]
                return after
            if newline < 0 and len(self._stdout) - at < len(self._needle) + _RC_DIGITS:
                pending = at  # the rest of the line is still to come
                break
            at = self._stdout.find(self._needle, at + 1)
        if len(self._stdout) > 2 * self._keep:
            cut = len(self._stdout) - self._keep
            del self._stdout[:cut]
            pending = None if pending is None else pending - cut
        self._scan = pending if pending is not None else max(0, len(self._stdout) - len(self._needle) - _RC_DIGITS)
        return b""

    def outputs(self, deadline: float) -> Iterator[bytes]:
        """The stdout bytes after the marker line until the end of the stream, read by deadline (monotonic)."""
        while True:
            while self._pending:
                yield self._pending.pop(0)
            if self.ended:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise OutputReadTimeoutError("the tool container stopped sending its outputs before the read timeout")
            try:
                self.pump(min(remaining, 5.0))
            except IsolationError as exc:
                raise OutputReadError(f"the outputs broke off mid-stream: {exc}") from exc

    def stdout_lines(self) -> int:
        return self._stdout.count(b"\n", max(0, len(self._stdout) - self._keep))

    def stdout_tail(self) -> str:
        return bytes(self._stdout[-self._tail :]).decode("utf-8", "replace") if self._tail else ""

    def stderr_tail(self) -> str:
        return bytes(self._stderr[-self._tail :]).decode("utf-8", "replace") if self._tail else ""

    def close(self) -> None:
        for closable in (self._attached, self._sock):
            with suppress(OSError):
                closable.close()

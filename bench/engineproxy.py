"""A counting proxy in front of the Docker Engine: every HTTP request a client sends through it, by method and path.

The count is taken on the wire, not by the code under test: a client (a `docker.DockerClient(base_url=...)`, or a
worker given `DOCKER_HOST=unix://<proxy.socket>`) talks to the proxy's unix socket, the proxy forwards every byte
to the engine's socket and back unchanged, and reads the request heads on the way in (Content-Length and chunked
bodies are skipped, an upgraded connection such as an attach is passed through untouched after its request).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from types import TracebackType

from bench.common import endpoint

ENGINE_SOCKET = "/var/run/docker.sock"
_CHUNK = 1 << 16


class _RequestReader:
    """Fed the client-to-engine bytes of one connection; calls `seen(method, target)` once per request head."""

    def __init__(self, seen: ProxyLog) -> None:
        self._seen = seen
        self._buffer = b""
        self._state = "head"  # head | length | chunk-size | chunk-data | trailer | raw
        self._left = 0

    def feed(self, data: bytes) -> None:
        self._buffer += data
        while self._buffer and self._state != "raw" and self._step():
            pass
        if self._state == "raw":
            self._buffer = b""

    def _step(self) -> bool:
        """Advance by one piece of the stream; False when more bytes are needed."""
        if self._state in ("length", "chunk-data"):
            taken = min(self._left, len(self._buffer))
            self._buffer, self._left = self._buffer[taken:], self._left - taken
            if self._left == 0:
                self._state = "head" if self._state == "length" else "chunk-size"
            return taken > 0
        line_end = self._buffer.find(b"\r\n\r\n" if self._state == "head" else b"\r\n")
        if line_end < 0:
            return False
        piece, self._buffer = self._buffer[:line_end], self._buffer[line_end + (4 if self._state == "head" else 2) :]
        {"head": self._head, "chunk-size": self._chunk_size, "trailer": self._trailer}[self._state](piece)
        return True

    def _head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        self._seen.record(method, target)
        if "upgrade" in headers.get("connection", "").lower():
            self._state = "raw"
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            self._state = "chunk-size"
        elif int(headers.get("content-length", "0") or 0) > 0:
            self._state, self._left = "length", int(headers["content-length"])

    def _chunk_size(self, line: bytes) -> None:
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            self._state = "trailer"
        else:
            self._state, self._left = "chunk-data", size + 2  # the data and its CRLF

    def _trailer(self, line: bytes) -> None:
        if not line:
            self._state = "head"


class ProxyLog:
    """The requests seen, in order, as `METHOD /path` with the API version, ids and query dropped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[str] = []

    def record(self, method: str, target: str) -> None:
        with self._lock:
            self.calls.append(endpoint(method, target))

    def take(self) -> list[str]:
        """The calls seen since the last take, forgotten here."""
        with self._lock:
            taken, self.calls = self.calls, []
        return taken

    @staticmethod
    def tally(calls: list[str]) -> str:
        """One line per endpoint with its count, most frequent first."""
        return "\n".join(f"{count:3d}  {call}" for call, count in Counter(calls).most_common())


class EngineProxy:
    """A unix-socket proxy to the engine that logs every request; `with EngineProxy() as proxy: proxy.base_url`."""

    def __init__(self, upstream: str = ENGINE_SOCKET) -> None:
        self.upstream = upstream
        self.log = ProxyLog()
        self._directory = Path(tempfile.mkdtemp(prefix="engine-proxy-"))
        self.socket = self._directory / "docker.sock"
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._open: set[socket.socket] = set()
        self._closing = False

    @property
    def base_url(self) -> str:
        """What DOCKER_HOST or `docker.DockerClient(base_url=...)` takes to go through the proxy."""
        return f"unix://{self.socket}"

    def __enter__(self) -> EngineProxy:
        self._server.bind(str(self.socket))
        os.chmod(self.socket, 0o600)
        self._server.listen(64)
        threading.Thread(target=self._accept, name="engine-proxy", daemon=True).start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closing = True
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        for sock in list(self._open):
            with contextlib.suppress(OSError):
                sock.close()
        shutil.rmtree(self._directory, ignore_errors=True)

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                engine.connect(self.upstream)
            except OSError:
                client.close()
                engine.close()
                continue
            self._open.update((client, engine))
            ends = threading.Barrier(2, action=partial(self._close, client, engine))
            reader = _RequestReader(self.log)
            threading.Thread(target=_pipe, args=(client, engine, reader, ends), daemon=True).start()
            threading.Thread(target=_pipe, args=(engine, client, None, ends), daemon=True).start()

    def _close(self, *socks: socket.socket) -> None:
        for sock in socks:
            self._open.discard(sock)
            sock.close()


def _pipe(source: socket.socket, target: socket.socket, reader: _RequestReader | None, ends: threading.Barrier) -> None:
    """Copy one direction until its end, then half-close the other side; the last of the two closes both."""
    for data in _received(source):
        if reader is not None:
            reader.feed(data)
        try:
            target.sendall(data)
        except OSError:
            break
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)
    with contextlib.suppress(threading.BrokenBarrierError):
        ends.wait()


def _received(sock: socket.socket) -> Iterator[bytes]:
    while True:
        try:
            data = sock.recv(_CHUNK)
        except OSError:
            return
        if not data:
            return
        yield data

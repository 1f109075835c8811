"""The Recorder: an HTTP/1.1 server on an asyncio loop in a thread of its own that records every request.

asyncio rather than ThreadingHTTPServer: one thread serves hundreds of keep-alive connections, and a request
costs a head read, a split and a write, where BaseHTTPRequestHandler parses headers with the email package.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType

from bench.recorder.traffic import Connection, Request, Traffic, run_of

EXISTING = frozenset({"admin", "robots.txt", "backup"})
MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


class RecorderError(RuntimeError):
    """Raised when a Recorder cannot start (the address is taken, say) or is used before it has."""


@dataclass(frozen=True)
class Head:
    """A request's line and the two headers the server acts on."""

    method: str
    target: str
    keep_alive: bool
    body_length: int


def parse_head(raw: bytes) -> Head:
    """Read a request head (up to its blank line); ValueError when it is not HTTP/1.x."""
    lines = raw.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ")
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise ValueError(f"unsupported version {version!r}")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    connection = headers.get("connection", "").lower()
    keep_alive = connection == "keep-alive" if version == "HTTP/1.0" else connection != "close"
    return Head(method, target, keep_alive, int(headers.get("content-length") or 0))


def answer(head: Head, existing: frozenset[str]) -> tuple[int, bytes]:
    """The status and body for a request: 200 when the path after its run segment is an existing word, else 404."""
    if head.method not in ("GET", "HEAD"):
        return 405, b"method not allowed\n"
    word = head.target.split("?", 1)[0].lstrip("/").partition("/")[2]
    return (200, b"found\n") if word in existing else (404, b"not found\n")


def response(status: int, body: bytes, *, head_only: bool, keep_alive: bool) -> bytes:
    """The bytes of a response with a Content-Length (the body left out for HEAD)."""
    lines = [
        f"HTTP/1.1 {status} {_REASONS[status]}",
        "Content-Type: text/plain",
        f"Content-Length: {len(body)}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head_only else body)


class Recorder:
    """An HTTP server on `host`:`port` (0: any free port) that records every request and connection.

    Use it as a context manager, or start() and stop(). Every GET or HEAD of `/<run>/<word>` is answered 200
    when word is in `existing` and 404 otherwise; traffic() is a snapshot of what was recorded so far.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, existing: Iterable[str] = EXISTING) -> None:
        self.host, self.port, self.existing = host, port, frozenset(existing)
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._connections: dict[int, Connection] = {}
        self._numbers = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._settled = threading.Event()  # set once listening, or once that failed
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        """`http://host:port`, the port the server listens on."""
        if self._thread is None:
            raise RecorderError("the recorder has not started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> Recorder:
        """Listen, in a thread of its own, and return once connections are accepted."""
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), name="recorder", daemon=True)
        self._thread.start()
        if not self._settled.wait(10) or self._failure is not None:
            self._thread.join(5)
            raise RecorderError(f"the recorder could not listen on {self.host}:{self.port}") from self._failure
        return self

    def stop(self) -> None:
        """Close the listener and every open connection, and wait for the thread."""
        if self._loop is not None and self._stopping is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(10)

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def traffic(self) -> Traffic:
        """What was recorded so far."""
        with self._lock:
            return Traffic(tuple(self._requests), tuple(self._connections.values()))

    def clear(self) -> None:
        """Forget every request and every closed connection (open ones stay, as they are)."""
        with self._lock:
            self._requests.clear()
            self._connections = {n: c for n, c in self._connections.items() if c.closed is None}

    async def _serve(self) -> None:
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        try:
            server = await asyncio.start_server(self._handle, self.host, self.port, backlog=1024, limit=MAX_HEAD)
        except OSError as exc:
            self._failure = exc
            self._settled.set()
            return
        self.port = int(server.sockets[0].getsockname()[1])
        self._settled.set()
        await self._stopping.wait()
        # No wait_closed(): from Python 3.12 it waits for every client to hang up. Leaving asyncio.run cancels
        # the handlers of connections still open, and each closes its own.
        server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = self._opened()
        try:
            while await self._exchange(number, reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # the client went away or spoke something else: end the connection, nothing to record
        except asyncio.CancelledError:
            pass  # the server stops: returning (not raising) keeps asyncio's stream callback from logging an error
        finally:
            self._closed(number)
            writer.close()

    async def _exchange(self, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read one request, record it, answer it; whether the connection stays open."""
        raw = await reader.readuntil(b"\r\n\r\n")
        at = time.monotonic()
        try:
            head = parse_head(raw[:-4])
        except ValueError:
            writer.write(response(400, b"bad request\n", head_only=False, keep_alive=False))
            await writer.drain()
            return False
        if not 0 <= head.body_length <= MAX_BODY:
            raise ValueError(f"a body of {head.body_length} bytes")
        await reader.readexactly(head.body_length)
        with self._lock:
            self._requests.append(Request(at, run_of(head.target), head.target, number))
        status, body = answer(head, self.existing)
        writer.write(response(status, body, head_only=head.method == "HEAD", keep_alive=head.keep_alive))
        await writer.drain()
        return head.keep_alive

    def _opened(self) -> int:
        with self._lock:
            number = next(self._numbers)
            self._connections[number] = Connection(number, time.monotonic())
            return number

    def _closed(self, number: int) -> None:
        with self._lock:
            self._connections[number] = Connection(number, self._connections[number].opened, time.monotonic())

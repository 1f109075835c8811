"""A writer's local spool: events appended and fsynced one line each, and its chain state, both in one directory.

`record` returns once its line is on disk (fdatasync), so an event survives a SIGKILL of the process; a line torn
by a kill mid-write was never acknowledged and is dropped when the spool is read. The state file holds the MAC and
period of the stream's last stored segment, so the next segment links to it across restarts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from tasks.audit.errors import AuditConfigError
from tasks.audit.event import AuditEvent
from tasks.audit.segment import Link

logger = logging.getLogger(__name__)


class Spool:
    """The spool file and state file of one stream under `directory` (created 0700)."""

    def __init__(self, directory: Path, stream: str, lock_timeout: float = 30.0) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._holder = _hold(directory / f"{stream}.lock", stream, lock_timeout)
        self.path = directory / f"{stream}.spool"
        self._state = directory / f"{stream}.state"
        self._lock = threading.Lock()
        self._fd: int | None = None

    def append(self, event: AuditEvent) -> None:
        """Append one event and wait until it is on disk."""
        line = event.canonical() + b"\n"
        with self._lock:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            os.write(self._fd, line)
            os.fdatasync(self._fd)

    def read(self) -> list[AuditEvent]:
        """Every whole event in the spool, in the order recorded."""
        with self._lock:
            return _parse(self.path)

    def drop(self, ids: Iterable[str]) -> None:
        """Rewrite the spool without the events now stored (records meanwhile wait; they are kept)."""
        gone = set(ids)
        with self._lock:
            kept = [e for e in _parse(self.path) if e.id not in gone]
            temp = self.path.with_suffix(".spool-new")
            _write_synced(temp, b"".join(e.canonical() + b"\n" for e in kept))
            os.replace(temp, self.path)
            _sync_directory(self.path.parent)
            self._close_fd()

    def load_link(self) -> Link | None:
        """The last stored segment's link, or None for a stream this directory never wrote."""
        try:
            values = json.loads(self._state.read_text())
        except FileNotFoundError:
            return None
        return Link(values["mac"], values["period"])

    def save_link(self, link: Link) -> None:
        """Remember the last stored segment, atomically and durably."""
        temp = self._state.with_suffix(".state-new")
        _write_synced(temp, json.dumps({"mac": link.mac, "period": link.period}).encode())
        os.replace(temp, self._state)
        _sync_directory(self._state.parent)

    def close(self) -> None:
        """Close the spool file and let another journal of the stream have the directory."""
        with self._lock:
            self._close_fd()
            os.close(self._holder)

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _hold(path: Path, stream: str, timeout: float) -> int:
    """Lock the stream's spool for this journal: two writers of one stream would interleave and drop events.

    It waits up to `timeout` for the lock: a pool child replacing one that is still storing its last segment takes
    the stream over once that one is done. A POSIX record lock (lockf), not flock: a process forked after taking it
    (a pool child of the main process) does not hold it too, so an orphaned child never keeps the main stream's
    spool from the next main process. It is per process: two journals of one stream in one process are not told.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError:  # EAGAIN or EACCES: another process holds it
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
    os.close(fd)
    raise AuditConfigError(
        f"audit stream {stream!r}: another journal has held its spool in {path.parent} for {timeout:g}s (one "
        "journal per stream: name each process's stream apart, e.g. by host and process)"
    )


def _parse(path: Path) -> list[AuditEvent]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    events: list[AuditEvent] = []
    for line in raw.split(b"\n"):
        if not line:
            continue
        try:
            events.append(AuditEvent.from_json(line))
        except (ValueError, KeyError, TypeError):
            logger.warning("audit spool %s: dropped a torn line (%d bytes) a crash left mid-write", path, len(line))
    return events


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    with contextlib.suppress(OSError):
        os.fsync(fd)
    os.close(fd)

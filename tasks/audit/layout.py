"""Where the audit lives in the store: `audit/v1/<stream>/<YYYY>/<MM>/<DD>/<HHMMSS>[-<id>].{seg,idx}` (pure).

One segment is two objects: `.seg` (the events) and `.idx` (the authenticated head and the search index), plus a
`.targets-<digest>` object per big target list. The key holds the stream and the period's start (UTC), so listing
one stream or a time range needs no object read; a one-shot segment (a CLI's policy change) adds `-<id>`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from tasks.audit.errors import AuditConfigError

PREFIX = "audit/v1/"
SEGMENT = ".seg"
INDEX = ".idx"
TARGETS = ".targets-"
_STREAM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_KEY = re.compile(
    r"audit/v1/(?P<stream>[^/]+)/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P<t>\d{6})(?P<shot>-[0-9a-f]+)?"
    r"(?P<ext>\.seg|\.idx|\.targets-[0-9a-f]+)"
)


@dataclass(frozen=True)
class Place:
    """A segment's place: its stream, its period's start (epoch seconds) and the key its objects share."""

    stream: str
    period: int
    base: str

    @property
    def segment(self) -> str:
        """The key of the events object."""
        return self.base + SEGMENT

    @property
    def index(self) -> str:
        """The key of the head-and-index object."""
        return self.base + INDEX

    def targets(self, digest: str) -> str:
        """The key of a big target list stored beside the segment."""
        return f"{self.base}{TARGETS}{digest}"


def check_stream(stream: str) -> str:
    """A stream name (a worker's hostname, `operator`): letters, digits, '.', '_' and '-'."""
    if not _STREAM.fullmatch(stream):
        raise AuditConfigError(f"audit stream {stream!r}: use letters, digits, '.', '_' and '-' (a hostname)")
    return stream


def place(stream: str, period: int, shot: str = "") -> Place:
    """The place of a stream's segment for the period starting at `period` (a one-shot one names its `shot`)."""
    start = datetime.fromtimestamp(period, UTC)
    suffix = f"-{shot}" if shot else ""
    return Place(check_stream(stream), period, f"{PREFIX}{stream}/{start:%Y/%m/%d/%H%M%S}{suffix}")


def parse(key: str) -> tuple[Place, str] | None:
    """The place of a stored audit object and its extension (`.seg`, `.idx`, `.targets-...`); None for others."""
    found = _KEY.fullmatch(key)
    if found is None:
        return None
    when = datetime.strptime(found["y"] + found["m"] + found["d"] + found["t"], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    base = key[: found.start("ext")]
    return Place(found["stream"], int(when.timestamp()), base), found["ext"]

"""Splitting a container's multiplexed log into stdout and stderr (pure)."""

from __future__ import annotations

import struct

import pytest

from isolation.logs import Output, demux


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        ([], Output()),
        ([(1, b"out\n")], Output(b"out\n", b"")),
        ([(2, b"err\n")], Output(b"", b"err\n")),
        ([(1, b"a"), (2, b"x"), (1, b"b\n"), (2, b"y\n")], Output(b"ab\n", b"xy\n")),
        ([(0, b"stdin is never kept"), (1, b"kept")], Output(b"kept", b"")),
        ([(1, bytes(range(256)))], Output(bytes(range(256)), b"")),
        ([(1, b"")], Output()),
    ],
)
def test_frames_are_split_by_stream_in_order(frames: list[tuple[int, bytes]], expected: Output) -> None:
    assert demux(b"".join(frame(s, p) for s, p in frames)) == expected


def test_a_frame_cut_short_keeps_what_arrived_and_a_partial_header_is_dropped() -> None:
    data = frame(1, b"whole\n") + frame(2, b"cut short")[:-3]
    assert demux(data) == Output(b"whole\n", b"cut sh")
    assert demux(frame(1, b"x") + b"\x02\x00\x00") == Output(b"x", b"")


def test_a_payload_that_looks_like_a_header_is_only_payload() -> None:
    inner = frame(2, b"fake")
    assert demux(frame(1, inner)) == Output(inner, b"")

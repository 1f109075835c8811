"""The write-behind thread: order kept, errors raised to the producer, cancel never blocks."""

from __future__ import annotations

import pytest

from tasks.artifacts.background import WriteBehind


def test_blocks_are_consumed_in_order_by_finish() -> None:
    seen: list[bytes] = []
    behind = WriteBehind(seen.append, 2, "test")
    for i in range(50):
        behind.put(bytes([i]))
    behind.finish()
    assert seen == [bytes([i]) for i in range(50)]


def test_a_consumer_error_reaches_the_producer_and_later_blocks_are_dropped() -> None:
    seen: list[bytes] = []

    def consume(block: bytes) -> None:
        if block == b"bad":
            raise OSError("disk full")
        seen.append(block)

    behind = WriteBehind(consume, 1, "test")
    behind.put(b"ok")
    behind.put(b"bad")
    with pytest.raises(OSError, match="disk full"):
        for _ in range(100):
            behind.put(b"more")
        behind.finish()
    assert seen == [b"ok"]


def test_cancel_stops_the_thread_without_consuming_the_rest() -> None:
    seen: list[bytes] = []
    behind = WriteBehind(seen.append, 4, "test")
    behind.cancel()
    behind.cancel()
    assert seen == []
    with pytest.raises(RuntimeError, match="cancelled"):
        behind.put(b"late")

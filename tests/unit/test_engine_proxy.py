"""The counting proxy's reading of request heads on the wire: bodies skipped, upgrades passed through (pure)."""

from __future__ import annotations

import pytest

from bench.engineproxy import ProxyLog, _RequestReader


def fed(*pieces: bytes) -> list[str]:
    log = ProxyLog()
    reader = _RequestReader(log)
    for piece in pieces:
        reader.feed(piece)
    return log.calls


def test_requests_on_one_connection_are_each_counted_with_ids_and_version_dropped() -> None:
    wire = (
        b"GET /v1.41/containers/abc123/json HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /v1.41/containers/create?name=x HTTP/1.1\r\nContent-Length: 4\r\n\r\n{}{}"
        b"DELETE /v1.41/volumes/vol1?force=False HTTP/1.1\r\n\r\n"
    )
    assert fed(wire) == ["GET /containers/{id}/json", "POST /containers/create", "DELETE /volumes/{id}"]


def test_a_body_that_looks_like_a_request_is_not_counted() -> None:
    body = b"GET /v1.41/info HTTP/1.1\r\n\r\n"
    wire = b"PUT /v1.41/containers/c/archive?path=/d HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    assert fed(wire) == ["PUT /containers/{id}/archive"]


@pytest.mark.parametrize("split", [1, 7, 50])
def test_a_chunked_body_is_skipped_however_the_bytes_arrive(split: int) -> None:
    chunk = b"GET /v1.41/version HTTP/1.1\r\n\r\n"
    wire = (
        b"PUT /v1.41/containers/c/archive?path=/d HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n" % (len(chunk), chunk)
        + b"0\r\n\r\n"
        + b"POST /v1.41/containers/c/start HTTP/1.1\r\n\r\n"
    )
    pieces = [wire[i : i + split] for i in range(0, len(wire), split)]
    assert fed(*pieces) == ["PUT /containers/{id}/archive", "POST /containers/{id}/start"]


def test_after_an_upgrade_the_connection_is_passed_through_uncounted() -> None:
    wire = (
        b"POST /v1.41/containers/c/attach?stream=1 HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        b"GET /v1.41/info HTTP/1.1\r\n\r\n"
    )
    assert fed(wire) == ["POST /containers/{id}/attach"]

"""The politeness recorder: its analysis over synthetic records, its HTTP handling, and one real server under load."""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.recorder import (
    Connection,
    Recorder,
    RecorderError,
    Request,
    Traffic,
    format_seconds,
    peak_connections,
    peak_requests_per_second,
    peak_runs_at_once,
    per_second,
    requests_by_run,
    run_of,
    summarize,
)
from bench.recorder.server import Head, answer, parse_head, response


def requests(*spec: tuple[float, str]) -> list[Request]:
    return [Request(at, run, f"/{run}/w", 1) for at, run in spec]


# --- analysis -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "run"),
    [("/acme-3/admin", "acme-3"), ("/acme-3/a/b?x=/y", "acme-3"), ("/solo", "solo"), ("/", ""), ("/?q", "")],
)
def test_a_request_belongs_to_the_run_named_by_its_first_path_segment(path: str, run: str) -> None:
    assert run_of(path) == run


@pytest.mark.parametrize(
    ("times", "peak"),
    [
        ([], 0),
        ([5.0], 1),
        ([0.0, 0.5, 0.99], 3),
        ([0.0, 0.5, 1.0], 2),  # a window is (t - 1, t]: 0.0 and 1.0 are a second apart, never in one window
        ([0.6, 0.7, 0.8, 1.2, 1.3, 1.4], 6),  # straddles a second boundary: aligned seconds see 3 and 3
        ([3.0, 0.1, 2.0, 0.2], 2),  # order does not matter
    ],
)
def test_the_peak_per_second_is_the_most_requests_in_any_sliding_second(times: Sequence[float], peak: int) -> None:
    assert peak_requests_per_second(times) == peak


def test_a_burst_across_a_boundary_is_caught_by_the_sliding_window_and_split_by_the_aligned_table() -> None:
    burst = requests(*[(0.6 + i * 0.01, "a") for i in range(40)], *[(1.0 + i * 0.01, "a") for i in range(40)])
    assert peak_requests_per_second(r.at for r in burst) == 80
    assert [s.requests for s in per_second(burst)] == [80]  # aligned from the first request: one bucket
    assert [s.requests for s in per_second(burst, start=0.0)] == [40, 40]


def test_requests_are_counted_per_run() -> None:
    assert requests_by_run(requests((0, "a"), (1, "b"), (2, "a"))) == {"a": 2, "b": 1}


@pytest.mark.parametrize(
    ("spec", "peak"),
    [
        ([], 0),
        ([(0, "a"), (5, "a")], 1),
        ([(0, "a"), (1, "b"), (2, "a"), (3, "b")], 2),  # interleaved: both active from 1 to 2
        ([(0, "a"), (1, "a"), (2, "b"), (3, "b")], 1),  # one after the other
        ([(0, "a"), (1, "a"), (1, "b"), (2, "b")], 2),  # a's last at b's first: counted as overlapping
        ([(0, "a"), (9, "a"), (1, "b"), (2, "b"), (3, "c"), (4, "c"), (5, "d"), (6, "d")], 2),  # a spans b, c, d
        ([(0, "a"), (9, "a"), (1, "b"), (8, "b"), (2, "c"), (3, "c")], 3),
    ],
)
def test_a_run_is_active_from_its_first_request_to_its_last(spec: list[tuple[float, str]], peak: int) -> None:
    assert peak_runs_at_once(requests(*spec)) == peak


def test_a_run_pausing_between_requests_still_counts_as_active() -> None:
    # a sends at 0 and 10 only; b and c come and go in a's pause: the server sees a as holding its lease.
    assert peak_runs_at_once(requests((0, "a"), (10, "a"), (4, "b"), (5, "c"))) == 2


@pytest.mark.parametrize(
    ("connections", "peak"),
    [
        ([], 0),
        ([Connection(1, 0, 1), Connection(2, 2, 3)], 1),
        ([Connection(1, 0, 2), Connection(2, 1, 3)], 2),
        ([Connection(1, 0, 1), Connection(2, 1, 2)], 1),  # one closes as the other opens
        ([Connection(1, 0), Connection(2, 5, 8), Connection(3, 7)], 3),  # still open: counts to the end
    ],
)
def test_the_peak_of_connections_is_the_most_open_at_once(connections: list[Connection], peak: int) -> None:
    assert peak_connections(connections) == peak


def test_the_per_second_table_counts_requests_and_the_runs_active_in_each_second() -> None:
    seconds = per_second(requests((0.1, "a"), (0.2, "b"), (2.5, "a"), (2.6, "c")))
    assert [(s.offset, s.requests, s.by_run, s.active_runs) for s in seconds] == [
        (0, 2, {"a": 1, "b": 1}, 2),
        (1, 0, {}, 1),  # nothing sent, but a is between its first and last request
        (2, 2, {"a": 1, "c": 1}, 2),
    ]
    assert format_seconds(seconds).splitlines()[0] == "+0s     2 req   2 runs  a=1 b=1"
    assert per_second([]) == []


def test_a_summary_holds_the_totals_and_every_peak() -> None:
    traffic = Traffic(tuple(requests((0, "a"), (0.5, "b"), (3, "a"))), (Connection(1, 0, 4), Connection(2, 0.5, 1)))
    summary = summarize(traffic)
    assert (summary.requests, summary.runs, summary.peak_requests_per_second) == (3, 2, 2)
    assert (summary.peak_runs_at_once, summary.peak_connections) == (2, 2)


# --- HTTP -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"GET /a/admin HTTP/1.1\r\nHost: x", Head("GET", "/a/admin", True, 0)),
        (b"GET /a/admin HTTP/1.1\r\nConnection: Close", Head("GET", "/a/admin", False, 0)),
        (b"HEAD / HTTP/1.0", Head("HEAD", "/", False, 0)),
        (b"GET / HTTP/1.0\r\nconnection: keep-alive", Head("GET", "/", True, 0)),
        (b"POST /a HTTP/1.1\r\nContent-Length: 12", Head("POST", "/a", True, 12)),
    ],
)
def test_a_request_head_gives_method_target_keep_alive_and_body_length(raw: bytes, expected: Head) -> None:
    assert parse_head(raw) == expected


@pytest.mark.parametrize("raw", [b"GET /", b"GET / HTTP/2.0", b"GET / HTTP/1.1\r\nContent-Length: x", b"\x00"])
def test_a_head_that_is_not_http_1_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        parse_head(raw)


@pytest.mark.parametrize(
    ("method", "target", "status"),
    [("GET", "/run-1/admin", 200), ("HEAD", "/run-1/admin?x=1", 200), ("GET", "/run-1/nothere", 404),
     ("GET", "/admin", 404), ("GET", "/run-1/admin/deeper", 404), ("POST", "/run-1/admin", 405)],
)  # fmt: skip
def test_only_an_existing_word_after_the_run_segment_is_found(method: str, target: str, status: int) -> None:
    assert answer(Head(method, target, True, 0), frozenset({"admin"}))[0] == status


def test_a_head_response_has_the_length_of_the_body_it_leaves_out() -> None:
    head = response(200, b"found\n", head_only=True, keep_alive=True)
    assert b"\r\nContent-Length: 6\r\n" in head and head.endswith(b"\r\n\r\n")


# --- a real server --------------------------------------------------------------------------------------------------


def fetch(url: str, run: str, words: list[str]) -> list[int]:
    """GET /run/word for each word on one keep-alive connection; the statuses."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    statuses = []
    for word in words:
        connection.request("GET", f"/{run}/{word}")
        reply = connection.getresponse()
        reply.read()
        statuses.append(reply.status)
    connection.close()
    return statuses


def test_a_real_recorder_records_every_request_of_concurrent_clients_by_run_and_connection() -> None:
    words = ["admin", *(f"w{i}" for i in range(49))]
    with Recorder(existing={"admin"}) as recorder:
        barrier = threading.Barrier(20)

        def client(n: int) -> list[int]:
            barrier.wait()  # all twenty connect at once
            return fetch(recorder.url, f"run-{n % 5}", words)

        with ThreadPoolExecutor(20) as pool:
            statuses = list(pool.map(client, range(20)))
        traffic = recorder.traffic()
    assert all(s == [200] + [404] * 49 for s in statuses)
    assert requests_by_run(traffic.requests) == {f"run-{n}": 4 * 50 for n in range(5)}
    assert len(traffic.connections) == 20 and all(c.closed is not None for c in traffic.connections)
    assert {len([r for r in traffic.requests if r.connection == c.number]) for c in traffic.connections} == {50}
    summary = summarize(traffic)
    assert summary.requests == 1000 and summary.runs == 5 and summary.peak_runs_at_once == 5
    assert 2 <= summary.peak_connections <= 20


def test_a_recorder_closes_connections_left_open_when_it_stops_and_can_be_cleared() -> None:
    recorder = Recorder().start()
    idle = socket.create_connection((recorder.host, recorder.port))
    assert fetch(recorder.url, "r", ["x"]) == [404]
    recorder.clear()
    assert recorder.traffic().requests == ()
    recorder.stop()
    assert idle.recv(1) == b""  # the server hung up
    idle.close()
    connections = recorder.traffic().connections  # the idle one, and the other if the server saw it close late
    assert connections[0].number == 1 and all(c.closed is not None for c in connections)


def test_a_recorder_that_cannot_listen_says_so() -> None:
    with Recorder() as first, pytest.raises(RecorderError):
        Recorder(port=first.port).start()
    with pytest.raises(RecorderError):
        _ = Recorder().url

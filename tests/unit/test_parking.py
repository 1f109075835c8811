"""A parked run's envelope as the parked hash stores it."""

from __future__ import annotations

import json

from tasks.worker.parking import Envelope
from tests.unit.helpers import envelope


def test_an_envelope_reads_back_as_written() -> None:
    written = envelope("a1", "acme")
    assert Envelope.from_json(written.to_json()) == written


def test_an_envelope_a_newer_worker_parked_reads_back_without_the_fields_this_release_does_not_know() -> None:
    fields = json.loads(envelope("a1", "acme").to_json())
    read = Envelope.from_json(json.dumps({**fields, "from_a_later_release": [1, 2]}))
    assert read == envelope("a1", "acme")

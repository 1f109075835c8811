"""A worker's role from its queues: a `-Q webhooks` worker delivers webhooks alone and offers no run slot."""

from __future__ import annotations

from celery import Celery

from tasks.worker import role


def test_a_worker_consuming_the_webhooks_queue_alone_delivers_only_and_offers_no_slot() -> None:
    celery = Celery("role", set_as_current=False)
    celery.amqp.queues.select([role.WEBHOOKS_QUEUE, "hooks@host.dq"])  # what `-Q webhooks` leaves, plus its own queue
    queues = role.consumed(celery, "hooks@host")
    assert queues == [role.WEBHOOKS_QUEUE]
    assert role.delivers_only(queues) and role.offered_slots(4, queues) == 0


def test_a_worker_taking_runs_too_offers_its_concurrency() -> None:
    for queues in (["celery"], ["celery", role.WEBHOOKS_QUEUE], ["scans"], []):
        assert not role.delivers_only(queues)
        assert role.offered_slots(4, queues) == 4

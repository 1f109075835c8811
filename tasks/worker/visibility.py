"""A heartbeat that keeps the messages a live worker holds from being delivered again.

The kombu Redis transport emulates acks: a delivered message's tag goes into the sorted set `unacked_index`
scored by its delivery time, and every worker's `restore_visible` (every `unacked_restore_interval`) puts back
on the queue any message scored older than `visibility_timeout`. Alone, that forces the timeout above the
longest run. Here each worker's consumer re-scores every message it holds (running, prefetched, or parked
with an ETA: all of them are in its channel's QoS `_delivered`) to "now" every `visibility_heartbeat_seconds`,
with ZADD XX so an acked (removed) tag is never re-added. So the timeout can be short: only a worker that
stopped beating (killed, frozen, lost) has its messages delivered again, within timeout + restore interval.

After a broker reconnect the consumer has a new channel, but the runs going on in the pool were delivered on
the old one (which acks them late, tasks/worker/broker.py): their tags are renewed too, from the worker's
active requests. Celery drops its reserved and ETA-held requests on a reconnect; their messages come back
through the visibility timeout, as a dead worker's do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from celery import bootsteps
from celery.worker import state

logger = logging.getLogger(__name__)


class VisibilityHeartbeat(bootsteps.StartStopStep):  # type: ignore[misc]
    """A consumer bootstep: re-score this worker's unacked messages on the event loop's timer."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.tref: Any = None

    def start(self, c: Any) -> None:
        """Beat every visibility_heartbeat_seconds, in the main process, on the consumer's timer."""
        interval = float(c.app.settings.visibility_heartbeat_seconds)
        self.tref = c.timer.call_repeatedly(interval, renew, (c,), priority=10)

    def stop(self, c: Any) -> None:
        """Stop beating (a stopped consumer's messages are restored or acked by Celery itself)."""
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None


def renew(c: Any) -> int:
    """Re-score the unacked messages this worker holds to now; return how many were held."""
    consumer = c.task_consumer
    channel = getattr(consumer, "channel", None)
    qos = getattr(channel, "qos", None)
    tags = {*(getattr(qos, "_delivered", None) or ()), *_running()}
    if not tags or channel is None:
        return 0
    now = time.time()
    try:
        with channel.conn_or_acquire() as client:
            client.zadd(channel.unacked_index_key, dict.fromkeys(tags, now), xx=True)
    except channel.connection_errors as exc:  # the broker is away: the consumer reconnects, we beat again
        logger.warning("could not renew %d unacked message(s): %s", len(tags), exc)
    return len(tags)


def _running() -> Iterator[str]:
    """The delivery tags of the runs going on in the pool, whichever channel delivered them."""
    for request in list(state.active_requests):
        tag = getattr(request.message, "delivery_tag", None)
        if tag is not None and not request.acknowledged:
            yield tag

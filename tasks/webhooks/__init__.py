"""Signed completion webhooks: tenants' endpoints (set by operators), events, their outbox and delivery.

`set`, `show`, `unset` and `rotate` take `connection=` (the broker's Redis), as `tasks.hosts` does; `log` reads a
tenant's delivery log and `redeliver` sends an event again. The worker's side (the delivery task, the poller and
the events a run's end records) is tasks/worker/webhooks.py.
"""

from tasks.webhooks.endpoint import Endpoint, Secret, get, rotate, set, show, unset
from tasks.webhooks.event import MAX_PAYLOAD_BYTES, Event, EventType, event_id
from tasks.webhooks.outbox import log
from tasks.webhooks.signing import new_secret, parse_secret

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "Endpoint",
    "Event",
    "EventType",
    "Secret",
    "event_id",
    "get",
    "log",
    "new_secret",
    "parse_secret",
    "rotate",
    "set",
    "show",
    "unset",
]

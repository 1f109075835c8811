"""Kombu's Redis transport with two defects guarded: a lost broker connection must not stop the consumer.

When the connection to Redis breaks, Celery's consumer (5.7) first collects the connection (kombu's
`Connection.collect`, which unlinks the transport from its Connection) and then closes it. A channel of that
connection can no longer build a connection pool: its broker address was read from the link
(`Channel._connparams`). Two things then raise an AttributeError that nobody catches, so the consumer stops
("Unrecoverable error") and the worker takes no new message until it is restarted (both seen here in a Redis
restart test; kombu issues #582 and #970 show the same path):

- closing the channel, which restores its unacknowledged messages to the queue
  (`'NoneType' object has no attribute 'hostname'`);
- acknowledging, after the reconnect, the message of a run that was going on during the restart
  (`'NoneType' object has no attribute 'client'`).

So a channel here keeps its broker's connection settings from its creation, and an unlinked channel uses
them: a late ack reaches Redis once it is back. And an unlinked channel closes without the restore: its
broker is away at that moment. Nothing is lost: its unacked messages stay in Redis's `unacked` hash; the
visibility heartbeat (`tasks.worker.visibility`) keeps renewing those of runs still going on in the pool, and
any worker's `restore_visible` puts back on the queue the others (Celery dropped its reserved and ETA-held
requests on the reconnect) once the visibility timeout passes, as for a worker that died.
A message whose run is still going or has finished meanwhile is kept from running twice by the run lock and
the stored result (`tasks.worker.delivery`).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis

TRANSPORT = f"{__name__}:Transport"
SCHEMES = ("redis", "rediss")


class Channel(kombu_redis.Channel):
    """A Redis channel that still reaches its broker, and skips the restore at close, once it is unlinked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._broker_params: dict[str, Any] = super()._connparams(asynchronous=False)

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if not asynchronous and unlinked(self.connection):
            return dict(self._broker_params)  # a late ack or heartbeat on a channel whose connection was closed
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)
        return params

    def close(self) -> None:
        """Close as Kombu does, but never restore through a connection that no longer exists."""
        if not self.closed and unlinked(self.connection):
            self.do_restore = False  # read by QoS.restore_unacked_once, here and at interpreter exit
        super().close()


class Transport(kombu_redis.Transport):
    """Kombu's Redis transport with the guarded channel."""

    Channel = Channel


def unlinked(transport: Any) -> bool:
    """True when a channel's transport is gone or no longer knows its broker's address."""
    return transport is None or getattr(transport, "client", None) is None


def install() -> None:
    """Make redis:// and rediss:// URLs use the guarded transport in this process; call before any connection.

    Kombu resolves a URL's scheme through its alias table, so registering there (rather than setting Celery's
    `broker_transport`) keeps every broker URI as it was: Flower picks its broker view by the URI's scheme.
    """
    for scheme in SCHEMES:
        TRANSPORT_ALIASES[scheme] = TRANSPORT

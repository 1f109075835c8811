"""What a worker process is for, read from the queues it consumes: runs, or webhook deliveries alone.

A worker started with `-Q webhooks` (the `webhooks` service of docker-compose.yml, the Deployment of
deploy/kubernetes/webhooks.yaml) signs and POSTs run events and never takes a run: it offers fair share no slot, and
it neither opens the artifact store nor talks to an engine (no start-up sweep, no deadline reaper, no disk guard on
the spool), so it needs no DinD, no store and none of their secrets. Every other worker runs tools. Nothing here
registers a signal: the modules that do ask it when their signal fires, after Celery has applied `-Q`.
"""

from __future__ import annotations

from collections.abc import Iterable

from celery import Celery

WEBHOOKS_QUEUE = "webhooks"


def consumed(celery: Celery, hostname: str) -> list[str]:
    """The queues this worker consumes, without its own direct queue (`<hostname>.dq`: maintenance tasks only)."""
    queues = getattr(getattr(celery, "amqp", None), "queues", None)
    direct = f"{hostname}.dq"
    return [str(q) for q in getattr(queues, "consume_from", None) or {} if not str(q).startswith(direct)]


def delivers_only(queues: Iterable[str]) -> bool:
    """Whether a worker consuming `queues` delivers webhooks and takes no run."""
    return set(queues) == {WEBHOOKS_QUEUE}


def offered_slots(concurrency: int, queues: Iterable[str]) -> int:
    """The run slots a worker offers fair share: none when it delivers webhooks alone (counting its pool would let
    fair share admit runs no worker can take)."""
    return 0 if delivers_only(queues) else concurrency


__all__ = ["WEBHOOKS_QUEUE", "consumed", "delivers_only", "offered_slots"]

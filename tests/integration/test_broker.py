"""The guarded Redis transport against a real Redis, in the state a lost broker connection leaves it.

Celery 5.7's consumer, on a connection error, collects its connection, which unlinks the transport from it
(kombu's `Connection._do_close_transport`: `transport.client = None`), and then closes the connection, while a
channel of it can still hold an unacked message; a run going on meanwhile acks its message later, on that old
channel. Which channel stays open depends on where its poll was when the socket broke, so these tests unlink
the transport the way Kombu does and then close and ack, on the stock transport and on ours. The whole
sequence, with a real worker and a real Redis restart, is tests/integration/test_fair_share_restart.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from kombu import Connection, Queue
from kombu.message import Message

from tasks.worker import broker

pytestmark = pytest.mark.integration
STOCK = "kombu.transport.redis:Transport"


@pytest.fixture
def queue(redis_url: str) -> Iterator[Queue]:
    """A queue of this test's own, holding one message; every key it leaves is removed afterwards."""
    name = f"broker-test-{uuid.uuid4().hex[:8]}"
    with Connection(redis_url, transport=broker.TRANSPORT) as conn:
        conn.SimpleQueue(name).put({"n": 1})
    yield Queue(name)
    with redis.Redis.from_url(redis_url) as client:
        client.delete(name, *client.keys(f"_kombu.binding*{name}"))
        ours = [tag for tag, entry in client.hgetall("unacked").items() if name.encode() in entry]
        if ours:
            client.hdel("unacked", *ours)
            client.zrem("unacked_index", *ours)


def take_then_lose_the_connection(redis_url: str, transport: str, queue: Queue) -> tuple[Connection, Message]:
    """Take the message unacked, then unlink the transport as the consumer's collect() does."""
    conn = Connection(redis_url, transport=transport)
    message = conn.default_channel.basic_get(queue.name, no_ack=False)
    assert message is not None
    conn.transport.client = None
    return conn, message


def restore_due_messages(redis_url: str) -> None:
    """What any worker's restore_visible does once a message's visibility timeout (here 0 s) has passed."""
    with Connection(redis_url, transport=broker.TRANSPORT, transport_options={"visibility_timeout": 0}) as fresh:
        fresh.default_channel.qos.restore_visible(num=10, start=0)


def unacked_tags(redis_url: str) -> set[bytes]:
    with redis.Redis.from_url(redis_url) as client:
        return set(client.hkeys("unacked"))


def test_install_makes_redis_urls_use_the_guarded_transport_and_keeps_their_uri(redis_url: str) -> None:
    broker.install()
    with Connection(redis_url) as conn:
        assert isinstance(conn.transport, broker.Transport)
        assert isinstance(conn.default_channel, broker.Channel)
        assert conn.as_uri().startswith("redis://")  # Flower chooses its broker view by this scheme


def test_the_stock_transport_still_fails_both_ways_so_the_guard_is_still_needed(redis_url: str, queue: Queue) -> None:
    conn, message = take_then_lose_the_connection(redis_url, STOCK, queue)
    with pytest.raises(AttributeError, match="NoneType"):
        conn.close()  # the channel's restore of its unacked message
    with pytest.raises(AttributeError, match="NoneType"):
        message.ack()  # a run that ends after the reconnect


def test_an_unlinked_channel_closes_cleanly_and_leaves_its_message_to_the_visibility_timeout(
    redis_url: str, queue: Queue
) -> None:
    conn, message = take_then_lose_the_connection(redis_url, broker.TRANSPORT, queue)
    conn.close()
    assert message.delivery_tag.encode() in unacked_tags(redis_url)
    restore_due_messages(redis_url)
    with Connection(redis_url, transport=broker.TRANSPORT) as fresh:
        again = fresh.default_channel.basic_get(queue.name, no_ack=True)
    assert again is not None and again.payload == {"n": 1}


def test_a_message_taken_before_the_connection_was_lost_is_acked_after_it(redis_url: str, queue: Queue) -> None:
    conn, message = take_then_lose_the_connection(redis_url, broker.TRANSPORT, queue)
    conn.close()
    message.ack()
    assert message.delivery_tag.encode() not in unacked_tags(redis_url)
    restore_due_messages(redis_url)
    with Connection(redis_url, transport=broker.TRANSPORT) as fresh:
        assert fresh.default_channel.basic_get(queue.name, no_ack=True) is None

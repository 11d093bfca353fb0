"""Redis for the idempotency tests: the shared server, in the tests' own database and keys.

The shared Redis on 127.0.0.1:6379 carries other people's data: tests use
their own database number, only delete the keys of the exchanges they made
(never FLUSH); anything that stops Redis uses ``redis_node.PrivateRedis``.
"""

import redis

SHARED_URL = "redis://127.0.0.1:6379/11"  # the tests' own database on the shared server
KEY_PREFIX = "hutch:idempotency:"


def shared():
    return redis.Redis.from_url(SHARED_URL, socket_timeout=5, decode_responses=True)


def forget_exchanges(client, *exchanges):
    """Delete the idempotency keys of these exchanges (and only those) from ``client``'s database."""
    for exchange in exchanges:
        for key in client.scan_iter(match=f"{KEY_PREFIX}*/{exchange}/*", count=500):
            client.delete(key)

"""The Redis store: entries shared by every gateway process that names the same Redis.

Each entry is one Redis string, ``alloy:cache:<namespace>:<SHA-256 of the key, hex>``, holding the packed entry
(``alloy.cache.entries.pack``), set with an expiry of its TTL, so Redis forgets it by itself; Redis'
own ``maxmemory`` policy bounds the whole (``max_entry_bytes`` still caps each entry).

A lookup is asynchronous: ``get_later`` asks Redis in a task and hands the entry (or None) to its
callback. Redis must never become the gateway's problem: every command has ``redis_timeout``
(default 50 ms) to complete, and any failure or timeout is a miss; it also opens a circuit for
``redis_retry`` seconds during which the cache does not ask Redis at all (``available`` is False:
lookups are immediate misses and answers are not stored), so an outage costs one timeout per
``redis_retry``, not one per request. The first command after that tries again.

``redis.asyncio`` is imported when the first command runs (in the worker's own event loop), so a
gateway without the Redis backend never imports it. ``clear`` (``DELETE /admin/cache``) is a rare
admin operation: it uses a short-lived synchronous connection (1 s timeout) and SCAN.
"""

import asyncio
import time
from hashlib import sha256

from alloy.cache.entries import pack, unpack
from alloy.errors import ServiceUnavailable

PREFIX = "alloy:cache:"
_GLOB_SPECIAL = str.maketrans({c: "\\" + c for c in "*?[]\\"})


class RedisStore:
    synchronous = False

    def __init__(self, settings, stats, loop):
        self.url = settings.redis_url
        self.timeout = settings.redis_timeout
        self.retry = settings.redis_retry
        self.stats = stats
        self.loop = loop
        self.client = None  # redis.asyncio.Redis, made on first use
        self.down_until = 0.0  # monotonic: the circuit is open until then
        self.tasks = set()  # running commands, kept referenced until done

    def available(self):
        return time.monotonic() >= self.down_until

    def get_later(self, key, namespace, done):
        self._run(self._get(key, namespace, done))

    def put(self, key, entry):
        if self.available():
            self._run(self._put(key, entry))

    # --- the commands --------------------------------------------------------------------------------

    def _run(self, coroutine):
        task = self.loop.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _get(self, key, namespace, done):
        entry = None
        try:
            data = await asyncio.wait_for(self._client().get(_name(namespace, key)), self.timeout)
        except Exception:  # refused, reset, timed out, Redis' own error: a miss, and a pause
            self._failed()
        else:
            if data is not None:
                entry = unpack(data, namespace)
        done(entry)

    async def _put(self, key, entry):
        ttl_ms = max(1, int((entry.expires_at - entry.stored_at) * 1000))
        try:
            await asyncio.wait_for(self._client().set(_name(entry.namespace, key), pack(entry), px=ttl_ms), self.timeout)
        except Exception:
            self._failed()
        else:
            self.stats.stored(entry.size())

    def _client(self):
        if self.client is None:
            import redis.asyncio

            self.client = redis.asyncio.Redis.from_url(
                self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
            )
        return self.client

    def _failed(self):
        self.stats.store_errors += 1
        self.down_until = time.monotonic() + self.retry

    # --- the admin API -------------------------------------------------------------------------------------

    def clear(self, namespace=None):
        """Delete every entry, or those of ``namespace`` and the namespaces under it; how many."""
        import redis

        if namespace is None:
            patterns = [PREFIX + "*"]
        else:
            escaped = namespace.translate(_GLOB_SPECIAL)
            # The namespace exactly (its keys end with ":" and 64 hex digits), and those under it.
            patterns = [PREFIX + escaped + ":" + "?" * 64, PREFIX + escaped + "/*"]
        deleted = 0
        try:
            with redis.Redis.from_url(self.url, socket_timeout=1.0, socket_connect_timeout=1.0) as client:
                for pattern in patterns:
                    batch = []
                    for name in client.scan_iter(match=pattern, count=500):
                        batch.append(name)
                        if len(batch) == 500:
                            deleted += client.delete(*batch)
                            batch = []
                    if batch:
                        deleted += client.delete(*batch)
        except redis.RedisError:
            raise ServiceUnavailable("the response cache's Redis did not answer; the deletion may be incomplete, retry it") from None
        return deleted


def _name(namespace, key):
    """The Redis key: the namespace and the 64 hex digits of the request's SHA-256 (a short key,
    the request's own bytes, is hashed here, off the hot path)."""
    digest = key.hex() if len(key) == 32 else sha256(key).hexdigest()
    return PREFIX + namespace + ":" + digest

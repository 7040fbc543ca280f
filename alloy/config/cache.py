"""The ``[cache]`` section: the response cache (``alloy.cache``). Owned by that feature; every key it
reads is documented here.

    enabled          store and replay answers of every model (default false); a model's own
                     ``cache = true | false`` in ``[[models]]`` overrides it
    backend          "memory" (this process, LRU bounded in bytes) or "redis" (shared)
    ttl              seconds a stored answer stays valid (default 3600); a model's ``cache_ttl``
                     and a request's ``x-alloy-cache-ttl`` override it
    max_bytes        the memory backend's bound on stored bytes (default 32 MiB)
    max_entry_bytes  an answer longer than this is not stored (default 1 MiB), on either backend
    redis_url        the Redis server of the "redis" backend ("env:NAME" reads the environment,
                     so a password stays out of the file)
    redis_timeout    seconds a Redis command may take before it counts as a miss (default 0.05)
    redis_retry      seconds the cache leaves Redis alone after it failed (default 5)
"""

from dataclasses import dataclass

from alloy.config.reading import _Section

BACKENDS = ("memory", "redis")


@dataclass(frozen=True)
class CacheSettings:
    enabled: bool = False
    backend: str = "memory"
    ttl: float = 3600.0
    max_bytes: int = 32 * 1024 * 1024
    max_entry_bytes: int = 1024 * 1024
    redis_url: str | None = None
    redis_timeout: float = 0.05
    redis_retry: float = 5.0


def _load_cache(source, table, env):
    section = _Section(source, "cache", table)
    default = CacheSettings()
    settings = CacheSettings(
        enabled=section.get("enabled", bool, False),
        backend=section.one_of("backend", BACKENDS, default.backend),
        ttl=section.positive("ttl", float, default.ttl),
        max_bytes=section.positive("max_bytes", int, default.max_bytes),
        max_entry_bytes=section.positive("max_entry_bytes", int, default.max_entry_bytes),
        redis_url=section.secret("redis_url", env),
        redis_timeout=section.positive("redis_timeout", float, default.redis_timeout),
        redis_retry=section.positive("redis_retry", float, default.redis_retry),
    )
    if settings.backend == "redis" and not settings.redis_url:
        section._fail("redis_url", 'required with backend = "redis"')
    if settings.redis_url and not settings.redis_url.startswith(("redis://", "rediss://", "unix://")):
        section._fail("redis_url", "expected a redis://, rediss:// or unix:// URL")
    section.finish()
    return settings

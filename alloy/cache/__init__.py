"""The response cache: stored answers replayed to repeated requests.

Where it plugs into the request path (``alloy.pipeline``):

    cache lookup  ``ResponseCache.lookup(call)`` answers the call from the store (True), or leaves
                  it to go upstream (False), setting ``call.recording`` to a list when the answer
                  should be stored: the relay appends to it every body piece the client receives
                  (unframed: the JSON body's bytes, or the stream's SSE bytes)
    account       a finish listener it adds to ``pipeline.listeners`` stores a recorded answer
                  that completed successfully
    admin API     handlers it puts in ``pipeline.admin_routes`` (``/admin/cache``)

The modules: ``keys`` (what makes two requests the same, namespaces, the client's controls),
``entries`` (a stored answer, replayed as JSON or SSE), ``memory`` and ``redis_store`` (the two
backends), ``response_cache`` (the stage, the listener, the admin handler), and ``prompt_prefix``
(the prompt-prefix hint of the ``prefix-affinity`` balancing strategy, given in the same stage,
just before a call starts).

``cache_for`` returns None when the cache is off (the default) for every model and no model uses
``prefix-affinity``; with only the latter, the ``PrefixAffinity`` hint alone.
"""

from alloy.balancer import PREFIX_AFFINITY


def cache_for(config, pipeline):
    """The response cache of this gateway, or None (off). Its modules (and hashlib) are imported
    only when it, or the prefix hint, is on: a gateway without them never loads them."""
    settings = config.cache
    enabled = [settings.enabled if model.cache is None else model.cache for model in config.models]
    affinity_used = any(group.strategy == PREFIX_AFFINITY for group in pipeline.routes.configured)
    if not settings.enabled and not any(enabled) and not affinity_used:
        return None
    from alloy.cache.prompt_prefix import PrefixAffinity

    affinity = PrefixAffinity()  # places calls of prefix-affinity groups, just before they start
    if not settings.enabled and not any(enabled):
        # No response cache: only the prefix hint, which never answers a call (a hot reload that
        # brings in the strategy places by least in-flight until a restart).
        return affinity
    from alloy.cache.memory import MemoryStore
    from alloy.cache.response_cache import Policies, ResponseCache, Stats

    stats = Stats()
    if settings.backend == "redis":
        from alloy.cache.redis_store import RedisStore  # redis is imported only when used

        store = RedisStore(settings, stats, pipeline.loop)
    else:
        store = MemoryStore(settings.max_bytes, stats)
    cache = ResponseCache(settings, Policies(settings, config.models), store, stats, affinity)
    pipeline.listeners.append(cache.filled)
    pipeline.admin_routes[b"/admin/cache"] = cache.admin
    return cache

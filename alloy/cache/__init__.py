"""The response cache: stored answers replayed to repeated requests.

Where it plugs into the request path (``alloy.pipeline``):

    cache lookup  ``ResponseCache.lookup(call)`` answers the call from the store (True), or leaves
                  it to go upstream (False), setting ``call.recording`` to a list when the answer
                  should be stored: the relay appends to it every body piece the client receives
                  (unframed: the JSON body's bytes, or the stream's SSE bytes)
    account       a finish listener it adds to ``pipeline.listeners`` stores a recorded answer
                  that completed successfully
    admin API     handlers it puts in ``pipeline.admin_routes`` (``/admin/cache``)

``cache_for`` returns None when the cache is off (the default).
"""


def cache_for(config, pipeline):
    """The response cache of this gateway, or None (off)."""
    return None

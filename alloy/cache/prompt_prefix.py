"""Prompt-cache-aware routing: the prompt prefix a request shares with others, as a ring point.

Providers discount a prompt's cached prefix (OpenAI automatically past 1024 tokens, Anthropic at
the ``cache_control`` breakpoints, Gemini's implicit caching) only when the request lands where that
prefix was seen. A model group with ``strategy = "prefix-affinity"`` (``alloy.balancer``) places a
request by a hash of that prefix; this module computes it, just before the call's first pick, and
only for such groups (other calls pay one attribute test).

The prefix: the client's own ``prompt_cache_key`` (OpenAI's routing hint) when it sent one; else
the tools, a top-level ``system`` (Messages bodies), and the leading ``system``/``developer``
messages followed by the first other message. Those are what the providers' caches start with and
what a conversation keeps as it grows, so every turn of one agent's conversation and every request
reusing a system prompt with the same opening meet on one deployment. A body without messages
(or not JSON) gets no hint: the least loaded deployment takes it.

The same object stands in for the cache lookup stage when the response cache is off (``lookup``
sets the hint and lets the call go on), so the pipeline needs no second hook.
"""

from hashlib import sha256

import orjson

from alloy.balancer import PREFIX_AFFINITY as AFFINITY

_LEADING_ROLES = ("system", "developer")


class PrefixAffinity:
    def hint(self, call):
        group = call.group
        if group.strategy == AFFINITY and group.single is None:
            group.affinity = prefix_point(call.request.body_buffer)

    def lookup(self, call):
        """The lookup stage when there is no response cache: place the call, never answer it."""
        self.hint(call)
        return False


def prefix_point(body):
    """The ring point (a 64-bit integer) of a request body's prompt prefix; None without one."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(document) is not dict:
        return None
    key = document.get("prompt_cache_key")
    if type(key) is str and key:
        material = b"key\n" + key.encode()
    else:
        messages = document.get("messages")
        if type(messages) is not list or not messages:
            return None
        leading = []
        for message in messages:
            leading.append(message)
            if type(message) is not dict or message.get("role") not in _LEADING_ROLES:
                break
        material = orjson.dumps([document.get("tools"), document.get("system"), leading], option=orjson.OPT_SORT_KEYS)
    return int.from_bytes(sha256(material).digest()[:8], "big")  # SHA-256: the CPU's SHA extensions

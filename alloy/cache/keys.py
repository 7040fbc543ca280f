"""What makes two requests the same request, whose namespace they fall in, and what the client asked
the cache to do.

The key is (a SHA-256 digest of, when long) the namespace, the endpoint, the model after alias
resolution (a configured model's name, whichever alias asked; else the name a provider route
resolved), the query string, and the body as the upstream would see it, normalized: parsed by orjson and dumped with
sorted keys, so key order and insignificant whitespace do not matter while every parameter that
can change the answer does (temperature, tools, seed, n, user...). For ``/v1/chat/completions``
``stream`` and ``stream_options`` are left out: a stored stream answers a non-stream request and
the other way round (``alloy.cache.entries``); ``stream_options`` stays in without a stream (the
upstream refuses that request: it must reach the upstream). The other endpoints keep them: their answers do not
cross over.

The namespace: the tenant first (the key's team, else the key's id, when virtual keys exist;
``global`` for the master key or no key), then, when the request names one, ``/`` and its
``x-alloy-cache-namespace``. The header only divides a tenant's cache; it cannot reach into
another tenant's, so one tenant never receives another's cached answer.

Controls (request headers): ``Cache-Control: no-cache`` skips the lookup and stores the new answer
(``refresh``), ``no-store`` never stores (a stored answer may still answer: ``hit``, else
``bypass``), both together leave the cache out entirely; ``x-alloy-cache-ttl: SECONDS`` sets how
long this answer stays (0: not stored); ``x-alloy-cache-namespace: NAME`` as above.
"""

from hashlib import sha256

from orjson import OPT_SORT_KEYS, JSONDecodeError, dumps, loads

from alloy.errors import InvalidRequest

CHAT = b"/v1/chat/completions"
CACHEABLE = frozenset((CHAT, b"/v1/completions", b"/v1/embeddings"))
MAX_TTL = 365 * 24 * 3600.0
INLINE_KEY_MAX = 512  # bytes of key material kept as the key itself (the store counts them)
# Top-level parameters that are real numbers: written 1 or 1.0, the same request.
SAMPLING_NUMBERS = ("temperature", "top_p", "frequency_penalty", "presence_penalty")
_NAMESPACE_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


def key_of(call, model, namespace, headers=()):
    """(key, stream, include_usage) of a model request for ``model`` (the configured model an
    alias names, or the name a provider route resolved), or None when its body is not a JSON object
    (the upstream answers what it makes of it, uncached). ``headers``: the names of the client
    headers that are part of the key (``Policy.headers``), each as ``name: value`` when sent. The key is made of the namespace,
    endpoint and route (a prefix no body can reach into: the body is a JSON object, it starts with "{") and
    the body parsed, with the model resolved, dumped with sorted keys: that material itself when it
    is short (up to ``INLINE_KEY_MAX`` bytes: a dict hashes it faster than any digest), else its
    SHA-256 (32 bytes: never the length of a short key). SHA-256 because OpenSSL runs it on the
    CPU's SHA extensions: about 0.5 us for 300 B, where BLAKE2b costs three times that."""
    try:
        document = loads(call.request.body_buffer)
    except JSONDecodeError:
        return None
    if type(document) is not dict:
        return None
    stream = document.get("stream") is True
    include_usage = False
    if stream:
        options = document.get("stream_options")
        include_usage = type(options) is dict and options.get("include_usage") is True
    if call.path == CHAT:
        document.pop("stream", None)
        if stream:  # without a stream, stream_options is a request the upstream refuses: its own key
            document.pop("stream_options", None)
    document["model"] = model
    for name in SAMPLING_NUMBERS:  # 1 and 1.0 are one value to the provider: one key
        value = document.get(name)
        if type(value) is int:
            document[name] = float(value)
    # The route (``ModelGroup.route``: each deployment's provider, where it is and what it adds,
    # and its upstream model) is part of the request as the upstream sees it: ``p1/gpt-x`` and
    # ``p2/gpt-x`` are two requests, and so are two servers or organizations behind one name.
    # The query string goes upstream with the path (an Azure api-version, a proxy's switch).
    target = call.path + call.query  # (the query with its "?", or b"")
    material = namespace.encode() + b"\n" + target + b"\n" + call.group.route + b"\n"
    if headers:  # a header line cannot start with "{" as the body does, nor hold a newline
        sent = call.request.headers
        material += b"".join(name + b": " + sent[name] + b"\n" for name in headers if name in sent)
    material += dumps(document, option=OPT_SORT_KEYS)
    if len(material) <= INLINE_KEY_MAX:
        return material, stream, include_usage  # its own key: nothing to hash, no collision possible
    return sha256(material).digest(), stream, include_usage


def namespace_of(key, given):
    """The tenant's namespace (``team:ID``, ``key:ID`` or ``global``), divided by the client's
    ``x-alloy-cache-namespace`` when it sent one. A team is named by its id: a new team given an
    old team's name must not read the old team's answers."""
    if key is None:
        tenant = "global"
    elif getattr(key, "team_id", None):
        tenant = f"team:{key.team_id}"
    else:
        tenant = f"key:{key.id}"
    if given is None:
        return tenant
    # Team names and key ids hold no "/" (alloy.governance.fields), so no tenant's namespace can be
    # spelled as another tenant's plus a header.
    if not 0 < len(given) <= 128 or not all(c in _NAMESPACE_CHARS for c in given):
        raise InvalidRequest(
            "x-alloy-cache-namespace must be 1 to 128 characters of letters, digits, '-', '_', '.' and ':'",
            param="x-alloy-cache-namespace",
        )
    return tenant + "/" + given.decode()


def cache_control(value):
    """(no_cache, no_store) of a request's ``Cache-Control``."""
    directives = {part.strip().lower().split(b"=")[0] for part in value.split(b",")}
    return b"no-cache" in directives, b"no-store" in directives


def ttl_of(value):
    """``x-alloy-cache-ttl``: whole seconds, 0 (do not store) up to a year."""
    if not value.isdigit() or len(value) > 9 or int(value) > MAX_TTL:
        raise InvalidRequest(
            "x-alloy-cache-ttl must be a whole number of seconds from 0 to 31536000", param="x-alloy-cache-ttl"
        )
    return float(int(value))

"""Who a request was for, as the client labels it: the body's ``metadata`` object (OpenAI's chat
and Responses ``metadata``: up to 16 string pairs; Anthropic's Messages ``metadata``), kept in the
ledger as JSON text so ``alloy usage --by metadata.KEY`` can group by any of its keys.

Split in two so the request path pays no parse (and, for a body the core scanned, no search):

    metadata_source  (the finish listener, on the loop) the body itself when ``"metadata"`` occurs
                     in it, else None; no parse. The body is already in memory: the ledger holds a
                     reference until its writer thread has read it (bounded, ``alloy.governance.ledger``).
    metadata_json    (the ledger's writer thread) parses the body, takes the top-level ``metadata``
                     (a nested one, say in a tool's schema, is not it) and keeps what OpenAI allows:
                     string keys and values, the first 16 pairs, keys cut at 64 characters and
                     values at 512, so a row's metadata is at most about 10 KB of JSON.

A body that is not JSON, or whose ``metadata`` is not an object of strings, records nothing.
"""

import re

import orjson

MARKER = b'"metadata"'
# OpenAI's end-user id: a JSON string of 1 to 256 characters. Most are plain text, read straight
# from the bytes; one with escapes (``"caf\u00e9"``, as Python's json writes any non-ASCII) is read
# by orjson. An escape takes at most 12 bytes a character (a surrogate pair), hence the bound.
USER_VALUE = re.compile(rb'\s*"(?:([^"\\]{1,256})|((?:[^"\\]|\\.){1,3072}))"', re.DOTALL)
MAX_USER = 256
MAX_PAIRS = 16
MAX_KEY = 64
MAX_VALUE = 512
# ``alloy usage --by metadata.KEY``: a key the JSON path can name without quoting tricks.
KEY_FORBIDDEN = frozenset('"\\')


def attribution(scan, request):
    """(the body's ``user``, what the ledger holds for its ``metadata``). A body the core scanned
    (``call.scan``: every model endpoint) is not searched again, nor made into bytes when it is a
    view of its read: the scanner kept the raw top-level ``user`` and ``metadata`` values on its
    way through, and the metadata is held as a one-field document (``metadata_json`` reads it like
    a body). Other bodies: one search for each."""
    if scan is None:
        body = request.body
        return user_of(body), metadata_source(body)
    raw = scan.user
    metadata = scan.metadata
    return (
        None if raw is None else _user_text(USER_VALUE.fullmatch(raw)),
        None if metadata is None else b'{"metadata":' + metadata + b"}",
    )


def user_of(body):
    """The request's ``user`` field (OpenAI's end-user id), for attribution; None without one.
    Found without parsing the body: ``"user":`` (``"role": "user"`` is never followed by a colon)."""
    at = body.find(b'"user":')
    if at < 0:
        at = body.find(b'"user" :')
        if at < 0:
            return None
    return _user_text(USER_VALUE.match(body, body.index(b":", at) + 1))


def _user_text(found):
    """The end-user id a ``USER_VALUE`` match holds, or None (no match, or too long once read)."""
    if found is None:
        return None
    plain = found.group(1)
    if plain is not None:
        return plain.decode("utf-8", "replace")
    try:
        text = orjson.loads(b'"' + found.group(2) + b'"')
    except orjson.JSONDecodeError:  # a bad escape, or a lone surrogate: not a string JSON allows
        return None
    return text if 0 < len(text) <= MAX_USER else None


def tags_text(tags):
    """The ``x-alloy-tags`` header as the ledger stores it (None without one): UTF-8 text, a byte
    that is not UTF-8 read as U+FFFD, at most 256 characters. (A call's row is converted the same
    way by its writer thread: ``alloy.core.ledger_stored``.)"""
    return None if tags is None else tags[:1024].decode("utf-8", "replace")[:256]


def metadata_source(body):
    """The body when it may carry ``metadata`` (one search), else None."""
    return body if MARKER in body else None


def metadata_json(body):
    """The body's top-level ``metadata`` as bounded, sorted JSON text, or None."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    metadata = document.get("metadata") if isinstance(document, dict) else None
    if not isinstance(metadata, dict):
        return None
    kept = {}
    for key, value in metadata.items():
        if len(kept) == MAX_PAIRS:
            break
        if isinstance(key, str) and isinstance(value, str):
            kept[key[:MAX_KEY]] = value[:MAX_VALUE]
    return orjson.dumps(kept, option=orjson.OPT_SORT_KEYS).decode() if kept else None


def metadata_key(text):
    """The KEY of a ``metadata.KEY`` grouping, or None when ``text`` is not one (or KEY cannot be
    a metadata key)."""
    if not text.startswith("metadata."):
        return None
    key = text[len("metadata.") :]
    if not 0 < len(key) <= MAX_KEY or any(c in KEY_FORBIDDEN or not c.isprintable() for c in key):
        return None
    return key

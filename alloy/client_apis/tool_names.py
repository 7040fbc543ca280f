"""Tool names an OpenAI-compatible provider accepts, for the Messages translation.

Anthropic allows a tool name of up to 128 characters; OpenAI refuses a function name over 64 (its
documented limit, which compatible servers copy). Claude Code names the tools of its MCP servers
``mcp__<server>__<tool>``, which often passes 64, so every translated request would be refused.

A longer name goes upstream as ``short_name`` makes it: its first 55 characters, ``_`` and 8 hex
digits of its SHA-256 (64 in all; the same name always gives the same short one, and two names
that share their first 55 characters still differ). The answer's tool calls come back under the
client's own names (``restored``: the short name -> the client's, for the request's long names).
A name of 64 characters or fewer travels as it is.
"""

import hashlib

MAX_NAME = 64
KEPT = MAX_NAME - 9  # the characters kept before "_" and the 8 hex digits


def short_name(name):
    if len(name) <= MAX_NAME:
        return name
    return name[:KEPT] + "_" + hashlib.sha256(name.encode()).hexdigest()[:8]


def restored(tools):
    """{short name: the client's name} for the long names among a Messages request's ``tools``
    (None when there are none: the common case costs one pass over the tools)."""
    names = None
    for tool in tools if isinstance(tools, list) else ():
        name = tool.get("name") if isinstance(tool, dict) else None
        if isinstance(name, str) and len(name) > MAX_NAME:
            if names is None:
                names = {}
            names[short_name(name)] = name
    return names

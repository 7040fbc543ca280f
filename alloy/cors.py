"""Browsers: which web origins may call the gateway from a page (CORS, the Fetch standard).

A page on another origin (a chat UI at ``https://app.example``, the openai JS SDK with
``dangerouslyAllowBrowser``) may read an answer only when the answer names its origin in
``Access-Control-Allow-Origin``; before a request with an ``Authorization`` header or a JSON body it
first asks with a preflight, ``OPTIONS`` with ``Access-Control-Request-Method``. With
``[server] cors_origins`` set (origins, or ``"*"`` for any), Alloy:

- answers a preflight from an allowed origin itself, 204, whatever the path: the methods, the
  request headers the browser asked for, and ``max-age`` so it asks once every 10 minutes. A
  preflight needs no key (browsers never send one with it); a preflight from another origin goes on
  as any OPTIONS request would (405 on the model endpoints), so the browser refuses the call;
- adds ``Access-Control-Allow-Origin`` and ``Access-Control-Expose-Headers: *`` (so a page reads
  ``x-request-id``, ``retry-after`` and the ``x-ratelimit-*`` headers) to every answer to a request
  from an allowed origin: successes, streams, errors and the gateway's own endpoints alike; with
  named origins, every answer says ``Vary: Origin``, since it depends on it.

No ``Access-Control-Allow-Credentials``: keys travel in headers, never in cookies, so a page cannot
borrow a user's session with the gateway. Without ``cors_origins`` nothing here runs.
"""

import re

METHODS = b"GET, POST, PUT, PATCH, DELETE, OPTIONS"
MAX_AGE = 600
EXPOSE = b"access-control-expose-headers: *\r\n"
VARY = b"vary: origin\r\n"
# What a preflight may ask for in Access-Control-Request-Headers: a list of field names (tokens),
# echoed back as allowed; anything else is not echoed (the browser then refuses the call).
_FIELD_NAMES = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:[ \t]*,[ \t]*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*")
MAX_REQUESTED_HEADERS = 2048


class Cors:
    """The origins allowed, and the header lines an answer to each one carries."""

    def __init__(self, origins):
        self.any = "*" in origins
        self.origins = frozenset(origin.encode() for origin in origins if origin != "*")
        self.any_lines = b"access-control-allow-origin: *\r\n" + EXPOSE

    def lines(self, headers):
        """The CORS lines of an answer to a request with these headers. With named origins every
        answer says ``Vary: Origin`` (it depends on it: a shared cache must not give a page the
        answer another origin got); with ``*``, a request without ``Origin`` gets none."""
        origin = headers.get(b"origin")
        if self.any:
            return b"" if origin is None else self.any_lines
        if origin is not None and origin in self.origins:
            return b"access-control-allow-origin: " + origin + b"\r\n" + VARY + EXPOSE
        return VARY

    def added_to(self, answer, data, headers):
        """``data``, the bytes of a prebuilt ``answer``, with the CORS lines of an answer to a
        request with these ``headers``; a preflight's answer (which has its own) as it is."""
        if type(answer) is Preflight:
            return data
        lines = self.lines(headers)
        return with_lines(data, lines) if lines else data

    def preflight(self, request):
        """The answer to ``request`` when it is a preflight from an allowed origin, else None."""
        headers = request.headers
        if headers.get(b"access-control-request-method") is None:
            return None
        allow = self.lines(headers)
        if not allow.startswith(b"access-control-allow-origin"):
            return None
        lines = [allow[: -len(EXPOSE)], b"access-control-allow-methods: ", METHODS, b"\r\n"]
        asked = headers.get(b"access-control-request-headers")
        if asked is not None and len(asked) <= MAX_REQUESTED_HEADERS and _FIELD_NAMES.fullmatch(asked.strip(b" \t")):
            lines += [b"access-control-allow-headers: ", asked.strip(b" \t"), b"\r\n"]
        lines.append(b"access-control-max-age: %d\r\n" % MAX_AGE)
        if not self.any:
            lines.append(b"vary: access-control-request-method, access-control-request-headers\r\n")
        return Preflight(b"".join(lines))


class Preflight:
    """A preflight's answer in the shape of a ``Prebuilt`` one: 204, no body and, as RFC 9110
    section 8.6 asks of a 204, no Content-Length."""

    __slots__ = ("keep_alive", "closing")
    status = 0  # not an API answer: neither logged nor counted (a Prebuilt's status is, under /v1/)

    def __init__(self, lines):
        self.keep_alive = b"HTTP/1.1 204 No Content\r\n" + lines + b"\r\n"
        self.closing = b"HTTP/1.1 204 No Content\r\n" + lines + b"connection: close\r\n\r\n"


def with_lines(answer, lines):
    """A framed answer (head and body) with ``lines`` added to its head, after the status line."""
    at = answer.index(b"\r\n") + 2
    return answer[:at] + lines + answer[at:]


def origin_setting(value):
    """A ``cors_origins`` entry: "*", or an origin as a browser sends it (scheme, host, optional
    port; no path, no trailing slash). Returns it, or raises ValueError saying what is wrong."""
    if value == "*":
        return value
    if not isinstance(value, str) or not re.fullmatch(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?", value):
        raise ValueError(f"expected \"*\" or an origin such as \"https://app.example.com\" (no path), got {value!r}")
    return value.lower()

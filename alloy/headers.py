"""Header facts shared by both core twins and the shell: one source, never repeated."""

import os

# RFC 9110 section 7.6.1: hop-by-hop fields are meaningful only for one connection and are never
# forwarded by a proxy. The framing fields (content-length, transfer-encoding) are recomputed by
# Alloy for each hop, so they are dropped too. ``proxy-connection`` is a non-standard relic that
# some clients still send; ``http2-settings`` belongs to an h2c Upgrade, which Alloy never performs.
HOP_BY_HOP = frozenset(
    (
        b"connection",
        b"http2-settings",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
    )
)

# Upstream answer headers the client never sees besides the hop-by-hop ones: the headers Alloy sets
# on its own answers (an upstream that is itself an Alloy, or that spoofs them, would double them;
# the upstream's x-request-id travels as x-upstream-request-id), Alt-Svc, which would advertise
# another service for the gateway's own origin, and the provider's CORS answer: which web pages may
# read the gateway's answers is the gateway's choice (alloy.cors), and a second
# Access-Control-Allow-Origin makes browsers refuse the answer.
ANSWER_OWN = frozenset(
    (
        b"x-request-id", b"x-upstream-request-id", b"x-alloy-provider", b"x-alloy-model", b"x-alloy-attempts",
        b"x-alloy-overhead-us", b"x-alloy-cache", b"x-alloy-token-count", b"alt-svc",
        b"access-control-allow-origin", b"access-control-allow-credentials", b"access-control-expose-headers",
        b"access-control-allow-methods", b"access-control-allow-headers", b"access-control-max-age",
    )
)  # fmt: skip

# The statuses the official SDKs (openai, anthropic) retry by themselves, up to their max_retries,
# unless the answer says ``x-should-retry: false``. Alloy says it on such an answer once it has
# retried the request itself (``Call.retries_spent``): the SDK's retries of the gateway's retries
# would multiply the calls to a provider that is already failing (3 x 3 with both defaults).
SDK_RETRIED = frozenset((408, 409, 429)) | frozenset(range(500, 600))
RETRIES_SPENT = b"x-should-retry: false\r\n"

# Client credentials are never forwarded: the upstream always receives the provider's key.
CLIENT_CREDENTIALS = frozenset((b"authorization", b"api-key", b"x-api-key", b"x-goog-api-key"))

# Client headers that never go upstream: hop-by-hop fields, the client's own credentials (the
# upstream gets the provider's key), Host (the upstream's own), Expect (answered here), the
# request id, which Alloy sets itself, and Accept-Encoding: Alloy reads every answer (its usage for
# the ledger, budgets, token limits and metrics; the whole body for the cache and for
# translation), so it asks for the answer uncompressed (``IDENTITY_LINE``) whatever the client
# accepts. The official SDKs send ``gzip, deflate``, and providers do compress.
NOT_FORWARDED = HOP_BY_HOP | CLIENT_CREDENTIALS | {b"host", b"expect", b"x-request-id", b"accept-encoding"}
IDENTITY_LINE = b"accept-encoding: identity\r\n"  # unless a provider's configured headers say otherwise

# Client headers that choose which account the gateway's provider key bills (OpenAI's organization
# and project, Anthropic's and Google's header families): dropped unless a provider's
# ``forward_client_headers`` names them, so a client cannot bill another organization or project.
# The client's Cookie goes the same way: a browser's cookies are for the gateway's own site (a
# company portal's session, say), no provider API reads them, and a third party must not get them.
PROVIDER_SCOPED = frozenset((b"openai-organization", b"openai-project", b"cookie"))
PROVIDER_SCOPED_PREFIXES = (b"anthropic-", b"x-goog-")
# Every ``Proxy-*`` field speaks to a proxy (its credentials, its connection handling), never to the
# origin behind it, so the whole family stays here like the hop-by-hop fields; every ``X-Alloy-*``
# field speaks to this gateway (the cache's namespace and ttl, the ledger's tags), never to a
# provider, which has no business knowing a tenant's namespace.
FORWARD_SKIP_PREFIXES = PROVIDER_SCOPED_PREFIXES + (b"proxy-", b"x-alloy-")
# What the default forwarding policy (a provider without configured headers or
# forward_client_headers) leaves out, by name and by prefix (``FORWARD_SKIP_PREFIXES``): the client
# connection's parser writes the other fields as the forwarded block while it reads a head (core
# RequestParser, Request.forwarded).
FORWARD_SKIP = frozenset(NOT_FORWARDED | PROVIDER_SCOPED)

# Upstream answer headers that name the account behind the provider key (or set state for the
# gateway's own origin): hidden from clients unless a provider's ``hidden_response_headers`` says
# otherwise.
HIDDEN_RESPONSE_HEADERS = ("openai-organization", "openai-project", "anthropic-organization-id", "set-cookie")

# On a translated request Alloy writes a new body and reads the answer, so the client's description
# of its body and of what it accepts does not apply either.
NOT_FORWARDED_TRANSLATED = NOT_FORWARDED | {b"content-type", b"accept"}

# Lines and answers written often enough to be built once.
JSON_HEADER = b"content-type: application/json\r\n"
EVENT_STREAM_HEADERS = b"content-type: text/event-stream\r\ncache-control: no-cache\r\n"
DONE_EVENT = b"data: [DONE]\n\n"  # an OpenAI stream's last event
TOKEN_ESTIMATE_HEADER = b"x-alloy-token-count: estimate\r\n"  # a token count the gateway estimated

# Every upstream request names this gateway in a Via line (RFC 9110 section 7.6.3: what Via is for,
# among others, is telling request loops): "alloy-" and a random token, made at import (so before
# --workers forks, shared by all of them) and never shown to a client. A request whose Via holds it
# came back around: a provider's base_url points at the gateway (Pipeline.handle answers 508 at
# once). A client's own Via is forwarded, so a chain of gateways that loops is told too.
HOP_MARK = b"alloy-" + os.urandom(12).hex().encode()
HOP_LINE = b"via: 1.1 " + HOP_MARK + b"\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"  # RFC 9110 section 10.1.1

# Reason phrases for the statuses Alloy can send. Unknown codes get an empty phrase, which
# RFC 9112 section 4 allows.
STATUS_REASONS = {
    100: b"Continue",
    200: b"OK",
    201: b"Created",
    202: b"Accepted",
    204: b"No Content",
    206: b"Partial Content",
    301: b"Moved Permanently",
    302: b"Found",
    304: b"Not Modified",
    307: b"Temporary Redirect",
    308: b"Permanent Redirect",
    400: b"Bad Request",
    401: b"Unauthorized",
    402: b"Payment Required",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    409: b"Conflict",
    413: b"Content Too Large",
    414: b"URI Too Long",
    415: b"Unsupported Media Type",
    422: b"Unprocessable Content",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
    505: b"HTTP Version Not Supported",
    508: b"Loop Detected",
    529: b"Site Overloaded",
}

"""Anthropic providers answering Anthropic Messages natively: ``/v1/messages`` and
``/v1/messages/count_tokens`` passed through, the bytes untouched apart from the model name.

Each configured ``anthropic`` provider is wrapped once, at start, in a ``NativeAnthropic``: the
deployments of every model group hold the wrapper, so retries, fallbacks, balancing and the circuit
breaker are the same objects and the same state whichever client API reached them. A chat
completions call goes to the wrapped provider as before (``alloy.sending.TranslatedProvider``:
translated to Messages and back). A Messages call (its connection is a ``MessagesConnection``) is
sent the way ``alloy.sending.PassthroughProvider`` sends: the client's own body, with the
deployment's model spliced in by the core (``rewrite_model_parts``), to the provider's
``/v1/messages`` (or ``/count_tokens``) with the client's query (``?beta=true``), the provider's
``x-api-key`` and ``anthropic-version`` (its ``api_version``, else 2023-06-01), and relayed by a
``PassthroughRelay`` event by event. Client headers follow the provider's forwarding policy as for
any passthrough: ``anthropic-beta`` (like every ``anthropic-*`` header) only when the provider's
``forward_client_headers`` names it.
"""

from alloy.client_apis.messages_wire import MessagesConnection
from alloy.core import rewrite_model_parts
from alloy.headers import ANSWER_OWN, HOP_BY_HOP, HOP_LINE
from alloy.relay import PassthroughRelay
from alloy.sending import ForwardingPolicy
from alloy.upstream import UpstreamRequest

DEFAULT_VERSION = b"2023-06-01"


class NativeAnthropic:
    """An Anthropic provider that also answers Messages calls natively (see the module docstring)."""

    messages_native = True  # read by MessagesTransport: this provider's answers are Anthropic's already
    translates = True

    def __init__(self, inner, settings, upstream):
        self.inner = inner  # the provider's chat completions side (alloy.sending.TranslatedProvider)
        self.name = inner.name
        self.name_bytes = inner.name_bytes
        self.upstream = upstream
        self.base_path = upstream.origin.base_path.encode()
        self.forwarding = ForwardingPolicy(settings)  # as a passthrough: the client's body, its headers
        # As PassthroughProvider: hop-by-hop fields, the headers naming the account behind the key, and
        # an upstream x-request-id (relayed as x-upstream-request-id; Anthropic's own is request-id).
        hidden = {name.encode() for name in settings.hidden_response_headers}
        self.response_skip = frozenset(HOP_BY_HOP | hidden | ANSWER_OWN)
        key = b"x-api-key: " + settings.api_key.encode() + b"\r\n" if settings.api_key else b""
        host = b"host: " + upstream.origin.host_header.encode() + b"\r\n"
        self.header_block = host + key + self.forwarding.configured_lines + HOP_LINE
        version = settings.api_version.encode() if settings.api_version else DEFAULT_VERSION
        self.version_line = b"anthropic-version: " + version + b"\r\n"

    def __getattr__(self, name):  # anything else a chat completions call reads of its provider
        return getattr(self.inner, name)

    def send(self, call, deployment, served_by, total_ticks):
        """Start one attempt of ``call`` on ``deployment``; returns its relay."""
        connection = call.connection
        if type(connection) is not MessagesConnection:
            return self.inner.send(call, deployment, served_by, total_ticks)
        request = connection.request  # the client's Messages request, not the chat translation
        scan = connection.scan
        model = deployment.upstream_model or call.model_name
        body = [scan.body] if model == scan.model else rewrite_model_parts(scan, model)
        forwarded = self.forwarding.lines(request.headers)
        # The provider's anthropic-version, unless its policy lets the client's through.
        version = b"" if _has_line(forwarded, b"anthropic-version") else self.version_line
        upstream_request = UpstreamRequest(
            b"POST",
            self.base_path + connection.path + connection.query,
            self.header_block + version + forwarded + call.request_id_line,
            body,
            sum(len(part) for part in body),
            deployment.timeouts,
            total_ticks,
        )
        relay = PassthroughRelay(call, call.id_line + served_by, self.response_skip)
        relay.handle = self.upstream.start(upstream_request, relay)
        return relay


def _has_line(block, name):
    return block.startswith(name + b":") or b"\r\n" + name + b":" in block

"""The send stage: how one attempt of a call reaches a provider.

Each configured provider is one of two kinds, built once at start with everything that does not
change per request (the host line, the credentials, the configured headers, which client headers
go through):

- ``PassthroughProvider`` (OpenAI and compatible APIs, Azure): the body goes as the client sent it,
  with only the model name spliced in by the core scanner; the provider's API module
  (``alloy.providers.openai`` / ``azure``) knows its paths and its credentials header.
- ``TranslatedProvider`` (Anthropic, Gemini): the body is decoded and rewritten by the provider's
  translator (``alloy.providers.anthropic`` / ``gemini``), and the answer translated back.

``send(call, deployment, served_by, total_ticks)`` builds the ``UpstreamRequest`` (whose head the
core frames and checks at once), creates the attempt's relay (``alloy.relay``) and starts it on
the provider's upstream backend.
"""

import orjson

from alloy.core import encode_forwarded, rewrite_model_parts
from alloy.errors import unreadable_json
from alloy.headers import (
    ANSWER_OWN,
    FORWARD_SKIP,
    FORWARD_SKIP_PREFIXES,
    HOP_BY_HOP,
    HOP_LINE,
    IDENTITY_LINE,
    NOT_FORWARDED,
    NOT_FORWARDED_TRANSLATED,
    PROVIDER_SCOPED,
    PROVIDER_SCOPED_PREFIXES,
)
from alloy.providers import PASSTHROUGH, TranslateSettings, translator_for
from alloy.relay import PassthroughRelay, TranslatedRelay, masked_secret
from alloy.stream_usage import HiddenUsage, ask_for_usage
from alloy.upstream import UpstreamRequest

# The endpoints whose streams report usage only when asked (stream_options.include_usage).
STREAM_USAGE_ENDPOINTS = frozenset(("chat/completions", "completions"))
# Replaced by Alloy's own when tracing is on (alloy.observability.tracing); in a trace Alloy started,
# the client's tracestate too (W3C Trace Context: it belongs to the traceparent it came with).
TRACE_HEADERS = frozenset((b"traceparent",))
NEW_TRACE_HEADERS = frozenset((b"traceparent", b"tracestate"))


class ForwardingPolicy:
    """Which client headers go upstream for one provider, built once: never hop-by-hop fields or
    the client's credentials; never a header the provider's configuration sets (the configured
    value replaces the client's); never a provider-scoped header (organization, project,
    ``anthropic-*``, ``x-goog-*``) unless ``forward_client_headers`` names it; never the client's
    Accept-Encoding (``configured_lines`` asks for an uncompressed answer instead)."""

    def __init__(self, settings, skip=NOT_FORWARDED):
        configured = {name.lower().encode() for name, _ in settings.headers}
        allowed = {name.encode() for name in settings.forward_client_headers} - configured
        self.chosen = frozenset(allowed)  # named to be forwarded: part of the response cache's keys
        self.skip = frozenset(skip | configured | (PROVIDER_SCOPED - allowed))
        if self.skip == FORWARD_SKIP:
            self.skip = FORWARD_SKIP  # the parser's set: its Request.forwarded is this policy's lines
        self.prefixes = FORWARD_SKIP_PREFIXES
        # Allowed names inside a dropped family are added back one by one (usually none).
        self.readd = tuple(name for name in allowed if name.startswith(PROVIDER_SCOPED_PREFIXES))
        self.configured_lines = b"".join(
            name.lower().encode() + b": " + value.encode() + b"\r\n" for name, value in settings.headers
        )
        if b"accept-encoding" not in configured:  # answers Alloy can read (alloy.headers.NOT_FORWARDED)
            self.configured_lines += IDENTITY_LINE

    def request_lines(self, request):
        """``lines(request.headers)``: the block the client connection's parser wrote, when it
        filtered with this policy's sets (the default policy: ``alloy.headers.FORWARD_SKIP``)."""
        if request.forwarded_skip is self.skip and not self.readd:
            return request.forwarded
        return self.lines(request.headers)

    def lines(self, headers, skip=None):
        block = encode_forwarded(headers, self.skip if skip is None else self.skip | skip, self.prefixes)
        for name in self.readd:
            value = headers.get(name)
            if value is not None:
                block += name + b": " + value + b"\r\n"
        return block


class PassthroughProvider:
    translates = False

    def __init__(self, settings, upstream):
        self.name = settings.name
        self.name_bytes = settings.name.encode()
        self.upstream = upstream
        self.api = PASSTHROUGH[settings.api]  # the module that knows this API's paths and key header
        self.api_version = settings.api_version
        self.base_path = upstream.origin.base_path.encode()
        self.plain_paths = self.api.PLAIN_PATHS  # the upstream path is base_path + the client's
        self.forwarding = ForwardingPolicy(settings)
        # Hop-by-hop fields, the upstream headers that name the account behind the key, and the
        # upstream's x-request-id (relayed as x-upstream-request-id: the gateway sets its own).
        hidden = {name.encode() for name in settings.hidden_response_headers}
        self.response_skip = frozenset(HOP_BY_HOP | hidden | ANSWER_OWN)
        host = b"host: " + upstream.origin.host_header.encode() + b"\r\n"
        self.header_block = host + self.api.auth_lines(settings.api_key) + self.forwarding.configured_lines + HOP_LINE
        self.secret = masked_secret(settings.api_key)  # taken out of error answers (the relay)

    def send(self, call, deployment, served_by, total_ticks):
        """Start one attempt of ``call`` on ``deployment``; returns its relay."""
        request = call.request
        scan = call.scan
        hidden = None
        if self.plain_paths:
            target = self.base_path + call.suffix
        if scan is None:  # an endpoint without a model: files, images, audio...
            if not self.plain_paths:
                target = self.api.passthrough_target(self.base_path, call.suffix, self.api_version)
            body = [request.body_buffer]
        else:
            model = deployment.upstream_model or call.model_name
            body = [scan.body] if model == scan.model else rewrite_model_parts(scan, model)
            if not self.plain_paths:
                target = self.api.target(self.base_path, call.suffix, model, self.api_version)
            if scan.stream and call.pipeline.needs_stream_usage and call.endpoint in STREAM_USAGE_ENDPOINTS:
                asked = ask_for_usage(body, scan)  # None: the client asked for usage itself
                if asked is not None:
                    body, hidden = asked, HiddenUsage()
        trace = call.trace
        if trace is None:
            forwarded = self.forwarding.request_lines(request)
        else:  # the upstream's parent span is this attempt's, not the client's
            replaced = TRACE_HEADERS if trace.parent_id is not None else NEW_TRACE_HEADERS
            forwarded = self.forwarding.lines(request.headers, replaced) + trace.attempt_line(call.sent_at)
        size = 0
        for piece in body:
            size += len(piece)
        upstream_request = UpstreamRequest(
            request.method,
            target,
            self.header_block + forwarded + call.request_id_line,
            body,
            size,
            deployment.timeouts,
            total_ticks,
            self.response_skip,  # the core writes the client's header block as it parses the head
        )
        relay = PassthroughRelay(call, call.id_line + served_by, self.response_skip, hidden)
        relay.handle = self.upstream.start(upstream_request, relay, request.method == b"HEAD")
        return relay


class TranslatedProvider:
    translates = True

    def __init__(self, settings, upstream, translator, max_buffered):
        self.name = settings.name
        self.name_bytes = settings.name.encode()
        self.translator = translator
        self.upstream = upstream
        self.base_path = upstream.origin.base_path.encode()
        self.host_line = b"host: " + upstream.origin.host_header.encode() + b"\r\n" + HOP_LINE
        self.settings = TranslateSettings(
            api_key=settings.api_key,
            api_version=settings.api_version,
            max_tokens_default=settings.max_tokens_default,
        )
        self.forwarding = ForwardingPolicy(settings, NOT_FORWARDED_TRANSLATED)
        self.max_buffered = max_buffered
        self.secret = masked_secret(settings.api_key)  # taken out of error answers (the relay)

    def send(self, call, deployment, served_by, total_ticks):
        """Start one attempt of ``call`` on ``deployment``; returns its relay."""
        request = call.request
        try:
            body = orjson.loads(request.body_buffer)
        except orjson.JSONDecodeError as error:
            raise unreadable_json(error) from None
        model = deployment.upstream_model or call.model_name
        translated = self.translator.build_request(body, model, call.endpoint, self.settings)
        # The client's other headers travel on (tracing...), except those the translated call
        # sets itself and those the provider's forwarding policy drops.
        skip = frozenset(name for name, _ in translated.headers)
        forwarding = self.forwarding
        trace = call.trace
        if trace is not None:  # the upstream's parent span is this attempt's, not the client's
            skip |= TRACE_HEADERS if trace.parent_id is not None else NEW_TRACE_HEADERS
        lines = [self.host_line, forwarding.configured_lines, forwarding.lines(request.headers, skip), call.request_id_line]
        if trace is not None:
            lines.append(trace.attempt_line(call.sent_at))
        lines.extend(name + b": " + value + b"\r\n" for name, value in translated.headers)
        upstream_request = UpstreamRequest(
            translated.method,
            self.base_path + translated.path,
            b"".join(lines),
            [translated.body],
            len(translated.body),
            deployment.timeouts,
            total_ticks,
        )
        stream_options = body.get("stream_options") or {}
        include_usage = bool(stream_options.get("include_usage")) if isinstance(stream_options, dict) else False
        relay = TranslatedRelay(
            call, call.id_line + served_by, self.translator, model, translated.stream, include_usage, self.max_buffered
        )
        if call.endpoint == "embeddings" and body.get("encoding_format") == "base64":
            relay.base64_embeddings = True  # the provider answers floats: encoded as asked
        relay.handle = self.upstream.start(upstream_request, relay)
        return relay


def provider_for(settings, upstream, server):
    """The send-stage object for one configured provider."""
    translator = translator_for(settings.api)
    if translator is not None:
        return TranslatedProvider(settings, upstream, translator, server.max_buffered_response_bytes)
    return PassthroughProvider(settings, upstream)

"""One proxied request end to end: scan the body, route the model, send upstream, relay the answer.

The relay is a streaming one: the upstream's head is re-framed and written as soon as it is read,
and each body piece is written the moment it arrives (``text/event-stream`` responses are therefore
flushed event by event, never buffered to the end). Everything one upstream read produced goes
to the client in one write.
"""

import os

import orjson

from alloy.core import (
    LAST_CHUNK,
    RouteTable,
    encode_forwarded,
    encode_headers,
    frame_chunk,
    frame_head,
    frame_stream_head,
    rewrite_model_parts,
    scan_body,
)
from alloy.attempts import Attempts
from alloy.balancer import Deployment, ModelGroup
from alloy.errors import (
    InvalidRequest,
    ModelNotFound,
    NotFound,
    ServiceUnavailable,
    UnsafeHead,
    UpstreamProtocolError,
    error_payload,
)
from alloy.headers import (
    HOP_BY_HOP,
    NOT_FORWARDED,
    NOT_FORWARDED_TRANSLATED,
    PROVIDER_SCOPED,
    PROVIDER_SCOPED_PREFIXES,
    STATUS_REASONS,
)
from alloy.providers import PASSTHROUGH, TRANSLATORS
from alloy.translated import Translation
from alloy.upstream import Timeouts, UpstreamRequest

HOLD_LIMIT = 1024 * 1024  # an error answer longer than this is relayed as it comes, never retried
_REQUEST_ID_OK = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


class ForwardingPolicy:
    """Which client headers go upstream for one provider, built once: never hop-by-hop fields or
    the client's credentials; never a header the provider's configuration sets (the configured
    value replaces the client's); never a provider-scoped header (organization, project,
    ``anthropic-*``, ``x-goog-*``) unless ``forward_client_headers`` names it."""

    def __init__(self, provider, skip=NOT_FORWARDED):
        configured = {name.lower().encode() for name, _ in provider.headers}
        allowed = {name.encode() for name in provider.forward_client_headers} - configured
        self.skip = frozenset(skip | configured | (PROVIDER_SCOPED - allowed))
        self.prefixes = PROVIDER_SCOPED_PREFIXES
        # Allowed names inside a dropped family are added back one by one (usually none).
        self.readd = tuple(name for name in allowed if name.startswith(PROVIDER_SCOPED_PREFIXES))
        self.configured_lines = b"".join(
            name.lower().encode() + b": " + value.encode() + b"\r\n" for name, value in provider.headers
        )

    def lines(self, headers, skip=None):
        block = encode_forwarded(headers, self.skip if skip is None else self.skip | skip, self.prefixes)
        for name in self.readd:
            value = headers.get(name)
            if value is not None:
                block += name + b": " + value + b"\r\n"
        return block


def hidden_response_headers(provider):
    """Hop-by-hop fields and the upstream headers that name the account behind the key."""
    return frozenset(HOP_BY_HOP | {name.encode() for name in provider.hidden_response_headers})


class Passthrough:
    """A provider reached by passthrough (OpenAI and compatible APIs, Azure): the body goes as the
    client sent it, with only the model name spliced in. Holds what is built once for it."""

    translates = False

    def __init__(self, provider, upstream):
        self.name = provider.name
        self.name_bytes = provider.name.encode()
        self.upstream = upstream
        self.adapter = PASSTHROUGH[provider.api]
        self.api_version = provider.api_version
        self.base_path = upstream.origin.base_path.encode()
        self.forwarding = ForwardingPolicy(provider)
        self.response_skip = hidden_response_headers(provider)
        host = b"host: " + upstream.origin.host_header.encode() + b"\r\n"
        self.header_block = host + self.adapter.auth_lines(provider.api_key) + self.forwarding.configured_lines

    def send(self, plan, deployment, served_by, total_ticks):
        """Start one attempt of ``plan``'s request on ``deployment``; returns its exchange."""
        request = plan.request
        scan = plan.scan
        if scan is None:  # an endpoint without a model: files, images, audio...
            target = self.adapter.passthrough_target(self.base_path, plan.suffix, self.api_version)
            body = [request.body]
        else:
            model = deployment.upstream_model or plan.model_name
            body = [scan.body] if model == scan.model else rewrite_model_parts(scan, model)
            target = self.adapter.target(self.base_path, plan.suffix, model, self.api_version)
        upstream_request = UpstreamRequest(
            request.method,
            target,
            self.header_block + self.forwarding.lines(request.headers) + plan.id_line,
            body,
            sum(len(part) for part in body),
            deployment.timeouts,
            total_ticks,
        )
        exchange = ProxyExchange(plan, request.keep_alive, plan.id_line + served_by, self.response_skip)
        exchange.handle = self.upstream.start(upstream_request, exchange, request.method == b"HEAD")
        return exchange


def _connector(provider, upstream, server):
    translator = TRANSLATORS.get(provider.api)
    if translator is not None:
        forwarding = ForwardingPolicy(provider, NOT_FORWARDED_TRANSLATED)
        return Translation(provider, upstream, translator, forwarding, server.max_buffered_response_bytes)
    return Passthrough(provider, upstream)


class RequestIds:
    """``x-request-id``: the client's when it is a sane token, else a process-unique one."""

    def __init__(self):
        self.prefix = os.urandom(6).hex()
        self.counter = 0

    def for_request(self, headers):
        given = headers.get(b"x-request-id")
        if given is not None and 0 < len(given) <= 128 and all(c in _REQUEST_ID_OK for c in given):
            return given
        self.counter += 1
        return b"%s-%x" % (self.prefix.encode(), self.counter)


def _timeouts(provider, model=None):
    def pick(key):
        value = getattr(model, key) if model is not None else None
        return getattr(provider, key) if value is None else value

    return Timeouts(
        pick("connect_timeout"), pick("first_byte_timeout"), pick("stream_idle_timeout"), pick("total_timeout")
    )


class Proxy:
    """Routes a model name to its model group and hands the request to ``Attempts``."""

    def __init__(self, config, upstreams, loop):
        self.loop = loop
        self.router = config.router
        providers = {p.name: p for p in config.providers}
        connectors = {p.name: _connector(p, upstreams[p.name], config.server) for p in config.providers}

        def provider_group(name):
            # Every model a provider serves by prefix, wildcard or as the plain proxy shares one
            # deployment, without a circuit breaker: there is nowhere else to send its requests, so
            # cooling it would only turn the provider's own answers into 503s.
            deployment = Deployment(connectors[name], None, 1.0, 0, _timeouts(providers[name]), None)
            return ModelGroup(name, [deployment], config.router.strategy, config.router.max_retries)

        provider_groups = {name: provider_group(name) for name in connectors}
        self.default = connectors.get(config.default_provider)
        self.default_group = provider_groups.get(config.default_provider)
        self.routes = RouteTable()
        self.listed_models = []
        self.groups = {}  # configured models by name and alias, for fallbacks and /health/ready
        self.configured = []
        for model in config.models:
            deployments = [
                Deployment(
                    connectors[d.provider], d.model, d.weight, d.max_inflight,
                    _timeouts(providers[d.provider], model), config.router,
                )  # fmt: skip
                for d in model.deployments
            ]
            max_retries = config.router.max_retries if model.max_retries is None else model.max_retries
            group = ModelGroup(model.name, deployments, model.strategy or config.router.strategy, max_retries)
            self.configured.append(group)
            for name in (model.name, *model.aliases):
                self.routes.add_exact(name, group)
                self.groups[name] = group
                self.listed_models.append((name, model.provider))
        for model, group in zip(config.models, self.configured):
            group.fallbacks = tuple(self.groups[name] for name in model.fallbacks)
            group.context_window_fallbacks = tuple(self.groups[name] for name in model.context_window_fallbacks)
            group.content_policy_fallbacks = tuple(self.groups[name] for name in model.content_policy_fallbacks)
        for name, group in provider_groups.items():
            self.routes.add_prefix(name, group)
        for pattern, provider in config.wildcards:
            self.routes.add_wildcard(pattern, provider_groups[provider])
        configured = {pattern for pattern, _ in config.wildcards}
        for provider in config.providers:
            # Model families a provider serves (claude-* for anthropic...), unless configured.
            for pattern in provider.families:
                if pattern not in configured:
                    self.routes.add_wildcard(pattern, provider_groups[provider.name])
        if not config.models and not config.wildcards and self.default_group is not None:
            # A plain proxy: every model goes to the default provider under its own name.
            self.routes.add_wildcard("*", self.default_group)
        self.request_ids = RequestIds()

    def model_request(self, request, path, query, connection):
        """chat/completions, completions, embeddings: the body names the model that routes it.
        ``path`` is normalized (``clean_path``); ``query`` is ``b""`` or starts with ``?``."""
        scan = scan_body(request.body)
        if scan.model is None:
            raise InvalidRequest("you must provide a model parameter", param="model")
        found = self.routes.lookup(scan.model)
        if found is None:
            raise ModelNotFound(f"The model '{scan.model}' does not exist or is not routed by this gateway", param="model")
        group, name = found
        id_line = b"x-request-id: " + self.request_ids.for_request(request.headers) + b"\r\n"
        # "/v1/x", "?y" -> "/x?y"; the endpoint is "chat/completions", "completions" or "embeddings".
        suffix, endpoint = path[3:] + query, path[4:].decode()
        Attempts(self.router, self.loop, group, request, connection, id_line, scan, name, suffix, endpoint).start()

    def passthrough(self, request, path, query, connection):
        """Another allowed /v1/ path goes to the default provider (files, images, audio...), as
        normalized."""
        connector = self.default
        if connector is None:
            raise ServiceUnavailable("no default provider is configured for this endpoint")
        if connector.translates:
            raise NotFound(f"{path.decode('latin-1')} is not available through provider {connector.name}")
        id_line = b"x-request-id: " + self.request_ids.for_request(request.headers) + b"\r\n"
        Attempts(self.router, self.loop, self.default_group, request, connection, id_line, suffix=path[3:] + query).start()

    def readiness(self):
        """``/health/ready``: each configured model's deployments and their state; unavailable when
        some model has no healthy deployment left."""
        models = {group.name: group.report() for group in self.configured}
        ready = all(report["healthy"] for report in models.values())
        return ready, {"status": "ready" if ready else "unavailable", "models": models}


class ProxyExchange:
    """The sink of one upstream attempt: re-frames what the upstream sends for the client.

    An answer that another attempt might replace (``Attempts.holds``) is held: read whole, relayed
    only if ``Attempts`` finally gives it to the client (``relay_held``).
    """

    __slots__ = (
        "plan", "connection", "transport", "keep_alive", "extra_headers", "response_skip", "handle",
        "chunked", "head_sent", "event_stream", "finished", "held", "held_bytes",
    )  # fmt: skip

    def __init__(self, plan, keep_alive, extra_headers, response_skip):
        self.plan = plan
        self.response_skip = response_skip  # upstream headers the client never sees
        self.connection = connection = plan.connection
        self.transport = connection.transport
        self.keep_alive = keep_alive
        self.extra_headers = extra_headers
        self.handle = None
        self.chunked = False
        self.head_sent = False
        self.event_stream = False
        self.finished = False
        self.held = None

    # --- the sink interface (see alloy.upstream) ------------------------------------------------

    def upstream_events(self, events):
        if self.finished:
            return
        if not self.head_sent:
            if self.held is not None:
                self.held.extend(events)
                self.held_bytes += sum(len(event) for event in events)
                if self.held_bytes > HOLD_LIMIT:
                    events, self.held = self.held, None
                    self.plan.relaying_failure()
                    self._relay(events)
                return
            status = events[0].status
            plan = self.plan
            if status >= 400 and plan.holds(status):
                self.held = list(events)
                self.held_bytes = sum(len(event) for event in events[1:])
                return
            if plan.measuring:
                plan.first_byte()
            try:
                self._relay(events)
            except UnsafeHead as error:  # a head the core refuses to write: nothing was written
                self.head_sent = self.chunked = False
                self.cancel()
                plan.failed_with_error(UpstreamProtocolError(f"the upstream's answer cannot be relayed: {error.message}"))
            return
        self._relay(events)

    def upstream_done(self):
        if self.finished:
            return
        self.finished = True
        if self.held is not None:
            self.plan.failed_with_answer(self)
            return
        self.plan.succeeded()
        self._end()

    def upstream_failed(self, error):
        if self.finished:
            return
        self.finished = True
        if not self.head_sent:
            self.plan.failed_with_error(error)
            return
        self.plan.broke_off()
        connection = self.connection
        if self.chunked and self.event_stream:
            # The stream already started: end it with an OpenAI-style error event, cleanly framed,
            # so SDKs raise an error instead of hanging or silently truncating.
            event = b"data: " + _json_error(error) + b"\n\n"
            self.transport.writelines([frame_chunk(event), LAST_CHUNK])
        connection.current = None
        connection.close() if self.chunked else self.transport.abort()

    # --- called by Attempts -----------------------------------------------------------------------

    def relay_held(self):
        events, self.held = self.held, None
        self._relay(events)
        self._end()

    def cancel(self):
        self.finished = True
        if self.handle is not None:
            self.handle.cancel()

    def pause(self):
        if self.handle is not None and not self.finished:
            self.handle.pause_reading()

    def resume(self):
        if self.handle is not None and not self.finished:
            self.handle.resume_reading()

    # --- writing to the client ----------------------------------------------------------------------

    def _relay(self, events):
        out = []
        for event in events:
            if type(event) is bytes:
                out.append(frame_chunk(event) if self.chunked else event)
            else:
                out.append(self._head(event))
        if len(out) == 1:
            self.transport.write(out[0])
        else:
            self.transport.writelines(out)

    def _end(self):
        if self.chunked:
            self.transport.write(LAST_CHUNK)
        self.connection.exchange_finished(self.keep_alive)

    # --- framing the head -------------------------------------------------------------------------

    def _head(self, head):
        self.head_sent = True
        status = head.status
        block = encode_headers(head.headers, self.response_skip) + self.extra_headers
        close = not self.keep_alive or self.connection.gateway.draining
        if close:
            self.keep_alive = False
        if status == 204 or status == 304:
            connection = b"connection: close\r\n" if close else b""
            return b"HTTP/1.1 %d %s\r\n%s%s\r\n" % (status, STATUS_REASONS.get(status, b""), block, connection)
        if head.content_length >= 0:
            return frame_head(status, block, head.content_length, close)
        self.chunked = True
        content_type = head.get(b"content-type")
        self.event_stream = content_type is not None and content_type.startswith(b"text/event-stream")
        return frame_stream_head(status, block, close)


def _json_error(error):
    return orjson.dumps(error_payload(error))

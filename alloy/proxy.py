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
from alloy.errors import InvalidRequest, ModelNotFound, NotFound, ServiceUnavailable, error_payload
from alloy.headers import NOT_FORWARDED, STATUS_REASONS
from alloy.providers import PASSTHROUGH, TRANSLATORS
from alloy.translated import Translation
from alloy.upstream import UpstreamRequest

_REQUEST_ID_OK = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


class Deployment:
    """A provider reached by passthrough, as the proxy sees it: its upstream, its API adapter and
    the header lines built once for it."""

    translates = False

    def __init__(self, provider, upstream):
        self.name = provider.name
        self.upstream = upstream
        self.adapter = PASSTHROUGH[provider.api]
        self.api_version = provider.api_version
        self.base_path = upstream.origin.base_path.encode()
        lines = [b"host: " + upstream.origin.host_header.encode() + b"\r\n"]
        lines.append(self.adapter.auth_lines(provider.api_key))
        for name, value in provider.headers:
            lines.append(name.lower().encode() + b": " + value.encode() + b"\r\n")
        self.header_block = b"".join(lines)
        self.provider_header = b"x-alloy-provider: " + provider.name.encode() + b"\r\n"


def _deployment(provider, upstream):
    translator = TRANSLATORS.get(provider.api)
    if translator is not None:
        return Translation(provider, upstream, translator)
    return Deployment(provider, upstream)


class Route:
    __slots__ = ("deployment", "upstream_model")

    def __init__(self, deployment, upstream_model=None):
        self.deployment = deployment
        self.upstream_model = upstream_model  # None: send the requested name as it is


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


class Proxy:
    def __init__(self, config, upstreams):
        deployments = {p.name: _deployment(p, upstreams[p.name]) for p in config.providers}
        self.default = deployments.get(config.default_provider)
        self.routes = RouteTable()
        self.listed_models = []
        for model in config.models:
            route = Route(deployments[model.provider], model.model)
            for name in (model.name, *model.aliases):
                self.routes.add_exact(name, route)
                self.listed_models.append((name, model.provider))
        for name, deployment in deployments.items():
            self.routes.add_prefix(name, Route(deployment))
        for pattern, provider in config.wildcards:
            self.routes.add_wildcard(pattern, Route(deployments[provider]))
        configured = {pattern for pattern, _ in config.wildcards}
        for provider in config.providers:
            # Model families a provider serves (claude-* for anthropic...), unless configured.
            for pattern in provider.families:
                if pattern not in configured:
                    self.routes.add_wildcard(pattern, Route(deployments[provider.name]))
        if not config.models and not config.wildcards and self.default is not None:
            # A plain proxy: every model goes to the default provider under its own name.
            self.routes.add_wildcard("*", Route(self.default))
        self.request_ids = RequestIds()

    def model_request(self, request, path, connection):
        """chat/completions, completions, embeddings: the body names the model that routes it."""
        scan = scan_body(request.body)
        if scan.model is None:
            raise InvalidRequest("you must provide a model parameter", param="model")
        found = self.routes.lookup(scan.model)
        if found is None:
            raise ModelNotFound(f"The model '{scan.model}' does not exist or is not routed by this gateway", param="model")
        route, name = found
        upstream_model = route.upstream_model or name
        if upstream_model == scan.model:
            body = [scan.body]
        else:
            body = rewrite_model_parts(scan, upstream_model)
        model_header = b"x-alloy-model: " + upstream_model.encode() + b"\r\n"
        deployment = route.deployment
        if deployment.translates:
            id_line = b"x-request-id: " + self.request_ids.for_request(request.headers) + b"\r\n"
            extra_headers = id_line + deployment.provider_header + model_header
            endpoint = path[4:].decode()  # "chat/completions", "completions", "embeddings"
            deployment.send(request, endpoint, upstream_model, extra_headers, id_line, connection)
            return
        suffix = request.target[3:]  # "/v1/x?y" -> "/x?y"
        target = deployment.adapter.target(deployment.base_path, suffix, upstream_model, deployment.api_version)
        self._send(request, target, deployment, body, model_header, connection)

    def passthrough(self, request, path, connection):
        """Any other /v1/ path goes to the default provider unchanged (files, images, audio...)."""
        deployment = self.default
        if deployment is None:
            raise ServiceUnavailable("no default provider is configured for this endpoint")
        if deployment.translates:
            raise NotFound(f"{path.decode('latin-1')} is not available through provider {deployment.name}")
        suffix = request.target[3:]
        target = deployment.adapter.passthrough_target(deployment.base_path, suffix, deployment.api_version)
        self._send(request, target, deployment, [request.body], b"", connection)

    def _send(self, request, target, deployment, body, model_header, connection):
        request_id = self.request_ids.for_request(request.headers)
        id_line = b"x-request-id: " + request_id + b"\r\n"
        forwarded = encode_forwarded(request.headers, NOT_FORWARDED)
        upstream_request = UpstreamRequest(
            request.method,
            target,
            deployment.header_block + forwarded + id_line,
            body,
            sum(len(part) for part in body),
        )
        exchange = ProxyExchange(connection, request, id_line + deployment.provider_header + model_header)
        connection.current = exchange
        exchange.handle = deployment.upstream.start(upstream_request, exchange, request.method == b"HEAD")


class ProxyExchange:
    """The sink of one upstream exchange: re-frames what the upstream sends for the client."""

    __slots__ = ("connection", "transport", "keep_alive", "extra_headers", "handle", "chunked", "head_sent", "event_stream", "finished")

    def __init__(self, connection, request, extra_headers):
        self.connection = connection
        self.transport = connection.transport
        self.keep_alive = request.keep_alive
        self.extra_headers = extra_headers
        self.handle = None
        self.chunked = False
        self.head_sent = False
        self.event_stream = False
        self.finished = False

    # --- the sink interface (see alloy.upstream) ------------------------------------------------

    def upstream_events(self, events):
        if self.finished:
            return
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

    def upstream_done(self):
        if self.finished:
            return
        self.finished = True
        if self.chunked:
            self.transport.write(LAST_CHUNK)
        self.connection.exchange_finished(self.keep_alive)

    def upstream_failed(self, error):
        if self.finished:
            return
        self.finished = True
        connection = self.connection
        if not self.head_sent:
            connection.current = None
            connection.send_error(error, close=not self.keep_alive, extra_headers=self.extra_headers)
            if self.keep_alive:
                connection.exchange_finished(True)
            return
        if self.chunked and self.event_stream:
            # The stream already started: end it with an OpenAI-style error event, cleanly framed,
            # so SDKs raise an error instead of hanging or silently truncating.
            event = b"data: " + _json_error(error) + b"\n\n"
            self.transport.writelines([frame_chunk(event), LAST_CHUNK])
        connection.current = None
        connection.close() if self.chunked else self.transport.abort()

    def upstream_retargeted(self, exchange):
        self.handle = exchange

    # --- called by the client connection ------------------------------------------------------

    def cancel(self):
        self.finished = True
        if self.handle is not None:
            self.handle.cancel()

    def pause(self):
        if self.handle is not None:
            self.handle.pause_reading()

    def resume(self):
        if self.handle is not None:
            self.handle.resume_reading()

    # --- framing the head -------------------------------------------------------------------------

    def _head(self, head):
        self.head_sent = True
        status = head.status
        block = encode_headers(head.headers) + self.extra_headers
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

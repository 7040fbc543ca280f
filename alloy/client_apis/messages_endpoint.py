"""``POST /v1/messages`` and ``POST /v1/messages/count_tokens``: Anthropic Messages clients (Claude
Code, the ``anthropic`` SDK) through the gateway's own stages.

The pipeline hands both paths here (``alloy.pipeline``), whatever the query (Claude Code adds
``?beta=true``). The stages are the pipeline's, in its order, with every answer in Anthropic's shape:

    authenticate  the master key, as ``x-api-key`` or ``Authorization: Bearer`` (``alloy.auth``)
    route         the body's ``model`` through the same route table as chat completions (aliases,
                  ``provider/model``, wildcards, deployments); 404 ``not_found_error`` otherwise
    translate     unless every deployment the model (and its fallbacks) may reach is an Anthropic
                  provider: the body becomes an OpenAI chat request (``chat_request_from_messages``;
                  a body it cannot express is a 400 here), sent as an ordinary chat completions call
    admit, cache lookup, send, relay, account
                  a ``Call`` (``alloy.call``) like any other: retries, fallbacks, balancing, the
                  breaker, limits and finish listeners apply. Its connection is a
                  ``MessagesConnection`` whose transport (``MessagesTransport``) turns what the relay
                  writes into the Anthropic answer (``alloy.client_apis.messages_wire``); an attempt
                  on an Anthropic provider sends the client's own body natively
                  (``alloy.client_apis.messages_native``)

``count_tokens`` goes to the Anthropic deployments of the routed model (retried among them, no
fallbacks to other models), which count exactly; a model with none is answered here with
``estimate_input_tokens`` (``{"input_tokens": n}``, marked by ``x-alloy-token-count: estimate``).

The call's ``path`` is the client's (``/v1/messages``), so a finish listener sees which API was
used; what went upstream is in its ``endpoint`` ("chat/completions" when translated) and the
request it carries. ``anthropic-version`` and ``anthropic-beta`` are accepted and not required;
they reach an Anthropic provider as its forwarding policy says (``messages_native``).
"""

from time import monotonic

import orjson

from alloy.balancer import ModelGroup
from alloy.call import Call
from alloy.client_apis import on_first_use
from alloy.core import scan_body
from alloy.paths import path_and_query
from alloy.errors import AlloyError, InvalidRequest, MethodNotAllowed, ModelNotFound, NestedTooDeeply, too_deep_to_write, unreadable_json
from alloy.headers import JSON_HEADER, TOKEN_ESTIMATE_HEADER
from alloy.prebuilt import Prebuilt

# What a Messages call answers through (its connection and transport, and Anthropic providers
# answering natively): imported at start when an Anthropic provider is configured, else by the first
# Messages request.
messages_answer = on_first_use(
    "the Messages answer",
    MessagesConnection="alloy.client_apis.messages_wire",
    MessagesTransport="alloy.client_apis.messages_wire",
    with_request_id="alloy.client_apis.messages_wire",
    anthropic_error_answer="alloy.client_apis.messages_wire",
    NativeAnthropic="alloy.client_apis.messages_native",
    anthropic_error="alloy.client_apis.messages_response",
    anthropic_error_type="alloy.client_apis.messages_response",
)
# A Messages body as a chat completions request, and the token estimates: imported by the first
# Messages request that is not answered natively (or is refused as malformed).
messages_request = on_first_use(
    "the Messages request translation",
    chat_request_from_messages="alloy.client_apis.messages",
    estimate_input_tokens="alloy.client_apis.messages",
    estimate_chat_tokens="alloy.client_apis.messages_tokens",
    invalid="alloy.client_apis.messages_content",
    restored="alloy.client_apis.tool_names",
)

MESSAGES = b"/v1/messages"
COUNT_TOKENS = b"/v1/messages/count_tokens"
MESSAGES_PATHS = frozenset((MESSAGES, COUNT_TOKENS))
CHAT = b"/v1/chat/completions"
# Client headers a translated call does not send on: they describe the Messages body, or encodings
# the client reads (the answer must come back uncompressed to be translated).
NOT_TRANSLATED = frozenset((b"content-type", b"content-length", b"transfer-encoding", b"accept", b"accept-encoding"))


class ChatRequest:
    """The chat completions request a Messages request became, with what a call reads of a request:
    the client's headers but those above and ``anthropic-*`` (nothing to another provider)."""

    __slots__ = ("method", "target", "version", "headers", "body", "keep_alive")
    forwarded = forwarded_skip = None  # no block written by the parser: the policy encodes headers

    def __init__(self, request, body):
        self.method = b"POST"
        self.target = CHAT
        self.version = request.version
        headers = {
            name: value
            for name, value in request.headers.items()
            if name not in NOT_TRANSLATED and not name.startswith(b"anthropic-")
        }
        headers[b"content-type"] = b"application/json"
        self.headers = headers
        self.body = body
        self.keep_alive = request.keep_alive

    @property
    def body_buffer(self):  # what a Request forwards (bytes or a view of its read): here, the body
        return self.body


class MessagesEndpoint:
    def __init__(self, pipeline, config, upstreams, providers):
        """``providers``: the send-stage object of each provider, by name (``alloy.sending``); the
        ``providers`` attribute is the same with each Anthropic one wrapped to answer Messages
        natively, for the route table to build its deployments from."""
        self.pipeline = pipeline
        self.max_buffered = config.server.max_buffered_response_bytes
        settings = {p.name: p for p in config.providers}
        self.providers = {
            name: (
                messages_answer.NativeAnthropic(provider, settings[name], upstreams[name])
                if settings[name].api == "anthropic"
                else provider
            )
            for name, provider in providers.items()
        }
        self.native_only = {}  # model group -> does every deployment it may reach answer natively?
        self.counters = {}  # model group -> its Anthropic deployments as a group without fallbacks, or None

    def handle(self, request, path, query, connection):
        """A ``Prebuilt`` answer (an error, an estimate), or None when a call now owns the answer."""
        arrived = monotonic()  # the gateway's time counts from here (decoding and translating included)
        id_line = self.pipeline.request_ids.line(request.headers)
        try:
            try:
                return self._handle(request, path, query, connection, id_line, arrived)
            except TypeError as error:  # orjson's JSONEncodeError is TypeError: only its depth refusal is the client's
                if not too_deep_to_write(error):
                    raise
                raise NestedTooDeeply() from None
        except AlloyError as error:
            for listener in self.pipeline.refusal_listeners:
                listener(request, connection, error.status, error, id_line)
            error_type = messages_answer.anthropic_error_type(error.status)
            body = orjson.dumps(messages_answer.anthropic_error(error_type, error.message))
            head = request.method == b"HEAD"  # its head alone (RFC 9110 section 9.3.2)
            return Prebuilt(error.status, body, JSON_HEADER + error.header_block + messages_answer.with_request_id(id_line), head=head)

    def refusal(self, error, target, id_line):
        """A front-door refusal of a request to ``target`` (the parser's 413, a wrong key refused
        from the head before its body), as the bytes that answer it and close the connection: in
        Anthropic's shape, with its ``request-id``, when ``target`` is a Messages path; None for
        any other path (answered OpenAI-shaped)."""
        try:
            path, _ = path_and_query(target)  # every spelling the routes take (//v1/messages/...)
        except AlloyError:
            return None  # not a path any route takes: no API to shape the refusal for
        if path not in MESSAGES_PATHS:
            return None
        return messages_answer.anthropic_error_answer(error, id_line, close=True)

    def _handle(self, request, path, query, connection, id_line, arrived):
        pipeline = self.pipeline
        key = pipeline.authenticate(request)
        if request.method != b"POST":
            raise MethodNotAllowed(f"use POST for {path.decode()}", allow=b"POST")
        body, scan = decoded(request.body_buffer)  # a large body stays a view of its read (no copy)
        found = pipeline.routes.table.lookup(scan.model)
        if found is None:
            raise ModelNotFound(
                f"model: the model '{scan.model}' does not exist or is not routed by this gateway", param="model"
            )
        group, name = found
        stream = body.get("stream") is True
        estimate = 0
        if path == COUNT_TOKENS:
            group = self._counter(group)
            if group is None:
                pipeline.check_key_model(request, key, scan.model)
                count = orjson.dumps({"input_tokens": messages_request.estimate_input_tokens(body)})
                return Prebuilt(200, count, JSON_HEADER + TOKEN_ESTIMATE_HEADER, id_line=messages_answer.with_request_id(id_line))
            call_request, call_path, call_query, call_scan = request, path, query, scan
        elif self._native_only(group):
            call_request, call_path, call_query, call_scan = request, path, query, scan
        else:
            chat = messages_request.chat_request_from_messages(body)
            chat_body = orjson.dumps(chat)
            call_request, call_path, call_query, call_scan = (
                ChatRequest(request, chat_body),
                CHAT,
                b"",
                scan_body(chat_body),
            )
            if stream:
                estimate = messages_request.estimate_chat_tokens(chat)  # message_start's input_tokens until the real count
        tool_names = None if call_request is request else messages_request.restored(body.get("tools"))  # translated: names cut to 64
        transport = messages_answer.MessagesTransport(connection, body["model"], stream, self.max_buffered, estimate, tool_names)
        call = Call(
            pipeline, call_request, messages_answer.MessagesConnection(connection, transport, request, scan, path, query),
            call_path, call_query, id_line, group, call_scan, name,
        )  # fmt: skip
        call.path = path  # the client's; what goes upstream is in call.suffix and call.endpoint
        return pipeline.proceed(call, key, arrived)

    def _native_only(self, group):
        """Does every deployment of ``group`` and of the models it may fall back to answer Messages
        natively? Then the body needs no translation (and may use what only Anthropic has)."""
        known = self.native_only.get(group)
        if known is None:
            known = self.native_only[group] = all(
                getattr(deployment.provider, "messages_native", False)
                for reached in reachable(group)
                for deployment in reached.deployments
            )
        return known

    def _counter(self, group):
        if group not in self.counters:
            natives = [d for d in group.deployments if getattr(d.provider, "messages_native", False)]
            self.counters[group] = (
                ModelGroup(group.name, natives, group.strategy, group.max_retries) if natives else None
            )
        return self.counters[group]


def decoded(raw):
    """The Messages body decoded, and the core's scan of it (the model as the route and the upstream
    see it: printable, at most 256 bytes)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise unreadable_json(error, "There was an error parsing the body: it is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    model = body.get("model")
    if model is None:
        raise messages_request.invalid("model", "Field required")
    if not isinstance(model, str) or not model:
        raise messages_request.invalid("model", "Input should be a non-empty string")
    return body, scan_body(raw)


def reachable(group):
    """``group`` and every model group its fallbacks (of any kind) may lead to."""
    seen, todo = [], [group]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.append(current)
        todo.extend((*current.fallbacks, *current.context_window_fallbacks, *current.content_policy_fallbacks))
    return seen

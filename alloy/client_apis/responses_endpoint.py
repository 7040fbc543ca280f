"""The OpenAI Responses API (``/v1/responses`` and ``/v1/responses/{id}``): Codex and agents built on
the OpenAI Agents SDK, routed by model to every provider.

The pipeline hands every ``/v1/responses`` path here (``alloy.pipeline``). The stages are the
pipeline's, in its order; every answer keeps OpenAI's shape:

    authenticate  the master key (or a virtual key), as for chat completions
    route         ``POST /v1/responses``: the body's ``model`` through the route table (aliases,
                  ``provider/model``, wildcards, deployments); 404 model_not_found otherwise
    passthrough   when every deployment the model (and its fallbacks) may reach answers the
                  Responses API itself (``responses_api``: by default the ``openai`` kind only):
                  the client's bytes, the model name alone replaced by the send stage, streamed
                  as they come (an ordinary call of the routed model group)
    translate     otherwise (Anthropic, Gemini, Azure, OpenAI-compatible servers with
                  ``responses_api = false``): the body becomes a chat completions request
                  (``chat_request_from_responses``; what it cannot express, such as
                  ``previous_response_id``, is a 400 here) sent as an ordinary chat completions
                  call, its answer made a Response or a Responses event stream again by the
                  call's connection and transport (``alloy.client_apis.responses_wire``)
    admit, cache lookup, send, relay, account
                  ``Pipeline.proceed``: keys, limits, the cache, retries, fallbacks, the breaker
                  and the finish listeners apply to both kinds of call

``POST /v1/responses/input_tokens`` and ``/v1/responses/compact`` are routed by their body's model
the same way: passed through when every deployment answers Responses itself; else the token count
is the gateway's estimate of the translated request (``x-alloy-token-count: estimate``, as for
``/v1/messages/count_tokens``), and compaction, which only a Responses provider can do, is the
client's 400.

``GET``/``DELETE /v1/responses/{id}``, ``/input_items`` and ``/cancel`` (and a ``POST`` without a
JSON model) pass through to the default provider as the allow-list says
(``Pipeline.route_passthrough``): stored responses live with OpenAI. ``POST /v1/responses`` off
the allow-list is refused there for every model. A translated response is stored nowhere (``store`` is false in it), so its id cannot be
fetched later and cannot be a ``previous_response_id``.

The call's ``path`` is the client's (``/v1/responses``), so a finish listener sees which API was
used; what went upstream is in its ``endpoint`` ("chat/completions" when translated).
"""

import orjson

from alloy.call import Call
from alloy.client_apis import on_first_use
from alloy.client_apis.messages_endpoint import CHAT, ChatRequest, reachable
from alloy.core import scan_body
from alloy.errors import InvalidRequest
from alloy.headers import JSON_HEADER, TOKEN_ESTIMATE_HEADER
from alloy.prebuilt import Prebuilt
from alloy.routing import json_model_scan

# What a translated Responses call runs on: imported by the first one (a passthrough needs none).
responses_api = on_first_use(
    "the Responses translation",
    chat_request_from_responses="alloy.client_apis.responses_request",
    estimate_chat_tokens="alloy.client_apis.messages_tokens",
    ResponsesConnection="alloy.client_apis.responses_wire",
    ResponsesTransport="alloy.client_apis.responses_wire",
)

RESPONSES = b"/v1/responses"
RESPONSES_PREFIX = b"/v1/responses/"
INPUT_TOKENS = b"/v1/responses/input_tokens"
COMPACT = b"/v1/responses/compact"
BY_MODEL = frozenset((RESPONSES, INPUT_TOKENS, COMPACT))  # POSTs routed by their body's model


def answers_responses(settings):
    """Does this provider answer the Responses API itself? Its ``responses_api`` setting; by
    default the ``openai`` kind (OpenAI, and custom OpenAI-compatible servers) only: the other
    presets' APIs (Groq, Mistral...) and Azure's per-deployment paths are reached through chat
    completions."""
    if settings.api != "openai":
        return False
    return settings.kind == "openai" if settings.responses_api is None else settings.responses_api


class ResponsesEndpoint:
    def __init__(self, pipeline, config, providers):
        self.pipeline = pipeline
        self.max_buffered = config.server.max_buffered_response_bytes
        self.native = frozenset(p.name for p in config.providers if answers_responses(p))
        self.native_only = {}  # model group -> does every deployment it may reach answer Responses?
        self.allowed = {}  # path -> is POST on the allow-list for it? (post_allowed)

    def handle(self, request, path, query, connection, arrived):
        """The stages for a Responses request; returns None (the call answers) or a Prebuilt."""
        pipeline = self.pipeline
        key = pipeline.authenticate(request)
        call = None
        if path in BY_MODEL and request.method == b"POST" and self.post_allowed(path):
            call = self._call_for_model(request, path, query, connection, key)
            if type(call) is Prebuilt:  # a token count the gateway estimated
                return call
        if call is None:  # no JSON model, or the allow-list refuses: the passthrough rules decide
            call = pipeline.route_passthrough(request, path, query, connection)
        return pipeline.proceed(call, key, arrived)

    def post_allowed(self, path):
        """``POST path`` is on the passthrough allow-list (the default list has the three routed by
        model): taking ``POST /v1/responses`` off turns the Responses API off for every provider,
        translated ones included. Read once per path (the pipeline builds its allow-list after
        this endpoint)."""
        allowed = self.allowed.get(path)
        if allowed is None:
            allowed = self.allowed[path] = b"POST" in self.pipeline.passthrough_allowed.methods_for(path)
        return allowed

    def _call_for_model(self, request, path, query, connection, key):
        """The call for the model the body names: passthrough when every deployment it may reach
        answers Responses itself, else translated onto chat completions (a token count: the
        gateway's estimate, a Prebuilt). None without a JSON model."""
        scan = json_model_scan(request, json_only=True)
        if scan is None:
            return None
        pipeline = self.pipeline
        group, name = pipeline.routes.for_model(scan)
        id_line = pipeline.request_ids.line(request.headers)
        if self._native_only(group):  # the client's bytes, the model spliced in by the send stage
            return Call(pipeline, request, connection, path, query, id_line, group, scan, name)
        if path == COMPACT:
            raise InvalidRequest(
                f"compaction is not supported for model '{scan.model}': it needs a provider that answers the"
                " Responses API itself",
                param="model",
            )
        try:
            body = orjson.loads(request.body_buffer)
        except orjson.JSONDecodeError:
            raise InvalidRequest("We could not parse the JSON body of your request.") from None
        if not isinstance(body, dict):
            raise InvalidRequest("the request body must be a JSON object")
        chat = responses_api.chat_request_from_responses(body)
        if path == INPUT_TOKENS:
            pipeline.check_key_model(request, key, scan.model)
            count = orjson.dumps({"object": "response.input_tokens", "input_tokens": responses_api.estimate_chat_tokens(chat)})
            return Prebuilt(200, count, JSON_HEADER + TOKEN_ESTIMATE_HEADER, id_line=id_line)
        chat_body = orjson.dumps(chat)
        model = body["model"]
        stream = body.get("stream") is True
        transport = responses_api.ResponsesTransport(connection, body, model, stream, self.max_buffered)
        answering = responses_api.ResponsesConnection(connection, transport, request, scan, path, query)
        call = Call(
            pipeline, ChatRequest(request, chat_body), answering,
            CHAT, b"", id_line, group, scan_body(chat_body), name,
        )  # fmt: skip
        call.path = path  # the client's; what goes upstream is in call.suffix and call.endpoint
        return call

    def _native_only(self, group):
        known = self.native_only.get(group)
        if known is None:
            known = self.native_only[group] = all(
                deployment.provider.name in self.native for reached in reachable(group) for deployment in reached.deployments
            )
        return known

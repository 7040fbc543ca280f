"""How a ``/v1/`` request becomes an answer: the stages, in order, in one place.

    parse         the client connection feeds the core RequestParser (alloy.client_connection);
                  the path is normalized (core.clean_path) by the dispatcher (alloy.endpoints)
    authenticate  who is asking: the master key, or a virtual key (``alloy.governance``), which
                  becomes ``call.key``
    route         the body's model (core scan_body) -> a model group (alloy.routing), or the
                  passthrough allow-list for endpoints without a model; a ``Call`` is made
    admit         rate limits and budgets may refuse the call here (``alloy.governance``)
    cache lookup  a stored answer may be the answer (``alloy.cache``)
    send          the call's first attempt (alloy.call); retries and fallbacks (alloy.attempts)
                  only after a failure; each attempt goes out through its provider (alloy.sending)
    relay         the upstream's answer to the client as it arrives (alloy.relay)
    account       once the answer is complete, each finish listener is called with the call:
                  metrics, access log, ledger, cache fill

A stage either passes the call on or raises an ``AlloyError``, which the connection answers
OpenAI-shaped. A new feature is a stage here or a listener in ``listeners``, never a special case
inside the relay. Fixed answers (the ``/v1/models`` listing of configured models) are ``Prebuilt``
bytes returned to the connection, which writes them at once.
"""

import os
from time import monotonic

from alloy.auth import MasterKey
from alloy.balancer import share_quotas
from alloy.cache import cache_for
from alloy.call import Call
from alloy.client_apis.messages_endpoint import MESSAGES_PATHS, MessagesEndpoint
from alloy.client_apis.responses_endpoint import RESPONSES, RESPONSES_PREFIX, ResponsesEndpoint
from alloy.core import scan_body
from alloy.errors import AlloyError, InvalidRequest, LoopDetected, MethodNotAllowed, NotFound, ServiceUnavailable
from alloy.governance import governance_for, watch_for_database
from alloy.headers import HOP_MARK
from alloy.passthrough import AllowList
from alloy.routing import MODEL_BEARING, Routes, json_model_scan
from alloy.sending import provider_for

MODEL_ENDPOINTS = frozenset((b"/v1/chat/completions", b"/v1/completions", b"/v1/embeddings"))
_REQUEST_ID_OK = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


class Pipeline:
    def __init__(self, config, upstreams, loop, previous=None):
        """``previous``: the pipeline this one replaces at a reload (``alloy.reload``); what is not
        configuration but running state (the account stage's listeners, the admin API, keys and
        limits, the cache, the request id counter) is carried over from it."""
        self.loop = loop
        self.router = config.router  # retries, backoff, deadlines (read by alloy.attempts)
        self.keys = MasterKey(config.server.master_key)
        providers = {p.name: provider_for(p, upstreams[p.name], config.server) for p in config.providers}
        # /v1/messages (Anthropic clients); its providers answer Messages natively where they can
        self.messages = MessagesEndpoint(self, config, upstreams, providers)
        self.routes = Routes(config, self.messages.providers)
        if config.governance.shared_path is not None:  # --workers N: provider quotas for the server
            share_quotas(self.routes.configured, config.governance.shared_path)
        self.responses = ResponsesEndpoint(self, config, providers)  # /v1/responses (Codex, Agents SDK)
        self.passthrough_allowed = AllowList(config.passthrough.allow)
        self.request_ids = RequestIds() if previous is None else previous.request_ids
        self.overhead_header = config.server.overhead_header  # x-alloy-overhead-us (alloy.relay)
        self.cors = None  # browsers (alloy.cors, imported only when cors_origins are set)
        if config.server.cors_origins:
            from alloy.cors import Cors

            self.cors = Cors(config.server.cors_origins)
        self.listeners = []  # the account stage: callables given each call once it has ended
        # Must every stream's usage be known, also when its client did not ask for it? (Limits,
        # budgets and the ledger set it: alloy.stream_usage asks the upstream and hides it again.)
        self.needs_stream_usage = config.server.stream_usage or self.routes.counts_tokens
        # Given (request, connection, status, error) for a request refused before a call existed
        # whose error did not leave as an exception (the Messages endpoint answers in its shape).
        self.refusal_listeners = []
        # /admin/... endpoints (always behind the master key): path prefix -> handler(request,
        # path, query, connection) returning a Prebuilt answer. Filled by the features below.
        self.admin_routes = {}
        self.tracing = None  # W3C trace context and span export, set by alloy.observability
        if previous is not None:
            self.tracing = previous.tracing
            self.listeners = previous.listeners
            self.refusal_listeners = previous.refusal_listeners
            self.admin_routes = previous.admin_routes
            self.governance = previous.governance
            self.governance_watch = previous.governance_watch
            if self.governance_watch is not None:
                self.governance_watch.pipeline = self  # a database that appears now governs this one
            self.cache = previous.cache
            self.needs_stream_usage = previous.needs_stream_usage or self.needs_stream_usage
            return
        self.governance = governance_for(config, self)  # None: the master key alone
        # No keys yet: a database created while serving (alloy keys create) is picked up then.
        self.governance_watch = None if self.governance is not None else watch_for_database(config, self)
        self.cache = cache_for(config, self)  # None: no response cache

    def handle(self, request, path, query, connection):
        """One authenticated-or-refused ``/v1/`` request through the stages. Returns a ``Prebuilt``
        answer, or None when a call now owns the answer."""
        arrived = monotonic()  # the gateway's time for this request counts from here
        via = request.headers.get(b"via")
        if via is not None and HOP_MARK in via:  # sent upstream by this gateway: it looped
            raise LoopDetected(
                "this request came back to the gateway that sent it upstream: a provider's base_url points at this gateway"
            )
        if path in MESSAGES_PATHS:  # Anthropic Messages: the same stages, answered in its shape
            return self.messages.handle(request, path, query, connection)
        if path == RESPONSES or path.startswith(RESPONSES_PREFIX):  # the OpenAI Responses API
            return self.responses.handle(request, path, query, connection, arrived)
        key = self.authenticate(request)
        try:
            if path in MODEL_ENDPOINTS:
                if request.method != b"POST":
                    raise MethodNotAllowed(f"use POST for {path.decode()}", allow=b"POST")
                call = self.route_model(request, path, query, connection)
            else:
                listed = self.routes.listing.answer(request.method, path, key)
                if listed is not None:
                    return listed.with_id(self.request_ids.line(request.headers))
                call = self.route_passthrough(request, path, query, connection)
        except AlloyError as refusal:  # no route (404, 400...): into the ledger too, with its key
            if self.governance is not None:
                self.governance.refused_request(request, refusal, key)
            raise
        return self.proceed(call, key, arrived)

    def proceed(self, call, key, arrived):
        """The stages after routing, for every taker of a request (this pipeline, the Messages and
        Responses endpoints): admit, cache lookup, then send. Returns None (the call answers)."""
        call.key = key
        call.arrived = arrived
        if self.tracing is not None:
            call.trace = self.tracing.begin(call.request.headers)
        # A stage that does not exist (no keys, no cache) is not even called: this runs per request.
        if self.governance is not None and self.admit(call):
            return None  # admission went asynchronous (shared limits): it calls admitted() later
        return self.admitted(call)

    def admitted(self, call):
        """The stages after admission: the cache lookup, then the first attempt. A stage that went
        asynchronous calls this itself (and answers an ``AlloyError`` it raises with call.answer)."""
        if self.cache is not None and self.lookup(call):
            return None  # the cache answered, or took the call to answer it or send it later
        call.start()  # send, then relay and account as the answer arrives
        return None

    # --- the stages ------------------------------------------------------------------------------

    def check_key_model(self, request, key, model):
        """For an answer the gateway makes itself about a model (a token count): a key limited to
        models learns of no other (the 404 a call would get), and the refusal goes to the ledger."""
        governance = self.governance
        if key is None or governance is None:
            return
        try:
            governance.check_model(key, model)
        except AlloyError as refusal:
            governance.refused_request(request, refusal, key)
            raise

    def authenticate(self, request):
        """The key identity of the request (None: the master key, or no key required)."""
        governance = self.governance
        if governance is not None:
            try:
                return governance.authenticate(request)
            except AlloyError as refusal:  # into the ledger too (alloy.governance.refused)
                governance.refused_request(request, refusal)
                raise
        self.keys.check(request.headers)
        return None

    def route_model(self, request, path, query, connection):
        """chat/completions, completions, embeddings: the body names the model that routes it."""
        scan = scan_body(request.body_buffer)
        if scan.model is None:
            raise InvalidRequest("you must provide a model parameter", param="model")
        return self._call_for_model(request, path, query, connection, scan)

    def _call_for_model(self, request, path, query, connection, scan, passthrough_only=False):
        """The call for the model ``scan`` names (404 when nothing routes it); with
        ``passthrough_only``, 404 too when a deployment of it speaks another API."""
        group, name = self.routes.for_model(scan)
        if passthrough_only:
            for deployment in group.deployments:
                if deployment.provider.translates:
                    raise NotFound(
                        f"{path.decode()} is not available for model '{scan.model}': provider "
                        f"{deployment.provider.name} speaks another API"
                    )
        return Call(self, request, connection, path, query, self.request_ids.line(request.headers), group, scan, name)

    def route_passthrough(self, request, path, query, connection):
        """Another /v1/ path goes to the default provider (files, images, audio...) when the
        allow-list has its method and path (404 otherwise, 405 with Allow for a wrong method)."""
        allowed = self.passthrough_allowed.methods_for(path)
        method = request.method
        if method not in allowed:
            if allowed:
                raise MethodNotAllowed(
                    f"use {' or '.join(sorted(m.decode() for m in allowed))} for {path.decode()}",
                    allow=b", ".join(sorted(allowed)),
                )
            raise NotFound(f"no route for {method.decode()} {path.decode()}: not on this gateway's passthrough allow-list")
        if path in MODEL_BEARING and method == b"POST":
            routed = self.route_by_model(request, path, query, connection)
            if routed is not None:
                return routed
        provider = self.routes.default
        if provider is None:
            raise ServiceUnavailable("no default provider is configured for this endpoint")
        if provider.translates:
            raise NotFound(f"{path.decode()} is not available through provider {provider.name}")
        id_line = self.request_ids.line(request.headers)
        return Call(self, request, connection, path, query, id_line, self.routes.default_group)

    def route_by_model(self, request, path, query, connection):
        """A passthrough endpoint whose JSON body names a model goes where that model routes, as
        the model endpoints do; without a model it goes to the default provider."""
        scan = json_model_scan(request, json_only=True)
        if scan is None:
            return None
        return self._call_for_model(request, path, query, connection, scan, passthrough_only=True)

    def admit(self, call):
        """Rate limits and budgets refuse a call here (raising an ``AlloyError``). True when the
        decision went asynchronous: governance then continues with ``admitted(call)`` itself."""
        governance = self.governance
        if governance is None:
            return False
        try:
            return governance.admit(call)
        except AlloyError as refusal:  # into the ledger too (alloy.governance.refused)
            governance.refused_call(call, refusal)
            refusal.call = call  # the access log names its key and model (alloy.observability)
            raise

    def lookup(self, call):
        """The response cache answers a call here. True when the cache took the call (answered it
        from the store, or will answer or send it once an asynchronous lookup is back)."""
        return self.cache is not None and self.cache.lookup(call)


class RequestIds:
    """``x-request-id``: the client's when it is a sane token, else a process-unique one."""

    def __init__(self):
        self.prefix = os.urandom(6).hex().encode()
        self.counter = 0
        self.own_line = b"x-request-id: " + self.prefix + b"-%x\r\n"  # one format per request

    def line(self, headers):
        given = headers.get(b"x-request-id")
        if given is None or not 0 < len(given) <= 128 or not all(c in _REQUEST_ID_OK for c in given):
            self.counter += 1
            return self.own_line % self.counter
        return b"x-request-id: " + given + b"\r\n"

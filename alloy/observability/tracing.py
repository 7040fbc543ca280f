"""Traces: W3C trace context carried through the gateway, and spans exported over OTLP/HTTP.

With ``[tracing] enabled = true``:

- **Continue or start.** A request's ``traceparent`` (W3C Trace Context, version 00) makes Alloy's
  server span a child of the client's span, in the client's trace. A request without one (or with
  one that does not parse: it is then ignored, never forwarded) starts a new trace, unless
  ``start = false``. ``tracestate`` travels on untouched with a continued trace, and is dropped
  with a new one (W3C Trace Context: vendor state belongs to the traceparent it came with).
- **Propagate.** Each upstream attempt is a client span, child of the server span; the upstream
  receives ``traceparent: 00-<trace>-<attempt span>-<flags>``, so the provider's own tracing (or a
  local model server's) continues the same trace. The client's ``traceparent`` is not forwarded.
- **Name.** Spans follow OpenTelemetry's conventions, so a tracing backend groups and reads them
  without configuration: the server span is ``{method} {route}`` (``http.route``: a client API's
  path, or the passthrough allow-list rule that let the path through, ``/v1/files/*``; never the
  raw path, whose ids would make one span name per file), with the GenAI attributes of the call
  (``gen_ai.operation.name``, ``gen_ai.provider.name``, the models, ``gen_ai.usage.*`` tokens); an
  upstream attempt is the inference call itself, ``{operation} {model}`` (``chat gpt-4o-mini``),
  with the provider's ``server.address`` and ``server.port``.
- **Export.** With ``otlp_endpoint``, each ended request becomes its spans (server, one per
  attempt) in a list; once a second, or when ``BATCH_SPANS`` are waiting, they are encoded as one
  OTLP/HTTP JSON request and handed to a sender thread that POSTs it (a slow or absent collector
  never blocks the event loop; what cannot be sent is dropped and counted, ``MAX_PENDING`` batches
  at most wait).

Why a minimal encoder rather than the ``opentelemetry`` SDK: the SDK's span objects, context
managers and processors cost tens of microseconds a request, and importing it adds megabytes; the
gateway already holds every timestamp a span needs on its ``Call``, so building the OTLP JSON
from them at export time costs the request path one ``Trace`` object and two random ids.

Span times come from the call's monotonic clock reads, turned into wall-clock nanoseconds at
export with one offset. An attempt's span ends when the next attempt starts (or, for the last one,
when the answer ended); its ``alloy.ttfb_ms`` attribute is known for the last attempt only.
"""

import logging
import os
import time

import orjson

from alloy._version import __version__
from alloy.observability.handoff import Handoff
from alloy.passthrough import AllowList
from alloy.urls import split_url
from alloy.usage import reported_counts

log = logging.getLogger("alloy")

BATCH_SPANS = 512  # an export comes sooner when this many spans wait
MAX_PENDING = 16  # batches waiting for the sender; past this they are dropped
SEND_TIMEOUT = 5.0
_HEX = frozenset(b"0123456789abcdef")
SERVER, CLIENT = 2, 3  # OTLP SpanKind
STATUS_UNSET, STATUS_ERROR = 0, 2
# OpenTelemetry's GenAI conventions: the operation each client API path asks for, and the names its
# registry gives providers (a preset it does not list keeps Alloy's name: "ollama", "openrouter").
OPERATIONS = {
    b"/v1/chat/completions": "chat",
    b"/v1/messages": "chat",
    b"/v1/responses": "chat",
    b"/v1/completions": "text_completion",
    b"/v1/embeddings": "embeddings",
}
ROUTES = frozenset((*OPERATIONS, b"/v1/messages/count_tokens", b"/v1/models"))  # routes of their own
PROVIDER_NAMES = {"gemini": "gcp.gemini", "azure": "azure.ai.openai", "mistral": "mistral_ai"}


def parse_traceparent(value):
    """(trace id, parent span id, flags) as bytes of hex, or None when ``value`` is not a valid
    version-00 traceparent (all-zero ids are invalid too)."""
    if value is None or len(value) < 55:
        return None
    version, trace_id, parent_id, flags = value[:2], value[3:35], value[36:52], value[53:55]
    if value[2:3] != b"-" or value[35:36] != b"-" or value[52:53] != b"-" or version == b"ff":
        return None
    if len(value) > 55 and (version == b"00" or value[55:56] != b"-"):
        return None
    for part in (version, trace_id, parent_id, flags):
        if not all(c in _HEX for c in part):
            return None
    if trace_id == b"0" * 32 or parent_id == b"0" * 16:
        return None
    return trace_id, parent_id, flags


def new_id(size):
    return os.urandom(size).hex().encode()


class Trace:
    """One request's place in a trace: the trace id, the client's span (None: Alloy started it),
    Alloy's server span, and each upstream attempt's span id and start."""

    __slots__ = ("trace_id", "parent_id", "span_id", "flags", "attempts")

    def __init__(self, trace_id, parent_id, flags):
        self.trace_id = trace_id
        self.parent_id = parent_id
        self.span_id = new_id(8)
        self.flags = flags
        self.attempts = []  # (span id, monotonic start)

    def attempt_line(self, started):
        """The ``traceparent`` header line for a new upstream attempt starting at ``started``."""
        span_id = new_id(8)
        self.attempts.append((span_id, started))
        return b"traceparent: 00-" + self.trace_id + b"-" + span_id + b"-" + self.flags + b"\r\n"


class Tracing:
    def __init__(self, settings, loop):
        self.settings = settings
        self.loop = loop
        self.start_new = settings.start
        self.spans = []
        self.exporter = Exporter(settings) if settings.otlp_endpoint else None
        self.timer = None
        self.providers = {}  # provider name -> (its gen_ai.provider.name, server.address, server.port)
        self.allowed = AllowList(())  # the passthrough rules, which name the routes of passed-through paths

    def know(self, config):
        """The providers and passthrough rules of ``config`` (again after each reload)."""
        self.providers = {provider.name: _provider_attributes(provider) for provider in config.providers}
        self.allowed = AllowList(config.passthrough.allow)

    # --- on the request path ---------------------------------------------------------------------

    def begin(self, headers):
        """The call's ``Trace``: continued from the client's ``traceparent``, or new (or None)."""
        parsed = parse_traceparent(headers.get(b"traceparent"))
        if parsed is not None:
            return Trace(*parsed)
        if not self.start_new:
            return None
        return Trace(new_id(16), None, b"01")

    def record(self, call):
        """The finish listener: the call's spans, kept for the next export (only when exporting)."""
        trace = call.trace
        if trace is None or self.exporter is None or not int(trace.flags, 16) & 1:
            return
        spans = self.spans
        path = call.path
        deployment = call.deployment
        provider = None if deployment is None else deployment.provider.name
        usage = call.usage
        spans.append((trace, call.request.method, path, call.status, call.error, call.arrived, call.ended_at,
                      call.head_at, call.scan.model if call.scan is not None else None, provider,
                      # the model the upstream was asked for, as the access log's served_model
                      None if deployment is None else (deployment.upstream_model or call.model_name),
                      path if path in ROUTES else self.allowed.rule_for(path), self.providers.get(provider),
                      reported_counts(usage) if usage else None))  # fmt: skip
        if len(spans) == BATCH_SPANS:
            self.loop.call_soon(self.flush)

    # --- off it --------------------------------------------------------------------------------------

    def start(self):
        if self.exporter is not None:
            self.timer = self.loop.call_later(1.0, self.tick)

    def tick(self):
        self.timer = self.loop.call_later(1.0, self.tick)
        self.flush()

    def flush(self):
        spans, self.spans = self.spans, []
        if spans and self.exporter is not None:
            offset = time.time() - time.monotonic()
            self.exporter.submit(encode(spans, offset, self.settings.service_name), len(spans))

    def close(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.flush()
        if self.exporter is not None:
            self.exporter.close(2.0)


def _nanos(seconds, offset):
    return str(int((seconds + offset) * 1e9))


def _attributes(pairs):
    out = []
    for key, value in pairs:
        if value is None:
            continue
        if type(value) is int:
            out.append({"key": key, "value": {"intValue": str(value)}})
        elif type(value) is float:
            out.append({"key": key, "value": {"doubleValue": value}})
        else:
            out.append({"key": key, "value": {"stringValue": value}})
    return out


def _provider_attributes(provider):
    """(gen_ai.provider.name, server.address, server.port) of a provider's settings."""
    try:
        url = split_url(provider.base_url)
        address, port = url.host, url.port or (443 if url.scheme == "https" else 80)
    except ValueError:  # an Azure resource's URL is checked at load; nothing else reaches here
        address = port = None
    return PROVIDER_NAMES.get(provider.kind, provider.kind), address, port


def spans_of(entry, offset):
    """The OTLP spans (JSON mapping) of one ended request: its server span and its attempts."""
    trace, method, path, status, error, arrived, ended, head, model, provider, served, route, where, tokens = entry
    trace_id = trace.trace_id.decode()
    server_id = trace.span_id.decode()
    failed = status >= 500 or status == 0
    method = method.decode("latin-1")
    route = None if route is None else route if type(route) is str else route.decode()
    operation = OPERATIONS.get(path)
    system, address, port = where or (None, None, None)
    prompt, completion = tokens or (None, None)
    server = {
        "traceId": trace_id,
        "spanId": server_id,
        # OpenTelemetry's HTTP rule: "{method} {route}", or the method alone when no route is known
        "name": method if route is None else f"{method} {route}",
        "kind": SERVER,
        "startTimeUnixNano": _nanos(arrived, offset),
        "endTimeUnixNano": _nanos(ended, offset),
        "attributes": _attributes(
            (
                ("http.request.method", method),
                ("http.route", route),
                ("url.path", path.decode("utf-8", "replace")),
                ("http.response.status_code", status),
                ("gen_ai.operation.name", operation),
                ("gen_ai.provider.name", system),
                ("gen_ai.request.model", model),
                ("gen_ai.response.model", served),
                ("gen_ai.usage.input_tokens", prompt),
                ("gen_ai.usage.output_tokens", completion),
                ("alloy.provider", provider),
                ("alloy.attempts", len(trace.attempts)),
                # Alloy's own error, else a relayed server error's status (OpenTelemetry's HTTP rule)
                ("error.type", error.type if error is not None else str(status) if status >= 500 else None),
            )
        ),
        "status": {"code": STATUS_ERROR if failed else STATUS_UNSET},
    }
    if trace.parent_id is not None:
        server["parentSpanId"] = trace.parent_id.decode()
    spans = [server]
    attempts = trace.attempts
    for number, (span_id, started) in enumerate(attempts, 1):
        last = number == len(attempts)
        finished = ended if last else attempts[number][1]
        # the inference call (GenAI: "{operation} {model}"); only the last attempt's deployment is
        # known, so an earlier one is named by the model the client asked for
        asked = served if last else model
        spans.append(
            {
                "traceId": trace_id,
                "spanId": span_id.decode(),
                "parentSpanId": server_id,
                "name": f"{operation} {asked}" if operation and asked else server["name"],
                "kind": CLIENT,
                "startTimeUnixNano": _nanos(started, offset),
                "endTimeUnixNano": _nanos(max(finished, started), offset),
                "attributes": _attributes(
                    (
                        ("alloy.attempt", number),
                        ("alloy.provider", provider if last else None),
                        ("gen_ai.operation.name", operation),
                        ("gen_ai.provider.name", system if last else None),
                        ("gen_ai.request.model", asked),
                        ("server.address", address if last else None),
                        ("server.port", port if last else None),
                        ("alloy.ttfb_ms", round((head - started) * 1e3, 3) if last and head >= started > 0 else None),
                    )
                ),
                "status": {"code": STATUS_ERROR if (failed or not last) else STATUS_UNSET},
            }
        )
    return spans


def encode(entries, offset, service_name):
    """One OTLP/HTTP JSON ``ExportTraceServiceRequest`` for ``entries``."""
    spans = [span for entry in entries for span in spans_of(entry, offset)]
    return orjson.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": _attributes((("service.name", service_name),))},
                    "scopeSpans": [{"scope": {"name": "alloy", "version": __version__}, "spans": spans}],
                }
            ]
        }
    )


class Exporter:
    """POSTs encoded batches to the collector from a thread of its own (``alloy.observability.
    handoff``): spans the collector accepted are ``handoff.delivered``, the others ``handoff.dropped``."""

    def __init__(self, settings):
        parts = split_url(settings.otlp_endpoint)
        self.https = parts.scheme == "https"
        self.host = parts.host
        self.port = parts.port or (443 if self.https else 80)
        self.path = parts.path or "/v1/traces"
        self.headers = {"Content-Type": "application/json", **dict(settings.headers)}
        self.failing = False  # logged once per outage
        self.handoff = Handoff("alloy-otlp-export", self._post, max_batches=MAX_PENDING)
        self.submit = self.handoff.submit  # (encoded batch, spans), from the event loop
        self.close = self.handoff.close

    def _post(self, body):
        import http.client  # here: a gateway that exports no traces never loads it (~1 MB)

        kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        connection = kind(self.host, self.port, timeout=SEND_TIMEOUT)
        try:
            connection.request("POST", self.path, body, self.headers)
            response = connection.getresponse()
            response.read()
            ok = 200 <= response.status < 300
            problem = f"HTTP {response.status}"
        except (OSError, http.client.HTTPException) as error:
            ok, problem = False, str(error)
        finally:
            connection.close()
        if ok and self.failing:
            self.failing = False
            log.info("trace export: the collector at %s:%s accepts spans again", self.host, self.port)
        elif not ok and not self.failing:
            self.failing = True
            log.warning("trace export to %s:%s failed (%s): spans are dropped until it answers", self.host, self.port, problem)
        return ok

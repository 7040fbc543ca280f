"""Operating the gateway: Prometheus metrics (``GET /metrics``), the access log, traces, gateway events.

``Observability(gateway)`` plugs what ``[metrics]`` and ``[log]`` ask for into a built gateway,
through the seams it already has and no special case on the request path:

- finish listeners in ``Pipeline.listeners`` (``Metrics.record``, ``AccessLog.record``, and
  ``Tracing.record`` with ``[tracing]``), called with each call once its answer is written; with
  tracing, ``Pipeline.tracing`` gives each call its place in a trace (``alloy.observability.tracing``);
- ``gateway.refused``, which the client connection calls when dispatch refuses a request with an
  ``AlloyError``, so a ``/v1/`` request refused before a call exists (401, 404, 400) is counted and
  logged too (a request that passes costs nothing); the Messages endpoint, which answers its
  refusals in Anthropic's shape instead of raising, reports them through
  ``Pipeline.refusal_listeners``;
- ``Endpoints.metrics``: ``GET /metrics`` on the gateway's port, or on a listener of its own
  (``[metrics] port``), answered by ``MetricsEndpoint``;
- a timer of its own, once a second: the access log's lines go to its writer thread, the metrics
  snapshot is shared with the other workers, and breaker changes are logged.

Gateway events go through ``logging`` (the ``alloy`` logger), so ``--log-level`` decides which are
shown: start, stop and the configuration loaded at INFO, a breaker opening at WARNING and closing at
INFO. The access log does not depend on the log level.
"""

import logging

from alloy.auth import MasterKey
from alloy.paths import origin_form, path_and_query
from alloy.errors import AlloyError, MethodNotAllowed, NotFound
from alloy.observability.access_log import AccessLog, LogWriter
from alloy.observability.metrics import Metrics
from alloy.prebuilt import Prebuilt

log = logging.getLogger("alloy")

METRICS_PATH = b"/metrics"
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"  # the exposition format's (alloy.observability.exposition)
TICK_SECONDS = 1.0


class MetricsEndpoint:
    """``GET /metrics`` (and HEAD): the master key is required when one is set, unless ``public``."""

    def __init__(self, metrics, master_key, public):
        self.metrics = metrics
        self.public = public
        self.keys = None
        self.use_key(master_key)
        self.header = b"content-type: " + CONTENT_TYPE + b"\r\ncache-control: no-store\r\n"

    def use_key(self, master_key):
        """The master key of the configuration in force (again at each reload: a key rotated out
        because it leaked must stop reading the metrics with the rest)."""
        self.keys = None if self.public else MasterKey(master_key)

    def answer(self, request):
        method = request.method
        if method != b"GET" and method != b"HEAD":
            raise MethodNotAllowed("use GET for /metrics", allow=b"GET, HEAD")
        if self.keys is not None:
            self.keys.check(request.headers)
        return Prebuilt(200, self.metrics.render(), self.header, head=method == b"HEAD")


class MetricsFront:
    """What a ``ClientConnection`` needs of a gateway, for the separate metrics listener: its own
    connections, the main gateway's limits, and a dispatcher that knows only ``/metrics``."""

    def __init__(self, gateway, endpoint):
        self.gateway = gateway
        self.settings = gateway.settings
        self.over_capacity = gateway.over_capacity
        self.connections = set()
        self.endpoint = endpoint
        self.refused = None  # what it refuses (not /metrics) is not a /v1/ request: nothing to count

    @property
    def draining(self):
        return self.gateway.draining

    @property
    def pipeline(self):  # its x-request-ids come from the gateway's counter, like every answer's
        return self.gateway.pipeline

    def dispatch(self, request, connection):
        target = request.target
        if target[:1] != b"/":
            target = origin_form(target)
        path = target.split(b"?", 1)[0]
        if path == METRICS_PATH:
            return self.endpoint.answer(request)
        raise NotFound(f"no route for {request.method.decode()} {path.decode('latin-1')}: this listener serves /metrics")

    def protocol(self):
        from alloy.client_connection import ClientConnection

        return ClientConnection(self)


class Observability:
    def __init__(self, gateway):
        config = gateway.config
        self.gateway = gateway
        self.loop = gateway.loop
        self.metrics = None
        self.access_log = None
        self.endpoint = None
        self.front = None
        self.server = None
        self.timer = None
        self.breakers = {}
        self.tracing = None
        pipeline = gateway.pipeline
        if config.tracing.enabled:  # [tracing] is read at start only: its module, only when on
            from alloy.observability.tracing import Tracing

            self.tracing = Tracing(config.tracing, self.loop)  # told the providers by watch() below
            pipeline.tracing = self.tracing
            pipeline.listeners.append(self.tracing.record)
        if config.log.access:
            writer = LogWriter(config.log.path)
            writer.check()  # a path that cannot be written is said at start
            self.access_log = AccessLog(config.log, writer, self.loop)
            pipeline.listeners.append(self.access_log.record)
        if config.metrics.enabled:
            names = [name for model in config.models for name in (model.name, *model.aliases)]
            self.metrics = Metrics(gateway, config.metrics, names, config.passthrough.allow)
            self.metrics.access_log = self.access_log
            pipeline.listeners.append(self.metrics.record)
            self.endpoint = MetricsEndpoint(self.metrics, config.server.master_key, config.metrics.public)
            if config.metrics.port is None:
                gateway.endpoints.metrics = self.endpoint
        if self.metrics is not None or self.access_log is not None:
            gateway.refused = self.refused
            pipeline.refusal_listeners.append(self.refused)  # Messages refusals, answered in their shape
        self.watch(pipeline, config)

    def watch(self, pipeline, config=None):
        """Log the breaker changes of ``pipeline``'s deployments, and label the metrics of the models
        ``config`` names (again after each reload: a model added then is not counted as "other")."""
        if config is not None and self.tracing is not None:
            self.tracing.know(config)  # a provider or passthrough rule a reload adds names its spans
        if config is not None and self.metrics is not None:
            self.metrics.know_models(name for model in config.models for name in (model.name, *model.aliases))
            self.metrics.know_passthrough(config.passthrough.allow)
            self.endpoint.use_key(config.server.master_key)
        self.breakers = {
            deployment: (group.name, deployment.state)
            for group in pipeline.routes.configured
            for deployment in group.deployments
        }

    async def start(self):
        """Open the separate metrics listener, when ``[metrics] port`` asks for one, and start the
        once-a-second timer. Returns the metrics listener's address, or None."""
        address = None
        settings = self.gateway.config.metrics
        if self.metrics is not None and settings.port is not None:
            from alloy.server import listening_socket

            self.front = MetricsFront(self.gateway, self.endpoint)
            sock = listening_socket(settings.host, settings.port, reuse_port=settings.workers_dir is not None)
            self.server = await self.loop.create_server(self.front.protocol, sock=sock)
            address = sock.getsockname()[:2]
        self.timer = self.loop.call_later(TICK_SECONDS, self.tick)
        if self.tracing is not None:
            self.tracing.start()
        return address

    def refused(self, request, connection, status, error, id_line=None, bytes_out=0):
        """A ``/v1/`` request refused before a call existed, or (``request`` None) bytes the HTTP
        parser refused (too large a body or head, malformed); ``id_line``: the x-request-id line
        the answer carries; ``bytes_out``: the size of its body, for a gateway's own answer. Called
        on the way to the refusal's answer: a bug here is logged, and the client gets its answer all
        the same (as a finish listener's bug, ``Call.finish``)."""
        try:
            self._report_refusal(request, connection, status, error, id_line, bytes_out)
        except Exception:  # noqa: BLE001 - reporting must never cost a client its answer
            log.exception("reporting a refused request failed")

    def _report_refusal(self, request, connection, status, error, id_line, bytes_out):
        if request is None:
            path = b""
        else:
            try:
                path, _ = path_and_query(request.target)  # as the routes saw it: //v1/..., http://h/v1/...
            except AlloyError:  # refused for its path itself (dot segments...): as it came
                path = request.target.split(b"?", 1)[0]
            if not path.startswith(b"/v1/"):
                return
        if self.metrics is not None:
            self.metrics.refused(path, status, error)
        if self.access_log is not None:
            self.access_log.refused(request, path or None, status, error, connection, id_line, bytes_out)

    def tick(self):
        self.timer = self.loop.call_later(TICK_SECONDS, self.tick)
        if self.access_log is not None:
            self.access_log.flush()
        if self.metrics is not None:
            self.metrics.write_snapshot()
        if self.front is not None:  # the separate listener's keep-alive and read timeouts
            draining = self.gateway.draining
            for connection in list(self.front.connections):
                connection.tick(self.front.settings, draining)
        self.watch_breakers()

    def watch_breakers(self):
        for deployment, (model, was) in self.breakers.items():
            state = deployment.state
            if state is was:
                continue
            self.breakers[deployment] = (model, state)
            where = f"model {model}: deployment {deployment.provider.name}/{deployment.upstream_model or model}"
            if state == "cooling" and was != "probing":
                log.warning("%s: breaker opened after repeated failures (cooling)", where)
            elif state == "cooling":
                log.warning("%s: probe failed, breaker open again (cooling)", where)
            elif state == "healthy":
                log.info("%s: breaker closed (healthy again)", where)

    def close(self):
        """At shutdown, after the requests in flight: the last lines written, the last snapshot."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.server is not None:
            self.server.close()
        if self.front is not None:
            for connection in list(self.front.connections):
                connection.close()
        if self.access_log is not None:
            self.access_log.close()
        if self.tracing is not None:
            self.tracing.close()  # the last spans exported
        if self.metrics is not None:
            self.metrics.write_snapshot()


def describe(config):
    """One line on what the configuration holds, for the INFO event 'configuration loaded'."""
    parts = [
        f"{len(config.providers)} provider(s)" + (f" ({', '.join(p.name for p in config.providers)})" if config.providers else ""),
        f"{len(config.models)} model(s)",
        f"{len(config.wildcards)} wildcard(s)",
        "metrics " + ("off" if not config.metrics.enabled else (f"on port {config.metrics.port}" if config.metrics.port is not None else "at /metrics")),
        "access log " + (f"{config.log.format} to {config.log.path}" if config.log.access else "off"),
    ]  # fmt: skip
    return ", ".join(parts)

"""The dispatcher: the gateway's own endpoints, answered from bytes built once, and the pipeline for
everything under ``/v1/``.

``Endpoints.dispatch`` normalizes the path first (``clean_path``: merged slashes, no dot segments
or encoded separators but a model id's ``%2F``), so every spelling of a path meets the same route, and the normalized one
is what goes upstream. It returns a ``Prebuilt`` answer for what Alloy answers itself, or hands the
request to the pipeline (``alloy.pipeline``), which answers asynchronously and returns None.
Method and path decide; nothing here reads a body. ``/health`` says the process is alive;
``/health/ready`` says whether every configured model still has a healthy deployment (see
``alloy.balancer``); neither needs a key, but the readiness details (providers, deployments,
in-flight counts) are shown only with the master key when one is set. ``/metrics`` (Prometheus,
``alloy.observability``) needs the master key too, unless ``[metrics] public = true``. ``/admin/...``
goes to the handlers the features register (keys, usage, cache), always behind the master key.
"""

import orjson

from alloy.errors import AlloyError, MethodNotAllowed, MethodNotImplemented, NotFound, PermissionDenied
from alloy.paths import path_and_query  # noqa: F401 - also imported from here
from alloy.prebuilt import Prebuilt


# RFC 9110 section 9 and PATCH (RFC 5789): any other method is one this server does not implement.
KNOWN_METHODS = frozenset((b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH"))


class Endpoints:
    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.health = Prebuilt(200, b'{"status":"ok"}')
        self.health_head = Prebuilt(200, b'{"status":"ok"}', head=True)
        self.metrics = None  # GET /metrics, when alloy.observability serves it on this port

    def dispatch(self, request, connection):
        method = request.method
        if method == b"GET" and request.target == b"/health":
            return self.health  # what load balancers poll, many times a second: first and cheapest
        if method not in KNOWN_METHODS:
            raise MethodNotImplemented(f"the method {method[:32].decode('latin-1')} is not implemented")
        if method == b"OPTIONS" and self.pipeline.cors is not None:
            preflight = self.pipeline.cors.preflight(request)  # a browser asking first (alloy.cors)
            if preflight is not None:
                return preflight
        path, query = path_and_query(request.target)
        if path.startswith(b"/v1/"):
            return self.pipeline.handle(request, path, query, connection)
        if path == b"/health":
            if method == b"GET":
                return self.health
            if method == b"HEAD":
                return self.health_head
            raise MethodNotAllowed("use GET for /health", allow=b"GET, HEAD")
        if path == b"/health/ready":
            if method == b"GET" or method == b"HEAD":
                return self._readiness(request, head=method == b"HEAD")
            raise MethodNotAllowed("use GET for /health/ready", allow=b"GET, HEAD")
        if path.startswith(b"/admin/"):
            return self._admin(request, path, query, connection)
        if path == b"/metrics" and self.metrics is not None:
            return self.metrics.answer(request)  # Prometheus text; the master key unless public
        raise NotFound(f"no route for {method.decode()} {path.decode('latin-1')}")

    def refusal_from_head(self, request):
        """The refusal a ``/v1/`` request's head alone decides (a missing or wrong key), or None:
        asked while the client holds its body back for ``100 Continue`` (RFC 9110 section 10.1.1),
        so it need not send what would be refused anyway."""
        try:
            path, _ = path_and_query(request.target)
            if path.startswith(b"/v1/"):
                self.pipeline.authenticate(request)
        except AlloyError as refusal:
            return refusal
        return None

    def _admin(self, request, path, query, connection):
        """``/admin/...``: the features' admin handlers (``Pipeline.admin_routes``), always behind
        the master key; without one configured the admin API is closed (the CLI still works)."""
        for prefix, handler in self.pipeline.admin_routes.items():
            if path == prefix or path.startswith(prefix + b"/"):
                if self.pipeline.keys.expected is None:
                    raise PermissionDenied("the admin API needs a master key: set ALLOY_MASTER_KEY (or server.master_key)")
                self.pipeline.keys.check(request.headers)
                return handler(request, path, query, connection)
        raise NotFound(f"no route for {request.method.decode()} {path.decode('latin-1')}")

    def _readiness(self, request, head=False):
        # Built on each call (it is state, not configuration); load balancers poll it, clients don't.
        ready, report = self.pipeline.routes.readiness()
        if not self._may_see_details(request):
            report = {"status": report["status"]}
        return Prebuilt(200 if ready else 503, orjson.dumps(report), head=head)

    def _may_see_details(self, request):
        try:
            self.pipeline.keys.check(request.headers)
        except AlloyError:
            return False
        return True

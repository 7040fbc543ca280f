"""The gateway's own endpoints, answered from bytes built once, and dispatch of the rest.

``Endpoints.dispatch`` returns a ``Prebuilt`` answer for what Alloy answers itself, or hands the
request to the proxy (which answers asynchronously and returns None). Method and path decide;
nothing here reads a body. The path is normalized first (``clean_path``: merged slashes, no dot
segments or encoded separators), so every spelling of a path meets the same route, and the
normalized one is what goes upstream. ``/health`` says the process is alive; ``/health/ready`` says
whether every configured model still has a healthy deployment (see ``alloy.balancer``); neither
needs a key, but the readiness details (providers, deployments, in-flight counts) are shown only
with the master key when one is set. Other ``/v1/`` paths follow the passthrough allow-list.
"""

import orjson

from alloy.auth import MasterKey
from alloy.core import clean_path, frame_response
from alloy.errors import AlloyError, MethodNotAllowed, ModelNotFound, NotFound
from alloy.passthrough import AllowList

JSON_HEADER = b"content-type: application/json\r\n"
MODEL_ENDPOINTS = frozenset((b"/v1/chat/completions", b"/v1/completions", b"/v1/embeddings"))


class Prebuilt:
    """A complete response in its two framings: keep the connection, or close it. For a HEAD
    request the same head (Content-Length included) without the body (RFC 9110 section 9.3.2)."""

    __slots__ = ("keep_alive", "closing")

    def __init__(self, status, body, header_block=JSON_HEADER, head=False):
        self.keep_alive = frame_response(status, header_block, body)
        self.closing = frame_response(status, header_block, body, True)
        if head and body:
            self.keep_alive = self.keep_alive[: -len(body)]
            self.closing = self.closing[: -len(body)]


class Endpoints:
    def __init__(self, config, proxy):
        self.proxy = proxy
        self.auth = MasterKey(config.server.master_key)
        self.passthrough_allowed = AllowList(config.passthrough.allow)
        self.health = Prebuilt(200, b'{"status":"ok"}')
        self.health_head = Prebuilt(200, b'{"status":"ok"}', head=True)
        # With configured models, /v1/models lists them; a plain proxy passes it through instead.
        self.model_list = None
        self.models = {}
        if proxy.listed_models:
            listing = [
                {"id": name, "object": "model", "created": 0, "owned_by": owner}
                for name, owner in proxy.listed_models
            ]
            self.models = {entry["id"]: Prebuilt(200, orjson.dumps(entry)) for entry in listing}
            self.model_list = Prebuilt(200, orjson.dumps({"object": "list", "data": listing}))

    def dispatch(self, request, connection):
        target = request.target
        mark = target.find(b"?")
        if mark < 0:
            path, query = clean_path(target), b""
        else:
            path, query = clean_path(target[:mark]), target[mark:]
        method = request.method
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
        if not path.startswith(b"/v1/"):
            raise NotFound(f"no route for {method.decode()} {path.decode('latin-1')}")
        self.auth.check(request.headers)
        if path in MODEL_ENDPOINTS:
            if method != b"POST":
                raise MethodNotAllowed(f"use POST for {path.decode()}", allow=b"POST")
            self.proxy.model_request(request, path, query, connection)
            return None
        if self.model_list is not None and method == b"GET" and (path == b"/v1/models" or path.startswith(b"/v1/models/")):
            return self._model_answer(path)
        allowed = self.passthrough_allowed.methods_for(path)
        if method not in allowed:
            if allowed:
                raise MethodNotAllowed(
                    f"use {' or '.join(sorted(m.decode() for m in allowed))} for {path.decode()}",
                    allow=b", ".join(sorted(allowed)),
                )
            raise NotFound(f"no route for {method.decode()} {path.decode()}: not on this gateway's passthrough allow-list")
        self.proxy.passthrough(request, path, query, connection)
        return None

    def _readiness(self, request, head=False):
        # Built on each call (it is state, not configuration); load balancers poll it, clients don't.
        ready, report = self.proxy.readiness()
        if not self._may_see_details(request):
            report = {"status": report["status"]}
        return Prebuilt(200 if ready else 503, orjson.dumps(report), head=head)

    def _may_see_details(self, request):
        try:
            self.auth.check(request.headers)
        except AlloyError:
            return False
        return True

    def _model_answer(self, path):
        if path == b"/v1/models":
            return self.model_list
        name = path[len(b"/v1/models/"):].decode("utf-8", "replace")
        answer = self.models.get(name)
        if answer is None:
            raise ModelNotFound(f"The model '{name}' does not exist", param="model")
        return answer

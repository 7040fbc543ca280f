"""The cache lookup stage and the cache fill listener: a repeated request answered from the store.

Theory of operation
- ``lookup(call)`` runs after admission, before the first attempt (``alloy.pipeline``). A call of
  a model whose cache is off, or on another endpoint than the three cacheable ones, passes
  untouched. Otherwise the request's controls and namespace are read, its key computed
  (``alloy.cache.keys``) and the store asked:
  - a hit that can answer this request (a stream asking for usage needs a stored answer with
    usage) is written at once, framed as a complete JSON answer or a one-chunk stream, with
    ``x-alloy-cache: hit`` and ``age``; the call then ends like any answered call (its finish
    listeners run; no deployment, no attempt, no usage counted: nothing was spent upstream);
  - a miss that may be stored gets a ``Recording`` as ``call.recording``: the relay appends every
    body piece the client receives, and the ``x-alloy-cache: miss`` (or ``refresh``) line goes out
    on the upstream's answer.
  A shared store (Redis) answers later: the call is parked as the connection's current call (so a
  client that leaves cancels it, and pipelined requests wait behind it), and ``_resume`` answers
  it or starts it once the store replied; a store that fails or is slow is a miss.
- ``filled(call)``, a finish listener, stores a recording when the answer completed with 200 and
  no error of Alloy's own (``alloy.cache.entries`` refuses a body cut short or a stream without its
  ``[DONE]``). A recording that outgrows ``max_entry_bytes`` stops recording and is dropped.
- ``DELETE /admin/cache`` (master key) empties the store, or one namespace and those under it
  with ``?namespace=NAME``.
"""

import asyncio
import logging
from time import monotonic, time
from urllib.parse import parse_qs

import orjson

from alloy.cache.entries import JSON, SSE, completion_from_stream, entry_from_recording, stream_from_completion
from alloy.cache.keys import CACHEABLE, CHAT, cache_control, key_of, namespace_of, ttl_of
from alloy.cache.prompt_prefix import AFFINITY
from alloy.core import LAST_CHUNK, frame_chunk, frame_head, frame_response, frame_stream_head
from alloy.errors import AlloyError, InternalError, InvalidRequest, MethodNotAllowed, NotFound
from alloy.headers import EVENT_STREAM_HEADERS, JSON_HEADER
from alloy.prebuilt import Prebuilt

log = logging.getLogger("alloy")
MISS, REFRESH, BYPASS = b"x-alloy-cache: miss\r\n", b"x-alloy-cache: refresh\r\n", b"x-alloy-cache: bypass\r\n"


class Stats:
    """What the cache did since start (for the operations endpoints and the benchmark)."""

    __slots__ = (
        "hits", "misses", "refreshes", "bypasses", "stored_entries", "stored_bytes", "evictions", "store_errors",
    )  # fmt: skip

    def __init__(self):
        self.hits = self.misses = self.refreshes = self.bypasses = 0  # by the x-alloy-cache each answer got
        self.stored_entries = self.stored_bytes = self.evictions = self.store_errors = 0

    def stored(self, size):
        self.stored_entries += 1
        self.stored_bytes += size

    def report(self):
        return {name: getattr(self, name) for name in self.__slots__}


class Recording(list):
    """The body pieces of an answer to store (the relay appends them), and where they go: the key,
    whether it streams, its namespace and TTL. Stops recording (and is not stored) once it outgrows
    ``limit`` bytes: an answer too big to store costs no memory here."""

    __slots__ = ("key", "stream", "include_usage", "namespace", "ttl", "limit", "size", "over", "group")

    def __init__(self, key, stream, include_usage, namespace, ttl, limit, group):
        # (list.__init__ would only empty the new list: not called)
        self.group = group  # the model the key names: a fallback's answer is not stored under it
        self.key = key
        self.stream = stream
        self.include_usage = include_usage
        self.namespace = namespace
        self.ttl = ttl
        self.limit = limit
        self.size = 0
        self.over = False

    def append(self, piece):
        if not self.over:
            self.size += len(piece)
            if self.size > self.limit:
                self._overflow()
            else:
                list.append(self, piece)

    def extend(self, pieces):
        for piece in pieces:
            self.append(piece)

    def _overflow(self):
        self.over = True
        self.clear()


class Policy:
    """The cache settings of one model group: on or off, its TTL, and the model name its keys use
    (a configured model's own name, whichever alias asked; None for provider routes: the name the
    route resolved), and the client headers that are part of its keys: those its providers'
    ``forward_client_headers`` name (an organization, a project, a beta feature: they change what
    the provider answers, or whom it answers for)."""

    __slots__ = ("on", "ttl", "model", "headers")

    def __init__(self, on, ttl, model=None, headers=()):
        self.on = on
        self.ttl = ttl
        self.model = model
        self.headers = headers


class Policies:
    """Each model group's ``Policy``, decided on its first lookup and kept on the group (one
    attribute read per request after that). Decided by model name from the gateway's current
    configuration (``gateway.config``, which a hot reload replaces along with the groups, so the
    new groups get their model's new ``cache`` and ``cache_ttl``); ``[cache]`` itself is the one
    the cache started with (a restart applies it)."""

    def __init__(self, settings, models):
        self.settings = settings
        self.config = None  # the configuration ``models`` was read from (None: the start's)
        self.models = {model.name: model for model in models}
        self.default = Policy(settings.enabled, settings.ttl)

    def of(self, call):
        group = call.group
        policy = group.cache_policy
        if policy is None:
            policy = group.cache_policy = self._decide(group, call)
        return policy

    def _decide(self, group, call):
        headers = chosen_headers(group)
        if group not in call.pipeline.routes.configured:  # a provider route, a wildcard, the plain proxy
            return self.default if not headers else Policy(self.settings.enabled, self.settings.ttl, None, headers)
        config = getattr(getattr(call.connection, "gateway", None), "config", None)
        if config is not None and config is not self.config:
            self.config = config
            self.models = {model.name: model for model in config.models}
        model = self.models.get(group.name)
        if model is None:
            return Policy(self.settings.enabled, self.settings.ttl, group.name, headers)
        on = self.settings.enabled if model.cache is None else model.cache
        return Policy(on, model.cache_ttl or self.settings.ttl, group.name, headers)


def chosen_headers(group):
    """The client headers a provider of ``group`` forwards because its ``forward_client_headers``
    names them (``ForwardingPolicy.chosen``), in one order."""
    names = set()
    for deployment in group.deployments:
        forwarding = getattr(deployment.provider, "forwarding", None)
        if forwarding is not None:
            names |= forwarding.chosen
    return tuple(sorted(names))


class ResponseCache:
    def __init__(self, settings, policies, store, stats, affinity):
        self.policies = policies
        self.store = store
        self.stats = stats
        self.max_entry_bytes = settings.max_entry_bytes
        self.affinity = affinity  # the prefix-affinity hint, given just before a call starts

    # --- the lookup stage ------------------------------------------------------------------------

    def lookup(self, call):
        policy = call.group.cache_policy or self.policies.of(call)
        if not policy.on or call.path not in CACHEABLE:
            return self._pass(call)
        # The controls: usually none, so each costs one header lookup.
        headers = call.request.headers
        control = headers.get(b"cache-control")
        no_cache, no_store = (False, False) if control is None else cache_control(control)
        given = headers.get(b"x-alloy-cache-ttl")
        ttl = policy.ttl if given is None else ttl_of(given)
        given = headers.get(b"x-alloy-cache-namespace")
        namespace = "global" if given is None and call.key is None else namespace_of(call.key, given)
        asked = key_of(call, policy.model or call.model_name or "", namespace, policy.headers)
        if asked is None:
            return self._pass(call)
        key, stream, include_usage = asked
        recorded = (key, stream, include_usage, namespace, ttl, self.max_entry_bytes, call.group)  # for a Recording
        if no_cache:  # the entry is replaced by the answer, unless it is not to be stored at all
            return self._bypass(call) if no_store or ttl <= 0 else self._record(call, Recording(*recorded), REFRESH)
        store = self.store
        if store.synchronous:
            now = time()
            entry = store.get(key, now)
            if entry is not None and _answers(entry, stream, include_usage):
                if self._answer(call, entry, stream, include_usage, now):
                    return True
            return self._missed(call, Recording(*recorded), no_store)
        recording = Recording(*recorded)
        if not store.available():
            return self._missed(call, recording, no_store)
        call.connection.current = call  # parked: a client that leaves cancels it
        store.get_later(key, namespace, lambda entry: self._resume(call, recording, no_store, entry))
        return True

    def _missed(self, call, recording, no_store):
        if no_store or recording.ttl <= 0:
            return self._bypass(call)
        return self._record(call, recording, MISS)

    def _record(self, call, recording, line):
        if line is MISS:
            self.stats.misses += 1
        else:
            self.stats.refreshes += 1
        call.recording = recording
        call.id_line += line
        return self._pass(call)

    def _bypass(self, call):
        self.stats.bypasses += 1
        call.id_line += BYPASS
        return self._pass(call)

    def _pass(self, call):
        """The call goes upstream: its first pick may use a prefix-affinity hint."""
        if call.group.strategy == AFFINITY:
            self.affinity.hint(call)
        return False

    def _resume(self, call, recording, no_store, entry):
        """A shared store's answer is back (None: a miss, whatever went wrong)."""
        if call.ended:
            return  # the client left while the store was asked
        call.connection.current = None
        stream, include_usage = recording.stream, recording.include_usage
        if entry is not None and entry.expires_at > time() and _answers(entry, stream, include_usage):
            if self._answer(call, entry, stream, include_usage, time()):
                return
        try:
            self._missed(call, recording, no_store)
            call.start()
        except AlloyError as error:
            call.answer(error)

    def _answer(self, call, entry, stream, include_usage, now):
        """Write the stored answer as this request wants it, then end the call. False, with nothing
        written, when it cannot be given in that form: a stored answer whose shape its crossing over
        (stream to JSON, JSON to stream) does not read, as an upstream's odd answer can be. The call
        then goes upstream as on a miss, and its answer replaces the entry."""
        try:
            body = _replay(entry, stream, include_usage)
        except Exception as error:  # noqa: BLE001 - an odd stored answer must cost one miss, not every request a 500
            form = "a stream" if stream else "JSON"
            log.warning("a cached answer could not be replayed as %s (%s: %s); asking upstream", form, type(error).__name__, error)
            return False
        self.stats.hits += 1
        lines = call.id_line + b"x-alloy-cache: hit\r\nage: %d\r\n" % max(0, int(now - entry.stored_at))
        connection = call.connection
        keep_alive = call.request.keep_alive
        close = not keep_alive or connection.closes_for_drain()
        if stream:
            if call.request.version < 11:  # an HTTP/1.0 client: no chunks; the close ends the stream
                keep_alive, close = False, True
                answer = frame_head(200, EVENT_STREAM_HEADERS + lines, -1, True) + body
            else:
                answer = frame_stream_head(200, EVENT_STREAM_HEADERS + lines, close) + frame_chunk(body) + LAST_CHUNK
        else:
            answer = frame_response(200, JSON_HEADER + lines, body, close)
        connection.transport.write(answer)
        call.status = 200
        call.bytes_out = len(body)  # for the access log, like a relayed answer's
        if stream:
            call.first_event_at = monotonic()  # time to first token: the hit's only write
        call.finish()
        connection.answer_finished(keep_alive)
        return True

    # --- the account stage: the fill listener -----------------------------------------------------------

    def filled(self, call):
        recording = call.recording
        if type(recording) is not Recording or call.status != 200 or call.error is not None or recording.over:
            return
        if call.group is not recording.group:
            return  # a fallback model answered: not what the key names (nor maybe cacheable itself)
        call.recording = None
        now = time()
        entry = entry_from_recording(recording, recording.stream, now, now + recording.ttl, recording.namespace)
        if entry is not None:
            self.store.put(recording.key, entry)

    # --- the admin API ---------------------------------------------------------------------------------

    def admin(self, request, path, query, connection):
        if path != b"/admin/cache":
            raise NotFound(f"no route for {request.method.decode()} {path.decode('latin-1')}")
        if request.method != b"DELETE":
            raise MethodNotAllowed("use DELETE /admin/cache (optionally ?namespace=NAME)", allow=b"DELETE")
        # Everything goes only when nothing is asked: an empty, repeated or misspelled parameter
        # (a script's unset variable) is refused rather than read as "every namespace".
        params = parse_qs(query[1:].decode("latin-1"), keep_blank_values=True)
        unknown = sorted(set(params) - {"namespace"})
        if unknown:
            raise InvalidRequest(f"unknown parameter {unknown[0]!r} (only namespace)", param=unknown[0])
        namespaces = params.get("namespace")
        if namespaces is not None and (len(namespaces) != 1 or not namespaces[0]):
            raise InvalidRequest("namespace: expected one non-empty name (no namespace: every entry)", param="namespace")
        namespace = namespaces[0] if namespaces else None
        if self.store.synchronous:
            return _cleared(self.store.clear(namespace), namespace)
        # Redis scans its whole keyspace (seconds with millions of keys): in a thread, while this
        # connection waits for the answer and every other one is served.
        Clearing(self.store, namespace, request, connection)
        return None


class Clearing:
    """A ``DELETE /admin/cache`` on a shared store, run in a thread: the connection's current
    answer meanwhile (a client that leaves is simply not answered; the deletion completes)."""

    __slots__ = ("connection", "request", "namespace", "gone")

    def __init__(self, store, namespace, request, connection):
        self.connection = connection
        self.request = request
        self.namespace = namespace
        self.gone = False
        connection.current = self
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, store.clear, namespace).add_done_callback(self._done)

    def client_left(self):
        self.gone = True

    cancel = client_left

    def stop(self, error):
        """The gateway stops before the deletion is done: the client is told (the connection then
        closes); the deletion completes in its thread, unanswered."""
        if not self.gone:
            self.gone = True
            self.connection.current = None
            self.connection.send_error(error, close=True, request=self.request)

    def pause(self):  # nothing is written until the end
        pass

    resume = pause

    def _done(self, future):
        connection = self.connection
        if self.gone or connection.current is not self:
            return
        keep = self.request.keep_alive and not connection.closes_for_drain()
        error = future.exception()
        if error is None:
            answer = _cleared(future.result(), self.namespace)
            connection.transport.write(answer.keep_alive if keep else answer.closing)
        elif isinstance(error, AlloyError):
            connection.send_error(error, close=not keep, request=self.request)
        else:
            log.error("emptying the response cache failed: %s: %s", type(error).__name__, error)
            connection.send_error(InternalError("emptying the response cache failed (the gateway's log says why)"), close=True, request=self.request)
            keep = False
        connection.answer_finished(keep)


def _cleared(deleted, namespace):
    return Prebuilt(200, orjson.dumps({"deleted": deleted, "namespace": namespace}))


def _replay(entry, stream, include_usage):
    """The body of a stored answer in the form the request wants (a stream, or JSON)."""
    if stream:
        return entry.stream_body(include_usage) if entry.kind == SSE else stream_from_completion(entry.body, include_usage)
    return entry.body if entry.kind == JSON else completion_from_stream(entry.body)


def _answers(entry, stream, include_usage):
    """May this stored answer answer this request? Streams and JSON cross over for chat only (the
    other endpoints' keys keep ``stream``); usage must be there when the request wants it."""
    if stream:
        return entry.kind == JSON or not include_usage or entry.has_usage
    return entry.kind == JSON or entry.has_usage


__all__ = ["CHAT", "Policies", "Policy", "Recording", "ResponseCache", "Stats"]

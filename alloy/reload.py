"""Hot reload: the configuration re-read and swapped in while the gateway serves.

SIGHUP (sent to the supervisor with ``--workers``, which passes it on to every worker) or
``POST /admin/reload`` (master key) reads the same file again (``Config.path``; ``ALLOY_CONFIG`` or
the environment alone when there is none), validates all of it, and only then swaps:

- A configuration that does not load is refused: the error is logged (and is the admin API's 400
  answer), and the running one keeps serving, untouched.
- The swap is one step on the event loop, between two requests: a request that arrived before it
  finishes on the pipeline it started with (its ``Call`` holds it), every later request takes the
  new one. Nothing is cancelled.
- What is state, not configuration, carries over: an upstream pool whose provider settings did not
  change is the same pool (its idle connections stay warm); a deployment that is the same in both
  (model, provider, upstream model, weight, cap, quota, timeouts and breaker settings) keeps its
  breaker state, its failure history, its latency estimate and its quota's current minute; metrics, the access log, keys, limits, the
  cache and request ids go on as they were (``Pipeline(previous=...)``).
- Pools that are no longer used stay open for the requests still on them, then close after
  ``shutdown_timeout`` seconds.
- The listening address (a change of ``[server] host`` or ``port`` in the file; the command line's
  ``--host``/``--port`` win over the file, at start and at each reload), and the ``[metrics]``,
  ``[log]``, ``[tracing]``, ``[governance]`` and ``[cache]`` sections, take effect at the next
  start: a reload that changes them says so in the log and in its answer, and applies the rest.
- A gateway started without keys (no ``[governance]`` section, no database) checks for the database
  at each reload too (besides every ``sync_interval``): keys created since apply from then on.
"""

import logging
import os
import signal
from dataclasses import replace

import orjson

from alloy.client_connection import over_capacity_answer
from alloy.config import ConfigError, load
from alloy.errors import InvalidRequest, MethodNotAllowed
from alloy.headers import JSON_HEADER
from alloy.pipeline import Pipeline
from alloy.prebuilt import Prebuilt
from alloy.upstream import open_upstream

log = logging.getLogger("alloy")

RESTART_ONLY = ("metrics", "log", "governance", "cache", "tracing")


class Reloader:
    def __init__(self, gateway, observability=None, supervised=False):
        self.gateway = gateway
        self.observability = observability
        self.count = 0  # reloads applied
        # A worker of ``alloy --workers N``: POST /admin/reload reaches one worker, which asks the
        # supervisor to reload them all (as a SIGHUP to the supervisor does).
        self.supervised = supervised
        gateway.pipeline.admin_routes[b"/admin/reload"] = self.answer

    def answer(self, request, path, query, connection):
        """``POST /admin/reload``: 200 with what changed, or 400 with why the file was refused."""
        if request.method != b"POST":
            raise MethodNotAllowed("use POST for /admin/reload", allow=b"POST")
        applied, message, later = self.reload("POST /admin/reload")
        if not applied:
            raise InvalidRequest(f"configuration refused, the running one keeps serving: {message}")
        body = {"status": "reloaded", "reloads": self.count, "message": message}
        if later:
            body["restart_needed_for"] = later
        if self.supervised:  # the other workers (and the ones started later) take it from the supervisor
            os.kill(os.getppid(), signal.SIGHUP)
            body["workers"] = "all: the supervisor reloads every worker"
        return Prebuilt(200, orjson.dumps(body), JSON_HEADER)

    def reload(self, reason):
        """Read, validate and swap in the configuration. Returns (applied, message, the sections
        whose changes wait for a restart)."""
        gateway = self.gateway
        old = gateway.config
        try:
            # The listening address is the running one's: it cannot move under open sockets.
            new = load(old.path, host=old.server.host, port=old.server.port)
        except ConfigError as error:
            log.error("configuration reload (%s) refused, the running configuration keeps serving: %s", reason, error)
            return False, str(error), []
        if new.uses_mock:
            if not old.uses_mock:
                message = "no provider is configured: keeping the running providers"
                log.error("configuration reload (%s) refused: %s", reason, message)
                return False, message, []
            new = replace(new, providers=old.providers, default_provider=old.default_provider, uses_mock=True)
        later = [name for name in RESTART_ONLY if getattr(new, name) != getattr(old, name)]
        if "cache" not in later and getattr(gateway.pipeline.cache, "store", None) is None:
            if any(new.cache.enabled if model.cache is None else model.cache for model in new.models):
                later.append("cache")  # the response cache is made at start: none runs to cache these models
        if later:
            # The running sections stay; only their values in the new config are ignored.
            new = replace(new, **{name: getattr(old, name) for name in later})
        # The file's own address, compared file to file (the running one may be the command
        # line's): the listening socket stays where it is, and the reload says so.
        later += [f"server.{name}" for name, was, now in zip(("host", "port"), old.file_address, new.file_address) if was != now]
        # The running [governance] section, as it is: it carries what the supervisor added (the
        # counters file the workers share, where provider quotas are counted too).
        new = replace(new, governance=old.governance)
        upstreams, opened = self._upstreams(new)
        try:
            pipeline = Pipeline(new, upstreams, gateway.loop, previous=gateway.pipeline)
        except Exception as error:  # noqa: BLE001 - whatever fails, the running gateway stays as it was
            for upstream in opened:
                gateway.loop.create_task(upstream.close())
            log.exception("configuration reload (%s) failed while building it; the running one keeps serving", reason)
            return False, f"the configuration could not be built: {error}", []
        carry_deployment_state(gateway.pipeline, pipeline)
        self._swap(new, upstreams, pipeline)
        if pipeline.governance is None and pipeline.governance_watch is not None:
            pipeline.governance_watch.look()  # keys created since the start apply from this reload on
        self.count += 1
        message = f"configuration reloaded from {new.path or 'the environment'} ({reason})"
        if later:
            message += f"; changes to {', '.join(_named(name) for name in later)} take effect at the next start"
            log.warning("%s", message)
        else:
            log.info("%s", message)
        return True, message, later

    def _upstreams(self, new):
        """The pool of each provider in ``new``: the running one when its settings are unchanged,
        else a new one. Returns (pools by name, the pools opened for this reload)."""
        gateway = self.gateway
        running = {p.name: p for p in gateway.config.providers}
        upstreams, opened = {}, []
        for provider in new.providers:
            if running.get(provider.name) == provider:
                upstreams[provider.name] = gateway.upstreams[provider.name]
            else:
                upstreams[provider.name] = open_upstream(provider, gateway.loop)
                opened.append(upstreams[provider.name])
        return upstreams, opened

    def _swap(self, new, upstreams, pipeline):
        gateway = self.gateway
        kept = set(map(id, upstreams.values()))
        for upstream in gateway.upstreams.values():
            if id(upstream) not in kept:
                gateway.retire(upstream)
        gateway.config = new
        gateway.settings = new.server
        gateway.over_capacity = over_capacity_answer(new.server)
        gateway.upstreams = upstreams
        gateway.pipeline = pipeline
        gateway.endpoints.pipeline = pipeline
        if self.observability is not None:
            self.observability.watch(pipeline, new)


def deployment_key(group, deployment):
    """What makes two deployments the same one across a reload."""
    return (
        group.name, deployment.provider.name, deployment.upstream_model, deployment.weight,
        deployment.max_inflight, deployment.timeouts, deployment.breaker, deployment.rpm, deployment.tpm,
    )  # fmt: skip


def carry_deployment_state(old, new):
    """Breaker state, failure history and latency estimate of each deployment present in both
    pipelines. (Its in-flight count stays with the old object, which the requests on it release.)"""
    before = {}
    for group in old.routes.configured:
        for deployment in group.deployments:
            before[deployment_key(group, deployment)] = deployment
    for group in new.routes.configured:
        for deployment in group.deployments:
            previous = before.get(deployment_key(group, deployment))
            if previous is not None:
                deployment.state = previous.state
                deployment.cooling_until = previous.cooling_until
                deployment.failures = previous.failures
                deployment.latency = previous.latency
                # the provider quota's current minute
                deployment.window, deployment.requests, deployment.tokens = previous.window, previous.requests, previous.tokens


def _named(setting):
    """A section as the file writes it (``[metrics]``), or a key of one (``[server] port``)."""
    section, _, key = setting.partition(".")
    return f"[{section}] {key}" if key else f"[{section}]"

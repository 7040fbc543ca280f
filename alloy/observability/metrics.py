"""The gateway's Prometheus metrics: counted by one finish listener, gauges read at scrape time.

``Metrics.record`` is a listener of the pipeline's account stage (``Pipeline.listeners``): it is
given each call once it has ended and adds it to a slot per (endpoint, model, provider): requests by
status class, four latency histograms (total, upstream time to first byte, the gateway's overhead,
and a stream's time to its first event), attempts, retries and tokens. Nothing but dict and int
arithmetic runs per call (the core's ``SlotObserver``, compiled, finds histogram buckets by bisection
of fixed bounds); label values
are resolved by dict lookups, so a label never grows past what the configuration names:

- ``endpoint``: the client's API (``chat/completions``, ``completions``, ``embeddings``,
  ``messages``, ``messages/count_tokens``), or the passthrough allow-list rule that let the path
  through (``files/*``), or ``other``;
- ``model``: the name the client asked for when it is a ``[[models]]`` name or alias or one listed
  in ``[metrics] models``, else ``other`` (``""`` for endpoints without a model);
- ``provider``: the provider of the deployment that served the last attempt (``""``: none did).

What the gateway holds now (in-flight requests, client connections, upstream pools, breakers) is
read when ``/metrics`` is scraped, never counted per request. So are the response cache's counters
(``alloy_cache_*``, kept by ``alloy.cache`` itself), exported only when the cache is on.

Gateway overhead, the ``alloy_overhead_seconds`` histogram: the call's time minus the upstream's
share, from the call's four clock reads. For a complete (non-streamed) answer it is
``(sent_at - arrived) + (ended_at - head_at)``: routing and framing before the upstream request
left, plus relaying (or translating) the answer once its head came back, which includes receiving
the rest of the body from the upstream. For a stream only ``sent_at - arrived`` counts: the relay's
time is interleaved with the upstream's generation of the stream and no clock read separates them.
Observed for calls answered by their first attempt (a retried call's earlier attempts and backoff
are the upstream's failures, not the gateway's time) with an upstream head.

With ``--workers N`` each worker writes a snapshot of its counters to the supervisor's directory
(``MetricsSettings.workers_dir``) once a second, at shutdown and whenever it answers a scrape; the
worker that answers sums every worker's latest snapshot, its own taken at that moment. A snapshot
only ever replaces an older one of the same worker, so every counter a scrape reads is at least
what any earlier scrape read: the sums never go down (a worker that died keeps its last counts,
folded by the supervisor into one file of the dead workers' sum: ``retire_worker``).
Gauges come from workers still alive.
"""

import marshal
import os
import time

from alloy import core
from alloy._version import __version__
from alloy.balancer import COOLING, HEALTHY, PROBING
from alloy.passthrough import AllowList
from alloy.usage import reported_counts

# Upper bounds in seconds. Latency and upstream time to first byte span a local model's 100 us to
# a long generation's minutes; the gateway's own overhead lives in microseconds.
LATENCY_BOUNDS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 300.0, 600.0,
)  # fmt: skip
OVERHEAD_BOUNDS = (
    0.000005, 0.00001, 0.00002, 0.00003, 0.00004, 0.00005, 0.000075, 0.0001, 0.00015, 0.0002,
    0.0003, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
)  # fmt: skip
LATENCY_BUCKETS = len(LATENCY_BOUNDS) + 1
OVERHEAD_BUCKETS = len(OVERHEAD_BOUNDS) + 1

ENDPOINT_LABELS = {
    b"/v1/chat/completions": "chat/completions",
    b"/v1/completions": "completions",
    b"/v1/embeddings": "embeddings",
    b"/v1/messages": "messages",
    b"/v1/messages/count_tokens": "messages/count_tokens",
}
STATUS_CLASSES = ("none", "1xx", "2xx", "3xx", "4xx", "5xx", "6xx", "7xx", "8xx", "9xx")
BREAKER_STATES = (HEALTHY, COOLING, PROBING)
PASSTHROUGH_CACHE = 4096  # paths whose passthrough label is remembered (paths come from clients)
SEEN_CACHE = 4096  # (path, model, deployment) combinations whose slot is remembered
CACHE_RESULTS = (("hit", "hits"), ("miss", "misses"), ("refresh", "refreshes"), ("bypass", "bypasses"))
GAUGES_FRESH = 5.0  # seconds: a worker's snapshot older than this contributes no gauges
RETIRED = "retired.metrics"  # the dead workers' counts, summed (retire_worker)
ABSORBED_KEPT = 64  # dead workers the sum names: enough for any file a scrape may still list


# A slot is one flat list (an index is cheaper than an attribute and then an index): status counts
# by status // 100 (0: no status, the client left first), three histograms (not cumulative: bucket i
# counts observations in (bound i-1, bound i], the last one above every bound), then the sums.
TOTAL = 10
TTFB = TOTAL + LATENCY_BUCKETS
OVERHEAD = TTFB + LATENCY_BUCKETS
TTFT = OVERHEAD + OVERHEAD_BUCKETS
ATTEMPTS = TTFT + LATENCY_BUCKETS
RETRIES = ATTEMPTS + 1
PROMPT = ATTEMPTS + 2
COMPLETION = ATTEMPTS + 3
TOTAL_SUM = ATTEMPTS + 4
TTFB_SUM = ATTEMPTS + 5
OVERHEAD_SUM = ATTEMPTS + 6
TTFT_SUM = ATTEMPTS + 7
SLOT_SIZE = ATTEMPTS + 8
SLOT_LAYOUT = (TOTAL, TTFB, OVERHEAD, TTFT, ATTEMPTS, RETRIES, TOTAL_SUM, TTFB_SUM, OVERHEAD_SUM, TTFT_SUM, SLOT_SIZE)


def new_slot():
    return [0] * ATTEMPTS + [0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0]


class Metrics:
    def __init__(self, gateway, settings, model_names, passthrough_rules):
        self.gateway = gateway
        self.settings = settings
        self.slots = {}  # (endpoint, model, provider) -> its slot (a list: see new_slot)
        self.seen = {}  # (path, model asked, deployment) -> its slot: a cache of slot_for
        self.errors = {}  # (type, code) -> Alloy's own error answers
        self.fallbacks = {}  # model label -> calls answered by a fallback model
        self.model_labels = {name: name for name in (*model_names, *settings.models)}
        self.allowed_rules, self.allowed = passthrough_rules, AllowList(passthrough_rules)
        self.passthrough_labels = {}
        self.access_log = None  # set when the access log runs: its counters are exported too
        self.workers_dir = settings.workers_dir
        self.pid = os.getpid()
        self.observer = core.SlotObserver(LATENCY_BOUNDS, OVERHEAD_BOUNDS, SLOT_LAYOUT)

    def know_passthrough(self, rules):
        """The passthrough allow-list in force (a reload may change it): its rules label the
        endpoints again, or a path it newly lets through would be counted as ``other``."""
        if rules != self.allowed_rules:
            self.allowed_rules, self.allowed = rules, AllowList(rules)
            self.passthrough_labels.clear()
            self.seen.clear()

    def know_models(self, names):
        """Configured model names (a reload may add some) get labels of their own, not "other"."""
        added = {name: name for name in names if name not in self.model_labels}
        if added:
            self.model_labels.update(added)
            self.seen.clear()  # slots looked up for these names under "other" are looked up again

    # --- the finish listener: per call, plain arithmetic -------------------------------------------

    def record(self, call):
        """The finish listener: the call's slot, then the core's ``SlotObserver`` adds its status,
        latencies, attempts and retries; the rarer counts (fallbacks, errors, tokens) here."""
        scan = call.scan
        deployment = call.deployment
        if scan is None:
            asked = None
            stream = False
        else:
            asked = scan.model
            stream = scan.stream
        # The slot by what the call holds (its path, the name asked, the deployment): one lookup in
        # the common case; the labels are resolved on a miss. Bounded: names come from clients.
        seen = (call.path, asked, deployment)
        slot = self.seen.get(seen)
        if slot is None:
            slot = self.slot_for(call.path, asked, deployment)
            if len(self.seen) >= SEEN_CACHE:
                self.seen.clear()
            self.seen[seen] = slot
        self.observer.observe(slot, call, stream)
        if call.attempts is not None and call.attempts.origin is not call.group:
            model = "" if asked is None else self.model_labels.get(asked, "other")
            self.fallbacks[model] = self.fallbacks.get(model, 0) + 1
        error = call.error
        if error is not None:
            kind = (error.type, error.code)
            self.errors[kind] = self.errors.get(kind, 0) + 1
        usage = call.usage  # also when the relay read it from a stream its client left (alloy.relay)
        if usage:  # OpenAI's names, or Anthropic's for an answer relayed natively
            prompt, completion = reported_counts(usage)
            slot[PROMPT] += prompt or 0
            slot[COMPLETION] += completion or 0

    def slot_for(self, path, asked, deployment):
        endpoint = ENDPOINT_LABELS.get(path) or self.passthrough_label(path)
        model = "" if asked is None else self.model_labels.get(asked, "other")
        key = (endpoint, model, "" if deployment is None else deployment.provider.name)
        slot = self.slots.get(key)
        if slot is None:
            slot = self.slots[key] = new_slot()
        return slot

    def refused(self, path, status, error):
        """A ``/v1/`` request answered by Alloy before any call was made (401, 404, 400...); an
        empty ``path``: one the HTTP parser refused (413, 431, 400), counted with no endpoint."""
        endpoint = ENDPOINT_LABELS.get(path) or (self.passthrough_label(path) if path else "")
        key = (endpoint, "", "")
        slot = self.slots.get(key)
        if slot is None:
            slot = self.slots[key] = new_slot()
        slot[status // 100 % 10] += 1
        if error is not None:
            kind = (error.type, error.code)
            self.errors[kind] = self.errors.get(kind, 0) + 1

    def passthrough_label(self, path):
        """The allow-list rule matching ``path`` (``files/*``), or ``other``."""
        label = self.passthrough_labels.get(path)
        if label is None:
            rule = self.allowed.rule_for(path)
            label = "other" if rule is None else rule[4:]
            if len(self.passthrough_labels) >= PASSTHROUGH_CACHE:
                self.passthrough_labels.clear()
            self.passthrough_labels[path] = label
        return label

    # --- state: this worker's counters and gauges ---------------------------------------------------

    def state(self):
        """This worker's counters and current gauges as plain data (what a snapshot holds)."""
        log = self.access_log
        return {
            "pid": self.pid,
            "time": time.time(),
            "slots": {key: tuple(slot) for key, slot in self.slots.items()},
            "errors": dict(self.errors),
            "fallbacks": dict(self.fallbacks),
            "log": (log.lines, log.dropped) if log is not None else (0, 0),
            "gauges": self.gauges(),
            "cache": self.cache_counts(),
        }

    def cache_counts(self):
        """The response cache's counters (``alloy.cache``: kept by the cache, read here)."""
        stats = getattr(self.gateway.pipeline.cache, "stats", None)
        return stats.report() if stats is not None else {}

    def gauges(self):
        gateway = self.gateway
        connections = gateway.connections
        inflight = sum(1 for connection in connections if connection.current is not None)
        pools = {}
        for name, upstream in gateway.upstreams.items():
            pools[name] = pool_gauges(upstream)
        breakers = {}
        deployments = {}
        for group in gateway.pipeline.routes.configured:
            for deployment in group.deployments:
                key = (group.name, deployment.provider.name, deployment.upstream_model or group.name)
                breakers[(*key, deployment.state)] = breakers.get((*key, deployment.state), 0) + 1
                deployments[key] = deployments.get(key, 0) + deployment.inflight
        return {
            "inflight": inflight,
            "connections": len(connections),
            "pools": pools,
            "breakers": breakers,
            "deployments": deployments,
        }

    # --- snapshots, with --workers N ---------------------------------------------------------------

    def write_snapshot(self, state=None):
        """Leave this worker's latest state where the other workers read it (atomically)."""
        if self.workers_dir is None:
            return state
        state = self.state() if state is None else state
        path = os.path.join(self.workers_dir, f"{self.pid}.metrics")
        try:
            with open(path + ".tmp", "wb") as handle:
                handle.write(marshal.dumps(state))
            os.replace(path + ".tmp", path)
        except OSError:
            pass  # the directory is gone (the supervisor is stopping): nothing to share with
        return state

    def all_states(self):
        """Every worker's latest state, this worker's taken now (and shared before it is used), and
        the dead workers' sum (``retire_worker``), each dead worker counted once: the sum names
        the workers it holds (their files may still be there), and a file that vanished since the
        listing was folded into a sum written before it went, read again then."""
        own = self.write_snapshot(self.state())
        if self.workers_dir is None:
            return [own]
        states = [own]
        try:
            names = os.listdir(self.workers_dir)
        except OSError:
            return states
        retired_path = os.path.join(self.workers_dir, RETIRED)
        retired = _read_state(retired_path) if RETIRED in names else None
        vanished = False
        for name in names:
            if not name.endswith(".metrics") or name == f"{self.pid}.metrics" or name == RETIRED:
                continue
            state = _read_state(os.path.join(self.workers_dir, name))
            if state is None:
                vanished = vanished or not os.path.exists(os.path.join(self.workers_dir, name))
            else:
                states.append(state)
        if vanished:
            retired = _read_state(retired_path)
        if retired is not None:
            absorbed = set(retired["absorbed"])
            states = [state for state in states if state["pid"] not in absorbed]
            states.append(retired)
        return states

    # --- the scrape ----------------------------------------------------------------------------------

    def render(self):
        return render(self.all_states())


def pool_gauges(upstream):
    """(open, idle, queued) connections of one provider's upstream backend, read, never changed."""
    opened = getattr(upstream, "_open", None)
    if opened is not None:  # the core pool
        return (opened, len(upstream._idle), len(upstream._waiting))
    try:  # httpx: its connection pool (httpcore), when it has the shape we know
        connections = upstream.client._transport._pool.connections
        return (len(connections), sum(1 for c in connections if c.is_idle()), 0)
    except (AttributeError, TypeError):
        active = getattr(upstream, "active", ())
        return (len(active), 0, 0)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_state(path):
    """A snapshot's state, or None (gone, or being replaced: ``os.replace`` makes that rare)."""
    try:
        with open(path, "rb") as handle:
            return marshal.loads(handle.read())
    except (OSError, EOFError, ValueError, TypeError):
        return None


def retire_worker(workers_dir, pid):
    """Fold the last snapshot of worker ``pid``, which died, into the one file of the dead workers'
    sum (``RETIRED``), then remove its own: its counts stay (counters never go down) and a crash
    loop leaves one file, not one per death for every scrape to read. Called by the supervisor
    (``alloy.supervisor``) when it reaps a worker. The sum is replaced atomically before the dead
    worker's file goes and names the workers it holds (the last ``ABSORBED_KEPT``), so a scrape
    reading both counts the worker once (``Metrics.all_states``)."""
    path = os.path.join(workers_dir, f"{pid}.metrics")
    dead = _read_state(path)
    if dead is None:
        return
    retired_path = os.path.join(workers_dir, RETIRED)
    retired = _read_state(retired_path)
    if retired is None:
        retired = {"pid": 0, "time": 0.0, "slots": {}, "errors": {}, "fallbacks": {}, "log": (0, 0), "cache": {},
                   "gauges": {"inflight": 0, "connections": 0, "pools": {}, "breakers": {}, "deployments": {}},
                   "absorbed": ()}  # fmt: skip
    slots = retired["slots"]
    for key, slot in dead["slots"].items():
        held = slots.get(key)
        slots[key] = slot if held is None else tuple(a + b for a, b in zip(held, slot))
    for name in ("errors", "fallbacks", "cache"):
        for key, count in dead.get(name, {}).items():
            _add(retired[name], key, count)
    retired["log"] = (retired["log"][0] + dead["log"][0], retired["log"][1] + dead["log"][1])
    retired["absorbed"] = (*retired["absorbed"][-(ABSORBED_KEPT - 1) :], pid)
    try:
        with open(retired_path + ".tmp", "wb") as handle:
            handle.write(marshal.dumps(retired))
        os.replace(retired_path + ".tmp", retired_path)
        os.remove(path)
    except OSError:
        pass  # the directory is going (the supervisor stops): nothing to keep


def _add(target, key, value):
    target[key] = target.get(key, 0) + value


def render(states):
    """The exposition text of every worker's state summed."""
    from alloy.observability.exposition import Exposition  # by the first scrape: many never come

    requests, totals, ttfbs, overheads, ttfts = {}, {}, {}, {}, {}
    tokens, attempts, retries, fallbacks, errors = {}, {}, {}, {}, {}
    inflight = connections = 0
    pools, breakers, deployments = {}, {}, {}
    lines = dropped = 0
    cache = {}
    now = time.time()
    workers = 0
    for index, state in enumerate(states):
        for key, slot in state["slots"].items():
            model = key[1]
            for status_class in range(TOTAL):
                if slot[status_class]:
                    _add(requests, (*key, STATUS_CLASSES[status_class]), slot[status_class])
            for series, counts, seconds in (
                (totals, slot[TOTAL:TTFB], slot[TOTAL_SUM]),
                (ttfbs, slot[TTFB:OVERHEAD], slot[TTFB_SUM]),
                (overheads, slot[OVERHEAD:TTFT], slot[OVERHEAD_SUM]),
                (ttfts, slot[TTFT:ATTEMPTS], slot[TTFT_SUM]),
            ):
                if not any(counts):
                    continue
                held = series.get(key)
                if held is None:
                    series[key] = (list(counts), seconds)
                else:
                    series[key] = ([a + b for a, b in zip(held[0], counts)], held[1] + seconds)
            if slot[PROMPT] or slot[COMPLETION]:
                _add(tokens, (model, "prompt"), slot[PROMPT])
                _add(tokens, (model, "completion"), slot[COMPLETION])
            if slot[ATTEMPTS]:
                _add(attempts, (model,), slot[ATTEMPTS])
                _add(retries, (model,), slot[RETRIES])
        for model, count in state["fallbacks"].items():
            _add(fallbacks, (model,), count)
        for kind, count in state["errors"].items():
            _add(errors, kind, count)
        lines += state["log"][0]
        dropped += state["log"][1]
        for name, count in state.get("cache", {}).items():
            _add(cache, name, count)
        # Gauges: this worker's (the first state) and those of workers alive with a fresh snapshot.
        if index and (now - state["time"] > GAUGES_FRESH or not _alive(state["pid"])):
            continue
        workers += 1
        gauges = state["gauges"]
        inflight += gauges["inflight"]
        connections += gauges["connections"]
        for provider, (opened, idle, queued) in gauges["pools"].items():
            _add(pools, (provider, "open"), opened)
            _add(pools, (provider, "idle"), idle)
            _add(pools, (provider, "queued"), queued)
        for key, count in gauges["breakers"].items():
            _add(breakers, key, count)
        for key, count in gauges["deployments"].items():
            _add(deployments, key, count)
    breaker_series = {}
    for key in deployments:
        for state_name in BREAKER_STATES:
            breaker_series[(*key, state_name)] = breakers.get((*key, state_name), 0)

    out = Exposition()
    out.metric(
        "alloy_requests_total", "counter",
        "Requests answered, by client API, model asked (configured names, else other), provider and status class "
        "(none: the client left before any answer).",
        ("endpoint", "model", "provider", "status_class"), requests,
    )  # fmt: skip
    names = ("endpoint", "model", "provider")
    out.histogram(
        "alloy_request_duration_seconds",
        "Total time of a request in the gateway, from its arrival to the end of its answer.",
        names, LATENCY_BOUNDS, totals,
    )  # fmt: skip
    out.histogram(
        "alloy_upstream_ttfb_seconds",
        "Upstream time to first byte: from the last attempt's request sent to its response head.",
        names, LATENCY_BOUNDS, ttfbs,
    )  # fmt: skip
    out.histogram(
        "alloy_overhead_seconds",
        "The gateway's own time for a request answered by its first attempt: (sent - arrived) + "
        "(end - upstream head) for complete answers, (sent - arrived) for streams.",
        names, OVERHEAD_BOUNDS, overheads,
    )  # fmt: skip
    out.histogram(
        "alloy_time_to_first_token_seconds",
        "Streams: from the request's arrival to its first event written to the client.",
        names, LATENCY_BOUNDS, ttfts,
    )  # fmt: skip
    out.metric(
        "alloy_tokens_total", "counter", "Tokens reported by the answers' usage, by model and kind.",
        ("model", "kind"), tokens,
    )  # fmt: skip
    out.metric(
        "alloy_attempts_total", "counter", "Upstream attempts started, first attempts and retries alike.",
        ("model",), attempts,
    )  # fmt: skip
    out.metric(
        "alloy_retries_total", "counter", "Upstream attempts after a request's first (retries and fallbacks).",
        ("model",), retries,
    )  # fmt: skip
    out.metric(
        "alloy_fallbacks_total", "counter", "Requests whose final attempt went to a fallback model.",
        ("model",), fallbacks,
    )  # fmt: skip
    out.metric(
        "alloy_errors_total", "counter", "Alloy's own error answers, by OpenAI error type and code.",
        ("type", "code"), errors,
    )  # fmt: skip
    if cache:
        lookups = {(result,): cache.get(key, 0) for result, key in CACHE_RESULTS}
        out.metric(
            "alloy_cache_requests_total", "counter", "Requests the response cache saw, by their x-alloy-cache.",
            ("result",), lookups,
        )  # fmt: skip
        for name, key, help_text in (
            ("alloy_cache_stored_total", "stored_entries", "Answers the response cache stored."),
            ("alloy_cache_stored_bytes_total", "stored_bytes", "Bytes the response cache stored, as its max_bytes counts them: each answer's body plus its entry's bookkeeping (key, namespace, a fixed allowance)."),
            ("alloy_cache_evictions_total", "evictions", "Entries the memory store evicted to fit max_bytes."),
            ("alloy_cache_store_errors_total", "store_errors", "Failed or timed-out commands to the cache's Redis."),
        ):
            out.metric(name, "counter", help_text, (), {(): cache.get(key, 0)})
    out.metric("alloy_requests_in_flight", "gauge", "Requests being answered now.", (), {(): inflight})
    out.metric("alloy_client_connections", "gauge", "Open client connections.", (), {(): connections})
    out.metric(
        "alloy_upstream_connections", "gauge",
        "Upstream connections per provider: open (idle included), idle, and requests queued for one.",
        ("provider", "state"), pools,
    )  # fmt: skip
    out.metric(
        "alloy_breaker_state", "gauge",
        "Circuit breaker state of each configured deployment: the number of workers where it is in that "
        "state (1 or 0 with one worker).",
        ("model", "provider", "deployment", "state"), breaker_series,
    )  # fmt: skip
    out.metric(
        "alloy_deployment_in_flight", "gauge", "Attempts in flight on each configured deployment.",
        ("model", "provider", "deployment"), deployments,
    )  # fmt: skip
    out.metric("alloy_access_log_lines_total", "counter", "Access log lines written to their destination.", (), {(): lines})
    out.metric(
        "alloy_access_log_dropped_total", "counter",
        "Access log lines dropped (the destination failed or fell behind); requests never wait for the log.",
        (), {(): dropped},
    )  # fmt: skip
    out.metric("alloy_workers", "gauge", "Gateway processes whose numbers this answer includes.", (), {(): workers})
    out.metric(
        "alloy_build_info", "gauge", "The running build.", ("version", "core"),
        {(__version__, core.IMPLEMENTATION): 1},
    )  # fmt: skip
    return out.text()

"""Which deployment takes the next attempt: the deployments of a model, their health, the strategies.

A *deployment* is one place a model is served: a provider, the model name sent there, a weight and
an in-flight cap. Each carries what the gateway learned about it: requests in flight, an EWMA of
its first-byte latency (for the latency strategy) and a circuit breaker:

    healthy --(failure_threshold failures within failure_window)--> cooling
    cooling --(cooldown over, next request picks it)--> probing (that one request only)
    probing --success--> healthy        probing --failure--> cooling

A *model group* is what a client's model name routes to: its deployments, the strategy that picks
among them (weighted, round-robin, least-inflight, latency, or prefix-affinity: requests sharing a
prompt prefix meet on one deployment, see ``pick_prefix_affinity``), its retry budget and its
fallbacks. A pick skips deployments that are cooling, probing
or full, prefers deployments that have not failed this request, and returns None when none is left.

A deployment's provider quota (``rpm``/``tpm``) is counted in the deployment itself in a lone
process; with ``--workers N`` (``share_quotas``) its window lives in a slot of the counters table
every worker maps (``alloy.governance.counters``), so the quota holds for the whole server. The
check (``admits``) and the count (``begin``) are two steps under the table's lock: workers racing
at the moment a quota runs out may send at most N - 1 requests beyond it in that minute.
Deployments without a quota never touch the table.
"""

import math
import time
from collections import deque
from functools import partial
from binascii import crc32  # (hashlib would load OpenSSL's digests at start: see tests/test_lazy_imports.py)

from alloy.chance import random
from alloy.errors import DeploymentQuotaExceeded, DeploymentsBusy, NoHealthyDeployment
from alloy.usage import tokens_of

HEALTHY, COOLING, PROBING = "healthy", "cooling", "probing"
LATENCY_WEIGHT = 0.3  # of the newest first-byte sample in the EWMA
SERVED_BY_CACHE = 1024  # model names whose first-attempt headers a deployment keeps
QUOTA_WINDOW = 60.0  # seconds of a deployment's rpm/tpm window


class Deployment:
    __slots__ = (
        "provider", "upstream_model", "weight", "max_inflight", "timeouts", "breaker",
        "served_once", "served_once_as", "inflight", "state", "cooling_until", "failures", "latency",
        "rpm", "tpm", "window", "requests", "tokens", "shared_quota",
    )  # fmt: skip

    def __init__(self, provider, upstream_model, weight, max_inflight, timeouts, breaker):
        self.provider = provider  # how requests reach the provider (alloy.sending)
        self.upstream_model = upstream_model  # None: the name the client asked for
        self.weight = weight
        self.max_inflight = max_inflight  # 0: no cap
        self.timeouts = timeouts
        self.breaker = breaker  # the RouterSettings with its failure_* and cooldown; None: never cooled
        # The response headers naming what served a first attempt, built once.
        self.served_once = self._served_by(upstream_model, 1) if upstream_model else None
        self.served_once_as = {}  # without a model of its own: by the requested name
        self.inflight = 0
        self.state = HEALTHY
        self.cooling_until = 0.0
        self.failures = deque()  # monotonic times of recent failures
        self.latency = None  # EWMA of first-byte seconds; None until measured
        # The provider's quota for this deployment (0: none): requests and tokens per minute, in a
        # window that starts with its first request and lasts QUOTA_WINDOW seconds.
        self.rpm = self.tpm = 0
        self.window = 0.0
        self.requests = self.tokens = 0
        self.shared_quota = None  # with --workers: the window in the shared table (SharedQuota)

    def served_by(self, requested, attempt):
        """The ``x-alloy-provider``, ``x-alloy-model`` and ``x-alloy-attempts`` lines of an answer
        from here. ``requested`` is the name the route resolved, sent when the deployment has no
        model of its own (None for endpoints without a model: no model line). First attempts, the
        common case, come from a cache."""
        if attempt != 1:
            return self._served_by(self.upstream_model or requested, attempt)
        if self.served_once is not None:
            return self.served_once
        lines = self.served_once_as.get(requested)
        if lines is None:
            if len(self.served_once_as) >= SERVED_BY_CACHE:  # model names come from clients: bounded
                self.served_once_as.clear()
            lines = self.served_once_as[requested] = self._served_by(requested, 1)
        return lines

    def _served_by(self, model, attempt):
        model_line = b"x-alloy-model: %s\r\n" % model.encode() if model else b""
        return b"x-alloy-provider: %s\r\n%sx-alloy-attempts: %d\r\n" % (self.provider.name_bytes, model_line, attempt)

    def admits(self):
        """May an attempt start here now? (A cooled-down deployment admits its single probe.)"""
        if self.state is HEALTHY:
            if self.max_inflight and self.inflight >= self.max_inflight:
                return False
            return not (self.rpm or self.tpm) or self.quota_wait() == 0.0
        return self.state is COOLING and time.monotonic() >= self.cooling_until

    def quota_wait(self):
        """Seconds until this deployment's quota lets a request through again (0.0: now)."""
        if self.shared_quota is not None:
            return self.shared_quota.wait(self.rpm, self.tpm)
        now = time.monotonic()
        if now - self.window >= QUOTA_WINDOW:
            self.window, self.requests, self.tokens = now, 0, 0
            return 0.0
        if (self.rpm and self.requests >= self.rpm) or (self.tpm and self.tokens >= self.tpm):
            return self.window + QUOTA_WINDOW - now
        return 0.0

    def used_tokens(self, usage):
        """An answer's usage, counted in the tokens-per-minute window (``tpm`` deployments)."""
        tokens_in, tokens_out, _ = tokens_of(usage)
        if self.shared_quota is not None:
            self.shared_quota.add(0, tokens_in + tokens_out)
            return
        self.tokens += tokens_in + tokens_out

    # --- what attempts report -----------------------------------------------------------------

    def begin(self):
        self.inflight += 1
        if self.rpm or self.tpm:
            if self.shared_quota is not None:
                self.shared_quota.add(1, 0)
            else:
                self.quota_wait()  # rolls the window over when its minute is up
                self.requests += 1
        if self.state is COOLING:
            self.state = PROBING

    def succeeded(self):
        self.inflight -= 1
        if self.state is PROBING:
            self.state = HEALTHY
            self.failures.clear()

    def failed(self):
        self.inflight -= 1
        if self.breaker is None:  # an implicit provider route: never taken out (see Proxy)
            return
        now = time.monotonic()
        failures = self.failures
        failures.append(now)
        while failures[0] < now - self.breaker.failure_window:
            failures.popleft()
        if self.state is PROBING or len(failures) >= self.breaker.failure_threshold:
            self.state = COOLING
            self.cooling_until = now + self.breaker.cooldown
            failures.clear()

    def abandoned(self):
        """The attempt was cancelled (the client left): it proves nothing either way."""
        self.inflight -= 1
        if self.state is PROBING:
            self.state = COOLING  # with its cooldown already over: the next request probes

    def first_byte_after(self, seconds):
        previous = self.latency
        self.latency = seconds if previous is None else previous + LATENCY_WEIGHT * (seconds - previous)

    def report(self, model_name):
        return {"provider": self.provider.name, "model": self.upstream_model or model_name, "state": self.state, "inflight": self.inflight}


class SharedQuota:
    """A deployment's quota window in the counters table the workers of a server share: the slot's
    request window start, request count and token count (``alloy.governance.counters``; its clock,
    ``time.monotonic()``, is the host's, the same in every worker)."""

    __slots__ = ("table", "slot")

    def __init__(self, table, slot):
        self.table = table
        self.slot = slot

    def wait(self, rpm, tpm):
        table = self.table
        now = time.monotonic()
        table.lock()
        try:
            row = table.read(self.slot)
            window, requests, tokens = row[1], row[2], row[4]
            if now - window >= QUOTA_WINDOW:
                table.write(self.slot, (row[0], now, 0, row[3], 0, *row[5:]))
                return 0.0
        finally:
            table.unlock()
        if (rpm and requests >= rpm) or (tpm and tokens >= tpm):
            return window + QUOTA_WINDOW - now
        return 0.0

    def add(self, requests, tokens):
        """Count a request sent (its window rolled over when its minute is up) or an answer's tokens."""
        table = self.table
        now = time.monotonic()
        table.lock()
        try:
            row = table.read(self.slot)
            if now - row[1] >= QUOTA_WINDOW:
                if not requests:
                    return  # tokens of a window that is over count in none
                row = (row[0], now, 0, row[3], 0, *row[5:])
            table.write(self.slot, (row[0], row[1], row[2] + requests, row[3], row[4] + tokens, *row[5:]))
        finally:
            table.unlock()


_shared_tables = {}  # path -> CounterTable: one mapping per process, whatever the reloads


def share_quotas(groups, path):
    """With ``--workers N`` (``path``: the counters file the supervisor made): the quota of every
    deployment in ``groups`` that has one is counted in that file, for the whole server. A
    deployment is the same one across reloads (its model, provider and upstream model), so its
    current minute carries over. When the table is full, a quota stays counted per process."""
    table = _shared_tables.get(path)
    for group in groups:
        for deployment in group.deployments:
            if not (deployment.rpm or deployment.tpm):
                continue
            if table is None:
                from alloy.governance.counters import CounterTable  # only for quotas, only with workers

                table = _shared_tables[path] = CounterTable(path)
            name = f"deployment:{group.name}\0{deployment.provider.name}\0{deployment.upstream_model}"
            slot = table.slot_of(name)
            if slot is not None:
                deployment.shared_quota = SharedQuota(table, slot)


# --- strategies: each picks from the admitting deployments, preferring those not in ``avoid`` ---------
# They run on every request of a model with several deployments, so they loop without building
# lists in the common case (nothing avoided, nothing barred).


def _candidates(group, avoid, barred):
    usable = [d for d in group.deployments if d not in barred and d.admits()]
    if avoid:
        fresh = [d for d in usable if d not in avoid]
        if fresh:
            return fresh
    return usable


def pick_weighted(group, avoid, barred):
    if not avoid and not barred:
        # One draw over every deployment; only a full or cooling one sends us the slow way.
        point = random() * group.total_weight
        for deployment in group.deployments:
            point -= deployment.weight
            if point < 0:
                break
        if deployment.admits():
            return deployment
    candidates = _candidates(group, avoid, barred)
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    point = random() * sum(d.weight for d in candidates)
    for deployment in candidates:
        point -= deployment.weight
        if point < 0:
            return deployment
    return candidates[-1]


def pick_round_robin(group, avoid, barred):
    deployments = group.deployments
    count = len(deployments)
    start = group.turn
    group.turn = (start + 1) % count
    spare = None
    for step in range(count):
        deployment = deployments[(start + step) % count]
        if (barred and deployment in barred) or not deployment.admits():
            continue
        if not avoid or deployment not in avoid:
            return deployment
        if spare is None:
            spare = deployment
    return spare


def pick_least_inflight(group, avoid, barred):
    # Scanned from a turning start, so equally idle deployments take turns.
    deployments = group.deployments
    count = len(deployments)
    start = group.turn
    group.turn = (start + 1) % count
    best = spare = None
    for step in range(count):
        deployment = deployments[(start + step) % count]
        if (barred and deployment in barred) or not deployment.admits():
            continue
        if avoid and deployment in avoid:
            if spare is None or deployment.inflight < spare.inflight:
                spare = deployment
        elif best is None or deployment.inflight < best.inflight:
            best = deployment
    return best if best is not None else spare


def pick_latency(group, avoid, barred):
    """Power of two choices: of two deployments drawn at random, the one with the lower expected
    first-byte latency (scaled by its queue); an unmeasured deployment is tried first."""
    candidates = group.deployments if not avoid and not barred else _candidates(group, avoid, barred)
    count = len(candidates)
    if count == 2:
        first, second = candidates
    elif count > 2:
        i = int(random() * count)
        j = int(random() * (count - 1))
        first, second = candidates[i], candidates[j + (j >= i)]
    else:
        return candidates[0] if count and candidates[0].admits() else None
    if not first.admits():
        return second if second.admits() else _first_admitting(candidates)
    if not second.admits():
        return first
    return first if _expected(first) <= _expected(second) else second


def pick_prefix_affinity(group, avoid, barred):
    """Consistent hashing with bounded load: the request's prompt-prefix hash (``group.affinity``,
    set just before the pick by ``alloy.cache.prompt_prefix``) names a point on the group's ring;
    the first deployment clockwise from it that admits, was not avoided and carries no more than
    ``AFFINITY_LOAD_FACTOR`` times the average in-flight load (counting this request) takes it.
    Requests sharing a prefix thus meet on one deployment (its prompt cache stays warm) until it
    is unhealthy or loaded past the bound; removing a deployment moves only the prefixes it held.
    Without a hint (a retry, a body without messages) the least loaded deployment is taken."""
    point = group.affinity
    group.affinity = None  # the hint is for this pick only
    if point is None:
        return pick_least_inflight(group, avoid, barred)
    deployments = group.deployments
    load = sum(d.inflight for d in deployments) + 1
    bound = math.ceil(AFFINITY_LOAD_FACTOR * load / len(deployments))
    owners = group.ring_owners
    ring_size = len(owners)
    start = group.ring_after(point)
    spare = None  # the least loaded usable one, should none be within the bound
    for step in range(ring_size):  # in practice a step or two: the bound leaves one under it
        deployment = owners[(start + step) % ring_size]
        if (barred and deployment in barred) or not deployment.admits():
            continue
        if (avoid and deployment in avoid) or deployment.inflight + 1 > bound:
            if spare is None or deployment.inflight < spare.inflight:
                spare = deployment
            continue
        return deployment
    return spare


def _whereabouts(provider):
    """Where a provider's requests go and what its configuration adds to them: its server and API
    path, its API version, and a checksum of its configured header lines (which may choose the
    organization billed; a checksum: they may hold a proxy's credentials, and the line breaks stay
    out of the cache's keys). Not its key: a rotated key asks the same of the same account."""
    origin = getattr(getattr(provider, "upstream", None), "origin", None)
    version = getattr(provider, "api_version", None) or getattr(getattr(provider, "settings", None), "api_version", None)
    configured = getattr(getattr(provider, "forwarding", None), "configured_lines", b"")
    return f"{getattr(origin, 'label', '')}{getattr(origin, 'base_path', '')}|{version or ''}|{crc32(configured):08x}"


def _ring(deployments):
    """The hash ring: ``AFFINITY_POINTS`` points per deployment (times its weight), placed by a
    hash of what the deployment is (provider, model, and which of equal ones), never by its position
    in the list, so adding or removing one leaves the others' points where they were; every process
    builds the same ring. Returns the owner of each point in ring order, and the function that
    finds the index of the first point past a hash."""
    # Only prefix-affinity groups build a ring: neither is imported at start.
    from bisect import bisect
    from hashlib import blake2b

    points = []
    occurrences = {}
    for deployment in deployments:
        name = f"{deployment.provider.name}/{deployment.upstream_model}"
        occurrences[name] = occurrences.get(name, 0) + 1
        name += f"#{occurrences[name]}"
        for i in range(max(1, round(AFFINITY_POINTS * deployment.weight))):
            digest = blake2b(f"{name}:{i}".encode(), digest_size=8).digest()
            points.append((int.from_bytes(digest, "big"), deployment))
    points.sort(key=lambda item: item[0])
    return [d for _, d in points], partial(bisect, [p for p, _ in points])


def _first_admitting(deployments):
    for deployment in deployments:
        if deployment.admits():
            return deployment
    return None


def _expected(deployment):
    if deployment.latency is None:
        return -1.0
    return deployment.latency * (deployment.inflight + 1)


PREFIX_AFFINITY = "prefix-affinity"  # the strategy the response cache's prompt-prefix hint serves
STRATEGIES = {
    "weighted": pick_weighted,
    "round-robin": pick_round_robin,
    "least-inflight": pick_least_inflight,
    "latency": pick_latency,
    PREFIX_AFFINITY: pick_prefix_affinity,
}
AFFINITY_POINTS = 64  # ring points per deployment of weight 1: shares even to a few percent
AFFINITY_LOAD_FACTOR = 1.25  # a deployment takes a prefix's request up to this times the average load


class ModelGroup:
    """The deployments a model name routes to, how to choose among them, and what to do when they
    fail: ``max_retries`` more attempts, then the ``fallbacks`` (other groups), in order."""

    def __init__(self, name, deployments, strategy, max_retries):
        self.name = name
        self.deployments = tuple(deployments)
        self.strategy = strategy
        self._pick = STRATEGIES[strategy]
        self.single = self.deployments[0] if len(self.deployments) == 1 else None
        self.total_weight = sum(d.weight for d in self.deployments)
        self.measures_latency = strategy == "latency"
        self.max_retries = max_retries
        self.fallbacks = ()  # ModelGroups, set once every group exists
        self.context_window_fallbacks = ()
        self.content_policy_fallbacks = ()
        self.turn = 0
        self.affinity = None  # prefix-affinity: the prompt-prefix hash of the request being placed
        self.cache_policy = None  # the response cache's settings for it, set on its first lookup (alloy.cache)
        # Where its requests go, as the response cache's keys name it: a change of provider, of
        # its server or configured headers, or of upstream model (a reload) is another key, and
        # two providers never share an answer.
        self.route = "\n".join(sorted(f"{d.provider.name}@{_whereabouts(d.provider)}/{d.upstream_model or '*'}" for d in self.deployments)).encode()
        if strategy == PREFIX_AFFINITY:
            self.ring_owners, self.ring_after = _ring(self.deployments)

    def pick(self, avoid=(), barred=()):
        single = self.single
        if single is not None:  # the common case, without building a candidate list
            return single if single not in barred and single.admits() else None
        return self._pick(self, avoid, barred)

    def refusal(self, barred=()):
        """Why nothing could be picked: every deployment full or over its quota (429), or cooling
        (503)."""
        remaining = [d for d in self.deployments if d not in barred]
        healthy = [d for d in remaining if d.state is HEALTHY]
        if healthy:
            waits = [d.quota_wait() for d in healthy if d.rpm or d.tpm]
            if waits and all(waits):
                return DeploymentQuotaExceeded(
                    f"every deployment of model '{self.name}' has used its provider quota for this minute",
                    retry_after=max(1, math.ceil(min(waits))),
                )
            return DeploymentsBusy(f"every deployment of model '{self.name}' is at its max_inflight; retry shortly")
        now = time.monotonic()
        waits = [d.cooling_until - now for d in remaining if d.state is COOLING]
        retry_after = max(1, math.ceil(min(waits))) if waits else 1
        return NoHealthyDeployment(
            f"every deployment of model '{self.name}' is cooling down after repeated failures",
            retry_after=retry_after,
        )

    def report(self):
        deployments = [d.report(self.name) for d in self.deployments]
        return {"healthy": sum(d["state"] == HEALTHY for d in deployments), "deployments": deployments}

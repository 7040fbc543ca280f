"""The gate: who a request is, whether it may go upstream now, and what it cost once it ended.

    authenticate  the master key (-> None) or a virtual key ``sk-alloy-...`` (-> its
                  ``KeyIdentity``), from ``Authorization: Bearer`` or ``x-api-key``: one dict
                  lookup for a secret seen since the last reload, else one SHA-256 first
                  (``Keyring.learn``). Revoked or expired: 401. No master key and no live key:
                  every request passes, as without governance.
    admit         a keyed call's model against the key's (and team's) models (404, naming only the
                  model asked for), then every limit of the key and its team in the shared
                  counters, under one lock: requests per minute, tokens per minute (reserved from
                  the body's top-level ``max_completion_tokens`` or ``max_tokens``, which the
                  core's scan read, plus the prompt's size / 4), requests in flight and the budget of
                  the period. Over any: 429 before anything is sent, with ``Retry-After``. Passed:
                  the counters move, the ``x-ratelimit-*`` lines join the call's header lines, and
                  the gate carries the call on itself (``Pipeline.admitted``), so an error raised
                  further on is answered through the call and the call always ends: what was
                  reserved is always given back.
    finished      (a finish listener) the answer's usage replaces the reservation in the token
                  window, the cost (``alloy.governance.prices``) joins the key's and team's spend,
                  the request in flight is released, and a ledger row is queued.

Budgets are checked against what ended calls spent: calls in flight when the budget is reached
still finish, so a budget can be overshot by at most the cost of the calls in flight at that
moment (bounded by ``max_parallel`` times the largest answer ``max_tokens`` allows).
"""

import logging
import re
from time import monotonic, time

from alloy.auth import compare_digest
from alloy.core import ratelimit_lines, scan_body, usage_cost
from alloy.errors import AlloyError, AuthenticationFailed, InvalidRequest, ModelNotFound, PermissionDenied
from alloy.governance.attribution import attribution, tags_text
from alloy.governance.counters import CounterTable
from alloy.governance.keyring import Keyring
from alloy.governance.ledger import Ledger
from alloy.governance.prices import SPEND_UNIT, Prices
from alloy.governance.refused import call_refused, request_refused
from alloy.governance.refusals import BudgetExceeded, RateLimitExceeded, SharedLimitsUnavailable
from alloy.governance.store import SECRET_PREFIX, Store
from alloy.forms import form_model
from alloy.routing import MODEL_BEARING, MODEL_IN_FORM, MODELS_UNSEEN, json_model_scan

log = logging.getLogger("alloy.governance")
_PREFIX = SECRET_PREFIX.encode()
MAX_TOKENS = re.compile(rb'"max(?:_completion)?_tokens"\s*:\s*(\d{1,9})')
CHARS_PER_TOKEN = 4  # the prompt's estimate: its size in bytes / 4, reconciled from the real usage


class Governance:
    def __init__(self, settings, pipeline):
        self.settings = settings
        self.pipeline = pipeline
        self.master = pipeline.keys
        self.store = Store(settings.path)
        self.table = CounterTable(settings.shared_path)
        self.keyring = Keyring(self.store, self.table)
        self.keyring.reload()
        self.prices = Prices(settings.prices)
        self.ledger = Ledger(settings.path)
        self.shared = None  # Redis, when limits are shared between gateways
        self.key_sharing = None  # and keys too (alloy.governance.key_sharing)
        if settings.redis_url is not None:
            from alloy.governance.keyring import ledger_spend
            from alloy.governance.shared import SharedCounters

            store = self.store  # a Redis that lost a key's spend is seeded from this ledger
            self.shared = SharedCounters(
                settings.redis_url, settings.redis_timeout, settings.inflight_lease,
                spend_of=lambda scope, wall: ledger_spend(store, scope, wall), fail_mode=settings.fail_mode,
            )
            from alloy.governance.key_sharing import KeySharing  # keys reach every gateway of the Redis

            self.key_sharing = KeySharing(self.shared.client, self.store, self.keyring, settings.redis_timeout)
        # call -> (tokens reserved, each scope's token window at the reservation, decided in Redis)
        self.held = {}
        # The wall clock as an offset from the monotonic one, which every call already read (its
        # arrival, its end): the gate dates its limits and ledger rows from those reads instead of
        # reading the clock again; refreshed at every sync, so a stepped wall clock is followed
        # within sync_interval.
        self.wall_offset = time() - monotonic()
        self.sync_failed = False
        self.timers = []
        pipeline.listeners.append(self.finished)
        pipeline.needs_stream_usage = True  # every stream's usage, also when its client did not ask
        from alloy.governance.admin import register  # the admin API: rarely used, its own module

        register(self, pipeline.admin_routes)
        loop = pipeline.loop
        if loop is not None:
            self.timers = [loop.call_later(settings.sync_interval, self._sync), loop.call_later(settings.flush_interval, self._flush)]

    # --- authenticate -------------------------------------------------------------------------------

    def authenticate(self, request):
        headers = request.headers
        bearer = headers.get(b"authorization")
        keyring = self.keyring
        if bearer is not None:
            # A key's client sends the same header on every request: found as it was sent, in one
            # dict lookup, with nothing cut out of it (Keyring.by_header).
            identity = keyring.by_header.get(bearer)
            if identity is not None:
                return _live(identity)
        api_key = headers.get(b"x-api-key")
        expected = self.master.expected
        if bearer is None and api_key is None:
            if expected is None and not keyring.created:
                return None  # no master key, no key: open, as without governance
            raise AuthenticationFailed("Missing API key: send it as Authorization: Bearer <key> or x-api-key: <key>")
        for token in (_bearer_token(bearer), api_key):
            if token is None:
                continue
            if token.startswith(_PREFIX):
                identity = keyring.by_secret.get(token) or keyring.learn(token)
                if identity is not None:
                    if token is not api_key:
                        keyring.remember_header(bearer, identity)
                    return _live(identity)
            if expected is not None and compare_digest(token, expected):
                return None
        if expected is None and not keyring.created:
            return None
        raise AuthenticationFailed("Incorrect API key provided")

    # --- admit --------------------------------------------------------------------------------------

    def _check_passthrough_model(self, key, call):
        """A key limited to models, on a passthrough endpoint: where the request names a model (a
        JSON body's was scanned when it was routed; a form's is read here; on any other endpoint
        the allow-list opens, such as fine-tuning jobs, a JSON body's), it must be one the key may
        use; where a model endpoint names none, the provider's default model is not one the key
        was given; batches name theirs in a stored file Alloy cannot see, so they are closed to
        such a key."""
        path, posted = call.path, call.request.method == b"POST"
        if path in MODELS_UNSEEN and posted:
            raise PermissionDenied("this key is limited to models, and a batch's models cannot be checked: use another key")
        if path in MODEL_IN_FORM and posted:
            scan = json_model_scan(call.request)  # these endpoints may take JSON too (images/edits)
            model = scan.model if scan is not None else form_model(call.request)
        elif path in MODEL_BEARING:
            model = None  # a JSON body naming a model was routed by it: this one named none
        else:
            model = _named_model(call.request) if posted else None
            if model is None:
                return  # files, listings...: no model to hold the key to
        if not model:
            raise InvalidRequest("this key is limited to models: name one of them in the request's model", param="model")
        if not key.may_use(model, call.pipeline.routes.aliases.get(model)):
            raise _not_allowed(model)
        elif path in MODELS_UNSEEN and call.request.method == b"POST":
            raise PermissionDenied("this key is limited to models, and a batch's models cannot be checked: use another key")

    def check_model(self, key, model):
        """A key limited to models may not use this one: the 404 names it and no other."""
        if key.rules and not key.may_use(model, self.pipeline.routes.aliases.get(model)):
            raise _not_allowed(model)

    def admit(self, call):
        key = call.key
        if key is None:
            return False  # the master key (or an open gateway): no limits
        scan = call.scan
        if key.rules:
            if scan is not None:
                self.check_model(key, scan.model)
            else:
                self._check_passthrough_model(key, call)
        reserve = estimate_tokens(call.request.body_buffer, scan) if key.counts_tokens else 0
        shared = self.shared
        if shared is not None:
            if shared.usable(monotonic()):
                # Decided in Redis (one round trip, asynchronous). The connection holds the call
                # meanwhile, so a pipelined request waits its turn and a client that leaves ends it.
                call.connection.current = call
                self.pipeline.loop.create_task(self._admit_shared(call, key, reserve))
                return True
            if self.settings.fail_mode == "closed":
                raise SharedLimitsUnavailable()
        windows, lines = self._take(key, reserve, call.arrived)
        if shared is not None:  # decided here while Redis is away: it is owed the request
            shared.owe(key, time(), requests=1)
        return self._carry_on(call, reserve, windows, lines, False)

    def _carry_on(self, call, reserve, windows, lines, shared):
        """Admitted: remember the reservation, add the headers, go on to the next stages."""
        self.held[call] = (reserve, windows, shared)
        call.id_line += lines
        try:
            self.pipeline.admitted(call)
        except AlloyError as error:
            call.answer(error)
        return True

    def _take(self, key, reserve, now):
        """Check every limit of the key and its team, then count the call in all of them (or in
        none: the first limit reached raises, nothing is written), in one call to the core
        (``LimitCounters.take``), as of ``now`` (the monotonic clock: the call's arrival). Returns
        each scope's token window start and the x-ratelimit-* lines."""
        wall = now + self.wall_offset
        verdict = self.table.limits.take(key.limits, key.reported, reserve, now, wall)
        if verdict[0] is not None:
            what, index, figure, tokens, lines = verdict
            raise self._refusal(key.scopes[index], what, figure, reserve, tokens, lines, wall)
        return verdict[1], verdict[2]

    def _refusal(self, scope, what, figure, reserve, tokens, lines, wall):
        """The error for the first limit reached: ``figure`` is the seconds until the window
        resets, or the spend of the period for a budget; ``lines`` the x-ratelimit-* lines."""
        where = f"{scope.kind} '{scope.name}'"
        if what == "budget":
            end = scope.period_start(wall) + scope.period if scope.period else None
            return BudgetExceeded(
                f"You exceeded your current quota: {where} spent ${figure / SPEND_UNIT:.6f} of its "
                f"${usd(scope.budget / SPEND_UNIT)} budget" + (" for this period" if end else ""),
                retry_after=None if end is None else end - wall,
            )
        if what == "requests":
            message = f"Rate limit reached for requests per minute on {where}: limit {scope.rpm}"
        elif what == "tokens" and reserve > scope.tpm:
            # No minute will ever have room for it (OpenAI's "Request too large"): said so, no retry.
            message = (
                f"Request too large for tokens per minute on {where}: limit {scope.tpm}, requested {reserve} "
                "(the prompt's estimate and max_tokens); lower max_tokens or the prompt"
            )
            return RateLimitExceeded(message, kind="tokens", retry_after=None, header_block=lines)
        elif what == "tokens":
            message = f"Rate limit reached for tokens per minute on {where}: limit {scope.tpm}, used {tokens}, requested {reserve}"
        else:
            message = f"Too many requests in flight on {where}: limit {scope.max_parallel}"
        kind = "tokens" if what == "tokens" else "requests"
        return RateLimitExceeded(message, kind=kind, retry_after=figure, header_block=lines)

    async def _admit_shared(self, call, key, reserve):
        shared = self.shared
        wall = time()
        try:
            result = await shared.admit(key, reserve, wall)
        except shared.errors as error:
            shared.failed(error)
            if call.ended:
                return
            if self.settings.fail_mode == "closed":
                return call.answer(SharedLimitsUnavailable())
            try:
                windows, lines = self._take(key, reserve, monotonic())
            except AlloyError as refused:
                return call.answer(refused)
            # Owed to Redis even when its admit timed out: Redis may yet run that admit (then the
            # request counts twice there), but mostly the client gave up on it (cancelled with its
            # connection: measured, 1 of 30 ran), and a limit errs on the side of holding.
            shared.owe(key, wall, requests=1)
            self._carry_on(call, reserve, windows, lines, False)
            return
        shared.recovered()
        # {1, now, counts...} admitted; {0, scope, what, figure, now, counts...} refused
        now = (result[1] if result[0] == 1 else result[4]) / 1000
        counts = result[5:9] if result[0] == 0 else result[2:]
        rows = [(None, counts[i] / 1000, counts[i + 1], counts[i + 2] / 1000, counts[i + 3]) for i in range(0, len(counts), 4)]
        if result[0] == 0:
            scope = key.scopes[result[1] - 1]
            what = result[2].decode() if isinstance(result[2], bytes) else result[2]
            figure = result[3] if what == "budget" else result[3] / 1000
            if not call.ended:  # the refused scope's windows make the headers
                alone = tuple((kind, ((0, getattr(scope, kind)),)) for kind in ("rpm", "tpm") if getattr(scope, kind))
                call.answer(self._refusal(scope, what, figure, reserve, rows[0][4], ratelimit_lines(alone, rows, now), wall))
            return
        windows = [result[4 + 4 * i] for i in range(len(key.scopes))]
        if call.ended:  # the client left while Redis decided: give the reservation back
            self._release_shared(key, (reserve, windows, True), reserve, 0)
            return
        self._carry_on(call, reserve, windows, ratelimit_lines(key.reported, rows, now), True)

    # --- account ------------------------------------------------------------------------------------

    def finished(self, call):
        held = self.held.pop(call, None)
        usage = call.usage
        scan = call.scan
        if not usage and call.cut and call.count:
            # Cut before its usage came (the client left and the drain ran out, the upstream broke
            # off): the provider bills what it did, so it is charged what it reserved, not nothing.
            usage = reserved_usage(call.request.body_buffer, scan)
        elif usage and call.count and call.status < 400 and not counts_tokens(usage):
            # Answered without counting the prompt it took (Gemini's embeddings report no tokens;
            # their OpenAI shape says 0): charged what was reserved for it, as a cut call is.
            usage = reserved_usage(call.request.body_buffer, scan)
        asked = scan.model if scan is not None else None
        deployment = call.deployment
        served = (deployment.upstream_model or call.model_name) if deployment is not None else None
        # The tokens billed and their cost, in USD for the ledger and in nano-USD for the counters.
        # The served name's price, resolved once and kept by Prices: read here without a call.
        price = self.prices.found.get(served) if served else None
        if price is None:
            price = self.prices.price(served, call.model_name, asked)
        tokens_in, tokens_out, tokens_cached, cost, nanos = usage_cost(usage, price)
        key = call.key
        wall = call.ended_at + self.wall_offset
        if held is not None:
            # Without a usage: nothing went upstream (a cache hit), or the provider answered an
            # error (it bills none), spent nothing; an attempt whose usage is unknown (Alloy's own
            # error after it, an answer that reports none) keeps what it reserved.
            if usage:
                used = tokens_in + tokens_out
            elif call.count and (call.error is not None or call.status < 400):
                used = held[0]
            else:
                used = 0
            if held[2]:
                self._release_shared(key, held, used, nanos)
            else:
                self._give_back(key, held, used, nanos, wall)
        request = call.request
        if scan is not None and scan.user is None and scan.metadata is None:
            user = metadata = None  # the common case: the scan saw nothing to attribute
        else:
            user, metadata = attribution(scan, request)
        # Raw where the stored text is only a conversion (the path, the latency, the tags, the
        # request id): the ledger's writer thread converts them (``alloy.governance.ledger``).
        self.ledger.append(
            (  # "" for an empty text: stored as NULL, bound faster (store.LEDGER_OPTIONAL_TEXT)
                wall, "" if key is None else key.id, "" if key is None else key.name,
                "" if key is None else key.team or "", asked or "", served or "",
                "" if deployment is None else deployment.provider.name, call.path, call.status,
                tokens_in, tokens_out, tokens_cached, cost, call.ended_at - call.arrived,
                user or "", request.headers.get(b"x-alloy-tags"), call.id_line,
                None if metadata is None else self.ledger.holds(metadata),  # read by the ledger's writer
                "" if call.error is None else call.error.code or "", 1,
            )
        )  # fmt: skip

    # --- refusals (alloy.governance.refused): reported by the pipeline where the gate raised them -----

    def refused_request(self, request, error, key=None):
        request_refused(self.ledger, request, error, key)

    def refused_call(self, call, error):
        request = call.request
        call_refused(self.ledger, call, error, attribution(call.scan, request)[0], tags_text(request.headers.get(b"x-alloy-tags")))

    def _release_shared(self, key, held, used, cost):
        # This server's counters learn the spend too: should Redis become unreachable (fail_mode
        # open), they decide, and a budget spent through Redis must stay spent there.
        self.table.limits.spent(key.limits, cost, time())
        self.pipeline.loop.create_task(self._released_shared(key, held, used, cost))

    async def _released_shared(self, key, held, used, cost):
        try:
            await self.shared.release(key, held[0], used, held[1], cost, time())
        except self.shared.errors as error:
            if not isinstance(error, self.shared.timeouts):  # Redis may yet run a release that timed out
                self.shared.owe(key, time(), cost=cost)
            self.shared.failed(error)

    def _give_back(self, key, held, used, cost, wall):
        reserved, windows, _ = held
        self.table.limits.give_back(key.limits, windows, reserved, used, cost, wall)
        if self.shared is not None:  # decided here while Redis was away: its spend and tokens are owed
            self.shared.owe(key, wall, cost=cost, tokens=used)

    # --- upkeep -------------------------------------------------------------------------------------

    def _sync(self):
        self.wall_offset = time() - monotonic()
        try:
            self.keyring.refresh()
            if self.sync_failed:
                log.warning("governance: keys reloaded from %s again", self.settings.path)
                self.sync_failed = False
        except Exception as error:  # noqa: BLE001 - keep serving with the keys already loaded
            if not self.sync_failed:
                log.error("governance: cannot reload keys from %s (serving with the last ones): %s", self.settings.path, error)
                self.sync_failed = True
        if self.key_sharing is not None:
            self.key_sharing.tick(self.pipeline.loop)
        self.timers[0] = self.pipeline.loop.call_later(self.settings.sync_interval, self._sync)

    def _flush(self):
        self.ledger.flush()
        self.timers[1] = self.pipeline.loop.call_later(self.settings.flush_interval, self._flush)

    def changed(self):
        """A key or a team was changed through this process's admin API: reload now (and share it
        now, with shared keys)."""
        self.keyring.refresh()
        if self.key_sharing is not None:
            self.key_sharing.tick(self.pipeline.loop)

    def close(self):
        """At shutdown, after the drain: write the last ledger rows."""
        for timer in self.timers:
            timer.cancel()
        self.ledger.close()
        self.store.close()


def _live(identity):
    """The identity of a key that may be used now: a revoked or expired key is a 401."""
    if identity.revoked:
        raise AuthenticationFailed("This API key has been revoked")
    if identity.expires_at is not None and identity.expires_at <= time():
        raise AuthenticationFailed("This API key has expired")
    return identity


def _named_model(request):
    """The model a JSON request body names, read whatever its Content-Type says (the provider may
    read it as JSON all the same); None for another body or one naming no model."""
    body = request.body_buffer
    if not body or bytes(body[:64]).lstrip()[:1] != b"{":
        return None
    try:
        return scan_body(body).model
    except InvalidRequest:
        return None


def _not_allowed(model):
    """The 404 for a model a key may not use: it names the model asked for, never the allowed ones."""
    return ModelNotFound(f"The model '{model}' does not exist or you do not have access to it", model=model, param="model")


def usd(amount):
    """Dollars as a person reads them: cents (5.00), and the digits a smaller budget needs (0.002)."""
    text = f"{amount:.6f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"{whole}.{cents.ljust(2, '0')}"


def _bearer_token(value):
    if value is None:
        return None
    scheme, _, token = value.partition(b" ")
    # RFC 9110 section 11.1: the auth scheme is case-insensitive.
    return token.strip() if scheme.lower() == b"bearer" else None


# Token counts by every name a usage has (OpenAI's, and the Responses and Messages APIs' own).
COUNTS = ("prompt_tokens", "input_tokens", "total_tokens", "completion_tokens", "output_tokens",
          "cache_read_input_tokens", "cache_creation_input_tokens")


def counts_tokens(usage):
    """The usage counts something: a call that took a prompt is at least a token, so nothing but
    zeros (or no counts) means the provider did not count."""
    for name in COUNTS:
        value = usage.get(name)
        if type(value) is int and value > 0:
            return True
    return False


def reserved_usage(body, scan=None):
    """What ``estimate_tokens`` reserves, as a usage: the prompt's estimate in, the answer's cap out."""
    prompt = len(body) // CHARS_PER_TOKEN
    return {"prompt_tokens": prompt, "completion_tokens": estimate_tokens(body, scan) - prompt}


def estimate_tokens(body, scan=None):
    """Tokens to reserve: the answer's cap (``max_completion_tokens`` or ``max_tokens``) plus the
    prompt estimated from the body's size; no tokenizer. A model endpoint's body was scanned by
    the core, which kept the top-level cap (``ScanResult.max_tokens``); any other body is searched."""
    if scan is not None:
        return len(body) // CHARS_PER_TOKEN + scan.max_tokens
    found = MAX_TOKENS.search(body)
    return len(body) // CHARS_PER_TOKEN + (int(found.group(1)) if found else 0)

"""One request's way to an answer: attempts on its model's deployments, retries, then fallbacks.

``Attempts`` drives a request from the first attempt to the answer the client gets. Each attempt
is an exchange (``ProxyExchange`` or ``TranslatedExchange``) that relays the upstream's answer
unless it is a failure another attempt might repair. What happens after a failure:

- a connection that could not be opened or was closed before a byte came back, or an answer with
  status 408, 409, 429, 5xx or 529: retry, preferring a deployment that has not failed this
  request. Retrying the same deployment waits out its ``Retry-After`` / ``retry-after-ms`` (when
  no longer than ``retry_after_max``; a longer one bars the deployment for this request) or an
  exponential backoff with full jitter. At most ``max_retries`` retries per model, and no attempt
  starts after ``retry_deadline``;
- then the model's ``fallbacks``, in order, each with its own retries;
- a 400 saying the context window is exceeded, or that the content policy refused the prompt,
  goes to the model's ``context_window_fallbacks`` / ``content_policy_fallbacks`` instead;
- anything else (other 4xx, a first-byte timeout, a failure after the answer started) is final.

When nothing is left, the client gets the last failure as it was: the upstream's own answer, or
Alloy's 502/504. The response names what served it (``x-alloy-provider``, ``x-alloy-model``,
``x-alloy-attempts``). A first attempt that succeeds costs one status check and two counter
updates; everything else here runs only after a failure.
"""

import email.utils
import random
import time

from alloy.balancer import HEALTHY
from alloy.errors import AlloyError, UpstreamTimeout
from alloy.upstream import sweep_ticks

RETRYABLE_STATUSES = frozenset((408, 409, 429, 500, 502, 503, 504, 529)) | frozenset(range(505, 600))
CONTEXT_WINDOW_MARKERS = (b"context_length_exceeded", b"maximum context length", b"prompt is too long", b"too many tokens")
CONTENT_POLICY_MARKERS = (b"content_policy_violation", b"content_filter", b"content policy")


class Attempts:
    __slots__ = (
        # what the client asked for, as every attempt needs it
        "request", "connection", "id_line", "scan", "model_name", "suffix", "endpoint",
        # the way through the models
        "router", "loop", "origin", "group", "measuring", "fallbacks", "switched", "count", "in_group",
        "failed", "barred", "deployment", "exchange", "sent_at", "started", "timer", "last_failure",
        "over",
    )  # fmt: skip

    def __init__(self, router, loop, group, request, connection, id_line, scan=None, model_name=None, suffix=b"", endpoint=None):
        self.request = request
        self.connection = connection
        self.id_line = id_line  # b"x-request-id: ...\r\n"
        self.scan = scan  # the core's scan of a model request's body; None for other endpoints
        self.model_name = model_name  # what the route resolved the client's model to
        self.suffix = suffix  # the target after "/v1"
        self.endpoint = endpoint  # "chat/completions", "completions" or "embeddings"
        self.router = router  # RouterSettings
        self.loop = loop
        self.origin = group  # the model the client asked for
        self.group = group  # the model being tried
        self.measuring = group.measures_latency  # first-byte latency feeds the latency strategy
        self.fallbacks = None  # groups still to try, once the current one is exhausted
        self.switched = False  # moved to context-window or content-policy fallbacks
        self.count = 0  # attempts started, over all groups
        self.in_group = 0  # attempts started on the current group
        self.failed = ()  # deployments that failed this request
        self.barred = ()  # deployments whose Retry-After is too long to wait for this request
        self.deployment = None
        self.exchange = None
        self.sent_at = 0.0
        self.started = loop.time()
        self.timer = None
        self.last_failure = None  # the exchange holding the last failed answer, or an AlloyError
        self.over = False

    # --- the first attempt, from the proxy ------------------------------------------------------

    def start(self):
        self.connection.current = self
        group = self.group
        deployment = group.single
        if deployment is None or deployment.state is not HEALTHY or deployment.max_inflight:
            deployment = group.pick()  # several deployments, or one that may refuse
        if deployment is None:
            self._exhausted()
        else:
            self._begin(deployment)

    # --- what exchanges report -----------------------------------------------------------------

    def holds(self, status):
        """May an answer with this status be followed by another attempt? Then the exchange holds
        it (reads it whole, relays nothing) until ``failed_with_answer`` decides."""
        if status in RETRYABLE_STATUSES:
            return True
        origin = self.origin
        return status == 400 and not self.switched and bool(origin.context_window_fallbacks or origin.content_policy_fallbacks)

    def first_byte(self):
        """Called by the exchange at the head, when ``measuring``."""
        self.deployment.first_byte_after(self.loop.time() - self.sent_at)

    def succeeded(self):
        """The answer was relayed whole (whatever its status: a 4xx is not the deployment's fault)."""
        self.exchange = self.last_failure = None  # no reference cycle left for the collector
        if not self.over:
            self.over = True
            self.deployment.succeeded()

    def broke_off(self):
        """The upstream failed after its answer started reaching the client: nothing to retry."""
        self.exchange = self.last_failure = None
        if not self.over:
            self.over = True
            self.deployment.failed()

    def relaying_failure(self):
        """A held answer grew too big to hold: it goes to the client as it comes, as the final
        answer (memory stays bounded whatever an upstream sends)."""
        self.over = True
        self.last_failure = None
        self.deployment.failed()

    def failed_for_good(self, error):
        """The attempt's answer cannot reach the client (it outgrew what may be held to translate
        it): Alloy's ``error`` is the final answer; no other attempt, it would be as large."""
        self.exchange = self.last_failure = None
        if not self.over:
            self.deployment.failed()
        self._answer(error)

    def failed_with_answer(self, exchange):
        """The upstream answered a failure the exchange held (read whole, relayed nothing)."""
        self.exchange = None
        head = exchange.held[0]
        status = head.status
        if status == 400:
            self.deployment.succeeded()  # the deployment is fine: the request is the problem
            switch = self._switch_for(b"".join(exchange.held[1:]))
            if switch is None:
                return self._answer(exchange)
            self.switched = True
            self.last_failure = exchange
            self.fallbacks = list(switch)
            return self._next_group()
        deployment = self.deployment
        deployment.failed()
        self.last_failure = exchange
        if head.get(b"x-should-retry") == b"false":
            # The provider says retrying is pointless here (OpenAI: an exhausted quota): other
            # deployments and fallbacks may still serve, this one is not asked again.
            self.barred = (*self.barred, deployment)
        self._retry(_retry_after(head))

    def failed_with_error(self, error):
        """The attempt failed before anything reached the client, with Alloy's own error."""
        self.exchange = None
        self.last_failure = error
        if error.stale:
            # A keep-alive connection the upstream had just closed: not the deployment's fault.
            self.deployment.abandoned()
            return self._retry(0.0)
        self.deployment.failed()
        if error.retryable:
            self._retry(None)
        else:
            self._answer(error)

    # --- called by the client connection --------------------------------------------------------

    def cancel(self):
        """The client left: stop the attempt in flight, or the wait for the next one."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.last_failure = None
        exchange = self.exchange
        if exchange is not None:
            self.exchange = None
            exchange.cancel()
            if not self.over:
                self.over = True
                self.deployment.abandoned()

    def pause(self):
        if self.exchange is not None:
            self.exchange.pause()

    def resume(self):
        if self.exchange is not None:
            self.exchange.resume()

    # --- choosing the next attempt ---------------------------------------------------------------

    def _begin(self, deployment):
        timeouts = deployment.timeouts
        total_ticks = self._total_ticks(timeouts.total) if timeouts.total else 0
        if total_ticks < 0:  # the request's total_timeout ran out before this attempt could start
            return self._answer(UpstreamTimeout(f"the request did not complete within {timeouts.total:g} s"))
        self.count += 1
        self.in_group += 1
        self.deployment = deployment
        if self.measuring:
            self.sent_at = self.loop.time()
        deployment.begin()
        served_by = deployment.served_by(self.model_name, self.count)
        try:
            self.exchange = deployment.connector.send(self, deployment, served_by, total_ticks)
        except AlloyError as error:  # the request cannot be expressed for this provider
            deployment.abandoned()
            if self.count == 1:
                self.connection.current = None
                raise
            self._answer(error)

    def _total_ticks(self, total):
        """Sweep ticks left of the request's total timeout (-1: none left)."""
        remaining = total - (self.loop.time() - self.started)
        return sweep_ticks(remaining) if remaining > 0 else -1

    def _retry(self, retry_after):
        deployment = self.deployment
        group = self.group
        if retry_after is not None and retry_after > self.router.retry_after_max:
            self.barred = (*self.barred, deployment)
            retry_after = None
        if deployment not in self.failed:
            self.failed = (*self.failed, deployment)
        if self.in_group > group.max_retries or self._past_deadline(0.0):
            return self._next_group()
        choice = group.pick(self.failed, self.barred)
        if choice is None:
            return self._next_group()
        if choice not in self.failed and choice is not deployment:
            return self._begin(choice)  # a fresh deployment: no reason to wait
        delay = retry_after if retry_after is not None else self._backoff()
        if self._past_deadline(delay):
            return self._next_group()
        self.timer = self.loop.call_later(delay, self._after_delay)

    def _after_delay(self):
        self.timer = None
        choice = self.group.pick(self.failed, self.barred)
        if choice is None:
            return self._next_group()
        self._begin(choice)

    def _backoff(self):
        router = self.router
        ceiling = min(router.backoff_max, router.backoff_base * (2 ** (self.in_group - 1)))
        return random.uniform(0.0, ceiling)  # full jitter

    def _past_deadline(self, delay):
        return self.loop.time() + delay - self.started > self.router.retry_deadline

    def _next_group(self):
        """The current model is exhausted: its fallbacks next, each tried at once."""
        if self.fallbacks is None:
            self.fallbacks = list(self.origin.fallbacks)
        while self.fallbacks and not self._past_deadline(0.0):
            group = self.fallbacks.pop(0)
            choice = group.pick(self.failed, self.barred)
            if choice is not None:
                self.group = group
                self.in_group = 0
                self.measuring = group.measures_latency
                return self._begin(choice)
        self._exhausted()

    def _exhausted(self):
        if self.count == 0 and self.fallbacks is None:
            # Nothing of the model itself could be tried: its fallbacks may be.
            self.fallbacks = list(self.origin.fallbacks)
            if self.fallbacks:
                return self._next_group()
        if self.last_failure is not None:
            return self._answer(self.last_failure)
        self._answer(self.origin.refusal(self.barred))

    def _switch_for(self, body):
        origin = self.origin
        if self.switched:
            return None
        if origin.context_window_fallbacks and any(marker in body for marker in CONTEXT_WINDOW_MARKERS):
            return origin.context_window_fallbacks
        if origin.content_policy_fallbacks and any(marker in body for marker in CONTENT_POLICY_MARKERS):
            return origin.content_policy_fallbacks
        return None

    # --- the answer when no attempt succeeded ---------------------------------------------------

    def _answer(self, failure):
        self.over = True
        if isinstance(failure, AlloyError):
            connection = self.connection
            keep_alive = self.request.keep_alive
            if self.deployment is not None:
                headers = self.id_line + self.deployment.served_by(self.model_name, self.count)
            else:
                headers = self.id_line + b"x-alloy-attempts: %d\r\n" % self.count
            connection.current = None
            head = self.request.method == b"HEAD"
            connection.send_error(failure, close=not keep_alive, extra_headers=headers, head=head)
            if keep_alive:
                connection.exchange_finished(True)
            return
        self.exchange = self.last_failure = None
        failure.relay_held()


def _retry_after(head):
    """Seconds the upstream asked us to wait (``retry-after-ms``, ``Retry-After`` as seconds or an
    HTTP date), or None."""
    value = head.get(b"retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = head.get(b"retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value.decode("latin-1"))
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())

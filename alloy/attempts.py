"""A request's way past a failed attempt: retries on its model's deployments, then fallbacks.

The first attempt is the call's own (``alloy.call``); its first failure creates the call's
``Attempts``, which decides every attempt after it. Each attempt is a relay (``alloy.relay``) that
passes the upstream's answer on unless it is a failure another attempt might repair. What happens
after a failure:

- a connection that could not be opened or was closed before a byte came back, or an answer with
  status 408, 409, 429, 5xx or 529: retry, preferring a deployment that has not failed this
  request. A passed-through request that creates something upstream (a file, a batch: ``creates``)
  is sent again only after a 429 or when no connection could be opened. Retrying the same
  deployment waits out its ``Retry-After`` / ``retry-after-ms`` (when no longer than
  ``retry_after_max``; a longer one bars the deployment for this request) or an
  exponential backoff with full jitter. At most ``max_retries`` retries per model, and no attempt
  starts after ``retry_deadline``;
- then the model's ``fallbacks``, in order, each with its own retries;
- a 400 saying the context window is exceeded, or that the content policy refused the prompt,
  goes to the model's ``context_window_fallbacks`` / ``content_policy_fallbacks`` instead;
- anything else (other 4xx, a first-byte timeout, a failure after the answer started) is final.

When nothing is left, the client gets the last failure as it was: the upstream's own answer, or
Alloy's 502/504. The response names what served it (``x-alloy-provider``, ``x-alloy-model``,
``x-alloy-attempts``). A first attempt that succeeds never creates an ``Attempts``.
"""

import time

from alloy.chance import random
from alloy.errors import AlloyError


# A reused connection closed in order, unanswered, within this many seconds of the send is taken for
# the keep-alive race: the upstream's close was already on its way, so it comes back within about
# one round trip (a quarter second covers one between continents). An upstream that read the request
# and closed as fast without answering (a crash, a shutdown) cannot be told apart: for a model
# request (which changes nothing upstream but the bill) the race is the likelier reading.
STALE_WITHIN = 0.25
RETRYABLE_STATUSES = frozenset((408, 409, 429, 500, 502, 503, 504, 529)) | frozenset(range(505, 600))
CONTEXT_WINDOW_MARKERS = (b"context_length_exceeded", b"maximum context length", b"prompt is too long", b"too many tokens")
CONTENT_POLICY_MARKERS = (b"content_policy_violation", b"content_filter", b"content policy")


# Passed-through requests that change nothing upstream whatever their method: answered, not kept.
STATELESS_PREFIXES = (b"/v1/audio/", b"/v1/images/", b"/v1/moderations")
IDEMPOTENT_METHODS = frozenset((b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE"))  # RFC 9110 section 9.2.2


def creates(call):
    """Does ``call`` ask the upstream to make something that stays (a file, an upload part, a batch,
    a fine-tuning job)? Such a request is sent again only when the upstream surely did not act on
    it (a 429, or no connection at all): after a 5xx or a close, the object may exist, and a second
    send would make a second one. A model request only costs its tokens twice, and is retried."""
    return call.scan is None and call.request.method not in IDEMPOTENT_METHODS and not call.path.startswith(STATELESS_PREFIXES)


def may_retry(call, status):
    """May an answer with ``status`` be followed by another attempt of ``call``? (Then the relay
    holds it until ``failed_with_answer`` decides.)"""
    if status in RETRYABLE_STATUSES:
        if status != 429 and creates(call):
            return False
        return attempt_left(call)
    if status != 400:
        return False
    attempts = call.attempts
    if attempts is None:
        origin = call.group
    elif attempts.switched:
        return False
    else:
        origin = attempts.origin
    return bool(origin.context_window_fallbacks or origin.content_policy_fallbacks)


def attempt_left(call):
    """Could another attempt follow this one: a retry within the model's ``max_retries``, or a
    fallback? When none can, a failed answer is the client's answer and is relayed as it comes
    (holding it would only delay it, and forever if its body never ends). Generous where it cannot
    know yet (a retry deadline, every deployment cooling down): that answer is held, as before."""
    attempts = call.attempts
    group = call.group
    if attempts is None:
        return call.count <= group.max_retries or bool(group.fallbacks)
    if attempts.in_group <= group.max_retries:
        return True
    return bool(attempts.origin.fallbacks if attempts.fallbacks is None else attempts.fallbacks)


class Attempts:
    """The retry state of one call, created by its first failure (see ``alloy.call``)."""

    __slots__ = (
        "call", "origin", "fallbacks", "switched", "in_group", "failed", "barred", "timer", "last_failure", "resent",
    )  # fmt: skip

    def __init__(self, call):
        self.call = call
        self.origin = call.group  # the model the client asked for
        self.fallbacks = None  # groups still to try, once the current one is exhausted
        self.switched = False  # moved to context-window or content-policy fallbacks
        self.in_group = call.count  # attempts started on the current group
        self.failed = ()  # deployments that failed this request
        self.barred = ()  # deployments whose Retry-After is too long to wait for this request
        self.timer = None
        self.last_failure = None  # the relay holding the last failed answer, or an AlloyError
        self.resent = False  # sent again after the keep-alive race, which is forgiven once

    # --- what the call hands over after a failure -------------------------------------------------

    def failed_with_answer(self, relay):
        """The upstream answered a failure the relay held (read whole, relayed nothing)."""
        call = self.call
        head = relay.held[0]
        status = head.status
        deployment = call.deployment
        call.over = True
        if status == 400:
            deployment.succeeded()  # the deployment is fine: the request is the problem
            switch = self._switch_for(b"".join(relay.held[1:]))
            if switch is None:
                return call.answer(relay)
            self.switched = True
            self.last_failure = relay
            self.fallbacks = list(switch)
            return self._next_group()
        deployment.failed()
        self.last_failure = relay
        if head.get(b"x-should-retry") == b"false":
            # The provider says retrying is pointless here (OpenAI: an exhausted quota): other
            # deployments and fallbacks may still serve, this one is not asked again.
            self.barred = (*self.barred, deployment)
        self._retry(_retry_after(head))

    def failed_with_error(self, error):
        """The attempt failed before anything reached the client, with Alloy's own error."""
        call = self.call
        call.over = True
        held = self.last_failure
        if not error.stale or held is None or isinstance(held, AlloyError):
            # (A provider's answer held from an earlier attempt stays the one to give: a reused
            # connection that closed under this attempt says nothing about the request.)
            self.last_failure = error
        if not error.unsent and creates(call):
            # It went out and may have made its file or job: sent again it could make two.
            if error.stale:
                call.deployment.abandoned()
            else:
                call.deployment.failed()
            return call.answer(self.last_failure)
        if error.stale:
            # A reused keep-alive connection closed before a byte came back: not the deployment's
            # fault, retried at once.
            call.deployment.abandoned()
            if (
                error.closed_idle
                and not self.resent
                and call.scan is not None  # a model request: never a file upload or a batch sent twice
                and time.monotonic() - call.sent_at < STALE_WITHIN
            ):
                # The keep-alive race (RFC 9112 section 9.3.1): the upstream's orderly close of an
                # idle connection crossed our request, which it never processed, so sending it
                # again is not one of the model's retries (with max_retries = 0 too). Only such a
                # close, at once: a reset, or a close after the upstream worked on the request, may
                # mean it processed it (a resend would be a second, paid request). Once per call:
                # the upstream's other idle connections, closed earlier, have left the pool.
                self.resent = True
                self.in_group -= 1
                return self._retry(0.0, blame=False)
            return self._retry(0.0)
        call.deployment.failed()
        if error.retryable:
            self._retry(None)
        else:
            call.answer(error)

    def cancel(self):
        """The client left: no further attempt."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.last_failure = None

    # --- choosing the next attempt ---------------------------------------------------------------

    def _retry(self, retry_after, blame=True):
        call = self.call
        deployment = call.deployment
        group = call.group
        router = call.pipeline.router
        if retry_after is not None and retry_after > router.retry_after_max:
            self.barred = (*self.barred, deployment)
            retry_after = None
        if blame and deployment not in self.failed:
            self.failed = (*self.failed, deployment)
        if self.in_group > group.max_retries or self._past_deadline(0.0):
            return self._next_group()
        choice = group.pick(self.failed, self.barred)
        if choice is None:
            return self._next_group()
        if choice not in self.failed and choice is not deployment:
            return call.begin(choice)  # a fresh deployment: no reason to wait
        delay = retry_after if retry_after is not None else self._backoff()
        if self._past_deadline(delay):
            return self._next_group()
        self.timer = call.pipeline.loop.call_later(delay, self._after_delay)

    def _after_delay(self):
        self.timer = None
        choice = self.call.group.pick(self.failed, self.barred)
        if choice is None:
            return self._next_group()
        self.call.begin(choice)

    def _backoff(self):
        router = self.call.pipeline.router
        ceiling = min(router.backoff_max, router.backoff_base * (2 ** (self.in_group - 1)))
        return random() * ceiling  # full jitter

    def _past_deadline(self, delay):
        call = self.call
        return time.monotonic() + delay - call.arrived > call.pipeline.router.retry_deadline

    def _next_group(self):
        """The current model is exhausted: its fallbacks next, each tried at once."""
        if self.fallbacks is None:
            self.fallbacks = list(self.origin.fallbacks)
        while self.fallbacks and not self._past_deadline(0.0):
            group = self.fallbacks.pop(0)
            choice = group.pick(self.failed, self.barred)
            if choice is not None:
                self.call.group = group
                self.in_group = 0
                return self.call.begin(choice)
        self.exhausted()

    def exhausted(self):
        """Nothing (more) can be tried: the last failure is the answer, or why nothing could be."""
        call = self.call
        if call.count == 0 and self.fallbacks is None:
            # Nothing of the model itself could be tried: its fallbacks may be.
            self.fallbacks = list(self.origin.fallbacks)
            if self.fallbacks:
                return self._next_group()
        if self.last_failure is not None:
            return call.answer(self.last_failure)
        call.answer(self.origin.refusal(self.barred))

    def _switch_for(self, body):
        origin = self.origin
        if self.switched:
            return None
        if origin.context_window_fallbacks and any(marker in body for marker in CONTEXT_WINDOW_MARKERS):
            return origin.context_window_fallbacks
        if origin.content_policy_fallbacks and any(marker in body for marker in CONTENT_POLICY_MARKERS):
            return origin.content_policy_fallbacks
        return None


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
    import email.utils  # here: only a Retry-After given as an HTTP date needs it (~0.5 MB)

    try:
        when = email.utils.parsedate_to_datetime(value.decode("latin-1"))
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())

"""One proxied request, from the moment it is routed to its answer: the context every stage reads.

A ``Call`` is created once per request by the pipeline (``alloy.pipeline``) and carries what the
stages need: the parsed request and its normalized path, the body scan and the route (the model
group and the name it resolved), the key identity (None until virtual keys exist), four clock reads
(arrival, upstream send, upstream head, end) and the outcome (status, Alloy's own error, usage when
read). It drives the first attempt itself: pick a deployment, hand the request to its provider's
``send`` (``alloy.sending``), and let the relay (``alloy.relay``) report back. The first failure
creates the retry state (``alloy.attempts.Attempts``), so a request that succeeds at once pays for
no retry bookkeeping.

When the answer is complete, whatever it was (relayed, Alloy's own error, the client gone), the
call ends once: ``finish`` takes the last clock read and calls the pipeline's finish listeners
(metrics, access log, ledger, cache fill), off the bytes' way: the client's answer is written
before they run.
"""

import logging
from time import monotonic

from alloy.balancer import HEALTHY
from alloy.core import find_usage
from alloy.errors import AlloyError, InternalError, NestedTooDeeply, UpstreamTimeout, too_deep_to_write
from alloy.headers import RETRIES_SPENT, SDK_RETRIED
from alloy.timing_wheel import sweep_ticks

log = logging.getLogger("alloy")


class Call:
    __slots__ = (
        # what the client asked for
        "request", "connection", "path", "query", "suffix", "endpoint", "scan", "model_name", "id_line",
        "request_id_line",
        "key",  # who asked: the key identity, once keys exist (None: the master key or none)
        # the way to an answer
        "pipeline", "group", "deployment", "count", "relay", "attempts", "over", "ended",
        # four clock reads (time.monotonic): arrival, upstream send, upstream head, end; and for a
        # stream, when its first event went to the client
        "arrived", "sent_at", "head_at", "ended_at", "first_event_at",
        # the outcome
        "status", "error", "tail", "_usage", "bytes_out", "failing",
        "cut",  # the answer stopped before its end (the client left, the upstream broke off)
        "recording",  # None, or a list the relay appends each body piece the client receives to
        "trace",  # its place in a W3C trace (alloy.observability.tracing), when tracing is on
    )  # fmt: skip

    def __init__(self, pipeline, request, connection, path, query, id_line, group, scan=None, model_name=None):
        # The clock read at arrival is the taker's (Pipeline.handle, the Messages endpoint), made
        # before routing, and set right after the call is made.
        self.arrived = 0.0
        self.pipeline = pipeline
        self.request = request
        self.connection = connection
        self.path = path  # normalized by core.clean_path
        self.query = query  # b"" or b"?..."
        self.suffix = path[3:] + query  # what follows /v1 upstream: "/chat/completions?x=1"
        self.endpoint = path[4:].decode() if scan is not None else None  # "chat/completions"...
        self.scan = scan  # the core's scan of a model request's body; None for other endpoints
        self.model_name = model_name  # what the route resolved the client's model to
        # b"x-request-id: ...\r\n", sent upstream with each attempt; ``id_line`` starts as the same
        # line and is what every answer of the call carries: stages append their own answer headers
        # to it (x-ratelimit-*, x-alloy-cache), which must never reach the upstream.
        self.request_id_line = id_line
        self.id_line = id_line if pipeline.cors is None else id_line + pipeline.cors.lines(request.headers)
        self.key = None
        self.group = group  # the model being tried (the one asked for, until a fallback)
        self.deployment = None
        self.count = 0  # attempts started, over all groups
        self.relay = None  # the attempt in flight
        self.attempts = None  # the retry state, created by the first failure
        self.over = False  # the deployment has been told how its attempt ended
        self.failing = False  # the attempt's answer is a failure relayed as it comes (last_failure_relayed)
        self.ended = False
        self.sent_at = self.head_at = self.ended_at = self.first_event_at = 0.0
        self.bytes_out = 0  # body bytes written to the client (what the relay wrote)
        self.cut = False  # ended with its request upstream and its answer not whole (charged its reservation)
        self.status = 0
        self.error = None  # Alloy's own error, when that was the answer
        self.tail = ()  # the last pieces of the answer body the relay wrote (where usage is)
        self._usage = None
        self.recording = None  # set by the cache lookup when the answer should be stored
        self.trace = None

    # --- the send stage: the first attempt ------------------------------------------------------

    def start(self):
        self.connection.current = self
        group = self.group
        deployment = group.single
        if deployment is None or deployment.state is not HEALTHY or deployment.max_inflight or deployment.rpm or deployment.tpm:
            deployment = group.pick()  # several deployments, or one that may refuse (cap, quota)
        if deployment is None:
            self._retrying().exhausted()
        else:
            self.begin(deployment)

    def begin(self, deployment):
        """Start an attempt on ``deployment`` (the first, or one ``Attempts`` chose)."""
        timeouts = deployment.timeouts
        total_ticks = self._total_ticks(timeouts.total) if timeouts.total else 0
        if total_ticks < 0:  # the request's total_timeout ran out before this attempt could start
            return self.answer(UpstreamTimeout(f"the request did not complete within {timeouts.total:g} s"))
        self.count += 1
        self.deployment = deployment
        self.over = self.failing = False
        if self.attempts is not None:
            self.attempts.in_group += 1
        deployment.begin()
        served_by = deployment.served_by(self.model_name, self.count)
        self.sent_at = monotonic()
        try:
            self.relay = deployment.provider.send(self, deployment, served_by, total_ticks)
        except Exception as error:  # noqa: BLE001 - the request cannot be expressed for this provider, or a bug
            deployment.abandoned()
            if not isinstance(error, AlloyError):
                if too_deep_to_write(error):
                    error = NestedTooDeeply()  # nested deeper than orjson writes: the client's 400
                else:  # a bug: logged, and this request's 500 (a retry's too, from a timer)
                    log.exception("unexpected error sending to %s", deployment.provider.name)
                    error = InternalError("the gateway met an internal error answering this request")
            if self.count == 1:
                self.connection.current = None
                raise error from None
            self.answer(error)

    def _total_ticks(self, total):
        """Sweep ticks left of the request's total timeout (-1: none left)."""
        remaining = total - (monotonic() - self.arrived)
        return sweep_ticks(remaining) if remaining > 0 else -1

    # --- what the relay reports ------------------------------------------------------------------

    def holds(self, status):
        """May an answer with this status be followed by another attempt? Then the relay holds it
        (reads it whole, relays nothing) until ``failed_with_answer`` decides. Asked of an answer
        of 400 or more only."""
        from alloy.attempts import may_retry  # the retry machinery: imported by the first failure

        return may_retry(self, status)

    def retries_spent(self, status):
        """The ``x-should-retry: false`` line for a final answer of ``status`` when Alloy retried
        this call and the SDKs would retry that status again (``alloy.headers.SDK_RETRIED``);
        else b"". A call tried once leaves retrying to the client, as the provider would."""
        return RETRIES_SPENT if self.count > 1 and status in SDK_RETRIED else b""

    def head_arrived(self, status):
        self.head_at = monotonic()
        self.status = status
        if self.group.measures_latency:  # first-byte latency feeds the latency strategy
            self.deployment.first_byte_after(self.head_at - self.sent_at)

    def succeeded(self, tail=()):
        """The answer was relayed whole (whatever its status: a 4xx is not the deployment's fault);
        ``tail`` holds its last body pieces."""
        self.relay = None
        self.tail = tail
        if not self.over:
            self.over = True
            if self.failing:  # relayed whole, but a failure all the same (last_failure_relayed)
                self.deployment.failed()
            else:
                self.deployment.succeeded()
        if self.attempts is not None:
            self.attempts.last_failure = None  # no reference cycle left for the collector

    def broke_off(self, error):
        """The upstream failed after its answer started reaching the client: nothing to retry. The
        status stays what the client got; ``error`` is what the account stage sees (a 200 that
        broke off is counted and logged as an error, not as a success)."""
        self.relay = None
        self.error = error
        self.cut = True
        if not self.over:
            self.over = True
            self.deployment.failed()
        self.finish()

    def last_failure_relayed(self, status):
        """The attempt's answer, of ``status`` (400 or more), goes to the client as it comes, as the
        final answer: the last attempt's (``holds`` did not hold it), or a held one grown too big to
        hold (memory stays bounded whatever an upstream sends). One the deployment is blamed for (a
        retryable status) counts as its failure, as it would have once held; the deployment is
        told when the attempt ends, whichever way: until then it holds its ``max_inflight`` slot."""
        from alloy.attempts import RETRYABLE_STATUSES

        if status in RETRYABLE_STATUSES:
            self.failing = True
        if self.attempts is not None:
            self.attempts.last_failure = None

    def request_at_fault(self):
        """The attempt's answer blames the request (a 400, as ``Attempts.failed_with_answer``
        reads it): the deployment did its job, whatever the client is told."""
        if not self.over:
            self.over = True
            self.deployment.succeeded()

    def failed_for_good(self, error):
        """The attempt's answer cannot reach the client (it outgrew what may be held to translate
        it): Alloy's ``error`` is the final answer; no other attempt, it would be as large."""
        self.relay = None
        if not self.over:
            self.over = True
            self.deployment.failed()
        self.answer(error)

    def failed_with_answer(self, relay):
        """The upstream answered a failure the relay held (read whole, relayed nothing)."""
        self.relay = None
        self._retrying().failed_with_answer(relay)

    def failed_with_error(self, error):
        """The attempt failed before anything reached the client, with Alloy's own error."""
        self.relay = None
        self._retrying().failed_with_error(error)

    def _retrying(self):
        if self.attempts is None:
            from alloy.attempts import Attempts

            self.attempts = Attempts(self)
        return self.attempts

    # --- called by the client connection --------------------------------------------------------

    def client_left(self):
        """The client went away. With a ledger to keep, a stream under way is read on, written
        nowhere, for its usage (a stream gives it last: a client closing at the finish reason must
        not make its tokens free) for at most ``[governance] drain_timeout`` (``Relay.drain``; the
        end of an answer closed at its finish reason comes within milliseconds, a long one is cut
        there and charged its reservation); otherwise, or past that, as ``cancel``."""
        relay = self.relay
        loop = self.pipeline.loop
        governance = self.pipeline.governance
        if relay is not None and loop is not None and governance is not None and governance.settings.drain_timeout:
            if relay.drain(governance.settings.drain_timeout, loop):
                return
        self.cancel()

    def cancel(self):
        """Stop the attempt in flight, or the wait for the next one (the client left)."""
        self._drop_attempt()
        self.finish()

    def _drop_attempt(self):
        """Stop the attempt in flight (its upstream request), or the wait for the next one."""
        if self.attempts is not None:
            self.attempts.cancel()
        relay = self.relay
        if relay is not None:
            self.relay = None
            # Its request went upstream, which answers (and bills) whether the client waits or
            # not: charged what it reserved, unless what came is an error answer held for a retry.
            self.cut = relay.answer_started() or relay.held is None
            relay.cancel()
            relay.report_so_far(self)  # what reached the client may hold its usage: it is charged
            if not self.over:
                self.over = True
                if self.failing:  # its failure was known before the client left
                    self.deployment.failed()
                else:
                    self.deployment.abandoned()

    def stop(self, error):
        """The gateway stops (its shutdown_timeout ran out): this answer ends now. A client whose
        answer started gets the stream's error event (the relay's end of a broken stream); one
        still waiting gets ``error``; either way the call is accounted as it ended."""
        if self.ended:
            return
        relay = self.relay
        if relay is not None and relay.answer_started():
            relay.upstream_failed(error)  # the error event, the account (broke_off), the close
            if relay.handle is not None:
                relay.handle.cancel()  # the upstream request goes with it
            return
        self._drop_attempt()
        self.answer(error)

    def pause(self):
        if self.relay is not None:
            self.relay.pause()

    def resume(self):
        if self.relay is not None:
            self.relay.resume()

    # --- the answer -------------------------------------------------------------------------------

    def answer(self, failure):
        """The final answer when no attempt succeeded: Alloy's own error, or the upstream's failed
        answer a relay still holds."""
        self.over = True
        if self.attempts is not None:
            self.attempts.last_failure = None
        if not isinstance(failure, AlloyError):
            failure.relay_held()
            return
        self.error = failure
        self.status = failure.status
        connection = self.connection
        keep_alive = self.request.keep_alive
        if self.deployment is not None:
            headers = self.id_line + self.deployment.served_by(self.model_name, self.count)
        else:
            headers = self.id_line + b"x-alloy-attempts: %d\r\n" % self.count
        headers += self.retries_spent(failure.status)
        connection.current = None
        connection.send_error(failure, close=not keep_alive, extra_headers=headers, head=self.request.method == b"HEAD")
        self.finish()
        if keep_alive:
            connection.answer_finished(True)

    # --- the account stage -------------------------------------------------------------------------

    def finish(self):
        """The answer is complete (or abandoned): the last clock read, then the finish listeners."""
        if self.ended:
            return
        self.ended = True
        self.ended_at = monotonic()
        deployment = self.deployment
        if deployment is not None and deployment.tpm:
            deployment.used_tokens(self.usage)  # the provider's tokens-per-minute quota
        for listener in self.pipeline.listeners:
            try:
                listener(self)
            except Exception:  # noqa: BLE001 - a listener's bug must not hold the connection's next answer
                log.exception("a finish listener failed (%r)", listener)
        self.attempts = None  # it points back at the call: no cycle left for the collector

    def usage_known(self, usage):
        """The relay read the answer's usage itself (a stream's usage the client did not ask for)."""
        self._usage = usage or {}

    @property
    def usage(self):
        """The ``usage`` object of the answer relayed (a JSON body or a stream's final events), as a
        dict, or None when it carried none. Read on demand from the last pieces the relay wrote
        (``tail``), so a request nobody asks about pays nothing. Only a model's answer is read: a
        passed-through file download or batch object may hold "usage" of calls made elsewhere."""
        if self._usage is None:
            tail = self.tail
            if not tail or self.scan is None:
                self._usage = {}
            else:  # an answer that came in one read has one piece: no copy to join
                self._usage = find_usage(tail[-1] if len(tail) == 1 or not tail[0] else b"".join(tail)) or {}
        return self._usage or None

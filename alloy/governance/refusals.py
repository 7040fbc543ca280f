"""The errors governance answers with, in OpenAI's own shapes: a rate limit (429
``rate_limit_exceeded``, ``Retry-After``), a budget spent (429 ``insufficient_quota``), and shared
limits out of reach with ``fail_mode = "closed"`` (503)."""

from alloy.errors import AlloyError, ServiceUnavailable


class RateLimitExceeded(AlloyError):
    status = 429
    type = "requests"  # OpenAI: "requests" or "tokens", the limit that was reached
    code = "rate_limit_exceeded"

    def __init__(self, message, *, kind, retry_after, header_block=b""):
        super().__init__(message)
        self.type = kind
        if retry_after is None:
            # No wait makes room (a request larger than the limit itself): the SDKs must not retry.
            self.header_block = b"x-should-retry: false\r\n" + header_block
            return
        # Whole seconds, rounded up: a client that waits this long finds room.
        self.header_block = b"retry-after: %d\r\n" % max(1, int(retry_after + 0.999)) + header_block


class BudgetExceeded(AlloyError):
    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"

    def __init__(self, message, *, retry_after=None):
        super().__init__(message)
        if retry_after is not None:
            self.header_block = b"retry-after: %d\r\n" % max(1, int(retry_after + 0.999))


class SharedLimitsUnavailable(ServiceUnavailable):
    """Redis does not answer and ``fail_mode = "closed"``: keyed requests wait for it."""

    code = "shared_limits_unavailable"
    header_block = b"retry-after: 1\r\n"

    def __init__(self):
        super().__init__("the shared rate limits are unavailable (Redis does not answer); try again shortly")

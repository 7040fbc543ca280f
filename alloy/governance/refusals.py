"""The errors governance answers with, in OpenAI's own shapes: a rate limit (429
``rate_limit_exceeded``, ``Retry-After``) and a budget spent (429 ``insufficient_quota``)."""

from alloy.errors import AlloyError


class RateLimitExceeded(AlloyError):
    status = 429
    type = "requests"  # OpenAI: "requests" or "tokens", the limit that was reached
    code = "rate_limit_exceeded"

    def __init__(self, message, *, kind, retry_after, header_block=b""):
        super().__init__(message)
        self.type = kind
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

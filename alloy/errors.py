"""Every error Alloy produces, each carrying its HTTP status and OpenAI error type/code.

Both core twins raise these, and the connection turns any of them into an OpenAI-shaped
response in one place (``error_response_body``), so no lookup table maps errors to statuses.
"""

import orjson


class AlloyError(Exception):
    """Base of every error Alloy answers with itself.

    Class attributes give the defaults; an instance may override ``code`` and ``param``.
    """

    status = 500
    type = "server_error"
    code = "internal_error"
    header_block = b""  # extra response header lines this error requires (e.g. Allow on 405)
    retryable = False  # another attempt (on this deployment or another) may well succeed
    unsent = False  # nothing reached the upstream: even a request that creates something may go again
    stale = False  # a keep-alive connection the upstream had just closed (see UpstreamUnreachable)

    def __init__(self, message, *, code=None, param=None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param


# --- front door: malformed HTTP from the client (RFC 9112) ----------------------------------

class ProtocolError(AlloyError):
    """The client's bytes are not a valid HTTP/1.1 request; the connection closes after the answer."""

    status = 400
    type = "invalid_request_error"
    code = "bad_request"


class HeadersTooLarge(ProtocolError):
    status = 431
    code = "request_header_fields_too_large"


class URITooLong(ProtocolError):
    """The request line alone is longer than the head may be (RFC 9112 section 3: 414)."""

    status = 414
    code = "uri_too_long"


class BodyTooLarge(ProtocolError):
    status = 413
    code = "request_too_large"
    # The refused request's target and header fields, set by the parser (its head was read): an
    # Anthropic client's /v1/messages gets the refusal in its own API's shape, a browser's its CORS
    # lines (alloy.client_connection.refuse).
    target = None
    headers = None


class UnsupportedTransferCoding(ProtocolError):
    # RFC 9112 section 6.1: a server that receives a transfer coding it does not understand
    # SHOULD respond with 501.
    status = 501
    code = "not_implemented"


class UnsupportedVersion(ProtocolError):
    status = 505
    code = "http_version_not_supported"


class RequestTimeout(ProtocolError):
    status = 408
    code = "request_timeout"


# --- the request itself -------------------------------------------------------------------

class InvalidRequest(AlloyError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class NestedTooDeeply(InvalidRequest):
    """orjson reads JSON nested up to 1024 levels but writes at most 254 (``orjson.JSONEncodeError``,
    a ``TypeError``): a client's body that deep cannot be re-encoded or translated."""

    def __init__(self, message="the request body is nested too deeply to be re-encoded (at most 254 levels)", **kwargs):
        super().__init__(message, **kwargs)


def too_deep_to_write(error):
    """Is ``error`` orjson's refusal to write a document nested past its 254 levels? Its
    ``JSONEncodeError`` *is* ``TypeError`` (the same class), so any other TypeError, a bug, must not
    be taken for it: only its message tells them apart."""
    return type(error) is TypeError and str(error) == "Recursion limit reached"


def unreadable_json(error, message="request body is not valid JSON"):
    """The refusal of a body orjson could not read (its ``JSONDecodeError``): valid JSON nested past
    orjson's 1024 levels is ``NestedTooDeeply``, not a syntax error; anything else is ``message``."""
    if str(error).startswith("depth limit"):
        return NestedTooDeeply()
    return InvalidRequest(message)


class InternalError(AlloyError):
    """A bug in the gateway met while answering one request: that request gets a 500 (its
    connection closes), every other goes on."""

    status = 500
    type = "server_error"
    code = "internal_error"


class InvalidPath(InvalidRequest):
    """A path spelled to mean something else at the next hop (dot segments, encoded slashes)."""

    code = "invalid_path"


class AuthenticationFailed(AlloyError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(AlloyError):
    """The caller is known but may not do this (the admin API without a master key, a key limited
    to other models)."""

    status = 403
    type = "permission_error"
    code = "permission_denied"


class NotFound(AlloyError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"

    def __init__(self, message, *, model=None, code=None, param=None):
        super().__init__(message, code=code, param=param)
        self.model = model  # the name asked for: the access log's and the ledger's line names it


class MethodNotImplemented(AlloyError):
    """RFC 9110 section 9.1: a method the server does not recognize (methods are case-sensitive)."""

    status = 501
    type = "invalid_request_error"
    code = "not_implemented"


class MethodNotAllowed(AlloyError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"

    def __init__(self, message, *, allow):
        super().__init__(message)
        # RFC 9110 section 15.5.6: a 405 response MUST carry an Allow header.
        self.header_block = b"allow: " + allow + b"\r\n"


class ServiceUnavailable(AlloyError):
    status = 503
    type = "server_error"
    code = "service_unavailable"


class LoopDetected(AlloyError):
    """A request that came back to the gateway that sent it upstream (RFC 5842's 508): a provider's
    base_url points at the gateway itself, and each pass would send it around once more."""

    status = 508
    type = "server_error"
    code = "loop_detected"


class TooManyConnections(ServiceUnavailable):
    code = "too_many_connections"
    header_block = b"retry-after: 1\r\n"


class NoHealthyDeployment(ServiceUnavailable):
    """Every deployment that could serve the model is cooling down after repeated failures."""

    code = "no_healthy_deployment"

    def __init__(self, message, *, retry_after):
        super().__init__(message)
        self.header_block = b"retry-after: %d\r\n" % retry_after


class DeploymentsBusy(AlloyError):
    """Every deployment that could serve the model is at its ``max_inflight``."""

    status = 429
    type = "rate_limit_error"
    code = "deployments_busy"
    header_block = b"retry-after: 1\r\n"


class DeploymentQuotaExceeded(AlloyError):
    """Every deployment that could serve the model has used its provider quota (``rpm``/``tpm``)
    for the current minute: nothing is sent, so the provider's own 429 never comes."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message, *, retry_after):
        super().__init__(message)
        self.header_block = b"retry-after: %d\r\n" % retry_after


class UnsafeHead(AlloyError):
    """The core refused to write bytes into a request line or a header where they do not belong
    (CR, LF, NUL...). Every value is validated where it enters; this is the last guard, so meeting
    it means a value slipped past its check: nothing is written, the request fails instead."""

    status = 500
    code = "unsafe_head"


# --- the upstream ----------------------------------------------------------------------------

class UpstreamError(AlloyError):
    """The upstream could not be reached or answered something that is not HTTP."""

    status = 502
    type = "server_error"
    code = "bad_gateway"


class UpstreamUnreachable(UpstreamError):
    """No connection could be opened, or the upstream closed it before answering a byte: the
    request was not processed, so it is safe to try again."""

    retryable = True

    def __init__(self, message, *, stale=False, closed_idle=False, unsent=False):
        super().__init__(message)
        self.stale = stale  # a reused keep-alive connection: retried at once, not held against it
        self.closed_idle = closed_idle  # ... closed in order (no reset): how an idle close looks
        self.unsent = unsent  # no connection could be opened (else it was closed after the send)


class UpstreamBusy(UpstreamError):
    """Every pooled connection to the upstream is busy and the queue for one is full, or the wait
    outlasted the connect timeout. Nothing was sent: another attempt may find room."""

    status = 503
    code = "upstream_pool_exhausted"
    retryable = True
    unsent = True


class ResponseTooLarge(UpstreamError):
    """An answer the gateway must read whole (to translate it) outgrew its cap."""

    code = "upstream_response_too_large"


class UpstreamProtocolError(UpstreamError):
    code = "upstream_protocol_error"


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer (or went silent) in time. Not retried: a model that takes
    longer than the first-byte timeout would take as long again."""

    status = 504
    code = "upstream_timeout"


class UpstreamConnectTimeout(UpstreamTimeout):
    retryable = True
    unsent = True


def error_payload(exc):
    """The OpenAI error object for ``exc`` as a dict (``{"error": {...}}``)."""
    return {
        "error": {
            "message": exc.message,
            "type": exc.type,
            "param": exc.param,
            "code": exc.code,
        }
    }


def error_response_body(exc):
    """The OpenAI error object for ``exc`` as JSON bytes."""
    return orjson.dumps(error_payload(exc))

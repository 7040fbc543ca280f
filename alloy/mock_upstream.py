"""The mock upstream: an offline OpenAI-compatible LLM server, strict, deterministic and cheap.

It serves three users: the test suites (a strict emulator with a request log and fault injection),
the benchmarks (the upstream whose own cost must stay tiny) and the gateway itself (the default route
when no provider key is configured, started in-process with ``record=False``).

Theory of operation
- One ``MockConnection`` per client feeds the core ``RequestParser`` and answers the requests it
  completes strictly in order (RFC 9112 section 9.3.2). An answer with nothing to wait for (no
  latency, fault or pacing) is framed and written inside ``data_received``; one that waits runs as a
  task, and the requests pipelined behind it wait in ``queue``.
- ``MockUpstream.answer`` decides what to send: test hooks (``/_mock/requests``: no auth, not logged),
  then the log, authentication, ``x-mock-fault`` and the route. Reply bodies come from
  ``mock_replies``. The result is an ``Answer``; the connection only frames and paces it.
- Everything constant (header blocks, the model list, the expected Authorization value) is built once
  per server; the request log keeps the raw request and decodes it only when a test reads it.

Faults, header ``x-mock-fault`` with items separated by ";" (each item at most once):
  status=<code>                     answer that status with an OpenAI error body
  context-length | content-policy   answer 400 with OpenAI's context_length_exceeded |
                                    content_policy_violation error
  invalid-json                      answer 200, application/json, with a body that is not JSON
  huge=<bytes>                      answer 200 with a valid chat completion whose content is that
                                    many bytes (ASCII digits; at most 64 MB)
  retry-after=<s or HTTP date>      add that header (to any answer)
  retry-after-ms=<ms>               add that header (to any answer)
  no-retry                          add ``x-should-retry: false`` (OpenAI's "do not retry this")
  pad=<bytes>                       with status=: lengthen the error message by that many bytes
                                    (at most 64 MB): an error answer too big to hold
  slow-first-byte=<ms>              wait that long before the first byte
  drip=<ms>                         pace a stream's events that many ms apart (a JSON body: its
                                    two halves)
  reset | hang | garbage            close with RST unanswered | never answer | send non-HTTP bytes
  reset-mid-stream                  send part of the answer, then close without finishing it
At most one of status, context-length, content-policy, invalid-json and huge; at most one
transport fault. With ``x-mock-fail-times: n`` a fault applies to the first n requests carrying the
same ``x-mock-key`` value only; the later ones succeed (so "503, then success" can be tested).
``--fault SPEC`` applies SPEC to every request without an ``x-mock-fault`` of its own (an always
failing upstream next to a healthy one); with ``--fail-times n`` to the first n such requests only.
"""

import asyncio
import email.utils
import itertools
import random
import signal
import socket
import struct
import sys
from collections import deque
from dataclasses import dataclass

import orjson

try:
    import uvloop
except ImportError:  # platforms without uvloop fall back to the stdlib loop
    uvloop = None

from alloy import mock_replies
from alloy.core import LAST_CHUNK, RequestParser, frame_chunk, frame_response, frame_stream_head
from alloy.headers import CONTINUE, JSON_HEADER
from alloy.errors import (
    AlloyError,
    AuthenticationFailed,
    InvalidRequest,
    MethodNotAllowed,
    ModelNotFound,
    NotFound,
    error_response_body,
)

SSE_HEADER = b"content-type: text/event-stream; charset=utf-8\r\ncache-control: no-cache\r\n"
GARBAGE = b"\x16\x03\x01\x00\xffSSH-2.0-this-is-not-http\r\n\x00\r\n\r\n"
LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on with 0 s: close() sends RST, not FIN
LOG_SIZE = 1000
MAX_FAULT_KEYS = 10000  # a client sending endless x-mock-key values cannot grow memory forever
TRANSPORT_FAULTS = frozenset(("reset", "hang", "garbage", "reset-mid-stream"))
HUGE_MAX = 64 * 1024 * 1024
INVALID_JSON = b'{"id": "chatcmpl-mock-invalid", "object": "chat.completion", "choices": [{"index": 0, '
# The 400s OpenAI sends when a prompt is too long for the model, or refused by its safety system.
CONTEXT_LENGTH_BODY = orjson.dumps({"error": {
    "message": "This model's maximum context length is 128000 tokens. However, your messages resulted in "
               "200000 tokens. Please reduce the length of the messages.",
    "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded",
}})  # fmt: skip
CONTENT_POLICY_BODY = orjson.dumps({"error": {
    "message": "Your request was rejected as a result of our safety system. Your prompt may contain text "
               "that is not allowed by our safety system.",
    "type": "invalid_request_error", "param": None, "code": "content_policy_violation",
}})  # fmt: skip
POST_ROUTES = {
    b"/v1/chat/completions": mock_replies.chat_completion,
    b"/v1/completions": mock_replies.completion,
    b"/v1/embeddings": mock_replies.embeddings,
    b"/v1/responses": mock_replies.responses,
    b"/v1/responses/input_tokens": mock_replies.responses_input_tokens,
    b"/v1/responses/compact": mock_replies.responses_compact,
}
MODELS_PATH = b"/v1/models"
# The error type and code OpenAI sends with a status; other 4xx are invalid_request_error, 5xx server_error.
FAULT_ERRORS = {
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}
NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
BAD_KEY = "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."


@dataclass(frozen=True)
class MockOptions:
    latency_ms: float = 0.0  # added before the first byte of every answer
    jitter: float = 0.0  # fraction of latency_ms, uniform in [-jitter, +jitter]
    tokens_per_second: float = 0.0  # stream pacing; 0 sends all chunks at once
    api_key: str | None = None  # None: any non-empty bearer token is accepted
    record: bool = True  # keep the request log (the last LOG_SIZE requests)
    fault: str | None = None  # an x-mock-fault spec for every request that sends none of its own
    fail_times: int | None = None  # ... applied to the first fail_times such requests only (None: all)


class Answer:
    """What to send for one request: status, header block, body (bytes) or SSE events (list), the
    transport fault to play instead or on top, the delay before the first byte and the pacing of
    a stream's events (0: the server's ``tokens_per_second``)."""

    __slots__ = ("status", "headers", "payload", "fault", "delay", "interval")

    def __init__(self, status, headers, payload, fault=None, delay=0.0, interval=0.0):
        self.status = status
        self.headers = headers
        self.payload = payload
        self.fault = fault
        self.delay = delay
        self.interval = interval


class Fault:
    """A parsed ``x-mock-fault``: the status to answer instead of the route (None: route as usual)
    with its body (``size`` bytes of content: a huge completion), the header block, the extra
    first-byte delay, the event pacing and the transport fault."""

    __slots__ = ("status", "body", "size", "headers", "delay", "interval", "transport")

    def __init__(self):
        self.status, self.body, self.size = None, None, None
        self.headers, self.delay, self.interval, self.transport = JSON_HEADER, 0.0, 0.0, None


AZURE_PREFIX = b"/openai/deployments/"


class MockUpstream:
    """What the connections of one mock server share: options, request log, fault counters."""

    def __init__(self, options):
        self.options = options
        self.log = deque(maxlen=LOG_SIZE) if options.record else None
        self.failures = {}  # x-mock-key -> faults applied so far
        self.connections = set()
        self.serial = itertools.count(1)
        self.expected_auth = ("Bearer " + options.api_key).encode() if options.api_key else None
        self.models, self.model_list = mock_replies.model_objects()
        self.latency = max(options.latency_ms, 0.0) / 1000.0
        self.chunk_interval = 1.0 / options.tokens_per_second if options.tokens_per_second > 0 else 0.0
        self.random = random.Random()
        self.fault = parse_fault(options.fault.encode("latin-1")) if options.fault else None
        self.fault_left = options.fail_times  # None: the server-wide fault never runs out

    def answer(self, request):
        path = request.target.partition(b"?")[0]
        if path == b"/_mock/requests":
            return self.hooks(request.method)
        if self.log is not None:
            self.log.append((request.method, request.target, request.headers, request.body))
        delay, fault, headers, interval = self.first_byte_delay(), None, JSON_HEADER, 0.0
        try:
            if path.startswith(AZURE_PREFIX):
                path = self.azure_path(request)
            else:
                self.authenticate(request.headers.get(b"authorization"))
            injected = self.fault_for(request.headers)
            if injected is not None:
                headers, fault, interval = injected.headers, injected.transport, injected.interval
                delay += injected.delay
                if injected.size is not None:
                    payload = mock_replies.sized_chat_completion(request.body, next(self.serial), injected.size)
                    return Answer(200, headers, payload, fault, delay, interval)
                if injected.status is not None:
                    return Answer(injected.status, headers, injected.body, fault, delay, interval)
            payload = self.route(request.method, path, request.body)
        except AlloyError as error:
            headers += error.header_block  # e.g. the Allow header a 405 must carry
            return Answer(error.status, headers, error_response_body(error), fault, delay, interval)
        except Exception as bug:  # a reply bug answers 500 (visible in the test) and the connection lives on
            body = error_response_body(AlloyError(f"mock upstream bug: {bug!r}"))
            return Answer(500, JSON_HEADER, body, fault, delay)
        if type(payload) is not bytes:  # a stream; a fault's retry-after stays
            headers = SSE_HEADER if headers is JSON_HEADER else headers.replace(JSON_HEADER, SSE_HEADER, 1)
        return Answer(200, headers, payload, fault, delay, interval)

    def route(self, method, path, body):
        reply = POST_ROUTES.get(path)
        if reply is not None:
            if method != b"POST":
                raise not_allowed(method, path, b"POST")
            return reply(body, next(self.serial))
        if path == MODELS_PATH or path.startswith(b"/v1/models/"):
            if method != b"GET":
                raise not_allowed(method, path, b"GET")
            if path == MODELS_PATH:
                return self.model_list
            name = path[len(MODELS_PATH) + 1 :]
            model = self.models.get(name)
            if model is None:
                message = f"The model '{name.decode('latin-1')}' does not exist or you do not have access to it."
                raise ModelNotFound(message, param="model")
            return model
        raise NotFound(f"Invalid URL ({method.decode('latin-1')} {path.decode('latin-1')})")

    def azure_path(self, request):
        """Azure OpenAI's shape: ``/openai/deployments/{name}/chat/completions?api-version=...``
        with an ``api-key`` header; answered as the matching OpenAI path."""
        key = request.headers.get(b"api-key")
        if not key or (self.options.api_key is not None and key != self.options.api_key.encode()):
            raise AuthenticationFailed(BAD_KEY if key else NO_KEY)
        path, _, query = request.target.partition(b"?")
        if not any(part.startswith(b"api-version=") for part in query.split(b"&")):
            raise InvalidRequest("Missing required query parameter: api-version", param="api-version")
        deployment, _, rest = path[len(AZURE_PREFIX) :].partition(b"/")
        if not deployment:
            raise NotFound("The API deployment for this resource does not exist.")
        return b"/v1/" + rest

    def authenticate(self, given):
        if not given:
            raise AuthenticationFailed(NO_KEY)
        if self.expected_auth is not None:
            accepted = given == self.expected_auth
        else:
            scheme, _, token = given.partition(b" ")
            accepted = scheme.lower() == b"bearer" and bool(token.strip())
        if not accepted:
            raise AuthenticationFailed(BAD_KEY)  # never echo the key: it may be a gateway's secret

    def first_byte_delay(self):
        if not self.latency:
            return 0.0
        jitter = self.options.jitter
        return max(0.0, self.latency * (1.0 + self.random.uniform(-jitter, jitter))) if jitter else self.latency

    def fault_for(self, headers):
        """The parsed ``x-mock-fault`` if it applies to this request, else None; a request without
        one gets the server-wide ``--fault`` while it lasts."""
        spec = headers.get(b"x-mock-fault")
        if spec is None:
            if self.fault is None or self.fault_left == 0:
                return None
            if self.fault_left is not None:
                self.fault_left -= 1
            return self.fault
        fault = parse_fault(spec)
        times = headers.get(b"x-mock-fail-times")
        if times is not None:
            if not times.isdigit():
                raise InvalidRequest("x-mock-fail-times must be a non-negative integer", param="x-mock-fail-times")
            key = headers.get(b"x-mock-key", b"")
            applied = self.failures.get(key, 0)
            if applied >= int(times):
                return None
            if len(self.failures) >= MAX_FAULT_KEYS:
                self.failures.clear()
            self.failures[key] = applied + 1
        return fault

    def hooks(self, method):
        """``GET /_mock/requests``: the log, oldest first; ``DELETE``: clear it."""
        log = self.log if self.log is not None else ()
        if method == b"GET":
            return Answer(200, JSON_HEADER, orjson.dumps({"requests": [logged(record) for record in log]}))
        if method == b"DELETE":
            if self.log is not None:
                self.log.clear()
            return Answer(200, JSON_HEADER, b'{"requests":[]}')
        error = not_allowed(method, b"/_mock/requests", b"GET, DELETE")
        return Answer(405, JSON_HEADER + error.header_block, error_response_body(error))


def not_allowed(method, path, allow):
    return MethodNotAllowed(f"Invalid method for URL ({method.decode('latin-1')} {path.decode('latin-1')})", allow=allow)


# The fault items that decide the answer instead of the route: (status, body) each.
ANSWER_FAULTS = {
    "context-length": (400, CONTEXT_LENGTH_BODY),
    "content-policy": (400, CONTENT_POLICY_BODY),
    "invalid-json": (200, INVALID_JSON),
}


HTML_HEADER = b"content-type: text/html\r\n"


def parse_fault(spec):
    """``x-mock-fault`` -> its ``Fault``; an item it cannot apply, repeated or contradicting another
    is refused (400), so a typo never passes for a healthy answer."""
    fault, seen = Fault(), set()
    for item in spec.decode("latin-1").split(";"):
        name, _, value = item.strip().partition("=")
        answers = fault.status is not None or fault.size is not None  # the answer is decided already
        try:
            if name in seen:
                raise ValueError(item)
            seen.add(name)
            if name == "status" and not answers and 400 <= int(value) <= 599:
                fault.status, fault.body = int(value), fault_body(int(value))
            elif name in ANSWER_FAULTS and not answers and not value:
                fault.status, fault.body = ANSWER_FAULTS[name]
            elif name == "huge" and not answers and value.isdigit() and int(value) <= HUGE_MAX:
                fault.size = int(value)
            elif (name == "retry-after-ms" and value.isdigit()) or (name == "retry-after" and retry_after(value)):
                fault.headers += name.encode() + b": " + value.encode() + b"\r\n"
            elif name == "pad" and fault.status is not None and value.isdigit() and int(value) <= HUGE_MAX:
                fault.body = fault_body(fault.status, int(value))
            elif name == "html" and fault.status is not None and not value:
                # What a proxy in front of a provider answers: its own page, not the API's JSON.
                fault.headers = HTML_HEADER + fault.headers[len(JSON_HEADER) :]
                fault.body = b"<html><body><h1>%d</h1>The proxy could not serve this.</body></html>" % fault.status
            elif name == "no-retry" and not value:
                fault.headers += b"x-should-retry: false\r\n"
            elif name == "slow-first-byte" and 0 <= float(value) < 3_600_000:
                fault.delay = float(value) / 1000.0
            elif name == "drip" and 0 < float(value) < 3_600_000:
                fault.interval = float(value) / 1000.0
            elif name in TRANSPORT_FAULTS and not value and fault.transport is None:
                fault.transport = name
            else:
                raise ValueError(item)
        except ValueError:
            raise InvalidRequest(f"x-mock-fault: cannot apply {item.strip()!r}", param="x-mock-fault") from None
    return fault


def port_number(text):
    """A --port value: 0 to 65535 (the socket layer takes a larger one modulo 65536)."""
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError(text)
    return port


def retry_after(value):
    """True for a valid Retry-After value: delay seconds or an HTTP date (RFC 9110 section 10.2.3)."""
    if value.isdigit():
        return True
    try:
        return email.utils.parsedate_to_datetime(value).tzinfo is not None
    except (TypeError, ValueError):
        return False


def fault_body(status, pad=0):
    kind, code = FAULT_ERRORS.get(status) or (("server_error" if status >= 500 else "invalid_request_error"), None)
    message = f"Injected by x-mock-fault: status {status}." + "." * pad
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


def logged(record):
    """One log entry as the test hook shows it: the body decoded as JSON when it is JSON."""
    method, target, headers, body = record
    try:
        decoded = orjson.loads(body) if body else ""
    except orjson.JSONDecodeError:
        decoded = body.decode("utf-8", "replace")
    return {
        "method": method.decode("latin-1"),
        "path": target.decode("latin-1"),
        "headers": {name.decode("latin-1"): value.decode("latin-1") for name, value in headers.items()},
        "body": decoded,
    }


def framed(answer, close):
    """The whole answer as one buffer: one write, one syscall. An unpaced stream still arrives as
    separate chunks (one per event), so clients see the same events as with pacing."""
    if type(answer.payload) is bytes:
        return frame_response(answer.status, answer.headers, answer.payload, close)
    chunks = b"".join([frame_chunk(event) for event in answer.payload])
    return frame_stream_head(answer.status, answer.headers, close) + chunks + LAST_CHUNK


class MockConnection(asyncio.Protocol):
    __slots__ = ("mock", "transport", "parser", "queue", "task", "continue_sent", "closed", "broken")

    def __init__(self, mock):
        self.mock = mock
        self.transport = None
        self.parser = RequestParser()
        self.queue = deque()  # requests (or the protocol error that ends them) waiting their turn
        self.task = None  # the answer being played, while it waits
        self.continue_sent = False
        self.closed = False
        self.broken = False  # the parser raised: the byte stream no longer delimits requests

    def connection_made(self, transport):
        self.transport = transport
        self.mock.connections.add(self)

    def connection_lost(self, exc):
        self.closed = True
        self.mock.connections.discard(self)
        self.queue.clear()
        if self.task is not None:
            self.task.cancel()
            self.task = None

    def data_received(self, data):
        if self.closed or self.broken:
            return
        try:
            requests = self.parser.feed(data)
        except AlloyError as error:
            self.broken = True
            requests = [error]  # answered in turn, after what was pipelined before it
        if requests:
            self.continue_sent = False
        self.queue.extend(requests)
        self.advance()

    def advance(self):
        """Answer queued requests in order until one has to wait, or the connection closes."""
        queue = self.queue
        while queue and self.task is None and not self.closed:
            item = queue.popleft()
            if isinstance(item, AlloyError):
                self.transport.write(frame_response(item.status, JSON_HEADER, error_response_body(item), True))
                self.close()
                return
            self.serve(item)
        if self.task is None and not self.closed and self.parser.expect_continue and not self.continue_sent:
            # RFC 9110 section 10.1.1: the client holds the body back until told to send it.
            self.continue_sent = True
            self.transport.write(CONTINUE)

    def serve(self, request):
        answer = self.mock.answer(request)
        close = not request.keep_alive
        paced = answer.interval or (self.mock.chunk_interval and type(answer.payload) is list)
        if answer.delay or answer.fault or paced:
            self.task = asyncio.ensure_future(self.play(answer, close))
            return
        self.transport.write(framed(answer, close))
        if close:
            self.close()

    async def play(self, answer, close):
        """An answer that waits: a first-byte delay, a paced stream or a transport fault."""
        if answer.delay:
            await asyncio.sleep(answer.delay)
        fault, write, payload = answer.fault, self.transport.write, answer.payload
        interval = answer.interval or self.mock.chunk_interval
        if fault == "hang":
            await asyncio.get_running_loop().create_future()  # until the client leaves and cancels us
        if fault == "reset":
            self.reset()
            return
        if fault == "garbage":
            write(GARBAGE)
            self.close()
            return
        if fault == "reset-mid-stream":
            # A FIN, not a RST, after the partial answer: a RST may discard the bytes just written
            # before the client reads them, and the point is to be cut off after some data arrived.
            if type(payload) is bytes:
                data = frame_response(answer.status, answer.headers, payload, close)
                write(data[: len(data) - len(payload) // 2 - 1])
            else:
                write(frame_stream_head(answer.status, answer.headers, close))
                for i, event in enumerate(payload[: max(1, min(3, len(payload) // 2))]):
                    if i and interval:
                        await asyncio.sleep(interval)
                    write(frame_chunk(event))
            self.close()
            return
        if type(payload) is bytes:
            data = frame_response(answer.status, answer.headers, payload, close)
            if answer.interval:  # dripped: the head and half the body, then the rest
                cut = len(data) - len(payload) // 2
                write(data[:cut])
                await asyncio.sleep(answer.interval)
                data = data[cut:]
            write(data)
        else:
            write(frame_stream_head(answer.status, answer.headers, close) + frame_chunk(payload[0]))
            for event in payload[1:]:
                if interval:
                    await asyncio.sleep(interval)
                write(frame_chunk(event))
            write(LAST_CHUNK)
        self.task = None
        if close:
            self.close()
        else:
            self.advance()

    def reset(self):
        """Close with a RST, as a crashed upstream or a dropping load balancer does."""
        sock = self.transport.get_extra_info("socket")
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        except (AttributeError, OSError):
            pass  # no socket to tune: the plain close below still ends the connection unanswered
        self.closed = True
        self.transport.abort()

    def close(self):
        self.closed = True
        self.queue.clear()
        if not self.transport.is_closing():
            self.transport.close()  # flushes what is buffered, then closes


async def _listen(mock, host, port):
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: MockConnection(mock), host, port, backlog=4096, reuse_address=True)


async def start_mock_upstream(host: str, port: int, options: MockOptions) -> asyncio.AbstractServer:
    """Listen on ``host:port`` (0 picks a free port: read it from ``server.sockets``) and serve."""
    return await _listen(MockUpstream(options), host, port)


async def _run(host, port, options):
    mock = MockUpstream(options)
    server = await _listen(mock, host, port)
    bound_host, bound_port = server.sockets[0].getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(f"alloy mock-upstream listening on http://{shown}:{bound_port}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()
    for connection in list(mock.connections):  # hanging and idle ones too: nothing waits for them
        connection.close()


def arguments():
    import argparse  # the command's alone: the gateway's built-in mock never parses arguments

    parser = argparse.ArgumentParser(prog="alloy mock-upstream", description="An offline OpenAI-compatible fake LLM.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=9000, help="port to listen on; 0 picks a free one (default 9000)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before the first byte of every answer")
    parser.add_argument("--jitter", type=float, default=0.0, help="latency spread, a fraction (0.2 = +-20%%)")
    parser.add_argument("--tokens-per-second", type=float, default=0.0, help="stream pacing (default 0: no pacing)")
    parser.add_argument("--api-key", help="accept only 'Authorization: Bearer <key>' (default: any bearer token)")
    parser.add_argument("--fault", metavar="SPEC", help="an x-mock-fault for every request that sends none")
    parser.add_argument("--fail-times", type=int, metavar="N", help="apply --fault to the first N requests only")
    return parser


def main(argv: list[str]) -> int:
    parser = arguments()
    args = parser.parse_args(argv)
    if args.fail_times is not None and (args.fault is None or args.fail_times < 0):
        parser.error("--fail-times needs --fault and a non-negative count")
    if args.fault is not None:
        try:
            parse_fault(args.fault.encode("latin-1"))
        except (InvalidRequest, UnicodeEncodeError) as error:
            parser.error(f"--fault: {getattr(error, 'message', error)}")
    options = MockOptions(
        latency_ms=args.latency_ms, jitter=args.jitter, tokens_per_second=args.tokens_per_second, api_key=args.api_key,
        fault=args.fault, fail_times=args.fail_times,
    )  # fmt: skip
    try:
        (uvloop.run if uvloop is not None else asyncio.run)(_run(args.host, args.port, options))
    except OSError as error:  # e.g. the port is taken
        print(f"alloy mock-upstream: cannot listen on {args.host}:{args.port}: {error.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""The front door, byte by byte: raw sockets against a real gateway in front of the mock upstream.

Keep-alive, pipelining, request body framings, limits, smuggling rejects, garbage, slow clients and
many idle connections. Every read has a deadline, so a gateway that stops answering fails the test
instead of hanging it. Smuggling rejects are checked on both sides: the client gets an OpenAI-shaped
error and the mock's request log proves that nothing reached the upstream.
"""

import json
import os
import random
import resource
import select
import socket
import ssl
import threading
import time

import pytest

from harness import start_proxy, stream_text

IO_TIMEOUT = 10.0  # no single read may block longer than this
HEALTH = b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n"


# --- a raw HTTP/1.1 client ------------------------------------------------------------------------


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-cased name -> value (last one wins)
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.headers} {self.body[:300]!r}>"


class Client:
    """One TCP connection to the gateway; reads go through a buffer and never block for long."""

    def __init__(self, port, timeout=IO_TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self.buffer = b""

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        self.sock.close()

    def _fill(self):
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            raise EOFError(f"the gateway closed the connection; unread bytes: {self.buffer[:300]!r}")
        self.buffer += data

    def read_until(self, marker):
        while marker not in self.buffer:
            self._fill()
        end = self.buffer.index(marker) + len(marker)
        out, self.buffer = self.buffer[:end], self.buffer[end:]
        return out

    def read_exact(self, size):
        while len(self.buffer) < size:
            self._fill()
        out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out

    def read_head(self):
        lines = self.read_until(b"\r\n\r\n")[:-4].split(b"\r\n")
        version, status = lines[0].split(b" ", 2)[:2]
        assert version == b"HTTP/1.1", lines[0]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.decode().lower()] = value.strip().decode("latin-1")
        return int(status), headers

    def read_chunk(self):
        """One chunk of a chunked body; ``b""`` for the last chunk (the trailer section is consumed)."""
        size = int(self.read_until(b"\r\n").split(b";")[0], 16)
        if size == 0:
            while self.read_until(b"\r\n") != b"\r\n":
                pass
            return b""
        data = self.read_exact(size)
        assert self.read_exact(2) == b"\r\n", "chunk data not followed by CRLF"
        return data

    def response(self):
        status, headers = self.read_head()
        if status < 200 or status in (204, 304):
            body = b""
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b"".join(iter(self.read_chunk, b""))
        elif "content-length" in headers:
            body = self.read_exact(int(headers["content-length"]))
        else:
            body = self.read_to_eof()
        return Response(status, headers, body)

    def read_to_eof(self):
        try:
            while True:
                self._fill()
        except EOFError:
            pass
        out, self.buffer = self.buffer, b""
        return out

    def closed_within(self, seconds):
        """True if the server closes the connection within ``seconds`` (bytes before it are buffered)."""
        deadline = time.monotonic() + seconds
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                self.sock.settimeout(remaining)
                try:
                    data = self.sock.recv(65536)
                except ConnectionResetError:
                    return True
                except TimeoutError:
                    return False
                if not data:
                    return True
                self.buffer += data
            return False
        finally:
            self.sock.settimeout(self.timeout)


def chat_body(text, stream=False):
    return json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], "stream": stream}).encode()


def chat(text, stream=False, extra=b""):
    body = chat_body(text, stream)
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


def reply_text(response):
    assert response.status == 200, response
    return response.json()["choices"][0]["message"]["content"]


def assert_openai_error(response, status, code=None):
    assert response.status == status, response
    assert response.headers.get("content-type", "").startswith("application/json"), response
    error = response.json()["error"]
    assert error["message"] and error["type"] == "invalid_request_error", error
    if code is not None:
        assert error["code"] == code, error


def assert_healthy(gateway):
    assert gateway.popen.poll() is None, f"gateway exited ({gateway.popen.returncode}):\n{gateway.stderr}"
    client = Client(gateway.port)
    client.send(HEALTH)
    assert client.response().status == 200
    client.close()


def assert_no_traceback(gateway):
    assert "Traceback" not in gateway.stderr, gateway.stderr


@pytest.fixture
def gateway(start_gateway, mock):
    """Overrides the conftest fixture: the front door does not depend on the upstream backend, so
    these tests run once, on the default one."""
    return start_proxy(start_gateway, mock)


@pytest.fixture
def slow_mock(start_mock):
    """A mock whose streams send 20 words a second."""
    return start_mock("--api-key", "sk-provider", "--tokens-per-second", "20")


def bodies(mock):
    return [request["body"] for request in mock.requests()]


# --- keep-alive and pipelining -----------------------------------------------------------------------


def test_keep_alive_http10_and_connection_close(gateway, mock):
    client = Client(gateway.port)
    for i in range(3):
        client.send(HEALTH)
        health = client.response()
        assert health.status == 200 and health.json() == {"status": "ok"}, health
        client.send(chat(f"round {i}"))
        assert reply_text(client.response()) == f"echo: round {i}"
    assert not client.closed_within(0.3), "the gateway closed a keep-alive connection"
    assert bodies(mock) == [json.loads(chat_body(f"round {i}")) for i in range(3)]

    old = Client(gateway.port)  # HTTP/1.0 without "Connection: keep-alive": one answer, then close
    old.send(b"GET /health HTTP/1.0\r\n\r\n")
    assert old.response().status == 200
    assert old.closed_within(5), "an HTTP/1.0 connection without keep-alive stayed open"

    closing = Client(gateway.port)
    closing.send(chat("bye", extra=b"Connection: close\r\n") + HEALTH)  # nothing after "close" is answered
    response = closing.response()
    assert reply_text(response) == "echo: bye"
    assert response.headers.get("connection", "").lower() == "close", response
    assert closing.closed_within(5), "the gateway kept the connection after Connection: close"
    assert closing.buffer == b"", "a request after Connection: close was answered"


def test_pipelined_requests_are_answered_in_order_each_as_its_own(gateway, mock):
    client = Client(gateway.port)
    client.send(HEALTH + chat("in the middle") + HEALTH)
    first, second, third = client.response(), client.response(), client.response()
    assert first.status == 200 and first.json() == {"status": "ok"}, first
    assert reply_text(second) == "echo: in the middle"
    assert third.status == 200 and third.json() == {"status": "ok"}, third
    assert not client.closed_within(0.3)
    # A request right behind a Content-Length body is a request of its own, handled by the gateway
    # (the upstream gets the provider key, not the client's), never bytes of the first body.
    mock.clear()
    client.send(chat("first") + chat("second", extra=b"Authorization: Bearer sk-client\r\nX-Hidden: 1\r\n"))
    assert reply_text(client.response()) == "echo: first"
    assert reply_text(client.response()) == "echo: second"
    received = mock.requests()
    assert [r["body"] for r in received] == [json.loads(chat_body("first")), json.loads(chat_body("second"))]
    assert received[1]["headers"]["authorization"] == "Bearer sk-provider"
    assert received[1]["headers"].get("x-hidden") == "1"


# --- request body framings ------------------------------------------------------------------------


def head_then_health(gateway, path):
    """HEAD ``path`` then GET /health pipelined on one connection: every byte up to the end of the
    second answer's body."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=IO_TIMEOUT) as sock:
        sock.sendall(b"HEAD %s HTTP/1.1\r\nHost: g\r\n\r\nGET /health HTTP/1.1\r\nHost: g\r\n\r\n" % path)
        received = b""
        while not received.endswith(b'{"status":"ok"}'):
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
    return received


def test_head_on_the_health_endpoints_has_no_body_and_keeps_the_connection_in_step(gateway, mock):
    for path in (b"/health", b"/health/ready"):
        received = head_then_health(gateway, path)
        head, rest = received.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200 ") and b"content-length: " in head.lower(), received
        # RFC 9110 section 9.3.2: the same head as GET, no body: the next bytes are the next response.
        assert rest.startswith(b"HTTP/1.1 200 "), received
        assert rest.endswith(b'\r\n\r\n{"status":"ok"}')


def test_an_error_answer_to_head_has_no_body_either(gateway, mock):
    received = head_then_health(gateway, b"/nowhere")
    head, rest = received.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 404 "), received
    assert rest.startswith(b"HTTP/1.1 200 "), received


def test_chunked_body_and_expect_100_continue(gateway, mock):
    body = chat_body("chunked " * 200)
    pieces = [body[:1], body[1:100], body[100:1500], body[1500:]]
    wire = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"
    client = Client(gateway.port)
    client.send(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    for i in range(0, len(wire), 700):  # arrives in pieces that cut the chunk framing anywhere
        client.send(wire[i : i + 700])
        time.sleep(0.01)
    assert reply_text(client.response()) == "echo: " + "chunked " * 200
    assert bodies(mock) == [json.loads(body)]

    mock.clear()
    body = chat_body("after continue")
    client.send(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nExpect: 100-continue\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    client.sock.settimeout(5)  # the body is held back: without the 100 this read times out
    assert client.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    client.send(body)
    assert reply_text(client.response()) == "echo: after continue"
    [received] = mock.requests()
    assert received["body"] == json.loads(body)
    assert "expect" not in received["headers"], "Expect is answered by the gateway, never forwarded"


# --- limits ------------------------------------------------------------------------------------------


def test_limits_431_and_413_are_answered_and_close(start_gateway, mock):
    gateway = start_proxy(start_gateway, mock, "max_header_bytes = 4096\nmax_body_bytes = 1024")
    client = Client(gateway.port, timeout=5)
    client.send(b"GET /health HTTP/1.1\r\nHost: gateway\r\nX-Big: " + b"a" * 6000 + b"\r\n\r\n")
    assert_openai_error(client.response(), 431, "request_header_fields_too_large")
    assert client.closed_within(5)

    client = Client(gateway.port, timeout=5)  # the head alone: the 413 must not wait for the body
    client.send(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )
    assert_openai_error(client.response(), 413, "request_too_large")
    assert client.closed_within(5)

    client = Client(gateway.port, timeout=5)
    client.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(40):  # 10 KB in all, unless the gateway answers first
        client.send(b"100\r\n" + b"x" * 256 + b"\r\n")
        if select.select([client.sock], [], [], 0.05)[0]:
            break
    assert_openai_error(client.response(), 413, "request_too_large")
    assert client.closed_within(5)
    assert mock.requests() == []
    assert_healthy(gateway)


# --- request smuggling -------------------------------------------------------------------------------


def chunked(body):
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


POST = b"POST /v1/chat/completions HTTP/1.1\r\n"
SMUGGLING = {  # name -> (statuses accepted, the vector built around a body)
    "cl-and-te": ({400}, lambda b: POST + b"Host: g\r\nContent-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(b) + chunked(b)),
    "te-and-cl": ({400}, lambda b: POST + b"Host: g\r\nTransfer-Encoding: chunked\r\nContent-Length: %d\r\n\r\n" % len(b) + chunked(b)),
    "differing-content-lengths": ({400}, lambda b: POST + b"Host: g\r\nContent-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(b), len(b) + 6) + b + b"GET / "),
    "differing-lengths-one-field": ({400}, lambda b: POST + b"Host: g\r\nContent-Length: %d, %d\r\n\r\n" % (len(b), len(b) + 6) + b + b"GET / "),
    "te-chunked-identity": ({400, 501}, lambda b: POST + b"Host: g\r\nTransfer-Encoding: chunked, identity\r\n\r\n" + chunked(b)),
    "invalid-chunk-size": ({400}, lambda b: POST + b"Host: g\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + b + b"\r\n0\r\n\r\n"),
    "obs-fold": ({400}, lambda b: POST + b"Host: g\r\nX-Folded: a\r\n b\r\nContent-Length: %d\r\n\r\n" % len(b) + b),
    "space-before-colon": ({400}, lambda b: POST + b"Host: g\r\nContent-Length : %d\r\n\r\n" % len(b) + b),
    "bare-lf-line-endings": ({400}, lambda b: b"POST /v1/chat/completions HTTP/1.1\nHost: g\nContent-Length: %d\n\n" % len(b) + b),
    "bare-lf-in-one-line": ({400}, lambda b: POST + b"Host: g\nContent-Length: %d\r\n\r\n" % len(b) + b),
    "nul-in-header-value": ({400}, lambda b: POST + b"Host: g\r\nX-Evil: a\x00b\r\nContent-Length: %d\r\n\r\n" % len(b) + b),
    "control-char-in-header-value": ({400}, lambda b: POST + b"Host: g\r\nX-Evil: a\x1bb\r\nContent-Length: %d\r\n\r\n" % len(b) + b),
    "missing-host": ({400}, lambda b: POST + b"Content-Length: %d\r\n\r\n" % len(b) + b),
    "two-hosts": ({400}, lambda b: POST + b"Host: g\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(b) + b),
}


def test_smuggling_vectors_are_refused_and_never_reach_the_upstream(gateway, mock):
    problems = []
    for name, (statuses, build) in SMUGGLING.items():
        client = Client(gateway.port, timeout=5)
        client.send(build(chat_body(f"smuggled {name}")))
        try:
            response = client.response()
            assert_openai_error(response, response.status)
        except (AssertionError, EOFError, TimeoutError, ValueError) as error:
            problems.append(f"{name}: no OpenAI-shaped error answer ({error!r})")
            continue
        if response.status not in statuses:
            problems.append(f"{name}: expected {sorted(statuses)}, got {response!r}")
        elif not client.closed_within(5):
            problems.append(f"{name}: the connection stayed open after the error")
        client.close()
        leaked = mock.requests()  # a forwarded request is logged before its answer comes back
        if leaked:
            problems.append(f"{name}: reached the upstream: {leaked}")
            mock.clear()
    probe = Client(gateway.port)  # the log is live and the gateway is fine
    probe.send(chat("probe"))
    assert reply_text(probe.response()) == "echo: probe"
    assert bodies(mock) == [json.loads(chat_body("probe"))]
    assert not problems, "\n".join(problems)


def test_requests_pipelined_before_a_malformed_one_are_answered_before_its_error(gateway, mock):
    """Requests that arrived whole are never lost to a malformed one sent after them in the same
    packet: they are answered in order, then the error, then the connection closes."""
    for name in ("cl-and-te", "invalid-chunk-size", "obs-fold"):
        statuses, build = SMUGGLING[name]
        mock.clear()
        client = Client(gateway.port)
        client.send(HEALTH + chat(f"before {name}") + build(chat_body("smuggled")))
        assert client.response().status == 200
        assert reply_text(client.response()) == f"echo: before {name}"
        error = client.response()
        assert error.status in statuses, error
        assert_openai_error(error, error.status)
        assert client.closed_within(5)
        client.close()
        assert bodies(mock) == [json.loads(chat_body(f"before {name}"))], "only the whole request went upstream"


# --- garbage on the plain port ----------------------------------------------------------------------


def tls_client_hello():
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="gateway")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def send_garbage(gateway, payloads, seconds):
    """Sends each payload on its own connection at once; what each got back before the close."""
    clients = {}
    for name, payload in payloads.items():
        clients[name] = Client(gateway.port)
        clients[name].send(payload)
    started, outcomes = time.monotonic(), {}
    for name, client in clients.items():
        closed = client.closed_within(max(0.1, seconds - (time.monotonic() - started)))
        outcomes[name] = (closed, client.buffer[:120])
        client.close()
    return outcomes


def refused(outcome, statuses=(b"400", b"505")):
    """Closed, after nothing or after an error answer with one of ``statuses``."""
    closed, answer = outcome
    return closed and (answer == b"" or answer[9:12] in statuses and answer.startswith(b"HTTP/1.1 "))


def test_garbage_heads_are_refused_and_the_gateway_keeps_serving(gateway, mock):
    noise = random.Random(7).randbytes(3000).replace(b"\r", b"").replace(b"\n", b"")
    outcomes = send_garbage(
        gateway,
        {
            "random-bytes-then-crlf": noise + b"\r\n\r\n",
            "http2-preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00",
            "binary-request-line": b"\x16\x03\x01 / HTTP/1.1\r\nHost: g\r\n\r\n",
            "http-9": b"GET / HTTP/9.9\r\nHost: g\r\n\r\n",
        },
        5,
    )
    assert_healthy(gateway)
    assert_no_traceback(gateway)
    assert mock.requests() == []
    assert all(refused(outcome) for outcome in outcomes.values()), f"(closed within 5 s, bytes received) per payload: {outcomes}"


def test_tls_and_binary_noise_are_refused_without_waiting_for_the_read_timeout(gateway, mock):
    # A client speaking TLS (or anything else) to the plain port sends no CRLF at all; its first
    # byte already cannot start a method. read_timeout is the default 15 s here.
    outcomes = send_garbage(
        gateway,
        {
            "tls-client-hello": tls_client_hello(),
            "random-bytes": random.Random(8).randbytes(3000).replace(b"\r", b"").replace(b"\n", b""),
        },
        5,
    )
    assert_healthy(gateway)
    assert_no_traceback(gateway)
    assert mock.requests() == []
    assert all(refused(outcome) for outcome in outcomes.values()), f"(closed within 5 s, bytes received) per payload: {outcomes}"


# --- slow and idle clients ---------------------------------------------------------------------------


def test_slow_loris_and_idle_connections_are_cut_off_while_others_are_served(start_gateway, mock):
    gateway = start_proxy(start_gateway, mock, "read_timeout = 2\nkeepalive_timeout = 2")
    started = time.monotonic()
    stalled = Client(gateway.port)
    stalled.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n")
    trickle = Client(gateway.port)
    trickle.send(b"GET /health HTTP/1.1\r\nX-Slow: ")
    stop = threading.Event()

    def drip():  # one byte every 0.3 s: data keeps coming, the request never completes
        try:
            while not stop.wait(0.3):
                trickle.send(b"x")
        except OSError:
            pass

    threading.Thread(target=drip, daemon=True).start()
    used = Client(gateway.port)
    used.send(HEALTH)
    assert used.response().status == 200
    silent = Client(gateway.port)  # connected, never sends a byte
    try:
        assert not used.closed_within(0.8), "an idle connection was closed long before keepalive_timeout"
        other = Client(gateway.port)
        other.send(chat("served during the stall"))
        assert reply_text(other.response()) == "echo: served during the stall"
        assert not stalled.closed_within(0.01), "the fresh client was served only after the stall ended"
        for name, client in (("stalled", stalled), ("trickle", trickle), ("idle", used), ("silent", silent)):
            assert client.closed_within(6 - (time.monotonic() - started)), f"{name}: never cut off"
            if name in ("stalled", "trickle") and client.buffer:
                assert_openai_error(client.response(), 408, "request_timeout")
            else:
                assert client.buffer == b"", f"{name}: unexpected bytes {client.buffer!r}"
    finally:
        stop.set()
    assert_healthy(gateway)


def test_a_thousand_idle_connections_do_not_stop_a_new_client(start_gateway, mock):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2200:  # the gateway inherits the limit and needs a descriptor per connection too
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    gateway = start_proxy(start_gateway, mock)
    idle = []
    try:
        for _ in range(1000):
            idle.append(socket.create_connection(("127.0.0.1", gateway.port), timeout=IO_TIMEOUT))
        descriptors = f"/proc/{gateway.pid}/fd"
        if os.path.isdir(descriptors):  # the gateway really holds them (not just the listen backlog)
            deadline = time.monotonic() + 10
            while len(os.listdir(descriptors)) < 1000 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(os.listdir(descriptors)) >= 1000
        client = Client(gateway.port)
        client.send(HEALTH + chat("still here"))
        assert client.response().status == 200
        assert reply_text(client.response()) == "echo: still here"
        oldest = idle[0]  # and the first idle connection is still served
        oldest.sendall(HEALTH)
        assert oldest.recv(65536).startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in idle:
            sock.close()
    assert_healthy(gateway)


def test_connections_beyond_max_connections_get_503_and_the_others_are_unaffected(start_gateway, mock):
    gateway = start_proxy(start_gateway, mock, "max_connections = 3")
    held = [Client(gateway.port) for _ in range(3)]
    try:
        for client in held:  # each really accepted and served
            client.send(HEALTH)
            assert client.response().status == 200
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=IO_TIMEOUT) as extra:
            received = b""
            while chunk := extra.recv(65536):  # the gateway answers and closes, unasked
                received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 "), received
        assert b"\r\nretry-after: 1" in head.lower() and b"connection: close" in head.lower()
        assert json.loads(body)["error"]["code"] == "too_many_connections"
        held[0].send(chat("still served"))  # the connections within the cap never noticed
        assert reply_text(held[0].response()) == "echo: still served"
        held.pop().close()
        time.sleep(0.2)
        replacement = Client(gateway.port)  # a slot was freed
        held.append(replacement)
        replacement.send(HEALTH)
        assert replacement.response().status == 200
    finally:
        for client in held:
            client.close()
    assert_healthy(gateway)


# --- isolation between connections ------------------------------------------------------------------


def test_a_bad_connection_never_disturbs_a_good_one(start_gateway, slow_mock):
    gateway = start_proxy(start_gateway, slow_mock)
    stop = threading.Event()
    bad_rounds = []

    def misbehave():
        noise = random.Random(3)
        while not stop.is_set():
            bad = Client(gateway.port, timeout=5)
            bad.send(noise.randbytes(500).replace(b"\n", b"") + b"\r\n\r\n")
            bad_rounds.append(bad.closed_within(5) and bad.buffer.startswith(b"HTTP/1.1 400 "))
            bad.close()

    thread = threading.Thread(target=misbehave, daemon=True)
    thread.start()
    try:
        prompt = " ".join(f"word{i}" for i in range(20))  # ~1 s of stream at 20 words/s
        good = Client(gateway.port)
        good.send(chat(prompt, stream=True))
        response = good.response()
    finally:
        stop.set()
        thread.join(10)
    assert response.status == 200, response
    text, data = stream_text(response.body)
    assert text == "echo: " + prompt and data[-1] == "[DONE]", response
    assert len(bad_rounds) >= 3 and all(bad_rounds), bad_rounds
    assert_no_traceback(gateway)


def read_slowly(sock, piece=8192, pause=0.0005):
    """One whole Content-Length response, read in small pieces with pauses: the gateway's write
    buffer stays near its limit, so back-pressure pauses and resumes the upstream read many times."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(piece)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")).split(b":")[1])
    while len(body) < length:
        chunk = sock.recv(piece)
        assert chunk, "the gateway closed the connection mid-answer"
        body += chunk
        time.sleep(pause)
    return head, body


def test_a_slow_reader_of_a_large_answer_leaves_no_paused_upstream_connection_behind(gateway, mock):
    """A slow client pauses the upstream read (back-pressure). When the answer ends while paused,
    the upstream connection must be resumed before it goes back to the pool: otherwise the next
    request sent on it waits for an answer that is never read."""
    for attempt in range(4):
        # Whether the last read comes while paused depends on how the body splits into reads.
        size = 6_000_000 + attempt * 77_777
        with socket.socket() as sock:
            # A tiny receive window (set before connecting) keeps the gateway's buffer full, so the
            # last upstream read of the answer usually happens with reading paused.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(IO_TIMEOUT)
            sock.connect(("127.0.0.1", gateway.port))
            sock.sendall(chat(f"big {attempt}", extra=b"x-mock-fault: huge=%d\r\n" % size))
            head, body = read_slowly(sock)
            assert head.startswith(b"HTTP/1.1 200 ") and len(body) > size
        for i in range(3):  # served on the pooled upstream connection, promptly
            client = Client(gateway.port, timeout=5.0)
            client.send(chat(f"after {attempt}.{i}"))
            assert reply_text(client.response()) == f"echo: after {attempt}.{i}"
            client.close()


def test_client_disconnect_mid_stream_leaves_the_gateway_healthy(start_gateway, slow_mock, upstream_client):
    gateway = start_proxy(start_gateway, slow_mock, client=upstream_client)
    client = Client(gateway.port)
    client.send(chat(" ".join(f"word{i}" for i in range(200)), stream=True))  # ~10 s of stream
    status, headers = client.read_head()
    assert status == 200 and headers.get("transfer-encoding") == "chunked", headers
    assert client.read_chunk().startswith(b"data:")
    client.close()
    time.sleep(0.3)
    assert_healthy(gateway)
    again = Client(gateway.port)
    again.send(chat("after the disconnect", stream=True))
    response = again.response()
    text, data = stream_text(response.body)
    assert text == "echo: after the disconnect" and data[-1] == "[DONE]", response
    assert_no_traceback(gateway)

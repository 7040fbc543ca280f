"""The front door, byte by byte: raw sockets against a real gateway in front of the mock upstream.

Keep-alive, pipelining, request body framings (chunked, Expect: 100-continue, HEAD) and smuggling
rejects. Every read has a deadline, so a gateway that stops answering fails the test instead of
hanging it. Smuggling rejects are checked on both sides: the client gets an OpenAI-shaped error and
the mock's request log proves that nothing reached the upstream.

The raw client is in front_door_client.py; limits, garbage and slow clients are in
test_front_door_limits.py, isolation between connections in test_front_door_isolation.py.
"""

import json
import socket
import time

import pytest

from front_door_client import HEALTH, IO_TIMEOUT, Client, assert_openai_error, bodies, chat, chat_body, reply_text
from harness import start_proxy


@pytest.fixture
def gateway(start_gateway, mock):
    """Overrides the conftest fixture: the front door does not depend on the upstream backend, so
    these tests run once, on the default one."""
    return start_proxy(start_gateway, mock)


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


def http10(request):
    """``request`` (an HTTP/1.1 request from front_door_client) as HTTP/1.0 asking for keep-alive."""
    line, rest = request.split(b"\r\n", 1)
    return line.replace(b"HTTP/1.1", b"HTTP/1.0") + b"\r\nConnection: keep-alive\r\n" + rest


def test_http10_keep_alive_answers_say_keep_alive_and_the_connection_stays(gateway, mock):
    # An HTTP/1.0 client (ApacheBench's ab -k) keeps its connection only when the answer says
    # "Connection: keep-alive" (RFC 9112 appendix C.2.2); without it, it reads until the close.
    client = Client(gateway.port)
    body = json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode()
    no_model = b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    for request, status in (
        (b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 200),
        (http10(chat("old")), 200),  # relayed from the upstream
        (http10(no_model), 400),  # Alloy's own error
        (http10(b"GET /v1/nowhere HTTP/1.1\r\nHost: g\r\n\r\n"), 404),  # refused before any call
    ):
        client.send(request)
        response = client.response()
        assert response.status == status, response
        assert response.headers.get("connection", "").lower() == "keep-alive", response
    assert not client.closed_within(0.3), "the gateway closed an HTTP/1.0 keep-alive connection"
    # A stream to an HTTP/1.0 client ends with the connection (no chunks): it says close, not keep-alive.
    client.send(http10(chat("s", stream=True)))
    status, headers = client.read_head()
    assert status == 200 and headers.get("connection", "").lower() == "close", headers
    assert client.read_to_eof().endswith(b"data: [DONE]\n\n")


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


@pytest.mark.parametrize(
    "head, status",
    [
        (b"Content-Length: abc\r\n", 400),  # refused by the parser, the request line read
        (b"Transfer-Encoding: gzip\r\n", 501),
        (b"Content-Length: 99999999999\r\n", 413),  # refused for its size, before its body
        (b"Expect: 100-continue\r\nContent-Length: 99999999999\r\n", 413),
    ],
)
def test_a_head_request_refused_before_dispatch_gets_the_head_alone(gateway, mock, head, status):
    """RFC 9110 section 9.3.2 holds for refusals too: a client that sent HEAD reads no body, so
    the bytes after the head would be taken for the start of another response."""
    for path in (b"/v1/chat/completions", b"/v1/messages"):  # OpenAI's and Anthropic's error shapes
        client = Client(gateway.port)
        client.send(b"HEAD %s HTTP/1.1\r\nHost: g\r\n%s\r\n" % (path, head))
        answered, headers = client.read_head()
        assert answered == status and int(headers["content-length"]) > 0, headers
        assert client.closed_within(5) and client.buffer == b"", client.buffer  # the head, then the close
    assert mock.requests() == []


def test_a_refusal_after_an_answered_head_request_has_its_body(gateway, mock):
    client = Client(gateway.port)
    client.send(b"HEAD /health HTTP/1.1\r\nHost: g\r\n\r\nGET /health HTTP/1.1\r\nHost: g\r\nContent-Length: abc\r\n\r\n")
    assert client.read_head()[0] == 200
    refused = client.response()  # the GET's 400, whose body is there to read
    assert refused.status == 400
    assert_openai_error(refused, 400)


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
    assert reply_after_continue(client, b"Expect: 100-continue\r\n", body) == "echo: after continue"
    [received] = mock.requests()
    assert received["body"] == json.loads(body)
    assert "expect" not in received["headers"], "Expect is answered by the gateway, never forwarded"


def test_expect_sent_twice_is_one_list_that_still_asks_for_100_continue(gateway, mock):
    twice = b"Expect: 100-continue\r\nExpect: 100-continue\r\n"
    assert reply_after_continue(Client(gateway.port), twice, chat_body("asked twice")) == "echo: asked twice"


def reply_after_continue(client, fields, body):
    """Send a chat head with ``fields`` and hold its body back until the gateway says ``100
    Continue`` (without it the read times out), then send the body: the reply's text."""
    client.send(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n" + fields
        + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    client.sock.settimeout(5)
    assert client.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    client.send(body)
    return reply_text(client.response())


def test_a_body_refused_by_its_length_gets_its_413_without_a_100_continue(gateway, mock):
    """RFC 9110 section 10.1.1: a server that will refuse the body answers at once, and does not
    invite the client to send it first."""
    client = Client(gateway.port)
    client.send(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nExpect: 100-continue\r\n"
        b"Content-Type: application/json\r\nContent-Length: 999999999999\r\n\r\n"
    )
    client.sock.settimeout(5)
    assert client.read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 413 ")
    assert mock.requests() == []


def test_a_wrong_key_is_refused_from_the_head_without_a_100_continue(start_gateway, mock):
    """RFC 9110 section 10.1.1: the head alone decides a missing or wrong key, so the client is not
    invited to upload a body that would be refused; the connection closes after the answer."""
    gateway = start_proxy(start_gateway, mock, server='master_key = "sk-master"')
    for path, key, shape in (
        (b"/v1/chat/completions", b"wrong", "openai"),
        (b"/v1/audio/transcriptions", None, "openai"),
        (b"/v1/messages", b"wrong", "anthropic"),
    ):
        client = Client(gateway.port)
        client.send(
            b"POST %s HTTP/1.1\r\nHost: gateway\r\nExpect: 100-continue\r\n%s"
            b"Content-Type: application/json\r\nContent-Length: 5000000\r\n\r\n"
            % (path, b"" if key is None else b"Authorization: Bearer " + key + b"\r\n")
        )
        client.sock.settimeout(5)
        response = client.response()
        assert response.status == 401, (path, response)
        error = response.json()
        assert error["type"] == "error" if shape == "anthropic" else error["error"]["code"] == "invalid_api_key"
        assert response.headers.get("connection") == "close" and client.closed_within(5)
    # The right key is asked for its body, as before.
    body = chat_body("keyed")
    fields = b"Expect: 100-continue\r\nAuthorization: Bearer sk-master\r\n"
    assert reply_after_continue(Client(gateway.port), fields, body) == "echo: keyed"
    assert bodies(mock) == [json.loads(body)]  # nothing refused reached the upstream


def test_an_expect_head_pipelined_behind_a_request_waits_for_its_answer(start_gateway, mock):
    # The 100 (or the refusal of a wrong key) went out before the answer of the request read in the
    # same packet ahead of it; a refusal then closed the connection under that request, proxied and
    # billed, its answer lost.
    gateway = start_proxy(start_gateway, mock, server='master_key = "sk-master"')
    auth = b"Authorization: Bearer sk-master\r\n"
    first = chat("first", extra=auth)
    for key, second_status in ((b"wrong", 401), (b"sk-master", 200)):
        body = chat_body("second")
        expect = (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\nExpect: 100-continue\r\nAuthorization: Bearer %s\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (key, len(body))
        )
        client = Client(gateway.port)
        client.send(first + expect)
        assert reply_text(client.response()) == "echo: first"
        if second_status == 401:
            assert client.response().status == 401 and client.closed_within(5)
            continue
        assert client.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        client.send(body)
        assert reply_text(client.response()) == "echo: second"
        assert not client.closed_within(0.3) and client.buffer == b""  # one 100, no second


def test_an_expect_head_waits_also_behind_an_answer_from_the_cache(start_gateway, mock):
    # A cache hit ends inside its own handling, before the requests after it in the same read are
    # queued: that moment looked like "nothing in flight", and the 100 (or a wrong key's refusal,
    # closing the connection under the proxied request that followed) went out too early.
    gateway = start_proxy(start_gateway, mock, server='master_key = "sk-master"\n\n[cache]\nenabled = true')
    auth = b"Authorization: Bearer sk-master\r\n"
    warm = Client(gateway.port)
    warm.send(chat("cached", extra=auth))
    assert reply_text(warm.response()) == "echo: cached"
    for key in (b"wrong", b"sk-master"):
        mid = "mid " + key.decode()
        body = chat_body("last")
        expect = (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\nExpect: 100-continue\r\nAuthorization: Bearer %s\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (key, len(body))
        )
        client = Client(gateway.port)
        client.send(chat("cached", extra=auth) + chat(mid, extra=auth) + expect)
        hit = client.response()
        assert reply_text(hit) == "echo: cached" and hit.headers["x-alloy-cache"] == "hit"
        assert reply_text(client.response()) == f"echo: {mid}"
        if key == b"wrong":
            assert client.response().status == 401 and client.closed_within(5)
            continue
        assert client.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        client.send(body)
        assert reply_text(client.response()) == "echo: last"
        assert not client.closed_within(0.3) and client.buffer == b""


def test_a_target_in_absolute_form_is_routed_by_its_path(gateway, mock):
    """RFC 9112 section 3.2.2: a server MUST accept ``http://host/path`` as a request target."""
    client = Client(gateway.port)
    client.send(b"GET http://gateway.example/health HTTP/1.1\r\nHost: gateway.example\r\n\r\n")
    assert client.response().status == 200
    body = chat_body("absolute")
    client.send(
        b"POST HTTPS://gateway.example:443/v1/chat/completions HTTP/1.1\r\nHost: gateway.example\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    assert reply_text(client.response()) == "echo: absolute"
    [received] = mock.requests()
    assert received["path"] == "/v1/chat/completions"


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
    "chunk-size-then-space": ({400}, lambda b: POST + b"Host: g\r\nTransfer-Encoding: chunked\r\n\r\n%x \r\n" % len(b) + b + b"\r\n0\r\n\r\n"),
    "nul-in-chunk-extension": ({400}, lambda b: POST + b"Host: g\r\nTransfer-Encoding: chunked\r\n\r\n%x;a=\x00\r\n" % len(b) + b + b"\r\n0\r\n\r\n"),
    "fragment-in-target": ({400}, lambda b: b"POST /v1/chat/completions#x HTTP/1.1\r\nHost: g\r\nContent-Length: %d\r\n\r\n" % len(b) + b),
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


def test_empty_transfer_coding_list_elements_are_ignored(gateway, mock):
    """RFC 9110 section 5.6.1.2: ``, chunked,`` is the list ``chunked``, so the body is read as chunks."""
    client = Client(gateway.port)
    client.send(POST + b"Host: g\r\nContent-Type: application/json\r\nTransfer-Encoding: , chunked,\r\n\r\n" + chunked(chat_body("listed")))
    assert reply_text(client.response()) == "echo: listed"
    assert bodies(mock) == [json.loads(chat_body("listed"))]


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


def test_an_http10_client_gets_a_stream_it_can_read(gateway):
    # RFC 9112 section 6.1: no Transfer-Encoding to an HTTP/1.0 request. Its stream (of unknown
    # length) is delimited by closing the connection; a 1.0 client once read chunk sizes as data.
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "old client"}], "stream": True})
    old = Client(gateway.port)
    old.send(
        b"POST /v1/chat/completions HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (len(body), body.encode())
    )
    assert old.closed_within(5)
    head, _, sse = old.buffer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding" not in head.lower()
    assert b"connection: close" in head.lower()
    events = [line[6:] for line in sse.split(b"\n") if line.startswith(b"data: ")]
    assert events[-1] == b"[DONE]" and "".join(
        json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1] if json.loads(e)["choices"]
    ) == "echo: old client"


def test_an_http10_client_of_the_messages_api_gets_a_stream_it_can_read(gateway):
    # /v1/messages translated onto an OpenAI-compatible provider frames its own stream.
    body = json.dumps({"model": "gpt-4o-mini", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "old client"}]})
    old = Client(gateway.port)
    old.send(
        b"POST /v1/messages HTTP/1.0\r\nContent-Type: application/json\r\nanthropic-version: 2023-06-01\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body.encode())
    )
    assert old.closed_within(5)
    head, _, sse = old.buffer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding" not in head.lower(), head
    events = [line[7:] for line in sse.split(b"\n") if line.startswith(b"event: ")]
    assert events[0] == b"message_start" and events[-1] == b"message_stop", events

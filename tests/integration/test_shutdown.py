"""Graceful shutdown: SIGTERM drains what is in flight, refuses what is new and exits 0.

A streaming chat in flight when the signal arrives must finish whole; an idle gateway must exit at
once; a second signal or ``shutdown_timeout`` must end a drain that would otherwise wait for ever.
"""

import json
import signal
import socket
import time

import pytest

from harness import dechunk, exit_code, read_until_closed, start_proxy, stream_text, wait_until

IO_TIMEOUT = 10.0


def chat(text, stream=False, extra=b""):
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], "stream": stream}).encode()
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


def connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)


def wait_for_line(process, text, seconds=5.0):
    if not wait_until(lambda: text in process.stderr, seconds, interval=0.02):
        pytest.fail(f"{text!r} never appeared on the gateway's stderr:\n{process.stderr}")


def assert_refused(port):
    """A new connection is refused, or closed without an answer."""
    try:
        sock = connect(port)
    except ConnectionRefusedError:
        return
    with sock:
        try:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n")
        except OSError:
            return
        answer = read_until_closed(sock, 5)
    assert answer == b"", f"a connection made after the signal was served: {answer[:200]!r}"


def logged_gateway(start_gateway, mock, log):
    """A gateway in front of ``mock`` with a 1 s shutdown_timeout, its access log in ``log``."""
    config = (
        f'[server]\nshutdown_timeout = 1\n\n[providers.openai]\nbase_url = "{mock.base}/v1"\napi_key = "env:K"\n'
        f'\n[log]\npath = "{log}"\n'
    )
    return start_gateway(config=config, env={"K": "sk-provider"})


@pytest.fixture
def slow_mock(start_mock):
    """A mock whose streams send 20 words a second."""
    return start_mock("--api-key", "sk-provider", "--tokens-per-second", "20")


def test_sigterm_lets_a_stream_in_flight_finish_then_exits_0(start_gateway, slow_mock, upstream_client):
    gateway = start_proxy(start_gateway, slow_mock, client=upstream_client)
    prompt = " ".join(f"word{i}" for i in range(30))  # ~1.5 s of stream
    idle = connect(gateway.port)  # a keep-alive connection between requests
    idle.sendall(b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n")
    assert idle.recv(65536).startswith(b"HTTP/1.1 200 ")
    sock = connect(gateway.port)
    sock.sendall(chat(prompt, stream=True))
    received = sock.recv(65536)
    assert received.startswith(b"HTTP/1.1 200 "), received
    gateway.signal(signal.SIGTERM)
    wait_for_line(gateway, "draining")
    assert_refused(gateway.port)
    assert read_until_closed(idle, 1) == b"", "the idle connection got bytes during the drain"
    assert gateway.popen.poll() is None, "the gateway exited with a stream in flight"
    received += read_until_closed(sock, 15)
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower(), head
    assert body.endswith(b"0\r\n\r\n"), f"the stream was cut: {body[-200:]!r}"
    text, data = stream_text(dechunk(body))
    assert text == "echo: " + prompt
    assert data[-1] == "[DONE]"
    assert exit_code(gateway, 10) == 0, gateway.stderr


def test_requests_pipelined_before_the_signal_are_answered_and_the_last_answer_closes(start_gateway, slow_mock):
    """Nothing a client sent before SIGTERM is dropped: a request pipelined behind a stream in
    flight is answered after it, and only its answer says ``connection: close``."""
    gateway = start_proxy(start_gateway, slow_mock)
    prompt = " ".join(f"word{i}" for i in range(20))  # ~1 s of stream
    sock = connect(gateway.port)
    sock.sendall(chat(prompt, stream=True) + chat("behind the stream"))
    received = sock.recv(65536)
    assert received.startswith(b"HTTP/1.1 200 "), received
    gateway.signal(signal.SIGTERM)
    wait_for_line(gateway, "draining")
    received += read_until_closed(sock, 15)
    stream, separator, second = received.partition(b"0\r\n\r\nHTTP/1.1 ")
    assert separator, f"the pipelined request got no answer: {received[-300:]!r}"
    stream_head, _, stream_body = stream.partition(b"\r\n\r\n")
    assert b"connection: close" not in stream_head.lower(), "the stream's answer closed the connection"
    assert stream_text(dechunk(stream_body + b"0\r\n\r\n"))[0] == "echo: " + prompt
    head, _, body = second.partition(b"\r\n\r\n")
    assert head.startswith(b"200 ") and b"connection: close" in head.lower(), head
    assert json.loads(body)["choices"][0]["message"]["content"] == "echo: behind the stream"
    assert exit_code(gateway, 10) == 0, gateway.stderr


def test_sigint_on_an_idle_gateway_exits_0_promptly(start_gateway, mock):
    gateway = start_proxy(start_gateway, mock)
    sock = connect(gateway.port)  # an idle keep-alive connection must not hold up the exit
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    started = time.monotonic()
    gateway.signal(signal.SIGINT)
    assert exit_code(gateway, 5) == 0, gateway.stderr
    assert time.monotonic() - started < 3, "an idle gateway took long to stop"
    assert read_until_closed(sock, 2) == b""


def test_a_second_sigterm_during_the_drain_exits_at_once(start_gateway, slow_mock):
    gateway = start_proxy(start_gateway, slow_mock)
    sock = connect(gateway.port)
    sock.sendall(chat(" ".join(f"word{i}" for i in range(400)), stream=True))  # ~20 s of stream
    assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    gateway.signal(signal.SIGTERM)
    wait_for_line(gateway, "draining")
    time.sleep(0.3)
    assert gateway.popen.poll() is None, "the gateway did not wait for the stream in flight"
    started = time.monotonic()
    gateway.signal(signal.SIGTERM)
    code = exit_code(gateway, 5)
    assert time.monotonic() - started < 3, "the second signal did not end the drain at once"
    assert code == 0, gateway.stderr
    sock.close()


def test_shutdown_timeout_bounds_the_drain_of_a_hanging_upstream(start_gateway, mock):
    gateway = start_proxy(start_gateway, mock, "shutdown_timeout = 1")
    sock = connect(gateway.port)
    sock.sendall(chat("never answered", extra=b"x-mock-fault: hang\r\n"))
    deadline = time.monotonic() + 5
    while not mock.requests() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mock.requests(), "the request never reached the upstream"
    started = time.monotonic()
    gateway.signal(signal.SIGTERM)
    code = exit_code(gateway, 6)
    assert time.monotonic() - started < 3, "the drain outlived shutdown_timeout"
    assert code == 0, gateway.stderr
    answer = read_until_closed(sock, 2)  # the client is not left hanging either: a 503 that says why
    assert answer.startswith(b"HTTP/1.1 503") and b"shut down" in answer, answer[:300]


def test_a_stream_cut_by_shutdown_timeout_ends_with_an_error_event_and_is_logged(start_gateway, mock, tmp_path):
    # The deadline of a drain ends what is still being answered: a stream gets its error event and
    # last chunk (it was cut bare), and the call is accounted before the access log writes its last
    # lines (it was missing from them).
    log = tmp_path / "access.log"
    gateway = logged_gateway(start_gateway, mock, log)
    sock = connect(gateway.port)
    sock.sendall(chat("one two three four five six seven eight nine ten " * 4, stream=True, extra=b"x-mock-fault: drip=200\r\n"))
    received = b""
    while b"data: " not in received:
        received += sock.recv(65536)
    gateway.signal(signal.SIGTERM)
    assert exit_code(gateway, 6) == 0, gateway.stderr
    received += read_until_closed(sock, 2)
    body = dechunk(received.partition(b"\r\n\r\n")[2])
    assert b'"error"' in body and b"shut down" in body, body[-300:]
    (line,) = [json.loads(text) for text in log.read_text().splitlines()]
    assert line["status"] == 200 and line["error_code"] == "service_unavailable" and line["bytes_out"] > 0


def test_requests_pipelined_behind_one_cut_by_shutdown_timeout_are_answered_503_too(start_gateway, mock, tmp_path):
    """At the drain's deadline the request in flight gets its 503, and each request pipelined
    behind it gets one too, in order, logged; only the last answer says ``connection: close``
    (before, the first 503 did not, and the requests behind it were dropped unanswered)."""
    log = tmp_path / "access.log"
    gateway = logged_gateway(start_gateway, mock, log)
    sock = connect(gateway.port)
    sock.sendall(chat("never answered", extra=b"x-mock-fault: hang\r\n") + chat("behind it") + chat("and behind that"))
    assert wait_until(lambda: mock.requests(), 5), "the first request never reached the upstream"
    gateway.signal(signal.SIGTERM)
    assert exit_code(gateway, 6) == 0, gateway.stderr
    received = read_until_closed(sock, 2)
    answers = received.split(b"HTTP/1.1 ")[1:]
    assert [answer[:3] for answer in answers] == [b"503"] * 3, received[:600]
    heads = [answer.partition(b"\r\n\r\n")[0].lower() for answer in answers]
    assert [b"connection: close" in head for head in heads] == [False, False, True], heads
    assert len(mock.requests()) == 1, "nothing behind the deadline went upstream"
    lines = [json.loads(text) for text in log.read_text().splitlines()]
    assert [line["status"] for line in lines] == [503] * 3


def test_a_request_head_left_half_sent_does_not_hold_the_shutdown_for_read_timeout(start_gateway, mock):
    """A stalled client (or a slowloris) that sent half a head before the signal is refused within
    seconds of the drain's start, not waited for until read_timeout."""
    gateway = start_proxy(start_gateway, mock, "read_timeout = 30\nshutdown_timeout = 30")
    sock = connect(gateway.port)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: gateway\r\n")  # no blank line: the head never ends
    time.sleep(0.3)
    started = time.monotonic()
    gateway.signal(signal.SIGTERM)
    assert exit_code(gateway, 10) == 0, gateway.stderr
    assert time.monotonic() - started < 6, "the half-sent head held the shutdown"
    answer = read_until_closed(sock, 2)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 503"), answer[:300]

"""The front door under abuse: raw sockets against a real gateway in front of the mock upstream.

Limits (431, 413, the connection cap), garbage on the plain port, slow clients and many idle
connections. Every read has a deadline, so a gateway that stops answering fails the test instead of
hanging it, and the mock's request log proves that nothing refused reached the upstream.

The raw client is in front_door_client.py; keep-alive, framings and smuggling are in
test_front_door_framing.py, isolation between connections in test_front_door_isolation.py.
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

from front_door_client import (
    HEALTH,
    IO_TIMEOUT,
    Client,
    assert_healthy,
    assert_no_traceback,
    assert_openai_error,
    chat,
    reply_text,
)
from harness import start_proxy, wait_until
from metrics_helpers import scrape


@pytest.fixture
def gateway(start_gateway, mock):
    """Overrides the conftest fixture: the front door does not depend on the upstream backend, so
    these tests run once, on the default one."""
    return start_proxy(start_gateway, mock)


# --- limits ------------------------------------------------------------------------------------------


def test_limits_431_and_413_are_answered_and_close(start_gateway, mock):
    gateway = start_proxy(start_gateway, mock, "max_header_bytes = 4096\nmax_body_bytes = 1024")
    client = Client(gateway.port, timeout=5)
    client.send(b"GET /health HTTP/1.1\r\nHost: gateway\r\nX-Big: " + b"a" * 6000 + b"\r\n\r\n")
    assert_openai_error(client.response(), 431, "request_header_fields_too_large")
    assert client.closed_within(5)

    client = Client(gateway.port, timeout=5)  # the target alone passes the limit: 414
    client.send(b"GET /health?" + b"q" * 6000 + b" HTTP/1.1\r\nHost: gateway\r\n\r\n")
    assert_openai_error(client.response(), 414, "uri_too_long")
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


def test_an_upload_that_keeps_coming_outlives_read_timeout_and_a_dripping_body_does_not(start_gateway, mock):
    # read_timeout bounds a head from its first byte, and then each pause of a body: an upload at a
    # modest rate may take longer (it once got 408 halfway), a body dripping bytes may not.
    gateway = start_proxy(start_gateway, mock, "read_timeout = 2")
    content = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "big " * 50_000}]})
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
    steady, dripping = Client(gateway.port), Client(gateway.port)
    steady.send(head + b"Content-Length: %d\r\n\r\n" % len(content))
    dripping.send(head + b"Content-Length: %d\r\n\r\n" % len(content))
    body = content.encode()
    started = time.monotonic()
    for at in range(0, len(body), 20_000):  # 20 KB every 0.4 s: about 4 s for the whole body
        steady.send(body[at : at + 20_000])
        try:
            dripping.send(b" ")  # a byte at a time: never enough to restart its clock
        except OSError:
            pass  # refused already
        time.sleep(0.4)
    assert time.monotonic() - started > 3.5
    assert steady.response().status == 200
    assert dripping.closed_within(1)
    assert_openai_error(dripping.response(), 408, "request_timeout")


def test_the_body_clock_starts_when_the_head_is_whole(start_gateway, mock):
    # A head that took most of read_timeout, then a body well within read_timeout of it: served
    # (its first body bytes were once timed from the head's first byte).
    gateway = start_proxy(start_gateway, mock, "read_timeout = 3")
    content = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "late body " * 2000}]}).encode()
    client = Client(gateway.port)
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(content)
    client.send(head[:20])
    time.sleep(2.2)
    client.send(head[20:])
    time.sleep(2.0)
    client.send(content)
    assert client.response().status == 200


def test_the_gateway_lifts_its_open_file_limit_to_the_hard_one(start_gateway, mock):
    """Every connection is a file descriptor: a soft limit of 256 inherited from the shell would
    refuse the 257th connection long before max_connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard <= 256 or not os.path.exists("/proc/self/limits"):
        pytest.skip("needs a hard limit above 256 and /proc to read the gateway's limits")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))  # what the gateway inherits
    try:
        gateway = start_proxy(start_gateway, mock)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    with open(f"/proc/{gateway.pid}/limits") as limits:
        line = next(line for line in limits if line.startswith("Max open files"))
    assert line.split()[3:5] == [str(hard), str(hard)], line
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


def test_a_refused_connection_that_already_sent_its_request_still_reads_the_503(start_gateway, mock):
    """The 503 goes out before the client's request is read. Closing with that request unread would
    make the kernel send a reset, which destroys the 503 on its way: the gateway half-closes and
    reads until the client closes (a lingering close), so every refused client reads its answer."""
    gateway = start_proxy(start_gateway, mock, "max_connections = 2")
    held = [Client(gateway.port) for _ in range(2)]
    try:
        for client in held:
            client.send(HEALTH)
            assert client.response().status == 200
        refused = []
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=IO_TIMEOUT)
            sock.sendall(chat("over the cap"))
            refused.append(sock)
        time.sleep(0.05)  # the gateway answers (and would close) before these reads
        for sock in refused:
            received = b""
            while chunk := sock.recv(65536):  # ConnectionResetError here is the failure
                received += chunk
            sock.close()
            assert received.startswith(b"HTTP/1.1 503 ") and b"too_many_connections" in received, received
    finally:
        for client in held:
            client.close()
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
        assert b"\r\nx-request-id: " in head.lower()  # as every error answer has
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
    # Shedding load shows: counted as Alloy's own error, and a line in the access log.
    assert scrape(gateway.base).total("alloy_errors_total", code="too_many_connections") == 1
    assert wait_until(lambda: '"error_code":"too_many_connections"' in gateway.stderr, 5), gateway.stderr[-2000:]

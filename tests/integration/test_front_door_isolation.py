"""The front door, one connection against another: raw sockets against a real gateway in front of
the mock upstream. A misbehaving client, a slow reader of a large answer and a client leaving
mid-stream never disturb the other connections nor leave the gateway unhealthy. Every read has a
deadline, so a gateway that stops answering fails the test instead of hanging it.

The raw client is in front_door_client.py; keep-alive, framings and smuggling are in
test_front_door_framing.py, limits, garbage and slow clients in test_front_door_limits.py.
"""

import random
import socket
import threading
import time

import pytest

from front_door_client import IO_TIMEOUT, Client, assert_healthy, assert_no_traceback, chat, reply_text
from harness import start_proxy, stream_text


@pytest.fixture
def gateway(start_gateway, mock):
    """Overrides the conftest fixture: the front door does not depend on the upstream backend, so
    these tests run once, on the default one."""
    return start_proxy(start_gateway, mock)


@pytest.fixture
def slow_mock(start_mock):
    """A mock whose streams send 20 words a second."""
    return start_mock("--api-key", "sk-provider", "--tokens-per-second", "20")


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

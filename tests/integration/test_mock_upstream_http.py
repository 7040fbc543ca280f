"""The mock upstream as its users see it, the HTTP contract: a real ``python -m alloy.mock_upstream``
process driven by raw sockets (keep-alive and pipelining, chunked bodies and Expect: 100-continue,
protocol errors), and its options, in-process use and shutdown.

The SDK contract is in test_mock_upstream_api.py, fault injection in test_mock_upstream_faults.py;
the process class and helpers in mock_upstream_helpers.py.
"""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import openai
import pytest

from alloy.mock_upstream import MockOptions, start_mock_upstream

from mock_upstream_helpers import KEY, MockProcess, chat_request, exchange, parse_responses, user
from mock_upstream_helpers import shared_upstream, start_upstream, upstream  # noqa: F401 (fixtures)


# --- HTTP on raw sockets ----------------------------------------------------------------------------


def test_keep_alive_pipelining_answers_in_order(upstream):
    wire = (
        chat_request("one")
        + chat_request("two", extra=b"x-mock-fault: slow-first-byte=200\r\n")  # later ones wait for it
        + chat_request("three", connection=b"Connection: close\r\n")
    )
    responses = exchange(upstream.port, wire)
    assert [json.loads(body)["choices"][0]["message"]["content"] for _, _, body in responses] == [
        "echo: one", "echo: two", "echo: three",
    ]  # fmt: skip
    assert responses[-1][1]["connection"] == "close"


def test_chunked_request_body_and_expect_continue(upstream):
    body = json.dumps({"model": "m", "messages": user("chunked body")}).encode()
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: mock\r\nAuthorization: Bearer " + KEY.encode() + b"\r\n"
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:10], body[10:])) + b"0\r\n\r\n"
    wire = head + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked
    [(status, _, data)] = exchange(upstream.port, wire)
    assert status == 200 and json.loads(data)["choices"][0]["message"]["content"] == "echo: chunked body"

    with socket.create_connection(("127.0.0.1", upstream.port), timeout=5) as sock:
        sock.sendall(head + b"Expect: 100-continue\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body))
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert json.loads(parse_responses(received)[0][2])["choices"][0]["message"]["content"] == "echo: chunked body"


def test_protocol_error_answers_its_status_and_closes(upstream):
    with socket.create_connection(("127.0.0.1", upstream.port), timeout=5) as sock:
        sock.sendall(chat_request("before"))
        received = sock.recv(65536)
        # RFC 9112 section 6.1: Content-Length with Transfer-Encoding is a smuggling vector.
        sock.sendall(b"POST /v1/x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")
        while chunk := sock.recv(65536):
            received += chunk
    first, second = parse_responses(received)
    assert json.loads(first[2])["choices"][0]["message"]["content"] == "echo: before"
    assert second[0] == 400 and second[1]["connection"] == "close"
    assert set(json.loads(second[2])["error"]) == {"message", "type", "param", "code"}


# --- options, in-process use and shutdown -------------------------------------------------------


def test_latency_and_tokens_per_second(start_upstream):
    slow = start_upstream("--latency-ms", "200", "--tokens-per-second", "20")
    started = time.monotonic()
    stream = slow.client(api_key="k").chat.completions.create(model="m", messages=user("a b c d"), stream=True)
    arrivals = [time.monotonic() - started for _ in stream]
    assert arrivals[0] >= 0.2, "latency comes before the first byte"
    assert arrivals[-1] - arrivals[0] >= 0.25, "chunks are paced at 20 a second"


def test_in_process_server_on_port_zero():
    async def run():
        server = await start_mock_upstream("127.0.0.1", 0, MockOptions(record=False))
        port = server.sockets[0].getsockname()[1]
        try:
            async with openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0) as client:
                results = await asyncio.gather(
                    *(client.chat.completions.create(model="m", messages=user(f"parallel {i}")) for i in range(5))
                )
            async with httpx.AsyncClient() as http:
                log = (await http.get(f"http://127.0.0.1:{port}/_mock/requests")).json()
        finally:
            server.close()
        return [r.choices[0].message.content for r in results], log

    contents, log = asyncio.run(run())
    assert contents == [f"echo: parallel {i}" for i in range(5)]
    assert log == {"requests": []}  # record=False keeps no log


def test_sigterm_exits_zero_with_one_listening_line(start_upstream):
    mock = start_upstream()
    with socket.create_connection(("127.0.0.1", mock.port)) as idle:  # an open connection does not delay exit
        idle.sendall(chat_request("hang", extra=b"x-mock-fault: hang\r\n").replace(KEY.encode(), b"k"))
        time.sleep(0.2)
        os.kill(mock.popen.pid, signal.SIGTERM)
        assert mock.popen.wait(10) == 0
    listening = f"alloy mock-upstream listening on http://127.0.0.1:{mock.port}\n"
    assert [line for line in mock.lines if line.strip()] == [listening]


@pytest.mark.parametrize("port", ["65536", "99999", "-1"])
def test_a_port_out_of_range_is_refused(port):
    # The socket layer takes a port modulo 65536: --port 99999 listened on 34463, unannounced.
    result = subprocess.run([sys.executable, "-m", "alloy", "mock-upstream", "--port", port], capture_output=True, text=True, timeout=20)
    assert result.returncode == 2 and "--port" in result.stderr and "listening" not in result.stderr, result.stderr

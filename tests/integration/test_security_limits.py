"""Issue 10, the buffers and the timeouts: whatever a client or an upstream does, the gateway holds a
bounded amount of memory for it, says so with a clear OpenAI-shaped error, and never lets one
connection be held open forever. Each test measures the gateway's resident memory (or time) and
failed on the code before the fix.
"""

import json
import re
import socket
import threading
import time

import pytest

from harness import in_parallel, read_until_closed, wait_until
from security_helpers import ScriptedUpstream, parse_responses, rss_bytes, send_and_read

MiB = 1024 * 1024
CHAT = {"messages": [{"role": "user", "content": "hi"}]}


def post(body, headers=b"", close=True):
    return b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n%scontent-length: %d\r\n%s\r\n%s" % (
        headers, len(body), b"connection: close\r\n" if close else b"", body
    )


def chat(model="gpt-4o-mini", content="hi"):
    return json.dumps({"model": model, "messages": [{"role": "user", "content": content}]}).encode()


def proxy_config(mock, server="", provider="", router=""):
    return f"""
    [server]
    {server}

    [router]
    {router}

    [providers.openai]
    base_url = "{mock.base}/v1"
    api_key = "env:K"
    {provider}
    """


# --- 5a. a translated answer is read whole: capped ---------------------------------------------------


def endless_answer(request):
    """A 200 whose announced body is 200 MiB, written until the gateway hangs up."""
    yield b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % (200 * MiB)
    piece = b" " * MiB
    for _ in range(200):
        yield piece


def test_a_huge_translated_answer_is_refused_not_buffered(start_gateway):
    upstream = ScriptedUpstream(endless_answer)
    try:
        gateway = start_gateway(
            config=f"""
            [providers.anthropic]
            base_url = "{upstream.base}"
            api_key = "env:K"
            """,
            env={"K": "sk-ant"},
        )
        before = rss_bytes(gateway.pid)
        [(status, _, payload)] = parse_responses(send_and_read(gateway.port, post(chat("claude-3-5-haiku")), timeout=30))
        grown = rss_bytes(gateway.pid) - before
    finally:
        upstream.stop()
    assert status == 502
    assert json.loads(payload)["error"]["code"] == "upstream_response_too_large"
    assert grown < 120 * MiB, f"RSS grew by {grown // MiB} MiB for a 200 MiB answer (the cap is 64 MiB)"


# --- 5b. pipelined bodies wait in the socket, not in the gateway -------------------------------------------


def test_pipelined_bodies_do_not_pile_up_in_memory(start_gateway, mock):
    gateway = start_gateway(config=proxy_config(mock), env={"K": "sk-provider"})
    before = rss_bytes(gateway.pid)
    sock = socket.create_connection(("127.0.0.1", gateway.port))
    sock.settimeout(3.0)
    big = chat(content="x" * (8 * MiB))
    # The first request waits 4 s upstream; 34 more of 8 MiB each are pipelined behind it.
    sent = 0
    try:
        sock.sendall(post(chat(), b"x-mock-fault: slow-first-byte=4000\r\n", close=False))
        for _ in range(34):
            sock.sendall(post(big, close=False))
            sent += 1
    except TimeoutError:
        pass  # the gateway stopped reading: the bytes wait in the socket buffers
    grown = rss_bytes(gateway.pid) - before
    sock.close()
    assert sent < 34, "the gateway read every pipelined body while the first request was in flight"
    assert grown < 64 * MiB, f"RSS grew by {grown // MiB} MiB holding pipelined requests"
    [(status, _, _)] = parse_responses(send_and_read(gateway.port, b"GET /health HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n"))
    assert status == 200


def test_pipelined_requests_are_all_answered_in_order_when_reading_resumes(start_gateway, mock):
    gateway = start_gateway(config=proxy_config(mock), env={"K": "sk-provider"})
    requests = [post(chat(content=f"n{i}-" + "y" * (300 * 1024)), close=i == 9) for i in range(10)]
    received = send_and_read(gateway.port, b"".join(requests), timeout=30)
    answers = parse_responses(received)
    assert [status for status, _, _ in answers] == [200] * 10
    contents = [json.loads(body)["choices"][0]["message"]["content"][:9] for _, _, body in answers]
    assert contents == [f"echo: n{i}-"[:9] for i in range(10)]


def test_a_client_that_takes_no_answers_stops_being_read(start_gateway, mock):
    # /health and refusals are answered at once, without a call: a client pipelining them and
    # reading nothing once made the gateway queue answers without bound (600 MB in 30 s). Now it
    # stops reading that client while its socket is full, and every answer still comes, in order.
    gateway = start_gateway(config=proxy_config(mock, server='master_key = "mk"'), env={"K": "sk-provider"})
    before = rss_bytes(gateway.pid)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", gateway.port))
    sock.setblocking(False)
    requests = [b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n", b"GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n"]  # 200, 401
    sent, rest, stalled_since = 0, b"", None  # whole requests sent; what is left of the next one
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not rest:
            rest = requests[sent % 2]
        try:
            rest = rest[sock.send(rest) :]
        except BlockingIOError:  # both socket buffers are full: the gateway stopped reading
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > 1.0:
                break
            time.sleep(0.01)
            continue
        stalled_since = None
        if not rest:
            sent += 1
    grown = rss_bytes(gateway.pid) - before
    assert stalled_since is not None, f"the gateway read all of {sent} requests sent in 10 s"
    assert grown < 48 * MiB, f"RSS grew by {grown // MiB} MiB for {sent} requests nobody read answers to"
    # Now it reads (while the rest goes out: the gateway reads more only as answers are taken).
    sock.setblocking(True)
    pieces = []
    sock.settimeout(30)
    writer = threading.Thread(target=sock.sendall, args=(rest + b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",))
    writer.start()
    while piece := sock.recv(1 << 20):  # until the gateway closes, after the last answer
        pieces.append(piece)
    writer.join(30)
    sock.close()
    statuses = re.findall(rb"HTTP/1.1 (\d{3}) ", b"".join(pieces))
    answered = sent + (1 if rest else 0)  # the one cut short was finished by the last write
    assert statuses == [(b"200", b"401")[i % 2] for i in range(answered)] + [b"200"]


# --- 5c. the upstream pool's queue: bounded in length and in time -----------------------------------------


def test_requests_beyond_the_pool_queue_are_refused_at_once(start_gateway, mock):
    gateway = start_gateway(
        config=proxy_config(mock, provider="max_connections = 1\nmax_queued = 1", router="max_retries = 0"),
        env={"K": "sk-provider"},
    )
    slow = b"x-mock-fault: slow-first-byte=1500\r\n"
    before = rss_bytes(gateway.pid)
    body = chat(content="z" * (2 * MiB))
    started = time.monotonic()
    answers = in_parallel([lambda: (send_and_read(gateway.port, post(body, slow), timeout=20), time.monotonic()) for _ in range(12)])
    grown = rss_bytes(gateway.pid) - before
    outcomes = []
    for raw, finished in answers:
        [(status, _, payload)] = parse_responses(raw)
        outcomes.append((status, json.loads(payload).get("error", {}).get("code"), finished - started))
    served = [o for o in outcomes if o[0] == 200]
    refused = [o for o in outcomes if o[0] == 503]
    assert len(served) >= 2 and len(served) + len(refused) == 12, outcomes
    assert all(code == "upstream_pool_exhausted" for _, code, _ in refused)
    assert min(elapsed for _, _, elapsed in refused) < 1.4  # refused before the first answer came back
    assert grown < 80 * MiB


def test_a_request_waits_for_a_pooled_connection_no_longer_than_the_connect_timeout(start_gateway, mock):
    gateway = start_gateway(
        config=proxy_config(mock, provider="max_connections = 1\nconnect_timeout = 1", router="max_retries = 0"),
        env={"K": "sk-provider"},
    )
    hang = post(chat(), b"x-mock-fault: slow-first-byte=8000\r\n")
    first, second = in_parallel(
        [lambda: send_and_read(gateway.port, hang, timeout=20),
         lambda: (time.sleep(0.3), send_and_read(gateway.port, post(chat()), timeout=20), time.monotonic())[1:]]
    )  # fmt: skip
    raw, _ = second
    [(status, _, payload)] = parse_responses(raw)
    assert status == 503 and json.loads(payload)["error"]["code"] == "upstream_pool_exhausted"
    assert parse_responses(first)[0][0] == 200


# --- 5d. a client that reads nothing does not hold an upstream forever --------------------------------------


def test_a_client_that_stops_reading_is_dropped_after_the_write_timeout(start_gateway, mock):
    gateway = start_gateway(
        config=proxy_config(mock, server="write_timeout = 1", provider="max_connections = 1"), env={"K": "sk-provider"}
    )
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", gateway.port))
    sock.sendall(post(chat(), b"x-mock-fault: huge=60000000\r\n"))
    time.sleep(4.0)  # read nothing: the gateway's buffer fills, then the write timeout runs
    received = read_until_closed(sock, 15)
    sock.close()
    assert len(received) < 60_000_000
    # Its upstream connection (the provider's only one) is free again.
    [(status, _, _)] = parse_responses(send_and_read(gateway.port, post(chat()), timeout=10))
    assert status == 200


def endless_stream(request):
    """A 200 event stream that never ends, written until the gateway hangs up."""
    yield b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
    event = b'data: {"choices":[{"index":0,"delta":{"content":"' + b"x" * 400 + b'"}}]}\n\n'
    chunk = b"%x\r\n%s\r\n" % (len(event), event)
    while True:
        yield chunk * 16


def test_a_client_that_reads_slowly_keeps_its_stream_until_it_stops_reading(start_gateway):
    """Linux wakes a writer only once half of a send buffer of megabytes is free, which a slow but
    steady reader may take longer than write_timeout to free: the gateway reads the client's
    progress from the socket instead, and drops it only once it takes (almost) nothing."""
    upstream = ScriptedUpstream(endless_stream)
    try:
        gateway = start_gateway(
            config=f"""
            [server]
            write_timeout = 3
            [providers.openai]
            base_url = "{upstream.base}/v1"
            api_key = "env:K"
            """,
            env={"K": "sk-provider"},
        )
        request = post(json.dumps({"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode())

        def reader():
            sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
            sock.sendall(request)
            taken, started = 0, time.monotonic()
            while time.monotonic() - started < 10:  # 100 KB/s, steadily: far more than 64 KiB a write_timeout
                wanted = taken + 10_000
                while taken < wanted:
                    piece = sock.recv(wanted - taken)
                    if not piece:
                        sock.close()
                        return f"dropped while reading steadily, after {taken} bytes"
                    taken += len(piece)
                time.sleep(0.1)
            time.sleep(2 * 3 + 3)  # then nothing: dropped within two write_timeouts (progress is read at each end)
            try:
                read_until_closed(sock, 15)
            except BaseException as error:  # noqa: BLE001 - reported below, like the other outcome
                return f"not dropped after it stopped reading: {error}"[:300]
            finally:
                sock.close()
            return "ok"

        assert in_parallel([reader] * 3) == ["ok"] * 3
    finally:
        upstream.stop()


# --- 5e. the httpx backend follows back-pressure ----------------------------------------------------------------


def test_the_httpx_backend_stops_reading_while_the_client_cannot_keep_up(start_gateway, mock):
    gateway = start_gateway(config=proxy_config(mock, provider='client = "httpx"'), env={"K": "sk-provider"})
    [(status, _, _)] = parse_responses(send_and_read(gateway.port, post(chat())))  # httpx imported, warm
    before = rss_bytes(gateway.pid)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", gateway.port))
    sock.sendall(post(chat(), b"x-mock-fault: huge=60000000\r\n"))
    time.sleep(3.0)
    grown = rss_bytes(gateway.pid) - before
    sock.close()
    assert status == 200
    assert grown < 24 * MiB, f"RSS grew by {grown // MiB} MiB while a client read nothing of a 60 MB answer"


# --- 6. empty lines count toward the read timeout ------------------------------------------------------------------


def test_a_crlf_trickle_cannot_hold_a_connection_open(start_gateway, mock):
    gateway = start_gateway(config=proxy_config(mock, server="read_timeout = 2"), env={"K": "sk-provider"})
    sock = socket.create_connection(("127.0.0.1", gateway.port))
    closed = threading.Event()
    received = []

    def read():
        received.append(read_until_closed(sock, 20))
        closed.set()

    threading.Thread(target=read, daemon=True).start()
    started = time.monotonic()
    try:
        for _ in range(4):  # within the limit of empty lines, one every 1.5 s
            if closed.is_set():
                break
            sock.sendall(b"\r\n")
            time.sleep(1.5)
    except OSError:
        pass
    assert wait_until(closed.is_set, 10)
    assert time.monotonic() - started < 6
    [(status, _, _)] = parse_responses(received[0])
    assert status == 408


def test_too_many_empty_lines_are_refused(start_gateway, mock):
    gateway = start_gateway(config=proxy_config(mock), env={"K": "sk-provider"})
    raw = send_and_read(gateway.port, b"\r\n" * 5 + b"GET /health HTTP/1.1\r\nhost: gw\r\n\r\n")
    [(status, _, payload)] = parse_responses(raw)
    assert status == 400 and "empty lines" in json.loads(payload)["error"]["message"]
    raw = send_and_read(gateway.port, b"\r\n" * 4 + b"GET /health HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n")
    assert parse_responses(raw)[0][0] == 200


def test_a_queued_request_whose_client_left_leaves_the_pool_queue_at_once():
    """In process: the pool's queue must not keep a cancelled request (and its body) until a
    connection frees up."""
    import asyncio
    from types import SimpleNamespace

    from alloy.upstream import Timeouts, UpstreamRequest
    from alloy.upstream.pool import CorePool, Origin

    loop = asyncio.new_event_loop()
    try:
        pool = CorePool(Origin("http", "127.0.0.1", 9, ""), SimpleNamespace(name="test", max_connections=1, max_queued=8, pool_idle_timeout=50.0), loop)
        pool._open = 1  # the only connection is busy
        request = UpstreamRequest(b"POST", b"/v1/x", b"host: h\r\n", [b"x" * MiB], MiB, Timeouts(1.0, 1.0, 1.0, 0.0))
        waiting = [pool.start(request, SimpleNamespace(upstream_failed=lambda error: None)) for _ in range(3)]
        assert len(pool._waiting) == 3
        for pending in waiting:
            pending.cancel()
        assert not pool._waiting
    finally:
        loop.close()


def test_a_client_dropped_for_reading_nothing_is_reset_not_left_to_the_kernel(start_gateway, mock):
    """What the client never took is dropped with it: the gateway resets the connection (as nginx's
    reset_timedout_connection does) rather than closing it in order, which would leave the kernel
    holding megabytes of unsent answer per such client, outside max_connections, for minutes."""
    gateway = start_gateway(config=proxy_config(mock, server="write_timeout = 1"), env={"K": "sk-provider"})
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", gateway.port))
    sock.sendall(post(chat(), b"x-mock-fault: huge=60000000\r\n"))
    time.sleep(4.5)  # read nothing: dropped at the write timeout's sweep
    sock.settimeout(5)
    try:
        with pytest.raises(ConnectionResetError):
            while sock.recv(1 << 20):  # what had reached this socket's own buffer, then the reset
                pass
    finally:
        sock.close()

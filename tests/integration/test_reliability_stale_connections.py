"""The keep-alive race (RFC 9112 section 9.3.1) through the running gateway: an upstream may close
an idle keep-alive connection just as the gateway sends the next request on it. That request was
never processed, so the gateway sends it again on a fresh connection, whatever ``max_retries``
says: the client must not get a 502 for a connection the upstream merely timed out.

The upstream here is scripted (security_helpers.ScriptedUpstream): it answers the first request of
each connection (keep-alive) and closes the connection, unanswered, when a second request arrives
on it: the race, made certain. A request that a fresh connection drops, or a reused one drops after the upstream
worked on it for a while, is still a failure like any other.
"""

import http.client
import json
import time

import pytest

from metrics_helpers import scrape
from security_helpers import ScriptedUpstream

REPLY = (
    b'{"id":"chatcmpl-1","object":"chat.completion","created":0,"model":"m",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}'
)


def one_request_per_connection(drop_first=False, work_before_drop=0.0):
    """An upstream answering each connection's first request; a second one on it is read, then
    dropped unanswered, ``work_before_drop`` seconds later. ``drop_first``: drop even the first
    request of a fresh connection (no race: a real failure). Its ``numbers`` log (connection,
    request on it) says what reached it."""

    def reply(request, connection, number):
        if number > 1 or drop_first:
            time.sleep(work_before_drop)
            raise OSError("closed without a byte of answer")
        return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(REPLY) + REPLY

    return ScriptedUpstream(reply, numbered=True)


@pytest.fixture
def upstream():
    server = one_request_per_connection()
    yield server
    server.stop()


def chat(gateway):
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        connection.request("POST", "/v1/chat/completions", body=body, headers={"content-type": "application/json"})
        response = connection.getresponse()
        return response.status, response.getheader("x-alloy-attempts"), response.read()
    finally:
        connection.close()


def gateway_config(base):
    return f"""
        [router]
        max_retries = 0

        [providers.openai]
        base_url = "{base}/v1"
        api_key = "sk-provider"
        """


def test_a_request_lost_to_the_keep_alive_race_is_sent_again_even_without_retries(start_gateway, upstream):
    gateway = start_gateway(config=gateway_config(upstream.base))
    for _ in range(3):
        status, attempts, data = chat(gateway)
        assert status == 200, data
        assert json.loads(data)["choices"][0]["message"]["content"] == "ok"
    # The first went on a fresh connection; each later one met the race once, then went on a new one.
    assert upstream.numbers == [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1)]
    # Two sends each (x-alloy-attempts says so), but no retry: operators would see retries climb
    # on an upstream that merely closes idle connections.
    metrics = scrape(gateway.base)
    assert metrics.total("alloy_attempts_total") == 5
    assert metrics.total("alloy_retries_total") == 0


def test_a_fresh_connection_closed_unanswered_is_still_a_502(start_gateway):
    server = one_request_per_connection(drop_first=True)
    try:
        gateway = start_gateway(config=gateway_config(server.base))
        status, attempts, data = chat(gateway)
        assert status == 502, data
        error = json.loads(data)["error"]
        assert error["code"] == "bad_gateway"
        # The provider is named, its address (which the client has no business knowing) is not.
        assert "upstream 'openai'" in error["message"] and str(server.port) not in error["message"]
        assert server.numbers == [(1, 1)]  # max_retries = 0: tried once
    finally:
        server.stop()


def test_a_reused_connection_dropped_after_the_upstream_worked_on_it_is_not_sent_again(start_gateway):
    # Closed 0.4 s after the request: not the race but a failure (the upstream may have generated,
    # and billed, an answer). With max_retries = 0 it is not sent again.
    server = one_request_per_connection(work_before_drop=0.4)
    try:
        gateway = start_gateway(config=gateway_config(server.base))
        assert chat(gateway)[0] == 200
        status, attempts, data = chat(gateway)
        assert status == 502, data
        assert server.numbers == [(1, 1), (1, 2)]
    finally:
        server.stop()


def test_a_passthrough_upload_lost_to_the_race_is_not_sent_again_without_retries(start_gateway, upstream):
    # Only a model request is resent: an upload or a batch may have been taken, and is not re-made.
    gateway = start_gateway(config=gateway_config(upstream.base))
    assert chat(gateway)[0] == 200
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    try:
        connection.request("POST", "/v1/moderations", body=b'{"input":"hi"}', headers={"content-type": "application/json"})
        assert connection.getresponse().status == 502
    finally:
        connection.close()
    assert upstream.numbers == [(1, 1), (1, 2)]


def test_an_idle_pooled_connection_is_closed_after_pool_idle_timeout(start_gateway):
    """After a burst, the pool's idle connections are closed on time by the sweep, not only when a
    request next looks at them: the gateway's sockets go back to what it uses."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    closed_after = []

    def serve():
        conn, _ = listener.accept()
        with conn:
            received = b""
            while b"\r\n\r\n" not in received or not received.endswith(b"}"):
                received += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(REPLY) + REPLY)
            answered = time.monotonic()
            try:
                conn.recv(1)  # b"" at the gateway's close (or a reset)
            except OSError:
                pass
            closed_after.append(time.monotonic() - answered)

    threading.Thread(target=serve, daemon=True).start()
    try:
        config = gateway_config(f"http://127.0.0.1:{listener.getsockname()[1]}") + "pool_idle_timeout = 1\n"
        gateway = start_gateway(config=config)
        assert chat(gateway)[0] == 200
        deadline = time.monotonic() + 6
        while not closed_after and time.monotonic() < deadline:
            time.sleep(0.1)
        assert closed_after and 0.9 < closed_after[0] < 3.0, closed_after  # 1 s, swept once a second
    finally:
        listener.close()


def test_a_held_answer_is_not_replaced_by_the_race_of_its_own_closed_connection(start_gateway):
    # An upstream that answers 429 (retry at once) with a length, then closes the connection without
    # saying so: the retry, made at once, took that connection before its close was read, met the
    # race, and that failure of Alloy's own (502) replaced the provider's 429 as the answer.
    limited = b'{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}'

    def reply(request, connection, number):
        yield b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 0\r\ncontent-length: %d\r\n\r\n%s" % (len(limited), limited)
        raise OSError("closed right after its answer")

    server = ScriptedUpstream(reply, numbered=True)
    try:
        gateway = start_gateway(config=gateway_config(server.base).replace("max_retries = 0", "max_retries = 1"))
        for _ in range(5):
            status, attempts, data = chat(gateway)
            assert status == 429, data
            assert json.loads(data)["error"]["code"] == "rate_limit_exceeded"
        assert all(number == 1 for _, number in server.numbers)  # never a second request on a closed one
    finally:
        server.stop()

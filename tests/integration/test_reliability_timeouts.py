"""Timeouts through the running gateway (README, "Reliability"): first-byte, stream-idle and total
timeouts, the retry deadline, a model's connect timeout, and streams that fail midway (an error
event, no retry, the connection closed); each seen as the client sees it AND counted in the mock
upstreams' request logs (how many attempts really reached an upstream).

One gateway for the whole module (one per upstream client), in front of shared mocks, both set up
in reliability_gateway.py, whose docstring says how faults are injected; the circuit breaker is
disabled there and tested in test_reliability_breaker.py.
"""

import json
import socket
import threading
import time

import openai
import pytest

from harness import assert_no_crash_logged, start_gateway_process, start_mock_process
from reliability_gateway import events_of, sdk
from reliability_gateway import a, any_gateway, clean_logs, gateway, gateways, mocks  # noqa: F401 (the fixtures this module uses)
from reliability_helpers import PROVIDER_KEY, call, chats, openai_error
from security_helpers import ScriptedUpstream


# --- timeouts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["timed", "timed-provider"])
def test_hang_is_504_after_the_first_byte_timeout_without_retry(any_gateway, a, model):
    reply = call(any_gateway, model, headers={"x-mock-fault": "hang"})
    assert reply.status == 504, reply
    error = openai_error(reply.data)
    assert error["code"] == "upstream_timeout" and error["type"] == "server_error"
    assert 0.9 <= reply.elapsed < 3.0, f"first_byte_timeout = 1 fires between 1 and 2 s, took {reply.elapsed:.2f}s"
    assert reply.attempts == 1 and len(chats(a)) == 1, "a first-byte timeout is not retried"


def test_slow_first_byte_beyond_the_timeout_is_504(gateway, a):
    reply = call(gateway, "timed", headers={"x-mock-fault": "slow-first-byte=3500"})
    assert reply.status == 504, reply
    assert openai_error(reply.data)["code"] == "upstream_timeout"
    assert reply.elapsed < 3.2, "the gateway gave up before the upstream answered"
    assert reply.attempts == 1 and len(chats(a)) == 1


def test_slow_first_byte_within_the_timeout_succeeds(gateway, a):
    reply = call(gateway, "timed", headers={"x-mock-fault": "slow-first-byte=300"})
    assert reply.status == 200, reply
    assert reply.attempts == 1 and len(chats(a)) == 1


def test_hanging_stream_is_504_before_its_head(gateway, a):
    reply = call(gateway, "timed", headers={"x-mock-fault": "hang"}, stream=True)
    assert reply.status == 504, reply
    assert openai_error(reply.data)["code"] == "upstream_timeout"
    assert len(chats(a)) == 1


@pytest.mark.parametrize("model", ["timed", "timed-provider"])
def test_stream_idle_timeout_ends_the_stream_with_an_error_event(any_gateway, a, model):
    reply = call(any_gateway, model, text="drip drip drip", headers={"x-mock-fault": "drip=2500"}, stream=True)
    assert reply.status == 200, reply  # the head was relayed before the silence
    events = events_of(reply.data)
    assert len(events) >= 2 and "choices" in json.loads(events[0]), events
    assert "[DONE]" not in events
    error = json.loads(events[-1])["error"]
    assert error["message"] and error["type"], error
    assert 0.9 <= reply.elapsed < 2.4, f"stream_idle_timeout = 1 < the 2.5 s drip, took {reply.elapsed:.2f}s"
    assert len(chats(a)) == 1, "a started stream is never retried"


def test_stream_idle_timeout_through_the_sdk(gateway, a):
    received = []
    with pytest.raises(openai.APIError) as caught:
        stream = sdk(gateway).chat.completions.create(
            model="timed", messages=[{"role": "user", "content": "drip drip"}], stream=True,
            extra_headers={"x-mock-fault": "drip=2500"},
        )  # fmt: skip
        for chunk in stream:
            received.append(chunk)
    assert not isinstance(caught.value, openai.APITimeoutError), "the gateway must end the stream, not the client"
    assert received and not any(c.choices and c.choices[0].finish_reason for c in received)
    assert len(chats(a)) == 1


def test_drip_shorter_than_the_idle_timeout_streams_to_the_end(gateway, a):
    reply = call(gateway, "timed", text="one two three", headers={"x-mock-fault": "drip=300"}, stream=True)
    assert reply.status == 200 and events_of(reply.data)[-1] == "[DONE]", reply
    assert reply.elapsed >= 1.5, "six gaps of 0.3 s: the idle timeout (1 s) is per silence, not per stream"


def test_total_timeout_ends_a_long_stream(any_gateway, a):
    text = " ".join(f"w{i}" for i in range(20))  # 24 events 0.5 s apart: 12 s unbounded
    reply = call(any_gateway, "bounded", text=text, headers={"x-mock-fault": "drip=500"}, stream=True)
    assert reply.status == 200, reply
    events = events_of(reply.data)
    assert "error" in json.loads(events[-1]), events[-1]
    assert "[DONE]" not in events
    assert 1.9 <= reply.elapsed < 3.6, f"total_timeout = 2 fires between 2 and 3 s, took {reply.elapsed:.2f}s"
    assert len(chats(a)) == 1


def test_total_timeout_counts_the_retries_too(gateway, a):
    # Each attempt: a 503 after 0.7 s; max_retries = 20, but total_timeout = 2 s for the request.
    reply = call(gateway, "bounded-retries", headers={"x-mock-fault": "status=503;slow-first-byte=700"})
    assert reply.status == 504, reply
    assert openai_error(reply.data)["code"] == "upstream_timeout"
    assert reply.attempts == len(chats(a)) and 3 <= reply.attempts <= 4, reply
    assert 1.9 <= reply.elapsed < 3.5, reply


def test_retry_deadline_stops_new_attempts(gateway, a):
    # Each attempt: a 503 after 0.5 s; max_retries = 20, but retry_deadline = 3 s.
    reply = call(gateway, "persistent", headers={"x-mock-fault": "status=503;slow-first-byte=500"})
    assert reply.status == 503, reply
    attempts = len(chats(a))
    assert reply.attempts == attempts
    assert 5 <= attempts <= 8, f"attempts start until 3 s have passed, 0.5 s apart: {attempts}"
    assert reply.elapsed < 4.5, reply


# --- mid-stream failures -------------------------------------------------------------------------


def test_reset_mid_stream_ends_with_an_error_event_and_no_retry(any_gateway, a):
    text = "a long enough answer to be cut in the middle by the upstream"
    reply = call(any_gateway, "solo", text=text, headers={"x-mock-fault": "reset-mid-stream"}, stream=True)
    assert reply.status == 200, reply
    assert reply.headers.get("transfer-encoding") == "chunked"
    events = events_of(reply.data)  # read to the chunked terminator: no IncompleteRead
    assert len(events) >= 2 and "[DONE]" not in events
    error = json.loads(events[-1])["error"]
    assert error["message"] and error["type"]
    assert all("choices" in json.loads(e) for e in events[:-1])
    assert reply.attempts == 1 and len(chats(a)) == 1


def test_reset_mid_stream_raises_in_the_sdk(gateway, a):
    received = []
    started = time.monotonic()
    with pytest.raises(openai.APIError) as caught:
        stream = sdk(gateway).chat.completions.create(
            model="solo", messages=[{"role": "user", "content": "cut this stream somewhere please"}], stream=True,
            extra_headers={"x-mock-fault": "reset-mid-stream"},
        )  # fmt: skip
        for chunk in stream:
            received.append(chunk)
    assert not isinstance(caught.value, (openai.APITimeoutError, openai.APIConnectionError)), caught.value
    assert time.monotonic() - started < 5
    assert received and not any(c.choices and c.choices[0].finish_reason for c in received)
    assert len(chats(a)) == 1


def test_connection_closes_after_a_failed_stream(gateway, a):
    """After the error event the gateway closes the client connection (the stream's state is lost)."""
    body = json.dumps({"model": "solo", "messages": [{"role": "user", "content": "cut me off now"}], "stream": True})
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"x-mock-fault: reset-mid-stream\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body.encode())
        )
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.endswith(b"\r\n0\r\n\r\n"), received[-200:]
    assert b'data: {"error"' in received


# --- connect timeouts ----------------------------------------------------------------------------------


@pytest.fixture
def black_hole():
    """A loopback port that never completes a connection: a listening socket whose accept queue is
    full (it is never accepted from), so the kernel drops further SYNs and a connect just waits."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers = []
    try:
        for _ in range(8):  # enough to fill the queue whatever the kernel's slack
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(server.getsockname())
            fillers.append(filler)
        time.sleep(0.2)
        yield server.getsockname()[1]
    finally:
        for filler in fillers:
            filler.close()
        server.close()


@pytest.mark.parametrize("client", ["core", "httpx"])
def test_a_model_connect_timeout_overrides_the_provider_and_is_retried(tmp_path, black_hole, client):
    config = f"""
    [router]
    max_retries = 1
    backoff_base = 0.01
    backoff_max = 0.05

    [providers.hole]
    base_url = "http://127.0.0.1:{black_hole}/v1"
    api_key = "env:TEST_PROVIDER_KEY"
    client = "{client}"
    connect_timeout = 30

    [[models]]
    name = "impatient"
    provider = "hole"
    model = "gpt-4o-mini"
    connect_timeout = 0.5
    """
    gateway = start_gateway_process(tmp_path / "alloy.toml", config, {"TEST_PROVIDER_KEY": PROVIDER_KEY})
    try:
        reply = call(gateway, "impatient", timeout=20)
        assert reply.status == 504, reply
        assert openai_error(reply.data)["code"] == "upstream_timeout"
        assert reply.attempts == 2, "a connect timeout is retried (the request never reached the upstream)"
        assert 0.9 <= reply.elapsed < 5.0, f"two 0.5 s connect timeouts, not the provider's 30 s: {reply.elapsed:.2f}s"
    finally:
        gateway.stop()
    assert_no_crash_logged(gateway)


# --- back-pressure is not silence ------------------------------------------------------------------


def fast_big_stream(events=2000, size=8000):
    """An upstream answering every request at once with a fast SSE stream of ``events`` events of
    ``size`` bytes (16 MB: more than the sockets hold), then [DONE]: the gateway must hold back its
    reads while a client reads slowly."""
    event = b"data: " + b"y" * size + b"\n\n"
    piece = b"%x\r\n%s\r\n" % (len(event), event)

    def answer(request):
        yield b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        for _ in range(events):
            yield piece
        yield b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"

    return ScriptedUpstream(answer)


def test_a_client_reading_slowly_is_not_upstream_silence(tmp_path):
    """A slow client makes the gateway pause its reads from the upstream (back-pressure). That
    pause is not the upstream going silent: the stream outlives ``stream_idle_timeout`` whole, the
    deployment is not blamed (its breaker stays shut for everyone else). (A stream whose upstream
    really stops still ends at the timeout: ``test_stream_idle_timeout_ends_the_stream_with_an_error_event``.)"""
    upstream = fast_big_stream()
    port, stop = upstream.port, upstream.stop
    config = f"""
    [providers.up]
    base_url = "http://127.0.0.1:{port}/v1"
    api_key = "sk-up"
    first_byte_timeout = 1
    stream_idle_timeout = 1

    [[models]]
    name = "big"
    provider = "up"
    """
    gateway = start_gateway_process(tmp_path / "alloy.toml", config)
    try:
        body = json.dumps({"model": "big", "messages": [{"role": "user", "content": "hi"}], "stream": True}).encode()
        request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        clients = []
        for _ in range(6):  # more than the breaker's failure threshold (5)
            sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=30)
            sock.sendall(request)
            clients.append(sock)
        first = [sock.recv(4096) for sock in clients]
        time.sleep(3.5)  # past the idle timeout, every upstream read held back by the gateway, every upstream read held back by the gateway
        for sock, received in zip(clients, first):
            received = bytearray(received)
            while not received.endswith(b"\r\n0\r\n\r\n"):
                piece = sock.recv(1 << 20)
                assert piece, "the gateway closed the stream"
                received += piece
            sock.close()
            assert b'data: {"error"' not in received and received.count(b"data: y") == 2000 and b"data: [DONE]" in received
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=30) as sock:
            sock.sendall(request)
            assert sock.recv(64).startswith(b"HTTP/1.1 200 ")  # not 503 no_healthy_deployment: no breaker opened
        assert_no_crash_logged(gateway)
    finally:
        gateway.stop()
        stop()


@pytest.mark.parametrize("client", ["core", "httpx"])
def test_a_stream_idle_timeout_shorter_than_the_first_byte_one_still_holds(tmp_path, client):
    """The connection waits for the head under first_byte_timeout (30 s here); once the head has
    come, a 1 s stream_idle_timeout is what ends a stalled stream, not the first-byte deadline."""
    mock = start_mock_process("--api-key", PROVIDER_KEY)
    config = f"""
    [providers.up]
    base_url = "{mock.base}/v1"
    api_key = "{PROVIDER_KEY}"
    client = "{client}"
    first_byte_timeout = 30
    stream_idle_timeout = 1

    [[models]]
    name = "slow"
    provider = "up"
    model = "gpt-4o-mini"
    """
    gateway = start_gateway_process(tmp_path / "alloy.toml", config)
    try:
        reply = call(gateway, "slow", text="drip drip drip", headers={"x-mock-fault": "drip=4000"}, stream=True)
        assert reply.status == 200, reply
        assert "upstream went silent" in json.loads(events_of(reply.data)[-1])["error"]["message"]
        assert reply.elapsed < 3.5, f"stream_idle_timeout = 1 < the 4 s drip, took {reply.elapsed:.2f}s"
        assert_no_crash_logged(gateway)
    finally:
        gateway.stop()
        mock.stop()


def test_a_last_attempts_failure_goes_out_as_it_comes(tmp_path):
    """A 500 is held while another attempt could replace it. With none left (max_retries = 0, no
    fallback) it is the answer: relayed as it comes, not held until its body ends (this one's
    never does, it trickles)."""

    def trickling_500(request):
        yield b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        yield b'1b\r\n{"error":{"message":"down",\r\n'
        for _ in range(40):
            time.sleep(0.2)
            yield b"1\r\n \r\n"

    upstream = ScriptedUpstream(trickling_500)
    port, stop = upstream.port, upstream.stop
    config = f"""
    [router]
    max_retries = 0

    [providers.up]
    base_url = "http://127.0.0.1:{port}/v1"
    api_key = "sk-up"
    """
    gateway = start_gateway_process(tmp_path / "alloy.toml", config)
    try:
        body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode()
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=3) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            received = b""
            while b'"down"' not in received:
                received += sock.recv(65536)  # times out (3 s) if the answer is held
        assert received.startswith(b"HTTP/1.1 500 ") and b"x-alloy-attempts: 1" in received
    finally:
        gateway.stop()
        stop()


def deployment_report(gateway, model):
    """The /health/ready entry of ``model``'s one deployment: its state and inflight count."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(b"GET /health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = b""
        while piece := sock.recv(65536):
            received += piece
    [deployment] = json.loads(received.partition(b"\r\n\r\n")[2])["models"][model]["deployments"]
    return deployment


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_a_last_failure_cut_short_counts_once_and_holds_its_slot_until_it_ends(tmp_path, kind):
    """The last attempt's 503 goes out as it comes (passthrough) or is read to be translated
    (Anthropic): either way its deployment keeps its max_inflight slot until the answer ends, and
    the failure counts once, also when its body is cut short (the breaker, at 2 failures, stays
    shut after one request)."""
    release = threading.Event()

    def failing(request):
        yield b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n" + b'{"error":'
        release.wait(10)
        raise OSError("cut short")  # the connection closes 91 bytes short

    upstream = ScriptedUpstream(failing)
    port, stop = upstream.port, upstream.stop
    config = f"""
    [router]
    max_retries = 0
    failure_threshold = 2
    cooldown = 60

    [providers.up]
    kind = "{kind}"
    base_url = "http://127.0.0.1:{port}{'/v1' if kind == 'openai' else ''}"
    api_key = "sk-up"

    [[models]]
    name = "m"
    deployments = [{{ provider = "up", model = "claude-sonnet-4-5", max_inflight = 1 }}]
    """
    gateway = start_gateway_process(tmp_path / "alloy.toml", config)
    try:
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
        request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as first:
            first.sendall(request)
            time.sleep(0.5)  # its answer under way
            assert deployment_report(gateway, "m")["inflight"] == 1
            with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as second:
                second.sendall(request)
                assert second.recv(64).startswith(b"HTTP/1.1 429 ")  # the slot is still taken
            release.set()
            while first.recv(65536):
                pass
        time.sleep(0.3)
        assert {k: v for k, v in deployment_report(gateway, "m").items() if k in ("state", "inflight")} == {"state": "healthy", "inflight": 0}
    finally:
        release.set()
        gateway.stop()
        stop()


def test_a_held_400_too_big_to_hold_is_the_requests_fault_and_says_when_it_came(tmp_path):
    """A 400 is held while a context-window fallback may repair it; past 1 MiB it goes to the client
    as it comes. It blames the request, not the deployment (the breaker, at one failure, stays
    shut), and the answer's overhead header is the gateway's time, not a clock never set."""
    body = json.dumps({"error": {"message": "x" * 1_200_000, "type": "invalid_request_error", "code": "bad"}}).encode()

    upstream = ScriptedUpstream(lambda request: b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
    port, stop = upstream.port, upstream.stop
    config = f"""
    [router]
    failure_threshold = 1
    cooldown = 60

    [providers.up]
    base_url = "http://127.0.0.1:{port}/v1"
    api_key = "sk-up"

    [[models]]
    name = "m"
    provider = "up"
    context_window_fallbacks = ["m2"]

    [[models]]
    name = "m2"
    provider = "up"
    """
    gateway = start_gateway_process(tmp_path / "alloy.toml", config)
    try:
        reply = call(gateway, "m")
        assert reply.status == 400 and len(reply.data) == len(body)
        assert 0 <= int(reply.headers["x-alloy-overhead-us"]) < 5_000_000
        assert deployment_report(gateway, "m")["state"] == "healthy"
    finally:
        gateway.stop()
        stop()

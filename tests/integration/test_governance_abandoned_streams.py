"""A keyed client that leaves a stream before its end still pays for it.

A stream gives its usage last, after the finish reason. A client that closes the connection at
the finish reason (or anywhere before the usage) once made its tokens free: the ledger and the
budget got 0. Now the gateway reads the rest of the stream, written nowhere, for its usage, for at
most ``[governance] drain_timeout``; a stream still going then is cut and charged what it reserved
(the prompt's estimate and its ``max_tokens``).
"""

import http.client
import json
import signal
import socket

import openai
import pytest

from governance_helpers import MASTER, chat, create_key, keyed_config, post, usage_rows
from harness import assert_no_crash_logged, wait_until


def start(start_gateway, upstream, db, drain_timeout):
    config = keyed_config(upstream, db, f"drain_timeout = {drain_timeout}")
    return start_gateway(config=config, env={"ALLOY_MASTER_KEY": MASTER})


def ready(gateway, secret):
    wait_until(lambda: post(gateway.port, secret, chat(), path="/v1/nothing")[0] != 401, timeout=5)


def totals(db, requests):
    """The key's ledger totals once it holds ``requests`` chat rows (and the readiness probe's)."""
    assert wait_until(lambda: usage_rows(db) and usage_rows(db)[0]["requests"] == requests + 1, timeout=10), usage_rows(db)
    row = usage_rows(db)[0]
    return row["tokens_in"], row["tokens_out"]


def leave_early(gateway, secret, request, drip):
    """Stream ``request``, its events ``drip`` ms apart; read the first bytes and leave. Returns the
    body sent (its size is the prompt's estimate)."""
    body = json.dumps(request).encode()
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    headers = {"content-type": "application/json", "authorization": f"Bearer {secret}", "x-mock-fault": f"drip={drip}"}
    connection.request("POST", "/v1/chat/completions", body, headers)
    response = connection.getresponse()
    assert response.status == 200 and response.read(100)  # the stream began
    connection.close()  # and the client left
    return body


def test_a_client_closing_at_the_finish_reason_is_charged_the_streams_usage(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "early-closer")
    gateway = start(start_gateway, upstream, db, drain_timeout=5)
    ready(gateway, secret)
    client = openai.OpenAI(base_url=gateway.base + "/v1", api_key=secret, max_retries=0, timeout=10)
    messages = [{"role": "user", "content": "one two three four"}]
    usage = None  # read to its end, asking for usage: what the stream costs
    for chunk in client.chat.completions.create(model="gpt-4o", messages=messages, stream=True, stream_options={"include_usage": True}):
        usage = chunk.usage or usage
    stream = client.chat.completions.create(model="gpt-4o", messages=messages, stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].finish_reason:
            stream.response.close()  # all of the answer, none of the usage
            break
    assert totals(db, 2) == (2 * usage.prompt_tokens, 2 * usage.completion_tokens)
    assert post(gateway.port, secret, chat())[0] == 200  # the gateway serves on
    assert_no_crash_logged(gateway)


def test_a_long_stream_left_early_is_cut_at_the_drain_timeout_and_charged_its_reservation(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "leaver")
    gateway = start(start_gateway, upstream, db, drain_timeout=0.5)
    ready(gateway, secret)
    body = leave_early(gateway, secret, chat(text=" ".join(["word"] * 60), stream=True, max_tokens=70), drip=100)
    assert totals(db, 1) == (len(body) // 4, 70)  # left with some 6 s of answer still to come
    assert post(gateway.port, secret, chat())[0] == 200
    assert_no_crash_logged(gateway)


def test_without_a_drain_a_stream_left_early_is_charged_its_reservation(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "no-drain")
    gateway = start(start_gateway, upstream, db, drain_timeout=0)
    ready(gateway, secret)
    body = leave_early(gateway, secret, chat(text="one two three", stream=True, max_tokens=40), drip=300)
    assert totals(db, 1) == (len(body) // 4, 40)


def test_a_client_leaving_before_the_answer_began_is_charged_its_reservation(start_gateway, upstream, tmp_path):
    # The request reached the provider, which answers (and bills) whether the client waits or not.
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "impatient")
    gateway = start(start_gateway, upstream, db, drain_timeout=5)
    ready(gateway, secret)
    upstream.clear()
    estimated = 0
    for stream in (False, True):
        body = json.dumps(chat(text=" ".join(["word"] * 60), stream=stream, max_tokens=50)).encode()
        estimated += len(body) // 4
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: g\r\ncontent-type: application/json\r\n"
                b"authorization: Bearer %s\r\nx-mock-fault: slow-first-byte=400\r\ncontent-length: %d\r\n\r\n%s"
                % (secret.encode(), len(body), body)
            )
            assert wait_until(lambda: len(upstream.requests()) == 1 + stream, timeout=5)  # it went upstream
        # and the client left before the answer's first byte
    assert totals(db, 2) == (estimated, 2 * 50)
    assert post(gateway.port, secret, chat())[0] == 200
    assert_no_crash_logged(gateway)


def messages_stream(gateway, secret, text, leave_after=None, model="gpt-4o"):
    """A Messages stream (/v1/messages) for ``model``: read whole, its usage as message_start and
    message_delta give it (input, output); or, with ``leave_after`` bytes read, left there
    (returns None)."""
    body = json.dumps({"model": model, "max_tokens": 500, "stream": True, "messages": [{"role": "user", "content": text}]})
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    connection.request("POST", "/v1/messages", body, {"content-type": "application/json", "x-api-key": secret, "anthropic-version": "2023-06-01"})
    response = connection.getresponse()
    assert response.status == 200
    if leave_after is not None:
        assert response.read(leave_after)  # the stream began
        connection.close()  # and the client left
        return None
    tokens_in = tokens_out = 0
    for line in response.read().decode().splitlines():
        if line.startswith("data: "):
            event = json.loads(line[6:])
            usage = event.get("usage") or event.get("message", {}).get("usage") or {}
            tokens_in = usage.get("input_tokens") or tokens_in
            tokens_out = usage.get("output_tokens") or tokens_out
    connection.close()
    return tokens_in, tokens_out


def test_a_messages_client_leaving_a_stream_is_charged_its_usage_not_its_reservation(start_gateway, start_mock, tmp_path):
    # An Anthropic client (Claude Code) interrupts a generation often, and asks for tens of
    # thousands of max_tokens: charged its reservation, each interruption would cost that much.
    # The translated call's upstream request carries no client header: the mock drips every answer.
    dripping = start_mock("--api-key", "sk-provider", "--fault", "drip=60")
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "messages-leaver")
    gateway = start(start_gateway, dripping, db, drain_timeout=5)
    ready(gateway, secret)
    text = " ".join(["word"] * 30)
    tokens_in, tokens_out = messages_stream(gateway, secret, text)
    assert tokens_in and 0 < tokens_out < 500
    messages_stream(gateway, secret, text, leave_after=50)
    assert totals(db, 2) == (2 * tokens_in, 2 * tokens_out)
    assert post(gateway.port, secret, chat())[0] == 200
    assert_no_crash_logged(gateway)


def test_a_messages_client_leaving_a_native_anthropic_stream_is_charged_its_usage(start_gateway, start_emulator, tmp_path):
    # Anthropic answers Messages natively: its usage is read from the stream's first event (input
    # tokens) and its last (output tokens), which the client leaving must not skip.
    claude = start_emulator("anthropic", "--api-key", "sk-provider", "--drip-ms", "60")
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "native-leaver")
    config = f"""
        [providers.anthropic]
        base_url = "{claude.base}"
        api_key = "sk-provider"

        [governance]
        path = "{db}"
        sync_interval = 0.1
        flush_interval = 0.1
        drain_timeout = 5
        """
    gateway = start_gateway(config=config, env={"ALLOY_MASTER_KEY": MASTER})
    ready(gateway, secret)
    text = " ".join(["word"] * 30)
    tokens_in, tokens_out = messages_stream(gateway, secret, text, model="claude-3-5-haiku-20241022")
    assert tokens_in and 0 < tokens_out < 500
    messages_stream(gateway, secret, text, leave_after=50, model="claude-3-5-haiku-20241022")
    assert totals(db, 2) == (2 * tokens_in, 2 * tokens_out)
    assert_no_crash_logged(gateway)


@pytest.mark.parametrize("shutdown_timeout", [30, 1])
def test_a_shutdown_during_a_drain_still_charges_the_stream(start_gateway, upstream, tmp_path, shutdown_timeout):
    # The stream's client is gone, so no connection holds the shutdown: the drained call is waited
    # for like a connection (its ~6 s end comes within 30 s: charged what it used), or, past
    # shutdown_timeout, cut and charged what it reserved; never left out of the last ledger rows.
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "left-then-stopped")
    config = keyed_config(upstream, db, f"drain_timeout = 30\n[server]\nshutdown_timeout = {shutdown_timeout}")
    gateway = start_gateway(config=config, env={"ALLOY_MASTER_KEY": MASTER})
    ready(gateway, secret)
    body = leave_early(gateway, secret, chat(text=" ".join(["word"] * 60), stream=True, max_tokens=70), drip=100)
    gateway.signal(signal.SIGTERM)
    assert gateway.wait(40) == 0
    tokens_in, tokens_out = totals(db, 1)
    if shutdown_timeout == 30:
        assert tokens_in != len(body) // 4 and 0 < tokens_out <= 70  # the stream's own usage
    else:
        assert (tokens_in, tokens_out) == (len(body) // 4, 70)
    assert_no_crash_logged(gateway)

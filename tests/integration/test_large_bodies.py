"""A large request body reaches the upstream exactly as the client sent it, or exactly as rewritten.

A body over ``VIEW_BODY_ABOVE`` (64 KB) that arrives in the read carrying its head is held as a view
of that read and written upstream from it, without a copy (``Request.body_buffer``). Two sets:

- in process, over fake transports (``fake_transport.wired``), the client's bytes come in one read
  as they do on a loaded machine, and the upstream's transport keeps the pieces it was given: the
  body is a view of the client's very read, and the edits (the model, the usage option) are exact;
- through a real ``alloy`` process to an upstream that records the exact bytes (``RawUpstream``),
  however the kernel cuts the reads: passed as is, the model rewritten for a ``[[models]]`` name,
  the usage option spliced into a stream that did not ask for it, left alone in one that did, and a
  small request pipelined right behind the large one in the same write.
"""

import json
import socket

import pytest

from alloy import config as alloy_config
from alloy.core import VIEW_BODY_ABOVE
from fake_transport import FakeTransport, wired
from harness import post_and_read, start_gateway_process

CONFIG = """
[server]
stream_usage = true

[providers.openai]
kind = "openai"
base_url = "{base}/v1"
api_key = "sk-upstream"

[[models]]
name = "house"
provider = "openai"
model = "gpt-4o-2024-08-06"

[wildcards]
"gpt-*" = "openai"
"""


@pytest.fixture(scope="module")
def gateway(recorder, tmp_path_factory):
    process = start_gateway_process(tmp_path_factory.mktemp("large-bodies") / "alloy.toml", CONFIG.format(base=recorder.base))
    yield process
    process.stop()


def large_body(model="gpt-4o-mini", **fields):
    """A chat body of about 200 KB, with the model first (where clients put it) or last."""
    text = "".join(f"word{i} " for i in range(30_000))
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": text}], **fields}, separators=(",", ":")).encode()
    assert len(body) > 2 * VIEW_BODY_ABOVE
    return body


def client_read(body):
    return b"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


# --- in process: the body in the read that carried its head -----------------------------------------


class KeepingTransport(FakeTransport):
    """An upstream transport that keeps the pieces of each ``writelines`` as they were given."""

    def __init__(self):
        super().__init__()
        self.pieces = []

    def writelines(self, pieces):
        self.pieces.append(list(pieces))
        super().writelines(self.pieces[-1])


@pytest.fixture
def in_process(tmp_path):
    path = tmp_path / "alloy.toml"
    path.write_text(CONFIG.format(base="http://127.0.0.1:9"))
    upstream_transport = KeepingTransport()
    client, _, _, loop = wired(alloy_config.load(str(path), env={}), "openai", upstream_transport)
    yield client, upstream_transport
    loop.close()


def upstream_body(transport):
    [written] = transport.writes
    head, _, body = written.partition(b"\r\n\r\n")
    assert b"\r\ncontent-length: %d\r\n" % len(body) in head.lower() + b"\r\n"
    return body


def test_a_large_body_is_written_upstream_from_the_clients_read_without_a_copy(in_process):
    client, transport = in_process
    body = large_body()
    read = client_read(body)
    client.data_received(read)
    assert upstream_body(transport) == body
    [pieces] = transport.pieces
    assert [piece.obj for piece in pieces if isinstance(piece, memoryview)] == [read]  # the client's read itself


def test_a_large_body_gets_its_new_model_around_views_of_the_read(in_process):
    client, transport = in_process
    body = large_body("house")
    read = client_read(body)
    client.data_received(read)
    assert upstream_body(transport) == body.replace(b'"model":"house"', b'"model":"gpt-4o-2024-08-06"', 1)
    assert any(isinstance(piece, memoryview) and piece.obj is read for piece in transport.pieces[0])


@pytest.mark.parametrize("asked", [False, True], ids=["usage-not-asked", "usage-asked"])
def test_a_large_stream_held_as_a_view_asks_for_its_usage_exactly_once(in_process, asked):
    client, transport = in_process
    body = large_body(stream=True, **({"stream_options": {"include_usage": True}} if asked else {}))
    client.data_received(client_read(body))
    assert upstream_body(transport) == (body if asked else b'{"stream_options":{"include_usage":true},' + body[1:])


def test_a_large_messages_body_goes_to_anthropic_as_a_view_of_the_read(tmp_path):
    # Claude Code's requests are often hundreds of KB: the Messages endpoint reads the view too.
    path = tmp_path / "alloy.toml"
    path.write_text('[providers.anthropic]\nbase_url = "http://127.0.0.1:9"\napi_key = "sk-ant"\n')
    transport = KeepingTransport()
    client, _, _, loop = wired(alloy_config.load(str(path), env={}), "anthropic", transport)
    try:
        text = "".join(f"word{i} " for i in range(30_000))
        body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": text}]}).encode()
        read = (b"POST /v1/messages HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\nanthropic-version: 2023-06-01\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        client.data_received(read)
        assert upstream_body(transport) == body
        assert any(isinstance(piece, memoryview) and piece.obj is read for piece in transport.pieces[0])
    finally:
        loop.close()


def test_a_body_of_the_threshold_is_copied_and_one_read_of_body_alone_is_kept_as_it_came(core):
    at = b'{"model":"m","pad":"' + b"x" * (core.VIEW_BODY_ABOVE - 22) + b'"}'
    assert len(at) == core.VIEW_BODY_ABOVE
    [request] = core.RequestParser().feed(client_read(at))
    assert type(request.body_buffer) is bytes and request.body is request.body_buffer == at
    parser = core.RequestParser()
    body = large_body()
    head = client_read(body)[: -len(body)]
    assert parser.feed(head) == []
    [request] = parser.feed(body)
    assert type(request.body_buffer) is bytes and request.body_buffer == body


def test_a_view_is_made_into_bytes_once_when_a_stage_asks_for_them(core):
    body = large_body()
    read = client_read(body)
    [request] = core.RequestParser().feed(read)
    assert isinstance(request.body_buffer, memoryview) and request.body_buffer.obj is read
    assert type(request.body) is bytes and request.body == body
    assert request.body is request.body  # made once, kept
    scan = core.scan_body(request.body_buffer)
    assert scan.body is request.body_buffer and scan.model == "gpt-4o-mini"
    assert core.rewrite_model(scan, "other") == body.replace(b'"gpt-4o-mini"', b'"other"', 1)


# --- through a real process ----------------------------------------------------------------------------


def sent_upstream(recorder, gateway, body):
    recorder.reset()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        head, _ = post_and_read(sock, b"/v1/chat/completions", body)
    assert head.startswith(b"HTTP/1.1 200"), head
    received = recorder.received()
    assert len(received) == 1 and received[0].error is None
    return received[0].body


def test_a_large_body_reaches_the_upstream_byte_for_byte(recorder, gateway):
    body = large_body()
    assert sent_upstream(recorder, gateway, body) == body


def test_a_large_body_gets_the_deployments_model_and_nothing_else_changes(recorder, gateway):
    body = large_body("house")
    assert sent_upstream(recorder, gateway, body) == body.replace(b'"model":"house"', b'"model":"gpt-4o-2024-08-06"', 1)


def test_a_large_stream_asks_for_its_usage_once_and_keeps_every_other_byte(recorder, gateway):
    body = large_body(stream=True)
    sent = sent_upstream(recorder, gateway, body)
    assert sent == b'{"stream_options":{"include_usage":true},' + body[1:]


def test_a_large_stream_that_asked_for_usage_goes_as_it_came(recorder, gateway):
    # The usage option is looked for in the view of the read: a search that saw no "stream_options"
    # there would add a second one.
    body = large_body(stream=True, stream_options={"include_usage": True})
    assert sent_upstream(recorder, gateway, body) == body


def test_a_request_pipelined_behind_a_large_one_in_the_same_write_is_forwarded_whole(recorder, gateway):
    large, small = large_body(), json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()
    recorder.reset()
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(head % len(large) + large + head % len(small) + small)
        answers = b""
        while answers.count(b"HTTP/1.1 200") < 2 or not answers.endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, answers
            answers += chunk
    assert [received.body for received in recorder.received()] == [large, small]

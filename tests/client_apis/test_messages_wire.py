"""What a Messages client gets from what the relay writes: ``MessagesTransport`` and
``MessagesConnection`` (alloy.client_apis.messages_wire) fed the HTTP answers ``alloy.relay`` frames,
whole and split at every byte boundary (a relay writes one upstream read at a time, so any split can
happen), with the client's bytes read back by the core ``ResponseParser``."""

from types import SimpleNamespace

import orjson
import pytest
from anthropic.types import ErrorResponse, Message

from alloy.client_apis.messages_wire import MessagesConnection, MessagesTransport
from alloy.core import LAST_CHUNK, frame_chunk, frame_response
from alloy.errors import NoHealthyDeployment, UpstreamTimeout, error_payload
from fixtures_messages import TEXT_CHUNKS, TOOL_CALLS, TOOL_CHUNKS, TOOL_COMPLETION, blocks_of, completion
from wire_helpers import JSON, SERVED, Connection, answer, openai_events, relay_stream, splits, sse

MODEL = "claude-sonnet-4-5"


def wire(native=False, stream=False, max_buffered=1 << 20):
    connection = Connection()
    transport = MessagesTransport(connection, MODEL, stream, max_buffered, input_tokens=7)
    provider = SimpleNamespace(messages_native=True) if native else SimpleNamespace()
    call = connection.current = SimpleNamespace(deployment=SimpleNamespace(provider=provider), status=200, usage=None, error=None)
    call.usage_known = lambda usage: setattr(call, "usage", usage)  # what a native stream's end reports
    return connection, transport


# --- translated answers ---------------------------------------------------------------------------


@pytest.mark.parametrize("chunks", [TEXT_CHUNKS, TOOL_CHUNKS], ids=["text", "tools"])
def test_a_stream_gives_the_same_events_however_the_relay_writes_split(chunks):
    data = relay_stream(openai_events(chunks))
    for pieces in splits(data):
        connection, transport = wire(stream=True)
        for piece in pieces:
            transport.write(piece)
        head, body = answer(connection.transport.data)
        assert head.status == 200 and head.get(b"content-type") == b"text/event-stream"
        assert head.get(b"x-alloy-provider") == b"openai" and head.get(b"x-request-id") == b"r-1"
        assert not connection.closed
    events = sse(body)
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert events[0][1]["message"]["model"] == MODEL and events[0][1]["message"]["usage"]["input_tokens"] == 7
    if chunks is TOOL_CHUNKS:
        assert [(b["type"], b.get("name")) for b in blocks_of(events)] == [
            ("text", None),
            ("tool_use", "get_weather"),
            ("tool_use", "get_time"),
        ]
        assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
        assert events[-2][1]["usage"] == {
            "input_tokens": 20,
            "output_tokens": 40,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 100,
        }


def test_stream_events_are_identical_for_every_split():
    data = relay_stream(openai_events(TOOL_CHUNKS))
    bodies = set()
    for pieces in splits(data):
        connection, transport = wire(stream=True)
        for piece in pieces:
            transport.write(piece)
        bodies.add(orjson.dumps(sse(answer(connection.transport.data)[1])))
    assert len(bodies) == 1


def test_a_complete_answer_is_one_message_however_split():
    data = frame_response(200, JSON + SERVED, orjson.dumps(TOOL_COMPLETION))
    for pieces in splits(data):
        connection, transport = wire()
        for piece in pieces:
            transport.write(piece)
        head, body = answer(connection.transport.data)
        assert head.status == 200 and head.get(b"content-type") == b"application/json"
        assert head.get(b"x-alloy-model") == b"gpt-4o"
    message = Message.model_validate_json(body, strict=True)
    assert message.model == MODEL and message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]


def test_an_upstream_that_ignored_stream_still_streams_to_the_client():
    connection, transport = wire(stream=True)
    transport.write(frame_response(200, JSON + SERVED, orjson.dumps(TOOL_COMPLETION)))
    head, body = answer(connection.transport.data)
    assert head.get(b"content-type") == b"text/event-stream"
    events = sse(body)
    assert [b["type"] for b in blocks_of(events)] == ["text", "tool_use", "tool_use"]
    assert blocks_of(events)[1]["input"] == TOOL_CALLS[0][2]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    "status, kind",
    [(429, "rate_limit_error"), (529, "overloaded_error"), (503, "overloaded_error"), (400, "invalid_request_error")],
)
def test_an_error_keeps_its_status_and_retry_after(status, kind):
    openai = {"error": {"message": "slow down", "type": "requests", "param": None, "code": "rate_limit_exceeded"}}
    data = frame_response(status, JSON + b"retry-after: 3\r\n" + SERVED, orjson.dumps(openai))
    for pieces in splits(data):
        connection, transport = wire(stream=True)
        for piece in pieces:
            transport.write(piece)
    head, body = answer(connection.transport.data)
    assert head.status == status and head.get(b"retry-after") == b"3" and head.get(b"x-request-id") == b"r-1"
    assert ErrorResponse.model_validate_json(body, strict=True).error.type == kind
    assert orjson.loads(body)["error"]["message"] == "slow down"


def test_a_stream_the_relay_ends_with_its_error_event_ends_with_an_anthropic_error():
    error = b"data: " + orjson.dumps(error_payload(UpstreamTimeout("upstream went silent for 5 s"))) + b"\n\n"
    connection, transport = wire(stream=True)
    transport.write(relay_stream(openai_events(TEXT_CHUNKS[:3])[:-1], end=False))
    transport.writelines([frame_chunk(error), frame_chunk(b"data: [DONE]\n\n"), LAST_CHUNK])
    events = sse(answer(connection.transport.data)[1])
    assert events[-1] == (
        "error",
        {"type": "error", "error": {"type": "timeout_error", "message": "upstream went silent for 5 s"}},
    )
    assert "message_stop" not in [name for name, _ in events]


def test_a_complete_answer_the_relay_abandons_becomes_a_502_before_anything_is_sent():
    connection, transport = wire()
    body = orjson.dumps(TOOL_COMPLETION)
    transport.write(frame_response(200, JSON + SERVED, body)[: -len(body) // 2])
    transport.abort()
    head, raw = answer(connection.transport.data)
    assert head.status == 502 and not head.keep_alive and connection.closed
    assert ErrorResponse.model_validate_json(raw, strict=True).error.type == "api_error"
    transport.write(b"more")  # the relay may still write: nothing more reaches the client


def test_an_answer_over_the_buffer_cap_becomes_a_502():
    connection, transport = wire(max_buffered=1000)
    transport.write(frame_response(200, JSON + SERVED, orjson.dumps(completion({"content": "x" * 5000}))))
    head, raw = answer(connection.transport.data)
    assert head.status == 502 and connection.closed and connection.current.status == 502
    assert "exceeded" in orjson.loads(raw)["error"]["message"]


def test_an_answer_that_is_not_a_completion_becomes_a_502():
    connection, transport = wire()
    transport.write(frame_response(200, JSON + SERVED, b'{"object": "list"}'))
    head, raw = answer(connection.transport.data)
    assert head.status == 502 and orjson.loads(raw)["error"]["type"] == "api_error"


# --- native answers ---------------------------------------------------------------------------------


def anthropic_stream():
    events = [
        ("message_start", {"message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                                       "content": [], "stop_reason": None, "stop_sequence": None,
                                       "usage": {"input_tokens": 3, "output_tokens": 1}}}),
        ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "hi"}}),
    ]  # fmt: skip
    return [b"event: " + n.encode() + b"\ndata: " + orjson.dumps({"type": n, **d}) + b"\n\n" for n, d in events]


def test_a_native_answer_reaches_the_client_byte_for_byte():
    data = relay_stream(anthropic_stream(), head=b"content-type: text/event-stream\r\n" + SERVED)
    for pieces in splits(data):
        connection, transport = wire(native=True)
        for piece in pieces:
            transport.write(piece)
        assert bytes(connection.transport.data) == data


def test_a_native_error_answer_is_untouched():
    body = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    data = frame_response(529, JSON + b"retry-after: 1\r\n" + SERVED, body)
    connection, transport = wire(native=True)
    transport.write(data)
    assert bytes(connection.transport.data) == data


def test_a_native_stream_reports_the_input_tokens_of_its_message_start_however_it_is_split():
    end = [b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":9}}\n\n',
           b'event: message_stop\ndata: {"type":"message_stop"}\n\n']  # fmt: skip
    data = relay_stream(anthropic_stream() + end, head=b"content-type: text/event-stream\r\n" + SERVED)
    for pieces in splits(data):
        connection, transport = wire(native=True)
        for piece in pieces:
            transport.write(piece)
        assert connection.current.usage == {"input_tokens": 3, "output_tokens": 9}, pieces


def test_a_native_stream_that_breaks_off_ends_with_an_anthropic_error_event():
    connection, transport = wire(native=True)
    transport.write(relay_stream(anthropic_stream(), head=b"content-type: text/event-stream\r\n" + SERVED, end=False))
    error = b"data: " + orjson.dumps(error_payload(UpstreamTimeout("upstream went silent for 5 s"))) + b"\n\n"
    transport.writelines([frame_chunk(error), LAST_CHUNK])
    events = sse(answer(connection.transport.data)[1])
    assert [name for name, _ in events] == ["message_start", "content_block_start", "content_block_delta", "error"]
    assert events[-1][1]["error"] == {"type": "timeout_error", "message": "upstream went silent for 5 s"}


# --- the connection ------------------------------------------------------------------------------------


def test_alloy_errors_are_anthropic_shaped_with_their_headers():
    connection, transport = wire()
    messages = MessagesConnection(connection, transport, None, None, b"/v1/messages", b"")
    messages.current = "call"
    assert connection.current == "call"
    messages.send_error(NoHealthyDeployment("every deployment is cooling down", retry_after=7), extra_headers=SERVED)
    head, body = answer(connection.transport.data)
    assert head.status == 503 and head.get(b"retry-after") == b"7" and head.get(b"x-alloy-attempts") == b"1"
    assert orjson.loads(body) == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "every deployment is cooling down"},
    }
    assert not connection.closed
    messages.answer_finished(True)
    assert connection.finished == [True]


def test_send_error_closes_when_told_or_draining():
    connection, transport = wire()
    connection.gateway.draining = True
    MessagesConnection(connection, transport, None, None, b"/v1/messages", b"").send_error(UpstreamTimeout("late"))
    head, _ = answer(connection.transport.data)
    assert head.status == 504 and not head.keep_alive and connection.closed

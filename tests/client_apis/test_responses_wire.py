"""What a translated Responses client gets from what the relay writes: ``ResponsesTransport`` and
``ResponsesConnection`` (alloy.client_apis.responses_wire) fed the chat completions answers
``alloy.relay`` frames, whole and split at every byte boundary, with the client's bytes read back by
the core ``ResponseParser`` and every Response and event validated by the ``openai`` SDK's types."""

from types import SimpleNamespace

import orjson
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from alloy.client_apis.responses_wire import ResponsesConnection, ResponsesTransport
from alloy.core import LAST_CHUNK, frame_chunk, frame_response
from alloy.errors import UpstreamTimeout, error_payload
from fixtures_messages import TEXT_CHUNKS, TOOL_CALLS, TOOL_CHUNKS, TOOL_COMPLETION, chunk, completion, usage
from wire_helpers import JSON, SERVED, Connection, answer, openai_events, relay_stream, splits, sse

MODEL = "claude-sonnet-4-5"
REQUEST = {"model": MODEL, "input": "hi", "instructions": "Be brief.", "tools": [{"type": "function", "name": "f"}]}
EVENT = TypeAdapter(ResponseStreamEvent)
def wire(stream=False, max_buffered=1 << 20):
    connection = Connection()
    transport = ResponsesTransport(connection, REQUEST, MODEL, stream, max_buffered)
    connection.current = SimpleNamespace(deployment=SimpleNamespace(provider=SimpleNamespace()), status=200, error=None)
    return connection, transport


def events_of(body):
    """The client's SSE body -> the events, each checked by the SDK's own event types."""
    events = []
    for name, payload in sse(body):
        assert name == payload["type"]
        EVENT.validate_python(payload)
        events.append(payload)
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    return events


def without_clock(event):
    """An event without its Response's ``created_at`` (the clock's second may turn between runs)."""
    if "response" in event:
        return {**event, "response": {**event["response"], "created_at": 0}}
    return event


def tool_calls_of(response):
    return [(item["call_id"], item["name"], orjson.loads(item["arguments"])) for item in response["output"]
            if item["type"] == "function_call"]  # fmt: skip


# --- streams ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunks", [TEXT_CHUNKS, TOOL_CHUNKS], ids=["text", "tools"])
def test_a_stream_gives_the_same_events_however_the_relay_writes_split(chunks):
    data = relay_stream(openai_events(chunks))
    bodies = set()
    for pieces in splits(data):
        connection, transport = wire(stream=True)
        for piece in pieces:
            transport.write(piece)
        head, body = answer(connection.transport.data)
        assert head.status == 200 and head.get(b"content-type") == b"text/event-stream"
        assert head.get(b"x-alloy-provider") == b"openai" and head.get(b"x-request-id") == b"r-1"
        assert not connection.closed
        bodies.add(orjson.dumps([without_clock(payload) for _, payload in sse(body)]))
    assert len(bodies) == 1  # created_at aside (the clock), the same events for every split
    events = events_of(body)
    kinds = [event["type"] for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    final = Response.model_validate(events[-1]["response"])
    assert final.model == MODEL and final.instructions == "Be brief." and final.status == "completed"
    if chunks is TEXT_CHUNKS:
        assert final.output_text == "Hello, world!"
        assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "Hello, world!"
        assert final.usage.input_tokens == 9 and final.usage.output_tokens == 4 and final.usage.total_tokens == 13
    else:
        assert kinds.count("response.output_item.added") == 3 and kinds.count("response.output_item.done") == 3
        assert tool_calls_of(events[-1]["response"]) == [tuple(call) for call in TOOL_CALLS]
        assert final.output_text == "Let me check."
        assert final.usage.input_tokens_details.cached_tokens == 100 and final.usage.total_tokens == 160
        done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
        assert [orjson.loads(e["arguments"]) for e in done] == [call[2] for call in TOOL_CALLS]


def test_reasoning_streams_as_a_summary_item_before_the_message():
    chunks = [chunk({"reasoning_content": "Thinking"}), chunk({"reasoning_content": " hard"}),
              chunk({"content": "Done."}), chunk({}, "stop"), chunk(usage=usage(3, 5))]  # fmt: skip
    connection, transport = wire(stream=True)
    transport.write(relay_stream(openai_events(chunks)))
    events = events_of(answer(connection.transport.data)[1])
    output = events[-1]["response"]["output"]
    assert [item["type"] for item in output] == ["reasoning", "message"]
    assert output[0]["summary"] == [{"type": "summary_text", "text": "Thinking hard"}]
    kinds = [event["type"] for event in events]
    assert kinds.index("response.reasoning_summary_text.done") < kinds.index("response.content_part.added")


def test_content_given_as_an_array_of_parts_streams_its_reasoning_and_its_text():
    # Mistral's reasoning models (Magistral) stream content as an array of thinking and text parts.
    chunks = [chunk({"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "Thinking hard"}]}]}),
              chunk({"content": [{"type": "text", "text": "Done."}]}), chunk({}, "stop"), chunk(usage=usage(3, 5))]  # fmt: skip
    connection, transport = wire(stream=True)
    transport.write(relay_stream(openai_events(chunks)))
    events = events_of(answer(connection.transport.data)[1])
    final = Response.model_validate(events[-1]["response"])
    assert final.status == "completed" and final.output_text == "Done."
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output[0].summary[0].text == "Thinking hard"


@pytest.mark.parametrize(
    "chunks, calls",
    [
        ([chunk({"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "first", "arguments": '{"x":1}'}}]}),
          chunk({"tool_calls": [{"index": 0, "id": "call_b", "function": {"name": "second", "arguments": '{"y":2}'}}]})],
         [("call_a", "first", {"x": 1}), ("call_b", "second", {"y": 2})]),
        ([chunk({"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "f", "arguments": '{"x":'}}]}),
          chunk({"content": "\n"}), chunk({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]})],
         [("call_a", "f", {"x": 1})]),
    ],
    ids=["two calls at one index", "white space between fragments"],
)  # fmt: skip
def test_tool_calls_numbered_alike_or_split_by_white_space_stream_whole(chunks, calls):
    connection, transport = wire(stream=True)
    transport.write(relay_stream(openai_events([*chunks, chunk({}, "tool_calls"), chunk(usage=usage(3, 5))])))
    events = events_of(answer(connection.transport.data)[1])
    assert events[-1]["type"] == "response.completed"
    assert tool_calls_of(events[-1]["response"]) == calls


def test_a_stream_cut_by_max_tokens_is_incomplete():
    chunks = [chunk({"content": "Hello"}), chunk({}, "length"), chunk(usage=usage(3, 1))]
    connection, transport = wire(stream=True)
    transport.write(relay_stream(openai_events(chunks)))
    last = events_of(answer(connection.transport.data)[1])[-1]
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_a_stream_the_relay_ends_with_its_error_event_ends_with_response_failed():
    error = b"data: " + orjson.dumps(error_payload(UpstreamTimeout("upstream went silent for 5 s"))) + b"\n\n"
    connection, transport = wire(stream=True)
    transport.write(relay_stream(openai_events(TEXT_CHUNKS[:3])[:-1], end=False))
    transport.writelines([frame_chunk(error), frame_chunk(b"data: [DONE]\n\n"), LAST_CHUNK])
    events = events_of(answer(connection.transport.data)[1])
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["error"]["message"] == "upstream went silent for 5 s"
    assert "response.completed" not in [event["type"] for event in events]


def test_a_stream_that_ends_before_its_finish_reason_fails():
    connection, transport = wire(stream=True)
    transport.write(relay_stream(openai_events(TEXT_CHUNKS[:2])[:-1]))
    events = events_of(answer(connection.transport.data)[1])
    assert events[-1]["type"] == "response.failed"


# --- complete answers -------------------------------------------------------------------------------


def test_a_complete_answer_is_one_response_however_split():
    data = frame_response(200, JSON + SERVED, orjson.dumps(TOOL_COMPLETION))
    for pieces in splits(data):
        connection, transport = wire()
        for piece in pieces:
            transport.write(piece)
        head, body = answer(connection.transport.data)
        assert head.status == 200 and head.get(b"content-type") == b"application/json"
    response = Response.model_validate_json(body)
    assert response.id == "resp_A1b2C3" and response.model == MODEL and response.store is False
    assert [item.type for item in response.output] == ["message", "function_call", "function_call"]
    assert tool_calls_of(orjson.loads(body)) == [tuple(call) for call in TOOL_CALLS]
    assert response.usage.input_tokens == 120 and response.usage.output_tokens == 40
    assert response.tools[0].name == "f" and response.tool_choice == "auto"


def test_an_upstream_that_ignored_stream_still_streams_to_the_client():
    connection, transport = wire(stream=True)
    transport.write(frame_response(200, JSON + SERVED, orjson.dumps(TOOL_COMPLETION)))
    head, body = answer(connection.transport.data)
    assert head.get(b"content-type") == b"text/event-stream"
    events = events_of(body)
    assert tool_calls_of(events[-1]["response"]) == [tuple(call) for call in TOOL_CALLS]


def test_an_error_keeps_its_status_body_and_retry_after():
    body = orjson.dumps({"error": {"message": "slow down", "type": "requests", "param": None, "code": "rate_limit_exceeded"}})
    data = frame_response(429, JSON + b"retry-after: 3\r\n" + SERVED, body)
    for pieces in splits(data):
        connection, transport = wire(stream=True)
        for piece in pieces:
            transport.write(piece)
    head, raw = answer(connection.transport.data)
    assert head.status == 429 and head.get(b"retry-after") == b"3" and raw == body


def test_a_complete_answer_the_relay_abandons_becomes_an_openai_502():
    connection, transport = wire()
    body = orjson.dumps(TOOL_COMPLETION)
    transport.write(frame_response(200, JSON + SERVED, body)[: -len(body) // 2])
    transport.abort()
    head, raw = answer(connection.transport.data)
    assert head.status == 502 and not head.keep_alive and connection.closed
    error = orjson.loads(raw)["error"]
    assert error["code"] == "upstream_protocol_error" and "before its answer was complete" in error["message"]


def test_an_answer_over_the_buffer_cap_becomes_a_502():
    connection, transport = wire(max_buffered=1000)
    transport.write(frame_response(200, JSON + SERVED, orjson.dumps(completion({"content": "x" * 5000}))))
    head, raw = answer(connection.transport.data)
    assert head.status == 502 and connection.closed and connection.current.status == 502
    assert "exceeded" in orjson.loads(raw)["error"]["message"]


def test_alloy_errors_stay_openai_shaped():
    connection, transport = wire()
    responses_connection = ResponsesConnection(connection, transport, None, None, b"/v1/responses", b"")
    sent = []
    connection.send_error = lambda error, close, extra, head: sent.append((error, close, extra))
    error = UpstreamTimeout("upstream went silent for 5 s")
    responses_connection.send_error(error)
    assert sent == [(error, False, b"")]
    transport.write(b"HTTP/1.1 200 OK\r\n")  # a relay writing after that reaches nobody
    assert connection.transport.data == b""


def test_a_long_stream_and_a_refusal_come_out_whole():
    words = [f"w{i} " for i in range(2000)]
    chunks = [chunk({"content": word}) for word in words] + [chunk({"refusal": "I can't"}), chunk({}, "stop")]
    connection, transport = wire(stream=True)
    transport.write(relay_stream(openai_events(chunks)))
    events = events_of(answer(connection.transport.data)[1])
    [message] = events[-1]["response"]["output"]
    assert message["content"] == [
        {"type": "output_text", "text": "".join(words), "annotations": []},
        {"type": "refusal", "refusal": "I can't"},
    ]
    assert events[-1]["response"]["usage"] is None  # the upstream sent none: none is made up
    assert [e["type"] for e in events].count("response.content_part.done") == 2


def test_a_call_without_arguments_has_the_arguments_openai_gives_it():
    """An upstream that sends a no-argument call with ``arguments: ""``: OpenAI's Responses API
    gives such a call ``"{}"``, which clients pass to json.loads."""
    call = {"id": "call_1", "type": "function", "function": {"name": "now", "arguments": ""}}
    data = frame_response(200, JSON + SERVED, orjson.dumps(completion({"content": None, "tool_calls": [call]}, "tool_calls")))
    connection, transport = wire()
    transport.write(data)
    _, body = answer(connection.transport.data)
    assert tool_calls_of(orjson.loads(body)) == [("call_1", "now", {})]

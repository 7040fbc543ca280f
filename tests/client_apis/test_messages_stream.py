"""The stream translator: OpenAI chunk streams -> Anthropic Messages events, event by event, in the
failure cases, and through the real core ``SSESplitter`` cut at every byte boundary. (What the
``anthropic`` SDK makes of the same events is in ``test_messages_sdk.py``.)"""

import orjson
import pytest

from alloy.client_apis import MessagesStreamTranslator
from alloy.core import SSESplitter
from fixtures_messages import (
    REASONING_CHUNKS,
    ROLE,
    TEXT_CHUNKS,
    TOOL_CALLS,
    TOOL_CHUNKS,
    blocks_of,
    chunk,
    feed_all,
    parse_events,
    tool_arguments,
    tool_start,
    to_wire,
    usage,
)

MODEL = "claude-via-alloy"


def translate(chunks, done=True, **kwargs):
    return parse_events(feed_all(MessagesStreamTranslator(MODEL, **kwargs), chunks, done))


def names(events):
    return [name for name, _ in events]


def end_of(events):
    """(stop_reason, stop_sequence, message_delta usage) of a completed stream."""
    assert names(events)[-2:] == ["message_delta", "message_stop"]
    delta = events[-2][1]
    return delta["delta"]["stop_reason"], delta["delta"]["stop_sequence"], delta["usage"]


# --- complete streams ----------------------------------------------------------------------------------

def test_text_stream_is_the_documented_event_sequence():
    events = translate(TEXT_CHUNKS)
    assert events == [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_A1b2C3", "type": "message", "role": "assistant", "model": MODEL, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Hello"}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": ", world"}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "!"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"input_tokens": 9, "output_tokens": 4, "cache_creation_input_tokens": 0,
                                     "cache_read_input_tokens": 0}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip


def test_text_then_two_parallel_tool_calls_with_split_arguments():
    events = translate(TOOL_CHUNKS)
    blocks = blocks_of(events)
    assert blocks[0] == {"type": "text", "text": "Let me check."}
    assert [(b["id"], b["name"], b["input"]) for b in blocks[1:]] == TOOL_CALLS
    assert all(b["type"] == "tool_use" for b in blocks[1:])
    fragments = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta" and d["index"] == 1]
    assert fragments == ['{"ci', 'ty": "Par', 'is", "unit": "c"}'], "fragments are relayed as they came"
    reason, sequence, final_usage = end_of(events)
    assert (reason, sequence) == ("tool_use", None)
    assert final_usage == {"input_tokens": 20, "output_tokens": 40, "cache_creation_input_tokens": 0,
                           "cache_read_input_tokens": 100}  # fmt: skip


def test_reasoning_becomes_a_thinking_block_before_the_text():
    blocks = blocks_of(translate(REASONING_CHUNKS))
    assert blocks == [
        {"type": "thinking", "thinking": "The user wants six times seven.", "signature": ""},
        {"type": "text", "text": "42"},
    ]


def test_reasoning_under_the_name_reasoning_is_read_too():
    chunks = [chunk({"reasoning": "hmm"}), chunk({"content": "ok"}, "stop")]
    assert blocks_of(translate(chunks))[0] == {"type": "thinking", "thinking": "hmm", "signature": ""}


# Mistral's reasoning models (Magistral) stream content as an array of parts: thinking, then text.
MISTRAL_CHUNKS = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "six times "}]}]}),
    chunk({"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "seven"}]}]}),
    chunk({"content": [{"type": "text", "text": "The answer "}]}),
    chunk({"content": [{"type": "text", "text": "is 42."}]}, "stop"),
]


def test_content_given_as_an_array_of_parts_keeps_its_thinking_and_its_text():
    events = translate(MISTRAL_CHUNKS)
    assert blocks_of(events) == [
        {"type": "thinking", "thinking": "six times seven", "signature": ""},
        {"type": "text", "text": "The answer is 42."},
    ]
    assert end_of(events)[0] == "end_turn"


# Two parallel calls a server numbered alike (index 0 for each): the new id starts the second.
SAME_INDEX_CHUNKS = [
    chunk(ROLE),
    chunk(tool_start(0, "call_a", "first")), chunk(tool_arguments(0, '{"x":')), chunk(tool_arguments(0, "1}")),
    chunk(tool_start(0, "call_b", "second")), chunk(tool_arguments(0, '{"y":2}')),
    chunk({}, "tool_calls"),
]  # fmt: skip
# White space between two argument fragments of one call, as some servers send.
SPACE_BETWEEN_CHUNKS = [
    chunk(ROLE),
    chunk(tool_start(0, "call_a", "f")), chunk(tool_arguments(0, '{"x":')), chunk({"content": "\n"}),
    chunk(tool_arguments(0, "1}")), chunk({}, "tool_calls"),
]  # fmt: skip


def test_parallel_calls_at_the_same_index_are_two_calls():
    events = translate(SAME_INDEX_CHUNKS)
    blocks = blocks_of(events)
    assert [(b["id"], b["name"], b["input"]) for b in blocks] == [("call_a", "first", {"x": 1}), ("call_b", "second", {"y": 2})]
    assert end_of(events)[0] == "tool_use"


def test_white_space_between_a_calls_fragments_leaves_the_call_whole():
    events = translate(SPACE_BETWEEN_CHUNKS)
    assert [(b["type"], b.get("input")) for b in blocks_of(events)] == [("tool_use", {"x": 1})]
    assert end_of(events)[0] == "tool_use"



    events = translate([chunk(tool_start(0, "call_1", "now")), chunk({}, "tool_calls")])
    assert "content_block_delta" not in names(events)
    assert blocks_of(events) == [{"type": "tool_use", "id": "call_1", "name": "now", "input": {}}]


def test_text_after_a_tool_call_opens_a_new_block():
    chunks = [chunk(tool_start(0, "c1", "f")), chunk(tool_arguments(0, "{}")), chunk({"content": "done"}, "stop")]
    blocks = blocks_of(translate(chunks))
    assert [b["type"] for b in blocks] == ["tool_use", "text"]
    assert end_of(translate(chunks))[0] == "tool_use", "a tool call was made: the client must run it"


def test_content_and_finish_reason_in_one_chunk():
    events = translate([chunk({"role": "assistant", "content": "all at once"}, "stop")])
    assert blocks_of(events) == [{"type": "text", "text": "all at once"}]
    assert end_of(events)[:2] == ("end_turn", None)


@pytest.mark.parametrize(
    "finish, extra, expected",
    [
        ("length", {}, ("max_tokens", None)),
        ("content_filter", {}, ("refusal", None)),
        ("stop", {"stop_reason": "###"}, ("stop_sequence", "###")),  # vLLM names the matched stop
        ("stop", {"stop_reason": 50256}, ("end_turn", None)),  # a stop token id is not a sequence
        ("some_new_reason", {}, ("end_turn", None)),
    ],
)
def test_finish_reasons(finish, extra, expected):
    events = translate([chunk({"content": "x"}), chunk({}, finish, **extra)])
    assert end_of(events)[:2] == expected


def test_a_refusal_streams_as_text_with_stop_reason_refusal():
    events = translate([chunk({"refusal": "I can't help with that."}), chunk({}, "stop")])
    assert blocks_of(events) == [{"type": "text", "text": "I can't help with that."}]
    assert end_of(events)[0] == "refusal"


def test_without_a_usage_chunk_output_tokens_is_zero():
    assert end_of(translate(TEXT_CHUNKS[:-1]))[2] == {"output_tokens": 0}


def test_input_tokens_hint_goes_to_message_start_and_the_real_count_to_message_delta():
    events = translate(TEXT_CHUNKS, input_tokens=77)
    assert events[0][1]["message"]["usage"]["input_tokens"] == 77
    assert end_of(events)[2]["input_tokens"] == 9


def test_usage_on_the_first_chunk_wins_over_the_hint():
    first = chunk(ROLE, usage=usage(31, 0))
    events = translate([first, *TEXT_CHUNKS[1:]], input_tokens=77)
    assert events[0][1]["message"]["usage"]["input_tokens"] == 31


def test_other_choices_are_ignored():
    chunks = [chunk({"content": "zero"}), chunk({"content": "one"}, index=1), chunk({}, "stop")]
    assert blocks_of(translate(chunks)) == [{"type": "text", "text": "zero"}]


def test_an_empty_answer_is_still_a_whole_message():
    events = translate([])
    assert names(events) == ["message_start", "message_delta", "message_stop"]
    assert events[0][1]["message"]["id"].startswith("msg_")


def test_tool_fragments_without_index_follow_their_id():
    chunks = [
        chunk({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": '{"x":'}}]}),
        chunk({"tool_calls": [{"function": {"arguments": "1}"}}]}),
        chunk({"tool_calls": [{"id": "b", "function": {"name": "g", "arguments": "{}"}}]}),
        chunk({}, "tool_calls"),
    ]
    blocks = blocks_of(translate(chunks))
    assert [(b["id"], b["input"]) for b in blocks] == [("a", {"x": 1}), ("b", {})]


def test_a_call_without_id_gets_a_tool_use_id():
    events = translate([chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{}"}}]})])
    assert blocks_of(events)[0]["id"].startswith("toolu_")


# --- endings: [DONE], a missing [DONE], a stream that breaks off -----------------------------------

def test_finish_after_done_owes_nothing_and_later_data_is_dropped():
    translator = MessagesStreamTranslator(MODEL)
    feed_all(translator, TEXT_CHUNKS)
    assert translator.feed(orjson.dumps(chunk({"content": "late"}))) == []
    assert translator.feed(b"[DONE]") == [] and translator.finish() == []


def test_a_finished_stream_without_done_is_complete():
    events = translate(TEXT_CHUNKS, done=False)
    assert names(events)[-2:] == ["message_delta", "message_stop"]
    assert end_of(events)[2]["output_tokens"] == 4


@pytest.mark.parametrize("cut", [0, 1, 3, 5])
def test_a_stream_that_breaks_off_ends_with_an_error_event_only(cut):
    events = translate(TOOL_CHUNKS[:cut], done=False)
    assert events[-1] == (
        "error",
        {"type": "error", "error": {"type": "api_error", "message": "upstream stream ended before the answer was complete"}},
    )
    assert "message_stop" not in names(events) and "message_delta" not in names(events)


@pytest.mark.parametrize(
    "error, kind",
    [
        ({"message": "Rate limit reached", "type": "requests", "param": None, "code": "rate_limit_exceeded"},
         "rate_limit_error"),
        ({"message": "overloaded", "type": "server_error", "param": None, "code": "overloaded"}, "overloaded_error"),
        ({"message": "upstream timed out", "type": "server_error", "code": "upstream_timeout"}, "timeout_error"),
        ({"message": "bad", "type": "invalid_request_error", "code": None}, "invalid_request_error"),
        ({"message": "who knows", "type": "server_error", "code": "internal_error"}, "api_error"),
    ],
)  # fmt: skip
def test_an_upstream_error_in_the_stream_is_one_error_event(error, kind):
    translator = MessagesStreamTranslator(MODEL)
    before = translator.feed(orjson.dumps(TEXT_CHUNKS[1]))
    out = translator.feed(orjson.dumps({"error": error}))
    assert names(parse_events(before)) == ["message_start", "content_block_start", "content_block_delta"]
    assert parse_events(out) == [("error", {"type": "error", "error": {"type": kind, "message": error["message"]}})]
    assert translator.feed(b"[DONE]") == [] and translator.finish() == []


@pytest.mark.parametrize(
    "data, message",
    [
        (b"not json", "upstream stream event is not JSON"),
        (b"[1, 2]", "upstream stream event is not a JSON object"),
        (orjson.dumps({"choices": "nope"}), "malformed upstream stream chunk"),
        (orjson.dumps(chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})),
         "a tool call starts without a name"),
        (orjson.dumps(chunk({"tool_calls": [{"function": {"arguments": "{}"}}]})),
         "a tool call fragment names no tool call"),
    ],
)  # fmt: skip
def test_what_cannot_be_translated_ends_the_stream_with_an_error(data, message):
    translator = MessagesStreamTranslator(MODEL)
    events = parse_events(translator.feed(data))
    assert events[-1] == ("error", {"type": "error", "error": {"type": "api_error", "message": message}})
    assert translator.finish() == []


def test_interleaved_tool_call_arguments_are_an_error_not_a_reopened_block():
    chunks = [
        chunk(tool_start(0, "c0", "f")),
        chunk(tool_start(1, "c1", "g")),
        chunk(tool_arguments(0, '{"late": true}')),
    ]
    events = translate(chunks, done=False)
    assert events[-1][1]["error"]["message"] == "upstream interleaved the arguments of parallel tool calls"
    stops = [data["index"] for name, data in events if name == "content_block_stop"]
    assert stops == [0], "the block of call 0 was stopped once and never reopened"


def test_blank_data_is_nothing():
    translator = MessagesStreamTranslator(MODEL)
    assert translator.feed(b"") == [] and translator.feed(b"  ") == []


# --- through the core SSE splitter ---------------------------------------------------------------------

def through_splitter(pieces):
    splitter = SSESplitter()
    translator = MessagesStreamTranslator(MODEL)
    out = []
    for piece in pieces:
        for _name, data in splitter.feed(piece):
            out.extend(translator.feed(data))
    for _name, data in splitter.flush():
        out.extend(translator.feed(data))
    out.extend(translator.finish())
    return out


def test_split_at_every_byte_boundary_gives_the_same_events():
    wire = to_wire(TOOL_CHUNKS)
    expected = through_splitter([wire])
    assert blocks_of(parse_events(expected))[0] == {"type": "text", "text": "Let me check."}
    assert parse_events(expected)[-1] == ("message_stop", {"type": "message_stop"})
    for cut in range(len(wire) + 1):
        assert through_splitter([wire[:cut], wire[cut:]]) == expected, cut
    assert through_splitter([wire[i : i + 1] for i in range(len(wire))]) == expected


def test_the_whole_wire_in_one_piece_equals_chunk_by_chunk_feeding():
    for chunks in (TEXT_CHUNKS, TOOL_CHUNKS, REASONING_CHUNKS):
        assert through_splitter([to_wire(chunks)]) == feed_all(MessagesStreamTranslator(MODEL), chunks)


def test_crlf_wire_and_a_last_event_without_blank_line():
    wire = to_wire(TEXT_CHUNKS).replace(b"\n", b"\r\n")[: -len(b"\r\n")]
    events = parse_events(through_splitter([wire]))
    assert blocks_of(events) == [{"type": "text", "text": "Hello, world!"}]
    assert names(events)[-1] == "message_stop"

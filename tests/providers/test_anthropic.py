"""The Anthropic translator in both directions: OpenAI requests -> Messages bodies, Messages answers and
errors -> OpenAI completions, and Messages event streams -> OpenAI chunk streams (event by event, and
through the real core ``SSESplitter`` cut at every byte boundary)."""

import base64
import time

import orjson
import pytest

from alloy.core import SSESplitter
from alloy.errors import InvalidRequest
from alloy.providers import TranslateSettings, UpstreamCall, anthropic
from alloy.providers import anthropic_stream as machine
from fixtures_anthropic import (
    BROKEN_STREAM,
    EFFORT_BUDGETS,
    ERROR_CASES,
    ERROR_STREAM,
    JSON_SCHEMA_BODY,
    REJECT_CASES,
    REQUEST_CASES,
    RESPONSE_CASES,
    TEXT_STREAM,
    TEXT_STREAM_TEXT,
    THINKING_MESSAGE,
    THINKING_STREAM,
    THINKING_STREAM_REASONING,
    THINKING_STREAM_USAGE,
    TOOL_STREAM,
    TOOL_STREAM_CALLS,
    USER_HI,
    event,
    message_end,
    message_start,
    signature_delta,
    text_delta,
    thinking_delta,
    to_sse,
    usage,
)

CHAT = "chat/completions"
SETTINGS = TranslateSettings(api_key="sk-ant-test")
MODEL = "claude-sonnet-4-5"
DONE = b"data: [DONE]\n\n"


def build(body, settings=SETTINGS):
    return anthropic.build_request(body, MODEL, CHAT, settings)


# --- requests ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, body, expected", REQUEST_CASES, ids=[case[0] for case in REQUEST_CASES])
def test_request_mapping(name, body, expected):
    call = build(body)
    assert orjson.loads(call.body) == {"model": MODEL, "max_tokens": 4096, **expected}
    assert call.stream is bool(body.get("stream"))


PDF_DATA = base64.b64encode(b"%PDF-1.4 tiny").decode()


def test_a_file_part_becomes_a_document_block():
    """OpenAI's ``file`` part (``file_data`` as a base64 data URL): a PDF is a base64 document, a
    text file a text document; what Anthropic cannot read is the client's 400, naming the part."""
    text = base64.b64encode("naïve notes".encode()).decode()
    content = [
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64," + PDF_DATA}, "cache_control": {"type": "ephemeral"}},
        {"type": "file", "file": {"filename": "n.txt", "file_data": "data:text/plain;charset=utf-8;base64," + text}},
        {"type": "text", "text": "summarize"},
    ]  # fmt: skip
    sent = orjson.loads(build({"messages": [{"role": "user", "content": content}]}).body)["messages"][0]["content"]
    assert sent == [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_DATA}, "cache_control": {"type": "ephemeral"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "naïve notes"}},
        {"type": "text", "text": "summarize"},
    ]  # fmt: skip
    for file, says in [
        ({"file_id": "file-abc"}, "not a file_id"),
        ({"file_data": "data:image/png;base64,AAAA"}, "not image/png"),
        ({"file_data": PDF_DATA}, "data:<type>;base64,<data>"),
        ({"file_data": "data:text/plain;base64,//79"}, "UTF-8"),
    ]:
        with pytest.raises(InvalidRequest) as caught:
            build({"messages": [{"role": "user", "content": [{"type": "file", "file": file}]}]})
        assert says in str(caught.value) and caught.value.param == "messages[0].content[0]"


def test_call_is_a_post_to_messages_with_anthropic_credentials():
    call = build({"messages": [USER_HI]})
    assert isinstance(call, UpstreamCall)
    assert (call.method, call.path, call.stream) == (b"POST", b"/v1/messages", False)
    assert call.headers == [
        (b"x-api-key", b"sk-ant-test"),
        (b"anthropic-version", b"2023-06-01"),
        (b"content-type", b"application/json"),
    ]


def test_configured_version_and_max_tokens_default():
    settings = TranslateSettings(api_key="k", api_version="2024-01-01", max_tokens_default=123)
    call = build({"messages": [USER_HI], "stream": True}, settings)
    assert (b"anthropic-version", b"2024-01-01") in call.headers
    assert orjson.loads(call.body)["max_tokens"] == 123
    assert call.stream is True


def test_json_schema_response_format_puts_the_schema_in_the_system_prompt():
    system = orjson.loads(build(JSON_SCHEMA_BODY).body)["system"]
    assert "JSON" in system and "greeting" in system
    schema = JSON_SCHEMA_BODY["response_format"]["json_schema"]["schema"]
    assert orjson.loads(system[system.index("{") :]) == schema


@pytest.mark.parametrize("effort, budget", EFFORT_BUDGETS)
def test_every_effort_has_its_budget(effort, budget):
    sent = orjson.loads(build({"messages": [USER_HI], "reasoning_effort": effort}).body)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert sent["max_tokens"] == budget + 4096 and 1024 <= budget < sent["max_tokens"]


@pytest.mark.parametrize("client_max", [1, 100, 1024, 2047, 2048, 2049, 6000, 6144, 6145, 64000])
def test_max_tokens_is_raised_never_lowered_and_always_above_the_budget(client_max):
    sent = orjson.loads(build({"messages": [USER_HI], "reasoning_effort": "low", "max_tokens": client_max}).body)
    budget = sent["thinking"]["budget_tokens"]
    assert sent["max_tokens"] >= client_max and sent["max_tokens"] > budget
    assert sent["max_tokens"] - budget >= min(client_max, 4096)  # the answer keeps its room


def test_the_configured_default_is_the_answer_room_without_a_client_max():
    settings = TranslateSettings(api_key="k", max_tokens_default=1000)
    sent = orjson.loads(build({"messages": [USER_HI], "reasoning_effort": "medium"}, settings).body)
    assert (sent["thinking"]["budget_tokens"], sent["max_tokens"]) == (8192, 9192)


@pytest.mark.parametrize(
    "model", ["claude-3-5-haiku-20241022", "claude-3-5-sonnet-latest", "claude-3-opus-20240229", "claude-3-haiku-20240307",
              "claude-2.1", "claude-instant-1.2"],
)  # fmt: skip
def test_models_that_do_not_think_ignore_reasoning_effort(model):
    call = anthropic.build_request({"messages": [USER_HI], "reasoning_effort": "high", "temperature": 0.2}, model, CHAT, SETTINGS)
    sent = orjson.loads(call.body)
    assert "thinking" not in sent and (sent["max_tokens"], sent["temperature"]) == (4096, 0.2)


@pytest.mark.parametrize("model", ["claude-3-7-sonnet-20250219", "claude-sonnet-4-20250514", "claude-opus-4-1", "claude-haiku-4-5"])
def test_models_that_think_get_thinking(model):
    call = anthropic.build_request({"messages": [USER_HI], "reasoning_effort": "low"}, model, CHAT, SETTINGS)
    assert orjson.loads(call.body)["thinking"] == {"type": "enabled", "budget_tokens": 2048}


@pytest.mark.parametrize(
    "model, effort, sent",
    [
        ("claude-opus-4-7", "xhigh", "xhigh"),
        ("claude-opus-4-7-20260416", "minimal", "low"),
        ("anthropic.claude-opus-4-6-v1", "xhigh", "high"),  # 4.6 predates xhigh
        ("claude-sonnet-4-6", "max", "max"),
        ("claude-sonnet-5", "medium", "medium"),
        ("claude-mythos-preview", "high", "high"),  # no version: a preview, adaptive only
    ],
)
def test_claude_4_6_and_later_think_adaptively_at_an_effort(model, effort, sent):
    """Claude 4.7 refuses ``thinking: {type: enabled, budget_tokens}`` (400) and 4.6 deprecates it:
    they get adaptive thinking with ``output_config.effort``, and max_tokens as it was."""
    body = {"messages": [USER_HI], "reasoning_effort": effort, "temperature": 0.2, "top_p": 0.5}
    out = orjson.loads(anthropic.build_request(body, model, CHAT, SETTINGS).body)
    assert out["thinking"] == {"type": "adaptive"} and out["output_config"] == {"effort": sent}
    assert out["max_tokens"] == 4096 and "temperature" not in out and out["top_p"] == 0.95


@pytest.mark.parametrize(
    "model, version",
    [("claude-opus-4-7", (4, 7)), ("claude-sonnet-4-5-20250929", (4, 5)), ("claude-sonnet-4-20250514", (4, 0)),
     ("claude-3-7-sonnet-20250219", (3, 7)), ("claude-opus-4-1", (4, 1)), ("claude-haiku-4-5@20251001", (4, 5)),
     ("claude-2.1", (2, 1)), ("claude-mythos-preview", None)],
)  # fmt: skip
def test_a_claude_version_is_read_from_both_spellings(model, version):
    assert anthropic.claude_version(model) == version


def test_a_named_tool_choice_also_stops_thinking():
    body = {
        "messages": [USER_HI],
        "reasoning_effort": "low",
        "tools": [{"type": "function", "function": {"name": "now"}}],
        "tool_choice": {"type": "function", "function": {"name": "now"}},
    }
    assert "thinking" not in orjson.loads(build(body).body)
    body["tool_choice"] = "auto"
    assert orjson.loads(build(body).body)["thinking"]["budget_tokens"] == 2048


def test_without_cache_control_the_system_prompt_stays_one_string():
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    body = {"messages": [{"role": "system", "content": parts}, {"role": "system", "content": "c"}, USER_HI]}
    assert orjson.loads(build(body).body)["system"] == "a\nb\n\nc"


@pytest.mark.parametrize("name, body, param", REJECT_CASES, ids=[case[0] for case in REJECT_CASES])
def test_request_anthropic_cannot_express_is_a_400_naming_the_field(name, body, param):
    with pytest.raises(InvalidRequest) as caught:
        build(body)
    assert caught.value.status == 400
    assert caught.value.param == param


def test_embeddings_are_refused():
    with pytest.raises(InvalidRequest) as caught:
        anthropic.build_request({"input": "x"}, MODEL, "embeddings", SETTINGS)
    assert caught.value.code == "unsupported_endpoint"


# --- complete answers -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, message, reply, finish, usage", RESPONSE_CASES, ids=[case[0] for case in RESPONSE_CASES])
def test_response_mapping(name, message, reply, finish, usage):
    before = int(time.time())
    status, body = anthropic.translate_response(200, orjson.dumps(message), "my-alias", CHAT)
    completion = orjson.loads(body)
    assert status == 200
    assert completion["id"] == "chatcmpl-" + message["id"]
    assert completion["object"] == "chat.completion"
    assert before <= completion["created"] <= int(time.time())
    assert completion["model"] == "my-alias"
    assert completion["choices"] == [{"index": 0, "message": reply, "logprobs": None, "finish_reason": finish}]
    assert completion["usage"] == usage


@pytest.mark.parametrize("status, body, to_status, kind, code, fragment", ERROR_CASES)
def test_error_mapping(status, body, to_status, kind, code, fragment):
    got_status, got = anthropic.translate_response(status, body, MODEL, CHAT)
    error = orjson.loads(got)["error"]
    assert got_status == to_status
    assert (error["type"], error["code"], error["param"]) == (kind, code, None)
    assert fragment in error["message"]


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"content": "x"}'])
def test_a_success_that_is_not_a_message_is_a_502(body):
    status, got = anthropic.translate_response(200, body, MODEL, CHAT)
    assert status == 502
    assert orjson.loads(got)["error"]["code"] == "upstream_protocol_error"


# --- streams ---------------------------------------------------------------------------------------------

def translate(events, include_usage=True):
    """Feed ``events`` one by one, then finish; every output must be one complete SSE data event."""
    translator = anthropic.StreamTranslator("my-alias", include_usage)
    out = []
    for name, data in events:
        out.extend(translator.feed(name.encode(), orjson.dumps(data)))
    out.extend(translator.finish())
    for item in out:
        assert item.startswith(b"data: ") and item.endswith(b"\n\n") and item.count(b"\n\n") == 1
    return out


def payloads(out):
    assert out[-1] == DONE and out.count(DONE) == 1
    return [orjson.loads(item[len(b"data: ") :]) for item in out[:-1]]


def deltas(chunks):
    return [chunk["choices"][0]["delta"] for chunk in chunks if chunk.get("choices")]


def test_text_stream_joins_to_the_text_then_finish_usage_and_done():
    chunks = payloads(translate(TEXT_STREAM))
    assert {chunk["id"] for chunk in chunks} == {"chatcmpl-msg_stream_1"}
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert {chunk["model"] for chunk in chunks} == {"my-alias"}
    assert len({chunk["created"] for chunk in chunks}) == 1
    assert deltas(chunks)[0] == {"role": "assistant", "content": ""}
    assert "".join(delta.get("content", "") for delta in deltas(chunks)) == TEXT_STREAM_TEXT
    *body, final, usage = chunks
    assert [chunk["choices"][0]["finish_reason"] for chunk in body] == [None] * len(body)
    assert final["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]
    assert usage["choices"] == []
    assert usage["usage"] == {
        "prompt_tokens": 25,
        "completion_tokens": 15,
        "total_tokens": 40,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
    }


def test_without_include_usage_there_is_no_usage_chunk():
    chunks = payloads(translate(TEXT_STREAM, include_usage=False))
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in chunk for chunk in chunks)


def test_the_role_chunk_says_content_null_when_the_answer_opens_with_a_tool_call():
    """As OpenAI does, so that the SDK's accumulated message has content None, as without
    streaming; an answer that opens with text (or thinking) opens with content ""; an empty answer
    still gets its role chunk."""
    only_call = [
        message_start(),
        event("content_block_start", index=0, content_block={"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}}),
        event("content_block_stop", index=0),
        *message_end("tool_use", 5),
    ]
    first = deltas(payloads(translate(only_call)))[0]
    assert first == {"role": "assistant", "content": None}
    assert deltas(payloads(translate(TEXT_STREAM)))[0] == {"role": "assistant", "content": ""}
    assert deltas(payloads(translate(TOOL_STREAM)))[0] == {"role": "assistant", "content": ""}  # thinking first
    empty = deltas(payloads(translate([message_start(), *message_end("end_turn", 0)])))
    assert empty[0] == {"role": "assistant", "content": ""} and empty[1] == {}


def test_tool_stream_sends_calls_the_way_openai_does():
    chunks = payloads(translate(TOOL_STREAM))
    call_deltas = [call for delta in deltas(chunks) for call in delta.get("tool_calls", ())]
    assert call_deltas[0] == {
        "index": 0,
        "id": "toolu_01A",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert call_deltas[1:4] == [
        {"index": 0, "function": {"arguments": fragment}} for fragment in ('{"ci', 'ty": "Os', 'lo"}')
    ]
    calls = {}
    for call in call_deltas:
        entry = calls.setdefault(call["index"], {"id": None, "name": None, "arguments": ""})
        entry["id"] = call.get("id", entry["id"])
        entry["name"] = call["function"].get("name", entry["name"])
        entry["arguments"] += call["function"]["arguments"]
    assert [calls[i] for i in sorted(calls)] == TOOL_STREAM_CALLS
    assert "".join(delta.get("content") or "" for delta in deltas(chunks)) == "Checking both."
    assert "".join(delta.get("reasoning_content") or "" for delta in deltas(chunks)) == "weather twice"
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"] == usage(50, 60, cached=10)


def test_later_message_delta_usage_wins():
    events = [
        *TEXT_STREAM[:-2],
        event("message_delta", delta={"stop_reason": "max_tokens"}, usage={"output_tokens": 3}),
        event("message_delta", delta={}, usage={"input_tokens": 30, "output_tokens": 4}),
        event("message_stop"),
    ]
    chunks = payloads(translate(events))
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"] == usage(30, 4)


def test_thinking_streams_as_reasoning_content_before_the_text():
    chunks = payloads(translate(THINKING_STREAM))
    sent = deltas(chunks)
    assert sent[0] == {"role": "assistant", "content": ""}
    reasoning = [delta["reasoning_content"] for delta in sent if "reasoning_content" in delta]
    assert reasoning == ["The user asks ", "for a sum.", "\n\n2 + 2 = 4."]  # a blank line between blocks
    assert all(set(delta) == {"reasoning_content"} for delta in sent if "reasoning_content" in delta)
    first_text = next(i for i, delta in enumerate(sent) if delta.get("content"))
    assert all("reasoning_content" not in delta for delta in sent[first_text:])
    assert "".join(delta.get("content", "") for delta in sent) == "It is 4."
    assert b"signature" not in b"".join(translate(THINKING_STREAM))  # signatures have no OpenAI place
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == THINKING_STREAM_USAGE


def test_a_thinking_stream_sums_to_the_complete_answer():
    """What a client accumulates from the stream is the complete answer's message and usage."""
    chunks = payloads(translate(THINKING_STREAM))
    _, body = anthropic.translate_response(200, orjson.dumps(THINKING_MESSAGE), "my-alias", CHAT)
    complete = orjson.loads(body)
    message = complete["choices"][0]["message"]
    assert "".join(delta.get("reasoning_content", "") for delta in deltas(chunks)) == message["reasoning_content"]
    assert message["reasoning_content"] == THINKING_STREAM_REASONING
    assert "".join(delta.get("content", "") for delta in deltas(chunks)) == message["content"]
    assert chunks[-1]["usage"] == complete["usage"] == THINKING_STREAM_USAGE


def test_a_thinking_start_with_text_and_an_empty_delta():
    events = [
        message_start(),
        event("content_block_start", index=0, content_block={"type": "thinking", "thinking": "Hm. ", "signature": ""}),
        thinking_delta(0, ""),
        thinking_delta(0, "Yes."),
        signature_delta(0, "c2ln"),
        event("content_block_stop", index=0),
        *TEXT_STREAM[1:],
    ]
    reasoning = [d["reasoning_content"] for d in deltas(payloads(translate(events))) if "reasoning_content" in d]
    assert reasoning == ["Hm. ", "Yes."]


def test_without_include_usage_a_thinking_stream_has_no_usage_chunk():
    chunks = payloads(translate(THINKING_STREAM, include_usage=False))
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and all("usage" not in c for c in chunks)


@pytest.mark.parametrize(
    "bad",
    [text_delta(0, "x"), event("content_block_delta", index=0, delta={"type": "input_json_delta", "partial_json": "{"})],
    ids=["text_delta", "json_delta"],
)
def test_a_foreign_delta_inside_a_thinking_block_is_a_protocol_error(bad):
    events = [message_start(), THINKING_STREAM[1], bad, *THINKING_STREAM[3:]]
    chunks = payloads(translate(events))
    assert chunks[-1]["error"]["code"] == "upstream_protocol_error"


def test_an_error_event_ends_the_stream_with_one_openai_error():
    out = translate(ERROR_STREAM)
    chunks = payloads(out)
    assert "".join(delta.get("content", "") for delta in deltas(chunks)) == "Partial"
    assert chunks[-1] == {
        "error": {"message": "Overloaded", "type": "server_error", "param": None, "code": "overloaded"}
    }
    assert sum("error" in chunk for chunk in chunks) == 1


@pytest.mark.parametrize("error", [None, "boom", {"type": ["x"], "message": 3}], ids=["null", "string", "wrong-types"])
def test_a_malformed_error_event_still_ends_the_stream_cleanly(error):
    chunks = payloads(translate([*TEXT_STREAM[:2], ("error", {"type": "error", "error": error})]))
    assert chunks[-1]["error"]["type"] == "server_error"
    assert chunks[-1]["error"]["message"] == "upstream stream error"


def test_nothing_follows_done():
    translator = anthropic.StreamTranslator(MODEL, True)
    for name, data in TEXT_STREAM:
        translator.feed(name.encode(), orjson.dumps(data))
    assert translator.feed(b"ping", b'{"type":"ping"}') == []
    assert translator.feed(None, orjson.dumps(text_delta(0, "late")[1])) == []
    assert translator.finish() == []


@pytest.mark.parametrize(
    "events",
    [
        BROKEN_STREAM,
        [],
        [message_start()],
        TEXT_STREAM[:-1],  # message_delta came, message_stop did not
    ],
    ids=["mid-text", "nothing", "after-message_start", "before-message_stop"],
)
def test_a_stream_that_breaks_off_ends_with_an_error_then_done(events):
    chunks = payloads(translate(events))
    assert chunks[-1]["error"]["code"] == "upstream_protocol_error"
    assert all("finish_reason" not in str(chunk.get("choices")) or chunk["choices"][0]["finish_reason"] is None
               for chunk in chunks if chunk.get("choices"))  # fmt: skip


@pytest.mark.parametrize(
    "first",
    [text_delta(0, "x"), event("message_stop"), event("content_block_stop", index=0)],
    ids=["delta", "stop", "block_stop"],
)
def test_events_out_of_order_are_a_protocol_error(first):
    chunks = payloads(translate([first, *TEXT_STREAM]))
    assert len(chunks) == 1 and chunks[0]["error"]["code"] == "upstream_protocol_error"


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "content_block_delta", "index": 0, "delta": "not an object"},
        {"type": "content_block_start", "index": 0, "content_block": ["text"]},
    ],
    ids=["delta", "content_block"],
)
def test_a_field_of_the_wrong_type_is_a_protocol_error(bad):
    chunks = payloads(translate([*TEXT_STREAM[:2], ("x", bad), *TEXT_STREAM[2:]]))
    assert chunks[-1]["error"]["code"] == "upstream_protocol_error"


@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]"])
def test_undecodable_event_is_a_protocol_error(data):
    translator = anthropic.StreamTranslator(MODEL, False)
    out = translator.feed(b"message_start", data)
    assert out[-1] == DONE and b"upstream_protocol_error" in out[0]


# One event of every kind the table knows (and one it does not), as Anthropic would send it.
SAMPLES = {
    "message_start": message_start()[1],
    "start_text": event("content_block_start", index=0, content_block={"type": "text", "text": ""})[1],
    "start_tool": event("content_block_start", index=0, content_block={"type": "tool_use", "id": "t", "name": "f", "input": {}})[1],
    "start_thinking": event("content_block_start", index=0, content_block={"type": "thinking", "thinking": ""})[1],
    "start_other": event("content_block_start", index=0, content_block={"type": "redacted_thinking", "data": "x"})[1],
    "text_delta": text_delta(0, "x")[1],
    "json_delta": event("content_block_delta", index=0, delta={"type": "input_json_delta", "partial_json": "{"})[1],
    "thinking_delta": thinking_delta(0, "x")[1],
    "signature_delta": signature_delta(0, "c2ln")[1],
    "other_delta": event("content_block_delta", index=0, delta={"type": "citations_delta", "citation": {}})[1],
    "content_block_stop": event("content_block_stop", index=0)[1],
    "message_delta": event("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 1})[1],
    "message_stop": event("message_stop")[1],
    "message_restart": {"type": "message_restart"},  # a kind the table does not know
}
STATES = [machine.START, machine.MESSAGE, machine.TEXT, machine.TOOL, machine.THINKING, machine.IGNORED, machine.STOPPING]


def test_samples_cover_the_table():
    assert {machine.kind_of(sample) for sample in SAMPLES.values()} == set(SAMPLES)
    assert {kind for _, kind in machine.StreamTranslator.TRANSITIONS} <= set(SAMPLES)
    assert {state for state, _ in machine.StreamTranslator.TRANSITIONS} == set(STATES)


@pytest.mark.parametrize("state", STATES)
def test_every_pair_outside_the_table_is_refused(state):
    """The table is the whole machine: a pair it does not list ends the stream, whatever it is."""
    for kind, sample in SAMPLES.items():
        if (state, kind) in machine.StreamTranslator.TRANSITIONS:
            continue
        translator = anthropic.StreamTranslator(MODEL, False)
        translator.state = state
        out = translator.feed(None, orjson.dumps(sample))
        assert out[-1] == DONE and b"upstream_protocol_error" in out[0], (state, kind)
        assert translator.state == machine.DONE_STATE


def test_ping_and_error_are_accepted_in_every_state():
    for state in STATES:
        translator = anthropic.StreamTranslator(MODEL, False)
        translator.state = state
        assert translator.feed(b"ping", b'{"type": "ping"}') == []
        out = translator.feed(b"error", b'{"type":"error","error":{"type":"api_error","message":"boom"}}')
        assert orjson.loads(out[0][6:])["error"]["code"] == "internal_error" and out[1] == DONE


# --- through the core SSE splitter ---------------------------------------------------------------------

def through_splitter(pieces):
    splitter = SSESplitter()
    translator = anthropic.StreamTranslator("my-alias", True)
    out = []
    for piece in pieces:
        for name, data in splitter.feed(piece):
            out.extend(translator.feed(name, data))
    for name, data in splitter.flush():
        out.extend(translator.feed(name, data))
    out.extend(translator.finish())
    return [orjson.loads(item[6:]) if item != DONE else "[DONE]" for item in out]


def without_created(items):
    return [{k: v for k, v in item.items() if k != "created"} if isinstance(item, dict) else item for item in items]


def test_split_at_every_byte_boundary_gives_the_same_chunks():
    small = [TEXT_STREAM[0], TEXT_STREAM[1], TEXT_STREAM[3], TEXT_STREAM[6], *TEXT_STREAM[7:]]
    wire = to_sse(small)
    expected = without_created(through_splitter([wire]))
    assert expected[-1] == "[DONE]" and expected[-3]["choices"][0]["finish_reason"] == "stop"
    for cut in range(len(wire) + 1):
        assert without_created(through_splitter([wire[:cut], wire[cut:]])) == expected, cut
    assert without_created(through_splitter([wire[i : i + 1] for i in range(len(wire))])) == expected


def test_a_thinking_stream_split_at_every_byte_boundary_gives_the_same_chunks():
    small = [THINKING_STREAM[0], THINKING_STREAM[1], THINKING_STREAM[2], THINKING_STREAM[4], THINKING_STREAM[5],
             *THINKING_STREAM[13:]]  # fmt: skip
    wire = to_sse(small)
    expected = without_created(through_splitter([wire]))
    reasoning = [c["choices"][0]["delta"].get("reasoning_content") for c in expected[:-1] if c.get("choices")]
    assert "The user asks " in reasoning and expected[-2]["usage"] == THINKING_STREAM_USAGE
    for cut in range(len(wire) + 1):
        assert without_created(through_splitter([wire[:cut], wire[cut:]])) == expected, cut
    assert without_created(through_splitter([wire[i : i + 1] for i in range(len(wire))])) == expected


def test_crlf_wire_and_a_last_event_without_blank_line():
    wire = to_sse(TOOL_STREAM).replace(b"\n", b"\r\n")[: -len(b"\r\n")]
    chunks = through_splitter([wire])
    assert chunks[-1] == "[DONE]"
    assert chunks[-2]["usage"]["prompt_tokens_details"] == {"cached_tokens": 10, "cache_write_tokens": 0}


def test_with_include_usage_every_chunk_before_the_usage_chunk_has_usage_null():
    """OpenAI's stream_options.include_usage: "All other chunks will also include a usage field,
    but with a null value"; without it, no chunk has the field."""
    asked = payloads(translate(TEXT_STREAM, include_usage=True))
    assert [chunk["usage"] is None for chunk in asked] == [True] * (len(asked) - 1) + [False]
    assert not any("usage" in chunk for chunk in payloads(translate(TEXT_STREAM, include_usage=False)))


def test_messages_that_are_all_empty_are_a_400_saying_so():
    with pytest.raises(InvalidRequest) as caught:
        build({"model": "m", "messages": [{"role": "user", "content": ""}]})
    assert caught.value.param == "messages" and "with some content" in caught.value.message

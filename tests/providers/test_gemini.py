"""The Gemini translator in both directions: OpenAI requests -> generateContent / batchEmbedContents
calls, Gemini answers and errors -> OpenAI completions, embedding lists and errors, and Gemini event
streams -> OpenAI chunk streams (event by event, and through the real core ``SSESplitter`` cut at
every byte boundary)."""

import orjson
import pytest

from alloy.core import SSESplitter
from alloy.errors import InvalidRequest
from alloy.providers import TranslateSettings, UpstreamCall, gemini
from fixtures_gemini import (
    BLOCKED,
    BLOCKED_STREAM,
    BROKEN_STREAM,
    CALL_ANSWER,
    ERROR_CASES,
    ERROR_STREAM,
    REJECT_CASES,
    REQUEST_CASES,
    RESPONSE_CASES,
    TEXT_STREAM,
    TEXT_STREAM_TEXT,
    TEXT_STREAM_USAGE,
    THINKING_ANSWER,
    THINKING_CASES,
    THINKING_STREAM,
    THINKING_STREAM_REASONING,
    THINKING_STREAM_USAGE,
    TOOL_STREAM,
    TWO_CANDIDATES,
    USAGE_AFTER_FINISH,
    USER_HI,
    chunk,
    to_sse,
    usage,
)

SETTINGS = TranslateSettings(api_key="AIza-test")
MODEL = "gemini-2.0-flash"
CHAT = "chat/completions"


def build(body, model=MODEL, endpoint=CHAT, settings=SETTINGS):
    call = gemini.build_request(body, model, endpoint, settings)
    assert isinstance(call, UpstreamCall)
    return call, orjson.loads(call.body)


# --- requests ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, body, expected", REQUEST_CASES, ids=[case[0] for case in REQUEST_CASES])
def test_request_mapping(name, body, expected):
    _, out = build(body)
    for key, value in expected.items():
        if value is None:
            assert key not in out, key
        else:
            assert out[key] == value, key


@pytest.mark.parametrize("model, effort, expected", THINKING_CASES, ids=[f"{c[0]}-{c[1]}" for c in THINKING_CASES])
def test_reasoning_effort_becomes_a_thinking_config(model, effort, expected):
    _, out = build({"messages": [USER_HI], "reasoning_effort": effort, "max_completion_tokens": 100, "temperature": 0.5}, model=model)
    generation = out["generationConfig"]
    assert generation.get("thinkingConfig") == expected
    assert (generation["maxOutputTokens"], generation["temperature"]) == (100, 0.5)  # passed unchanged


def test_reasoning_effort_alone_makes_the_generation_config():
    _, out = build({"messages": [USER_HI], "reasoning_effort": "low"}, model="gemini-2.5-flash")
    assert out["generationConfig"] == {"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 2048}}
    _, out = build({"messages": [USER_HI], "reasoning_effort": "none"}, model="gemini-2.5-pro")
    assert "generationConfig" not in out


def test_chat_call_path_headers_and_stream_flag():
    call, _ = build({"messages": [USER_HI]})
    assert (call.method, call.path, call.stream) == (b"POST", b"/v1beta/models/gemini-2.0-flash:generateContent", False)
    assert call.headers == [(b"x-goog-api-key", b"AIza-test"), (b"content-type", b"application/json")]
    call, out = build({"messages": [USER_HI], "stream": True, "stream_options": {"include_usage": True}})
    assert call.path == b"/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    assert call.stream is True
    assert set(out) == {"contents"}  # stream and stream_options are not body fields for Gemini


def test_models_prefix_dropped_from_the_model_in_the_path():
    call, _ = build({"messages": [USER_HI]}, model="models/gemini-1.5-pro")
    assert call.path == b"/v1beta/models/gemini-1.5-pro:generateContent"


@pytest.mark.parametrize("model", ["gemini 1.5?x", "../../v1/files", "..", "a/b", "a%2Fb", "a#b"])
def test_a_model_that_is_not_a_plain_name_never_reaches_the_path(model):
    with pytest.raises(InvalidRequest) as info:
        build({"messages": [USER_HI]}, model=model)
    assert info.value.param == "model"


def test_no_api_key_sends_no_key_header():
    call, _ = build({"messages": [USER_HI]}, settings=TranslateSettings(api_key=None))
    assert call.headers == [(b"content-type", b"application/json")]


@pytest.mark.parametrize("name, body, param", REJECT_CASES, ids=[case[0] for case in REJECT_CASES])
def test_rejected_requests(name, body, param):
    with pytest.raises(InvalidRequest) as caught:
        gemini.build_request(body, MODEL, CHAT, SETTINGS)
    assert caught.value.status == 400
    assert caught.value.param == param


def test_tool_call_id_lookup_uses_the_latest_call_with_that_id():
    call = lambda name: {"role": "assistant", "tool_calls": [{"id": "call_0", "type": "function", "function": {"name": name, "arguments": "{}"}}]}  # noqa: E731
    result = {"role": "tool", "tool_call_id": "call_0", "content": "ok"}
    _, out = build({"messages": [USER_HI, call("first"), result, call("second"), result]})
    names = [p["functionResponse"]["name"] for c in out["contents"] for p in c["parts"] if "functionResponse" in p]
    assert names == ["first", "second"]


def test_unknown_endpoint_rejected():
    with pytest.raises(InvalidRequest):
        gemini.build_request({"prompt": "x"}, MODEL, "completions", SETTINGS)


def test_embeddings_request():
    call, out = build({"input": ["a", "b"], "dimensions": 4}, model="text-embedding-004", endpoint="embeddings")
    assert call.path == b"/v1beta/models/text-embedding-004:batchEmbedContents"
    assert call.stream is False
    assert out == {"requests": [
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 4},
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 4},
    ]}  # fmt: skip
    _, out = build({"input": "one"}, model="text-embedding-004", endpoint="embeddings")
    assert out == {"requests": [{"model": "models/text-embedding-004", "content": {"parts": [{"text": "one"}]}}]}


@pytest.mark.parametrize("given", [[1, 2, 3], [], None, [["a"]]])
def test_embeddings_reject_token_arrays_and_empty_input(given):
    with pytest.raises(InvalidRequest) as caught:
        gemini.build_request({"input": given}, "text-embedding-004", "embeddings", SETTINGS)
    assert caught.value.param == "input"


# --- complete answers --------------------------------------------------------------------------------

def translate(answer, status=200, endpoint=CHAT):
    out_status, body = gemini.translate_response(status, orjson.dumps(answer) if isinstance(answer, dict) else answer, "my-model", endpoint)
    return out_status, orjson.loads(body)


@pytest.mark.parametrize("name, answer, choice, usage", RESPONSE_CASES, ids=[case[0] for case in RESPONSE_CASES])
def test_response_mapping(name, answer, choice, usage):
    status, out = translate(answer)
    assert status == 200
    assert out["object"] == "chat.completion"
    assert out["id"] == "chatcmpl-resp1"
    assert out["model"] == "my-model"
    assert isinstance(out["created"], int)
    for key, value in choice.items():
        assert out["choices"][0][key] == value, key
    if usage is not None:
        assert out["usage"] == usage


def test_function_calls_become_tool_calls():
    _, out = translate(CALL_ANSWER)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me check."
    calls = choice["message"]["tool_calls"]
    assert [(c["type"], c["function"]["name"], orjson.loads(c["function"]["arguments"])) for c in calls] == [
        ("function", "weather", {"city": "Oslo"}),
        ("function", "time", {}),
    ]
    assert all(c["id"].startswith("call_") for c in calls) and calls[0]["id"] != calls[1]["id"]


def test_function_call_only_has_null_content_and_keeps_gemini_id():
    answer = {"candidates": [{"content": {"parts": [{"functionCall": {"id": "g-7", "name": "f", "args": {}}}]}, "finishReason": "STOP"}]}
    _, out = translate(answer)
    message = out["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"][0]["id"] == "g-7"
    assert out["id"].startswith("chatcmpl-") and len(out["id"]) > len("chatcmpl-")  # generated without responseId
    assert out["usage"] == usage(0, 0)


def test_several_candidates_become_choices():
    _, out = translate(TWO_CANDIDATES)
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in out["choices"]] == [
        (0, "a", "stop"),
        (1, "b", "length"),
    ]


def test_blocked_prompt_is_a_content_filter_error():
    status, out = translate(BLOCKED)
    assert status == 400
    assert out["error"]["code"] == "content_filter"
    assert "SAFETY" in out["error"]["message"]


# Gemini ends a candidate with MALFORMED_FUNCTION_CALL (and its kin) and no content at all when the
# model's tool call fails: an empty "stop" answer would read as the model saying nothing.
TOOL_CALL_FAILED = {"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL", "index": 0, "finishMessage": "Malformed function call: print(x"}],
                    "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}}  # fmt: skip


def test_a_failed_tool_call_with_nothing_said_is_a_502_the_sdks_retry():
    status, out = translate(TOOL_CALL_FAILED)
    assert status == 502
    assert (out["error"]["type"], out["error"]["code"]) == ("server_error", "malformed_tool_call")
    assert "MALFORMED_FUNCTION_CALL" in out["error"]["message"] and "print(x" in out["error"]["message"]


def test_a_failed_tool_call_in_a_stream_ends_it_with_an_error_event():
    chunks = run([orjson.dumps(TOOL_CALL_FAILED)], include_usage=True)
    assert chunks[-1]["error"]["code"] == "malformed_tool_call"
    assert not any(choice.get("finish_reason") for c in chunks[:-1] for choice in c.get("choices") or ())


def test_a_failed_tool_call_after_text_keeps_the_text():
    said = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Let me look."}]}, "finishReason": "UNEXPECTED_TOOL_CALL"}]}
    status, out = translate(said)
    assert status == 200 and out["choices"][0]["message"]["content"] == "Let me look."


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"candidates": []}', b'{"candidates": [{"content": {"parts": [{"functionCall": {}}]}}]}'])
def test_malformed_answers_are_502(body):
    status, out = translate(body)
    assert status == 502
    assert out["error"]["code"] == "upstream_protocol_error"


@pytest.mark.parametrize("name, status, body, mapped, kind, code", ERROR_CASES, ids=[case[0] for case in ERROR_CASES])
def test_error_mapping(name, status, body, mapped, kind, code):
    out_status, out = translate(body, status)
    assert out_status == mapped
    assert out["error"]["type"] == kind
    assert out["error"]["code"] == code
    assert out["error"]["param"] is None
    assert out["error"]["message"]


def test_error_message_is_kept():
    _, out = translate(ERROR_CASES[0][2], 400)
    assert out["error"]["message"] == "bad field"


def test_embeddings_answer():
    answer = {"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]}
    status, out = translate(answer, endpoint="embeddings")
    assert status == 200
    assert out == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.1, 0.2]},
            {"object": "embedding", "index": 1, "embedding": [0.3, 0.4]},
        ],
        "model": "my-model",
        "usage": {"prompt_tokens": 0, "total_tokens": 0},
    }
    status, out = translate({"embeddings": [{"values": [1.0]}], "usageMetadata": {"promptTokenCount": 3}}, endpoint="embeddings")
    assert out["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


def test_embeddings_error_is_mapped_too():
    status, out = translate(ERROR_CASES[6][2], 429, endpoint="embeddings")
    assert (status, out["error"]["code"]) == (429, "rate_limit_exceeded")


# --- streams -----------------------------------------------------------------------------------------

def run(events, include_usage=False, splitter_bytes=None):
    """Feed events (each whole, or the SSE bytes through a splitter cut at ``splitter_bytes``)."""
    translator = gemini.StreamTranslator("my-model", include_usage)
    out = []
    if splitter_bytes is None:
        for data in events:
            out.extend(translator.feed(None, data))
    else:
        splitter, wire = SSESplitter(), to_sse(events)
        for start in range(0, len(wire), splitter_bytes):
            for name, data in splitter.feed(wire[start : start + splitter_bytes]):
                out.extend(translator.feed(name, data))
        for name, data in splitter.flush():
            out.extend(translator.feed(name, data))
    out.extend(translator.finish())
    for item in out:
        assert item.startswith(b"data: ") and item.endswith(b"\n\n")
    assert out[-1] == b"data: [DONE]\n\n"
    assert translator.finish() == [] and translator.feed(None, TEXT_STREAM[0]) == []  # nothing after [DONE]
    return parsed(out[:-1])


def parsed(items):
    """The chunks as dicts, ``created`` checked and dropped (a second may pass between runs)."""
    chunks = [orjson.loads(item[6:]) for item in items]
    for c in chunks:
        if "error" not in c:
            assert isinstance(c.pop("created"), int)
    return chunks


def text_of(chunks):
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))


def test_text_stream_event_by_event():
    chunks = run(TEXT_STREAM)
    assert {c["id"] for c in chunks} == {"chatcmpl-s1"}
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "my-model" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert text_of(chunks) == TEXT_STREAM_TEXT
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, None, "stop"]
    assert "usage" not in chunks[-1]


def test_a_stream_is_complete_once_every_candidate_finished():
    # A Gemini stream has no end event of its own (its connection's close ends it): once every
    # candidate gave its finishReason, an upstream failing before that close costs the client
    # nothing (alloy.relay.TranslatedRelay.upstream_failed ends the stream as finished).
    translator = gemini.StreamTranslator("my-model", True)
    assert not translator.complete()
    for data in TEXT_STREAM[:-1]:
        translator.feed(None, data)
    assert not translator.complete()  # the last event holds the finishReason
    translator.feed(None, TEXT_STREAM[-1])
    assert translator.complete() and translator.finish()[-1] == b"data: [DONE]\n\n"


def test_text_stream_with_usage():
    chunks = run(TEXT_STREAM, include_usage=True)
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == TEXT_STREAM_USAGE
    assert chunks[-1]["id"] == "chatcmpl-s1"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_usage_sent_after_the_finish_reason_is_used():
    chunks = run(USAGE_AFTER_FINISH, include_usage=True)
    assert chunks[-1]["usage"] == usage(10, 4)


def test_thought_parts_stream_as_reasoning_content_before_the_text():
    chunks = run(THINKING_STREAM, include_usage=True)
    deltas = [c["choices"][0]["delta"] for c in chunks if c.get("choices")]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1:5] == [{"reasoning_content": "**Weighing it** "}, {"reasoning_content": "I add them."},
                           {"content": "It is "}, {"content": "4."}]  # fmt: skip
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == THINKING_STREAM_USAGE


def test_a_thinking_stream_sums_to_the_complete_answer():
    chunks = run(THINKING_STREAM, include_usage=True)
    _, complete = translate(THINKING_ANSWER)
    message = complete["choices"][0]["message"]
    deltas = [c["choices"][0]["delta"] for c in chunks if c.get("choices")]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == message["reasoning_content"] == THINKING_STREAM_REASONING
    assert "".join(d.get("content", "") for d in deltas) == message["content"] == "It is 4."
    assert chunks[-1]["usage"] == complete["usage"] == THINKING_STREAM_USAGE
    assert b"thoughtSignature" not in orjson.dumps(chunks)


def test_a_thinking_stream_split_at_every_byte_boundary():
    events = [THINKING_STREAM[0], THINKING_STREAM[3]]
    wire = to_sse(events)
    whole = run(events, True)
    assert whole[1]["choices"][0]["delta"] == {"reasoning_content": "**Weighing it** "}
    for cut in range(1, len(wire)):
        translator, splitter, out = gemini.StreamTranslator("my-model", True), SSESplitter(), []
        for piece in (wire[:cut], wire[cut:]):
            for name, data in splitter.feed(piece):
                out.extend(translator.feed(name, data))
        out.extend(translator.finish())
        assert parsed(out[:-1]) == whole, cut
        assert out[-1] == b"data: [DONE]\n\n"


@pytest.mark.parametrize("step", [1, 3, 64])
def test_a_thinking_stream_through_the_core_splitter(step):
    assert run(THINKING_STREAM, True, splitter_bytes=step) == run(THINKING_STREAM, True)


@pytest.mark.parametrize("step", [1, 2, 7, 64])
def test_stream_through_the_core_splitter_at_every_cut(step):
    assert run(TEXT_STREAM, True, splitter_bytes=step) == run(TEXT_STREAM, True)


def test_small_stream_split_at_every_byte_boundary():
    wire = to_sse(TEXT_STREAM[:1] + TEXT_STREAM[2:])
    whole = run(TEXT_STREAM[:1] + TEXT_STREAM[2:], True)
    for cut in range(1, len(wire)):
        translator, splitter, out = gemini.StreamTranslator("my-model", True), SSESplitter(), []
        for piece in (wire[:cut], wire[cut:]):
            for name, data in splitter.feed(piece):
                out.extend(translator.feed(name, data))
        out.extend(translator.finish())
        assert parsed(out[:-1]) == whole, cut
        assert out[-1] == b"data: [DONE]\n\n"


def test_tool_stream_sends_whole_calls():
    chunks = run(TOOL_STREAM)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[1] == {"content": "Checking"}
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert [(c["index"], c["type"], c["function"]["name"], orjson.loads(c["function"]["arguments"])) for c in calls] == [
        (0, "function", "weather", {"city": "Oslo"}),
        (1, "function", "time", {}),
    ]
    assert all(c["id"].startswith("call_") for c in calls)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_a_stream_of_only_calls_opens_with_content_null():
    """As OpenAI does: the SDK's accumulated message then has content None, as without streaming;
    a stream that opens with text opens with content ""."""
    call = {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}}
    only_calls = run([chunk([call], "STOP")])
    assert only_calls[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    assert run(TOOL_STREAM)[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}


def test_stream_with_two_candidates():
    events = [chunk([{"text": "a"}], "STOP", index=0), chunk([{"text": "b"}], "MAX_TOKENS", index=1)]
    chunks = run(events)
    by_index = {}
    for c in chunks:
        choice = c["choices"][0]
        by_index.setdefault(choice["index"], []).append(choice)
    assert [ch["finish_reason"] for ch in by_index[1]] == [None, None, "length"]
    assert by_index[0][0]["delta"]["role"] == "assistant"


def test_error_in_stream_ends_it():
    chunks = run(ERROR_STREAM)
    assert chunks[-1]["error"]["code"] == "rate_limit_exceeded"
    assert chunks[-1]["error"]["message"] == "quota in stream"
    assert text_of(chunks[:-1]) == "x"


def test_stream_without_finish_reason_is_an_error():
    chunks = run(BROKEN_STREAM, include_usage=True)
    assert chunks[-1]["error"]["code"] == "upstream_protocol_error"
    assert not any(c.get("usage") for c in chunks)  # no usage chunk: each has only OpenAI's "usage": null


def test_empty_stream_is_an_error():
    assert run([])[-1]["error"]["code"] == "upstream_protocol_error"


def test_blocked_prompt_in_stream():
    chunks = run(BLOCKED_STREAM)
    assert len(chunks) == 1 and chunks[0]["error"]["code"] == "content_filter"


@pytest.mark.parametrize(
    "data",
    [b"{not json", b"[1]", b'{"candidates": [3]}', b'{"candidates": [{"content": {"parts": [3]}}]}',
     b'{"candidates": [{"content": {"parts": [{"functionCall": {}}]}}]}', b'{"candidates": [{"index": [0]}]}'],
)  # fmt: skip
def test_malformed_stream_events(data):
    chunks = run([TEXT_STREAM[0], data])
    assert chunks[-1]["error"]["code"] == "upstream_protocol_error"


# --- thought signatures across an OpenAI round trip ---------------------------------------------------

def test_a_signed_call_gets_its_signature_back_on_the_next_turn_on_any_model():
    from alloy.providers import gemini_signatures

    answer = {"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "lookup", "args": {"q": 1}}, "thoughtSignature": "c2lnLTE="},
    ]}, "finishReason": "STOP", "index": 0}]}  # fmt: skip
    status, body = gemini.translate_response(200, orjson.dumps(answer), MODEL, CHAT)
    call = orjson.loads(body)["choices"][0]["message"]["tool_calls"][0]
    assert gemini_signatures.recall(call["id"]) == "c2lnLTE="
    history = [USER_HI, {"role": "assistant", "tool_calls": [call]}, {"role": "tool", "tool_call_id": call["id"], "content": "ok"}]
    _, out = build({"messages": history}, model="gemini-2.5-flash")
    assert out["contents"][1]["parts"][0] == {"functionCall": {"name": "lookup", "args": {"q": 1}}, "thoughtSignature": "c2lnLTE="}


def test_gemini_3_turns_of_unsigned_calls_get_the_placeholder_on_their_first_call_only():
    calls = [{"id": f"call_elsewhere_{i}", "type": "function", "function": {"name": "lookup", "arguments": "{}"}} for i in range(2)]
    history = [USER_HI, {"role": "assistant", "tool_calls": calls}]
    history += [{"role": "tool", "tool_call_id": call["id"], "content": "ok"} for call in calls]
    _, out = build({"messages": history}, model="gemini-3-pro-preview")
    first, second = out["contents"][1]["parts"]
    assert first["thoughtSignature"] == "skip_thought_signature_validator" and "thoughtSignature" not in second
    _, older = build({"messages": history}, model="gemini-2.5-pro")  # only Gemini 3 refuses unsigned calls
    assert all("thoughtSignature" not in part for part in older["contents"][1]["parts"])


def test_the_signature_memory_is_bounded_by_bytes_oldest_out(monkeypatch):
    from alloy.providers import gemini_signatures

    monkeypatch.setattr(gemini_signatures, "MAX_BYTES", 10)
    monkeypatch.setattr(gemini_signatures, "_signatures", {})
    monkeypatch.setattr(gemini_signatures, "_held", 0)
    for i in range(4):
        gemini_signatures.remember(f"call_{i}", "abcd")
    assert [gemini_signatures.recall(f"call_{i}") for i in range(4)] == [None, None, "abcd", "abcd"]
    gemini_signatures.remember("call_big", "x" * 11)  # larger than the whole memory: not kept
    assert gemini_signatures.recall("call_big") is None and gemini_signatures.recall("call_3") == "abcd"


def test_a_pydantic_schema_keeps_its_nested_models_and_integer_enums():
    """What ``client.chat.completions.parse(response_format=Model)`` sends: a nested model by
    ``$ref`` into ``$defs`` and ``Literal[1, 2]`` as an integer enum."""
    schema = {
        "$defs": {"Inner": {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"], "title": "Inner"}},
        "type": "object",
        "properties": {
            "b": {"$ref": "#/$defs/Inner"},
            "c": {"enum": [1, 2], "type": "integer", "title": "C"},
            "d": {"enum": ["up", "down"], "type": "string"},
            "e": {"$ref": "#/$defs/Missing"},
        },
        "required": ["b", "c", "d"],
        "additionalProperties": False,
    }
    body = {"messages": [USER_HI], "response_format": {"type": "json_schema", "json_schema": {"name": "M", "schema": schema}}}
    _, out = build(body)
    sent = out["generationConfig"]["responseSchema"]
    assert sent["properties"]["b"] == {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}
    assert sent["properties"]["c"] == {"type": "integer", "description": "One of: 1, 2."}
    assert sent["properties"]["d"] == {"enum": ["up", "down"], "type": "string"}
    assert sent["properties"]["e"] == {}
    assert "$defs" not in sent and "additionalProperties" not in sent


def test_a_recursive_reference_stops_where_it_comes_back():
    schema = {"$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}, "v": {"type": "integer"}}}},
              "$ref": "#/$defs/Node"}  # fmt: skip
    assert gemini.clean_schema(schema) == {"type": "object", "properties": {"next": {}, "v": {"type": "integer"}}}


def test_a_file_part_is_read_inline():
    """OpenAI's ``file`` part with ``file_data`` (a PDF here) -> ``inlineData``; a ``file_id`` (a
    file stored at OpenAI) is the client's 400."""
    pdf = "JVBERi0xLjQ="
    part = {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64," + pdf}}
    _, out = build({"messages": [{"role": "user", "content": [part, {"type": "text", "text": "summarize"}]}]})
    assert out["contents"][0]["parts"] == [{"inlineData": {"mimeType": "application/pdf", "data": pdf}}, {"text": "summarize"}]
    with pytest.raises(InvalidRequest) as caught:
        build({"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc"}}]}]})
    assert "not a file_id" in str(caught.value) and caught.value.param == "messages[0].content[0]"


def test_an_optional_field_as_pydantic_writes_it_is_nullable():
    """``Optional[X]`` is ``anyOf: [X, {"type": "null"}]`` in pydantic's schema: Gemini gets X with
    ``nullable``, the field's own description kept (a title is not Gemini's); a real choice of several stays an anyOf."""
    schema = {
        "$defs": {"Unit": {"enum": ["c", "f"], "type": "string", "title": "Unit", "description": "the unit"}},
        "type": "object",
        "properties": {
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Note"},
            "unit": {"anyOf": [{"$ref": "#/$defs/Unit"}, {"type": "null"}], "description": "which scale"},
            "either": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
        },
    }
    cleaned = gemini.clean_schema(schema)["properties"]
    assert cleaned["note"] == {"type": "string", "nullable": True, "default": None}
    assert cleaned["unit"] == {"enum": ["c", "f"], "type": "string", "description": "which scale", "nullable": True}
    assert cleaned["either"] == {"anyOf": [{"type": "string"}, {"type": "integer"}], "nullable": True}


def test_with_include_usage_every_chunk_before_the_usage_chunk_has_usage_null():
    """OpenAI's stream_options.include_usage: "All other chunks will also include a usage field,
    but with a null value"; without it, no chunk has the field."""
    asked = run(TEXT_STREAM, include_usage=True)
    assert all("usage" in chunk for chunk in asked)
    assert [chunk["usage"] is None for chunk in asked] == [True] * (len(asked) - 1) + [False]
    assert not any("usage" in chunk for chunk in run(TEXT_STREAM, include_usage=False))


def test_messages_that_are_all_empty_are_a_400_saying_so():
    with pytest.raises(InvalidRequest) as caught:
        build({"model": "m", "messages": [{"role": "user", "content": ""}]})
    assert caught.value.param == "messages" and "with some content" in caught.value.message

"""The mock upstream as its users see it, the strict-emulator contract: a real
``python -m alloy.mock_upstream`` process, driven by the official ``openai`` SDK. Chat completions
(streams, tool calls), legacy completions, embeddings and models, strictness (keys, invalid requests
naming their param) and the request log.

Fault injection is in test_mock_upstream_faults.py, the HTTP contract (raw sockets), the options and
shutdown in test_mock_upstream_http.py; the process class and helpers in mock_upstream_helpers.py.
"""

import base64
import json
import struct

import httpx
import openai
import pytest

from mock_upstream_helpers import AUTH, CHAT, KEY, SEARCH_TOOL, MockProcess, user
from mock_upstream_helpers import shared_upstream, start_upstream, upstream  # noqa: F401 (fixtures)


# --- chat completions with the SDK ------------------------------------------------------------------


def test_chat_completion_echoes_the_last_user_message(upstream):
    messages = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "question"}]},
    ]
    completion = upstream.client().chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert completion.id.startswith("chatcmpl-mock-")
    assert completion.object == "chat.completion" and completion.model == "gpt-4o-mini"
    assert completion.system_fingerprint
    [choice] = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == "echo: second question"
    assert choice.finish_reason == "stop"
    assert completion.usage.prompt_tokens == 8  # words of every message
    assert completion.usage.completion_tokens == 3
    assert completion.usage.total_tokens == 11


def test_n_choices_and_max_tokens_truncation(upstream):
    completion = upstream.client().chat.completions.create(
        model="gpt-4o-mini", messages=user("one two three four five"), n=2, max_completion_tokens=3
    )
    assert [c.index for c in completion.choices] == [0, 1]
    for choice in completion.choices:
        assert choice.message.content == "echo: one two"
        assert choice.finish_reason == "length"


def test_chat_stream_deltas_join_to_the_content(upstream):
    text = "stream  these words, spaces kept "
    chunks = list(
        upstream.client().chat.completions.create(
            model="gpt-4o-mini", messages=user(text), stream=True, stream_options={"include_usage": True}
        )
    )
    first = chunks[0].choices[0].delta
    assert first.role == "assistant" and first.content == ""
    contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert contents == ["echo: ", "stream  ", "these ", "words, ", "spaces ", "kept "]
    assert "".join(contents) == "echo: " + text
    with_choices = [c for c in chunks if c.choices]
    assert [c.choices[0].finish_reason for c in with_choices][-1] == "stop"
    assert all(c.choices[0].finish_reason is None for c in with_choices[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == len(contents)
    assert all(c.usage is None for c in chunks[:-1])
    assert len({c.id for c in chunks}) == 1


def test_stream_is_chunked_event_stream_ending_with_done(upstream):
    body = {"model": "m", "messages": user("hi"), "stream": True}
    with httpx.stream("POST", upstream.base + "/v1/chat/completions", json=body, headers=AUTH) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["transfer-encoding"] == "chunked"
        text = r.read().decode()
    events = [e for e in text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events)


def test_tool_call_non_stream_and_stream_accumulation(upstream):
    client = upstream.client()
    completion = client.chat.completions.create(model="m", messages=user("please call tool"), tools=[SEARCH_TOOL])
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert (call.id, call.type, call.function.name) == ("call_mock_1", "function", "search")
    assert json.loads(call.function.arguments) == {"query": "please call tool"}

    calls, finish = {}, None
    messages = user("call tool while streaming")
    stream = client.chat.completions.create(model="m", messages=messages, tools=[SEARCH_TOOL], stream=True)
    for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or []:
            entry = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": "", "pieces": 0})
            entry["id"] = delta.id or entry["id"]
            entry["name"] += (delta.function and delta.function.name) or ""
            entry["arguments"] += (delta.function and delta.function.arguments) or ""
            entry["pieces"] += 1
    assert finish == "tool_calls"
    assert list(calls) == [0] and calls[0]["id"] == "call_mock_1" and calls[0]["name"] == "search"
    assert json.loads(calls[0]["arguments"]) == {"query": "call tool while streaming"}
    assert calls[0]["pieces"] > 2, "arguments should arrive in fragments"

    # Without "call tool" the tools are ignored; the tool result turn is accepted.
    messages = user("call tool now") + [
        completion.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": "call_mock_1", "content": "42"},
        {"role": "user", "content": "thanks"},
    ]
    after = client.chat.completions.create(model="m", messages=messages, tools=[SEARCH_TOOL])
    assert after.choices[0].message.content == "echo: thanks" and after.choices[0].finish_reason == "stop"


def test_tool_choice_forces_or_suppresses_the_call(upstream):
    def create(text, tools, choice):
        chat = upstream.client().chat.completions
        return chat.create(model="m", messages=user(text), tools=tools, tool_choice=choice)

    other = {"type": "function", "function": {"name": "other"}}
    forced = create("hi", [SEARCH_TOOL, other], {"type": "function", "function": {"name": "other"}})
    assert forced.choices[0].message.tool_calls[0].function.name == "other"
    assert create("hi", [SEARCH_TOOL], "required").choices[0].finish_reason == "tool_calls"
    assert create("call tool", [SEARCH_TOOL], "none").choices[0].message.content == "echo: call tool"
    client = upstream.client()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="m", messages=user("hi"), tool_choice="required")
    assert caught.value.body["param"] == "tool_choice"


# --- completions, embeddings, models ---------------------------------------------------------------


def test_legacy_completions(upstream):
    completion = upstream.client().completions.create(model="gpt-3.5-turbo-instruct", prompt=["alpha beta", "gamma"])
    assert completion.object == "text_completion"
    assert [(c.index, c.text) for c in completion.choices] == [(0, "echo: alpha beta"), (1, "echo: gamma")]
    assert completion.usage.prompt_tokens == 3 and completion.usage.completion_tokens == 5


def test_legacy_completions_stream(upstream):
    chunks = list(
        upstream.client().completions.create(
            model="m", prompt="one two three", stream=True, max_tokens=3, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "echo: one two"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage.completion_tokens == 3


def test_embeddings_float_and_sdk_default_base64(upstream):
    client = upstream.client()
    floats = client.embeddings.create(model="text-embedding-3-small", input="embed me", encoding_format="float")
    default = client.embeddings.create(model="text-embedding-3-small", input="embed me")  # the SDK asks for base64
    vector = floats.data[0].embedding
    assert len(vector) == 8 and all(isinstance(x, float) for x in vector)
    assert default.data[0].embedding == vector  # float32 values: base64 round-trips exactly
    assert abs(sum(x * x for x in vector) - 1.0) < 1e-5
    assert floats.usage.prompt_tokens == 2

    batch = client.embeddings.create(model="m", input=["embed me", "other"], encoding_format="float")
    assert [d.index for d in batch.data] == [0, 1]
    assert batch.data[0].embedding == vector and batch.data[1].embedding != vector

    [received_float, received_default, _] = upstream.requests()
    assert received_float["body"]["encoding_format"] == "float"
    assert received_default["body"]["encoding_format"] == "base64"
    raw = httpx.post(
        upstream.base + "/v1/embeddings", json={"model": "m", "input": "embed me", "encoding_format": "base64"},
        headers=AUTH,
    ).json()  # fmt: skip
    packed = base64.b64decode(raw["data"][0]["embedding"])
    assert list(struct.unpack("<8f", packed)) == vector  # little-endian float32, as OpenAI sends


def test_models_list_and_retrieve(upstream):
    client = upstream.client()
    ids = [m.id for m in client.models.list()]
    assert "gpt-4o-mini" in ids and "text-embedding-3-small" in ids
    assert client.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("no-such-model")
    assert caught.value.body["code"] == "model_not_found"


# --- strictness -------------------------------------------------------------------------------------


def test_wrong_or_missing_key_is_401(upstream):
    with pytest.raises(openai.AuthenticationError) as caught:
        upstream.client(api_key="sk-wrong").chat.completions.create(model="m", messages=user("x"))
    assert caught.value.status_code == 401
    assert caught.value.body["type"] == "invalid_request_error"
    assert caught.value.body["code"] == "invalid_api_key"
    assert "sk-wrong" not in caught.value.body["message"]
    for headers in ({}, {"authorization": "Bearer"}, {"authorization": f"Basic {KEY}"}):
        response = httpx.post(upstream.base + "/v1/chat/completions", json=CHAT, headers=headers)
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


def test_without_api_key_any_bearer_token_is_accepted(start_upstream):
    open_mock = start_upstream()
    assert open_mock.client(api_key="anything").chat.completions.create(model="m", messages=user("in")).choices
    response = httpx.get(open_mock.base + "/v1/models")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "messages": "not a list"}, "messages"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"messages": user("x")}, "model"),
        ({"model": 7, "messages": user("x")}, "model"),
        ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user"}]}, "messages[0].content"),
        ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
        ({"model": "m", "messages": user("x"), "temperature": 3}, "temperature"),
        ({"model": "m", "messages": user("x"), "max_tokens": "5"}, "max_tokens"),
        ({"model": "m", "messages": user("x"), "stream_options": {"include_usage": True}}, "stream_options"),
        ({"model": "m", "messages": user("x"), "tools": [{"type": "function"}]}, "tools[0].function"),
        ({"model": "m", "messages": user("x"), "gateway_internal": 1}, "gateway_internal"),
    ],
)
def test_invalid_chat_request_is_400_naming_the_param(upstream, body, param):
    response = httpx.post(upstream.base + "/v1/chat/completions", json=body, headers=AUTH)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]


DEEP = b'{"a":' * 300 + b"1" + b"}" * 300  # deeper than orjson writes: echoed, it could not be


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        (b"metadata", DEEP, "metadata.a"),
        (b"metadata", b'{"tier":1}', "metadata.tier"),
        (b"instructions", b"[1]", "instructions"),
        (b"text", DEEP, "text"),
        (b"tools", b"[" + DEEP + b"]", "tools"),
    ],
)
def test_a_responses_request_whose_echoed_fields_are_unfit_is_400_naming_them(upstream, field, value, param):
    body = b'{"model":"m","input":"hi","' + field + b'":' + value + b"}"
    response = httpx.post(upstream.base + "/v1/responses", content=body, headers=AUTH)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_invalid_request_through_the_sdk(upstream):
    with pytest.raises(openai.BadRequestError) as caught:
        upstream.client().chat.completions.create(model="m", messages=[{"role": "wizard", "content": "x"}])
    assert caught.value.body["param"] == "messages[0].role"
    with pytest.raises(openai.BadRequestError) as caught:
        upstream.client().embeddings.create(model="m", input="")
    assert caught.value.body["param"] == "input"


def test_not_json_unknown_path_and_wrong_method(upstream):
    response = httpx.post(upstream.base + "/v1/chat/completions", content=b"{nope", headers=AUTH)
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    response = httpx.post(upstream.base + "/v1/chat/completions", content=b"[1]", headers=AUTH)
    assert response.status_code == 400
    response = httpx.get(upstream.base + "/v1/nothing-here", headers=AUTH)
    assert response.status_code == 404 and "/v1/nothing-here" in response.json()["error"]["message"]
    response = httpx.get(upstream.base + "/v1/chat/completions", headers=AUTH)
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


# --- the request log -------------------------------------------------------------------------------


def test_request_log_records_method_path_headers_and_decoded_body(upstream):
    client = upstream.client(default_headers={"X-Trace": "t-1"})
    client.chat.completions.create(model="gpt-4o-mini", messages=user("logged"))
    client.models.list()
    httpx.post(upstream.base + "/v1/embeddings?x=1", content=b"not json", headers=AUTH)
    chat, models, bad = upstream.requests()  # oldest first; the hooks themselves are not logged
    assert (chat["method"], chat["path"]) == ("POST", "/v1/chat/completions")
    assert chat["headers"]["authorization"] == f"Bearer {KEY}" and chat["headers"]["x-trace"] == "t-1"
    assert all(name == name.lower() for name in chat["headers"])
    assert chat["body"] == {"model": "gpt-4o-mini", "messages": user("logged")}
    assert (models["method"], models["path"], models["body"]) == ("GET", "/v1/models", "")
    assert (bad["path"], bad["body"]) == ("/v1/embeddings?x=1", "not json")

    assert httpx.delete(upstream.base + "/_mock/requests").status_code == 200
    assert upstream.requests() == []


def test_request_log_keeps_the_last_thousand(upstream):
    with httpx.Client(base_url=upstream.base, headers=AUTH) as client:
        for i in range(1005):
            client.get(f"/v1/models/gpt-4o?i={i}")
    log = upstream.requests()
    assert len(log) == 1000 and log[0]["path"].endswith("i=5") and log[-1]["path"].endswith("i=1004")

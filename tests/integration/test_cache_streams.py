"""Streams in the response cache, through a running gateway: a stored stream replayed to a later
``stream: true`` request byte for byte (its events, in order), a stream answering a non-stream
request and a JSON answer answering a stream (the SDK assembles the same message, tool calls and
usage), the usage event only for a client that asked for it, and a stream that broke off midway
never stored. One gateway (memory backend) serves the module; each test has its own prompt.
"""

import json
import uuid

import httpx
import openai
import pytest

from harness import assert_no_crash_logged, start_gateway_process

MASTER = "master-key"
SEARCH_TOOL = {
    "type": "function",
    "function": {"name": "search", "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}},
}


def start_cache_gateway(mock, directory, server=""):
    """A gateway with the memory cache in front of ``mock``, the model ``chat`` its gpt-4o-mini;
    ``server``: more ``[server]`` lines."""
    config = f"""
    [server]
    master_key = "{MASTER}"
    {server}

    [providers.openai]
    base_url = "{mock.base}/v1"
    api_key = "env:K"

    [cache]
    enabled = true

    [[models]]
    name = "chat"
    provider = "openai"
    model = "gpt-4o-mini"
    """
    return start_gateway_process(directory / "alloy.toml", config, env={"K": "sk-provider"})


@pytest.fixture(scope="module")
def gateway(shared_mock, tmp_path_factory):
    process = start_cache_gateway(shared_mock, tmp_path_factory.mktemp("cache"))
    yield process
    process.stop()
    assert_no_crash_logged(process)


def unique(prefix="say"):
    return f"{prefix} something {uuid.uuid4().hex[:8]} now"


def body(text, stream, include_usage=False, tools=False):
    document = {"model": "chat", "messages": [{"role": "user", "content": text}], "stream": stream}
    if include_usage:
        document["stream_options"] = {"include_usage": True}
    if tools:
        document["tools"] = [SEARCH_TOOL]
    return document


def raw_stream(gateway, document, headers=None):
    """(response headers, the SSE data fields in order) of one streamed request."""
    with httpx.Client(timeout=10) as http:
        response = http.post(
            gateway.base + "/v1/chat/completions", json=document,
            headers={"authorization": f"Bearer {MASTER}", **(headers or {})},
        )  # fmt: skip
    assert response.status_code == 200, response.text
    return response.headers, [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]


def sdk(gateway):
    return openai.OpenAI(base_url=gateway.base + "/v1", api_key=MASTER, max_retries=0, timeout=10)


def assembled(gateway, document):
    """What the SDK makes of a stream: (headers, content, tool calls, finish reason, usage)."""
    extra = {k: v for k, v in document.items() if k not in ("model", "messages", "stream")}
    with sdk(gateway).chat.completions.with_streaming_response.create(
        model=document["model"], messages=document["messages"], stream=True, **extra
    ) as response:
        headers = response.headers
        content, calls, finish, usage = "", {}, None, None
        for chunk in response.parse():
            if chunk.usage is not None:
                usage = chunk.usage.model_dump()
            for choice in chunk.choices:
                content += choice.delta.content or ""
                for call in choice.delta.tool_calls or ():
                    kept = calls.setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                    kept["id"] = call.id or kept["id"]
                    kept["name"] += call.function.name or ""
                    kept["arguments"] += call.function.arguments or ""
                finish = choice.finish_reason or finish
    return headers, content, list(calls.values()), finish, usage


def complete(gateway, document):
    extra = {k: v for k, v in document.items() if k not in ("model", "messages", "stream", "stream_options")}
    raw = sdk(gateway).chat.completions.with_raw_response.create(model=document["model"], messages=document["messages"], **extra)
    return raw.headers, raw.parse()


def upstream_chats(mock):
    return [r for r in mock.requests() if r["path"] == "/v1/chat/completions"]


def test_a_stream_is_replayed_event_for_event(gateway, upstream):
    document = body(unique(), True, include_usage=True)
    first_headers, first = raw_stream(gateway, document)
    second_headers, second = raw_stream(gateway, document)
    assert (first_headers["x-alloy-cache"], second_headers["x-alloy-cache"]) == ("miss", "hit")
    assert second_headers["content-type"].startswith("text/event-stream")
    assert second == first and second[-1] == "[DONE]"
    assert json.loads(second[-2])["usage"]["total_tokens"] > 0
    assert len(upstream_chats(upstream)) == 1


def test_the_sdk_assembles_the_same_message_tool_calls_and_usage(gateway, upstream):
    for document in (body(unique(), True, include_usage=True), body(unique("call tool"), True, True, tools=True)):
        first = assembled(gateway, document)
        second = assembled(gateway, document)
        assert (first[0]["x-alloy-cache"], second[0]["x-alloy-cache"]) == ("miss", "hit")
        assert second[1:] == first[1:]
        assert first[4]["total_tokens"] > 0
    assert first[2][0]["name"] == "search" and first[3] == "tool_calls"
    assert len(upstream_chats(upstream)) == 2


def test_the_usage_event_goes_only_to_a_client_that_asked(gateway, upstream):
    text = unique()
    raw_stream(gateway, body(text, True, include_usage=True))
    headers, data = raw_stream(gateway, body(text, True))
    assert headers["x-alloy-cache"] == "hit"
    assert all(json.loads(d)["choices"] for d in data[:-1])  # no chunk without choices
    assert len(upstream_chats(upstream)) == 1


def test_a_stored_stream_answers_a_non_stream_request(gateway, upstream):
    for document in (body(unique(), True, include_usage=True), body(unique("call tool"), True, True, tools=True)):
        _, content, calls, finish, usage = assembled(gateway, document)
        headers, completion = complete(gateway, document)
        assert headers["x-alloy-cache"] == "hit"
        message = completion.choices[0].message
        assert message.content == (content or None)
        assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls or ()] == [
            (c["id"], c["name"], c["arguments"]) for c in calls
        ]
        assert completion.choices[0].finish_reason == finish
        assert completion.usage.model_dump() == usage
        assert completion.object == "chat.completion"
    assert len(upstream_chats(upstream)) == 2


def test_a_stream_without_usage_does_not_answer_a_request_that_needs_it(gateway, upstream):
    text = unique()
    raw_stream(gateway, body(text, True))
    headers, completion = complete(gateway, body(text, False))
    assert headers["x-alloy-cache"] == "miss" and completion.usage.total_tokens > 0
    assert len(upstream_chats(upstream)) == 2


def test_a_stored_answer_answers_a_stream(gateway, upstream):
    for document in (body(unique(), True, include_usage=True), body(unique("call tool"), True, True, tools=True)):
        _, completion = complete(gateway, document)
        headers, content, calls, finish, usage = assembled(gateway, document)
        assert headers["x-alloy-cache"] == "hit"
        message = completion.choices[0].message
        assert (content or None) == message.content
        assert [(c["id"], c["name"], c["arguments"]) for c in calls] == [
            (c.id, c.function.name, c.function.arguments) for c in message.tool_calls or ()
        ]
        assert finish == completion.choices[0].finish_reason
        assert usage == completion.usage.model_dump()
    assert len(upstream_chats(upstream)) == 2


def test_a_stream_that_broke_off_is_never_stored(gateway, upstream):
    document = body(unique(), True, include_usage=True)
    headers, broken = raw_stream(gateway, document, {"x-mock-fault": "reset-mid-stream"})
    assert headers["x-alloy-cache"] == "miss"
    assert "error" in json.loads(broken[-1] if broken[-1] != "[DONE]" else broken[-2])  # the gateway's error event
    headers, data = raw_stream(gateway, document)
    assert headers["x-alloy-cache"] == "miss" and data[-1] == "[DONE]"
    assert raw_stream(gateway, document)[0]["x-alloy-cache"] == "hit"
    assert len(upstream_chats(upstream)) == 2


def test_a_translated_stream_is_stored_and_replayed(start_emulator, start_gateway):
    anthropic = start_emulator("anthropic", "--api-key", "sk-provider")
    gateway = start_gateway(
        config=f"""
        [server]
        master_key = "{MASTER}"

        [providers.anthropic]
        kind = "anthropic"
        base_url = "{anthropic.base}"
        api_key = "env:K"

        [cache]
        enabled = true
        """,
        env={"K": "sk-provider"},
    )
    document = {**body("one two three", True, include_usage=True), "model": "claude-3-5-haiku-20241022"}
    first = assembled(gateway, document)
    second = assembled(gateway, document)
    assert (first[0]["x-alloy-cache"], second[0]["x-alloy-cache"]) == ("miss", "hit")
    assert second[1:] == first[1:] and first[1] == "echo: one two three" and first[4]["total_tokens"] > 0
    headers, completion = complete(gateway, document)
    assert headers["x-alloy-cache"] == "hit" and completion.choices[0].message.content == first[1]
    assert len(anthropic.requests()) == 1

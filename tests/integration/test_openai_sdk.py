"""The official ``openai`` SDK against a real gateway in front of the strict mock upstream.

Every test checks what the client saw and, through the mock's request log, what the upstream
really received. Tests whose outcome depends on the upstream backend run once per backend (``each_backend``);
the rest use one gateway on the default backend. The processes are shared by the module (the
conftest's ``shared_mock``, its log cleared before each test by ``upstream``).
"""

import asyncio
import http.client
import json
import time
from urllib.parse import urlsplit

import openai
import pytest

from harness import assert_no_crash_logged, start_gateway_process

PROVIDER_KEY = "sk-provider"
CLIENT_KEY = "client-key"

SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
        },
    },
}
OTHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


# --- helpers --------------------------------------------------------------------------------------


def sync_client(gateway, **options):
    return openai.OpenAI(
        base_url=gateway.base + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30.0, **options
    )


def async_client(gateway, **options):
    return openai.AsyncOpenAI(
        base_url=gateway.base + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30.0, **options
    )


def upstream_requests(mock, path):
    """The requests the upstream received on ``path`` (query string ignored), oldest first."""
    return [r for r in mock.requests() if r["path"].split("?")[0] == path]


def body_of(record):
    body = record["body"]
    if isinstance(body, (str, bytes)):
        return json.loads(body)
    return body


def raw_request(base, method, path, headers, body=b""):
    """One request with exactly these header lines (http.client adds only Host and, for a body,
    Content-Length unless Transfer-Encoding is given)."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host=False, skip_accept_encoding=True)
        names = {name.lower() for name, _ in headers}
        for name, value in headers:
            connection.putheader(name, value)
        if body and "transfer-encoding" not in names:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        if body:
            connection.send(body)
        response = connection.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        connection.close()


def start_gateway_for(mock, directory, client="core"):
    config = f"""
    [providers.openai]
    kind = "openai"
    base_url = "{mock.base}/v1"
    api_key = "env:TEST_PROVIDER_KEY"
    client = "{client}"
    """
    return start_gateway_process(directory / f"alloy-{client}.toml", config, {"TEST_PROVIDER_KEY": PROVIDER_KEY})


@pytest.fixture(scope="module", params=["core", "httpx"])
def each_backend(request, shared_mock, tmp_path_factory):
    """A gateway in front of the mock, once per upstream backend: for what the backend changes."""
    gateway = start_gateway_for(shared_mock, tmp_path_factory.mktemp("gateway"), request.param)
    yield gateway
    gateway.stop()
    assert_no_crash_logged(gateway)


@pytest.fixture(scope="module")
def core_gateway(shared_mock, tmp_path_factory):
    """A gateway on the default upstream backend, for what the backend does not change."""
    gateway = start_gateway_for(shared_mock, tmp_path_factory.mktemp("gateway"))
    yield gateway
    gateway.stop()
    assert_no_crash_logged(gateway)


# --- chat completions -----------------------------------------------------------------------------


def test_chat_completion_with_system_prompt(each_backend, upstream):
    client = sync_client(each_backend)
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hello there each_backend"},
    ]
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=messages)

    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "echo: hello there each_backend"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens

    [received] = upstream_requests(upstream, "/v1/chat/completions")
    assert received["method"] == "POST"
    sent = body_of(received)
    assert sent["model"] == "gpt-4o-mini"
    assert sent["messages"] == messages  # the system prompt reached the upstream unchanged


def test_chat_stream_joins_to_the_full_answer(each_backend, upstream):
    client = sync_client(each_backend)
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream these five little words"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    joined = "".join(c.choices[0].delta.content for c in content_chunks)
    assert joined == "echo: stream these five little words"
    assert len(content_chunks) > 1, "the answer should arrive as several deltas, not one blob"

    with_choices = [c for c in chunks if c.choices]
    assert with_choices[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in with_choices[:-1])

    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None and usage_chunk.usage.completion_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])

    [received] = upstream_requests(upstream, "/v1/chat/completions")
    assert body_of(received)["stream"] is True
    assert body_of(received)["stream_options"] == {"include_usage": True}


def test_chat_stream_without_usage_has_no_usage_chunk(core_gateway):
    client = sync_client(core_gateway)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "no usage please"}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: no usage please"
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("client", ["core", "httpx"])
def test_stream_is_relayed_as_it_is_produced(start_mock, tmp_path, client):
    """Deltas reach the client while the upstream is still producing, not all at the end."""
    paced = start_mock("--api-key", PROVIDER_KEY, "--tokens-per-second", "10")
    gateway = start_gateway_for(paced, tmp_path, client)
    try:
        words = " ".join(f"w{i}" for i in range(20))  # about 22 events, 0.1 s apart: >= 2 s in all
        started = time.monotonic()
        arrivals = []
        stream = sync_client(gateway).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": words}], stream=True
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append(time.monotonic() - started)
        total = time.monotonic() - started
    finally:
        gateway.stop()
    assert len(arrivals) == 21
    assert total >= 1.5, "the mock paces its stream; it cannot have finished sooner"
    assert arrivals[0] < total / 2, f"first delta at {arrivals[0]:.2f}s of {total:.2f}s: the stream was buffered"


def test_max_tokens_truncates_with_finish_reason_length(core_gateway):
    client = sync_client(core_gateway)
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "one two three four five six"}],
        max_tokens=2,
    )
    assert completion.choices[0].finish_reason == "length"
    assert len(completion.choices[0].message.content.split()) == 2


def test_async_client_chat_and_stream(each_backend, upstream):
    async def run():
        async with async_client(each_backend) as client:
            completion = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "async hello"}]
            )
            stream = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "async stream hello"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [chunk async for chunk in stream]
            # several requests in flight at once over the same each_backend
            many = await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model="gpt-4o-mini", messages=[{"role": "user", "content": f"parallel {i}"}]
                    )
                    for i in range(8)
                )
            )
            return completion, chunks, many

    completion, chunks, many = asyncio.run(run())
    assert completion.choices[0].message.content == "echo: async hello"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: async stream hello"
    assert chunks[-1].usage is not None
    assert [m.choices[0].message.content for m in many] == [f"echo: parallel {i}" for i in range(8)]
    assert len(upstream_requests(upstream, "/v1/chat/completions")) == 10


# --- completions and embeddings -----------------------------------------------------------------


def test_legacy_completions(each_backend, upstream):
    client = sync_client(each_backend)
    completion = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="complete this please")
    assert completion.object == "text_completion"
    assert completion.choices[0].text
    assert "complete this please" in completion.choices[0].text
    [received] = upstream_requests(upstream, "/v1/completions")
    assert body_of(received)["prompt"] == "complete this please"


def test_embeddings_float_and_sdk_default_base64(each_backend, upstream):
    client = sync_client(each_backend)
    floats = client.embeddings.create(model="text-embedding-3-small", input="embed me", encoding_format="float")
    default = client.embeddings.create(model="text-embedding-3-small", input="embed me")

    vector = floats.data[0].embedding
    assert isinstance(vector, list) and len(vector) > 0 and all(isinstance(x, float) for x in vector)
    # The SDK asks for base64 by default and decodes it: the same vector must come back.
    assert default.data[0].embedding == pytest.approx(vector, rel=1e-6)

    received = upstream_requests(upstream, "/v1/embeddings")
    assert [body_of(r).get("encoding_format") for r in received] == ["float", "base64"]


def test_embeddings_batch_input(core_gateway):
    client = sync_client(core_gateway)
    result = client.embeddings.create(
        model="text-embedding-3-small", input=["first", "second", "third"], encoding_format="float"
    )
    assert [d.index for d in result.data] == [0, 1, 2]
    assert all(len(d.embedding) > 0 for d in result.data)


# --- tools --------------------------------------------------------------------------------------


def test_tool_call_non_stream(each_backend, upstream):
    client = sync_client(each_backend)
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "please call tool for cats"}],
        tools=[SEARCH_TOOL, OTHER_TOOL],
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.id == "call_mock_1"
    assert call.type == "function"
    assert call.function.name == "search"
    assert json.loads(call.function.arguments) == {"query": "please call tool for cats"}
    assert body_of(upstream_requests(upstream, "/v1/chat/completions")[0])["tools"] == [SEARCH_TOOL, OTHER_TOOL]


def test_tool_call_stream_with_sdk_helper(each_backend):
    client = sync_client(each_backend)
    with client.chat.completions.stream(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "call tool about streaming"}],
        tools=[SEARCH_TOOL],
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_completion()

    assert "tool_calls.function.arguments.done" in events
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.id == "call_mock_1"
    assert call.function.name == "search"
    assert json.loads(call.function.arguments) == {"query": "call tool about streaming"}


def test_tool_call_stream_async_manual_accumulation(core_gateway):
    async def run():
        async with async_client(core_gateway) as client:
            stream = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "call tool asynchronously"}],
                tools=[SEARCH_TOOL],
                stream=True,
            )
            return [chunk async for chunk in stream]

    chunks = asyncio.run(run())
    calls = {}
    finish = None
    for chunk in chunks:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
            if delta.id:
                call["id"] = delta.id
            if delta.function and delta.function.name:
                call["name"] += delta.function.name
            if delta.function and delta.function.arguments:
                call["arguments"] += delta.function.arguments
    assert finish == "tool_calls"
    assert list(calls) == [0]
    assert calls[0]["id"] == "call_mock_1"
    assert calls[0]["name"] == "search"
    assert json.loads(calls[0]["arguments"]) == {"query": "call tool asynchronously"}


def test_multi_turn_with_tool_results(core_gateway, upstream):
    client = sync_client(core_gateway)
    messages = [
        {"role": "system", "content": "Use tools when asked."},
        {"role": "user", "content": "call tool for the answer"},
    ]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[SEARCH_TOOL])
    call = first.choices[0].message.tool_calls[0]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"answer": 42}'})
    messages.append({"role": "user", "content": "thanks, now summarise"})

    second = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[SEARCH_TOOL])
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "echo: thanks, now summarise"

    received = body_of(upstream_requests(upstream, "/v1/chat/completions")[-1])
    roles = [m["role"] for m in received["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "user"]
    assert received["messages"][3]["tool_call_id"] == "call_mock_1"


# --- headers --------------------------------------------------------------------------------------


def test_upstream_gets_the_provider_key_never_the_client_key(each_backend, upstream):
    client = sync_client(each_backend)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "key check"}])
    client.embeddings.create(model="text-embedding-3-small", input="key check")
    received = upstream.requests()
    assert len(received) == 2
    for record in received:
        assert record["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"
        assert not any(CLIENT_KEY in value for value in record["headers"].values())


def test_hop_by_hop_headers_are_not_forwarded(each_backend, upstream):
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hop by hop"}]}).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    status, headers, data = raw_request(
        each_backend.base,
        "POST",
        "/v1/chat/completions",
        [
            ("Authorization", f"Bearer {CLIENT_KEY}"),
            ("Content-Type", "application/json"),
            ("Connection", "keep-alive, x-secret"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Transfer-Encoding", "chunked"),
            ("Proxy-Authorization", "Basic cHJveHk6c2VjcmV0"),
            ("Proxy-Client-Token", "proxy-only-token"),
            ("Cookie", "portal_session=s3cr3t"),
            ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"),
            ("X-Secret", "do-not-forward"),
            ("OpenAI-Organization", "org-alloy-test"),
            ("User-Agent", "alloy-integration-test/1.0"),
            ("X-Custom-Trace", "trace-123"),
        ],
        chunked,
    )
    assert status == 200, data
    assert json.loads(data)["choices"][0]["message"]["content"] == "echo: hop by hop"

    [received] = upstream_requests(upstream, "/v1/chat/completions")
    forwarded = received["headers"]
    for name in ("keep-alive", "te", "transfer-encoding", "proxy-authorization", "proxy-client-token",
                 "http2-settings", "cookie", "x-secret"):
        assert name not in forwarded, f"{name} was forwarded: {forwarded[name]!r}"
    # The upstream hop may carry the each_backend's own Connection header, never the client's tokens.
    assert "x-secret" not in forwarded.get("connection", "").lower()
    assert "do-not-forward" not in json.dumps(forwarded)
    assert "cHJveHk6c2VjcmV0" not in json.dumps(forwarded)
    # Which organization the gateway's key bills is the operator's choice, not the client's.
    assert "openai-organization" not in forwarded
    assert forwarded["user-agent"] == "alloy-integration-test/1.0"
    assert forwarded["x-custom-trace"] == "trace-123"
    assert body_of(received)["messages"][0]["content"] == "hop by hop"


def test_upstream_gets_no_headers_the_client_did_not_send(each_backend, upstream):
    """The upstream sees the client's end-to-end headers and the gateway's own (key, request id,
    its Via line for loop detection, framing, ``accept-encoding: identity``), nothing invented: an ``Accept-Encoding: gzip`` the
    client never sent would make a real provider compress an answer that is then relayed to a client
    that cannot decode it (and that the gateway cannot read)."""
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "bare"}]}).encode()
    status, headers, data = raw_request(
        each_backend.base,
        "POST",
        "/v1/chat/completions",
        [("Authorization", f"Bearer {CLIENT_KEY}"), ("Content-Type", "application/json")],
        body,
    )
    assert status == 200, data
    assert "content-encoding" not in headers
    [received] = upstream_requests(upstream, "/v1/chat/completions")
    expected = {"host", "authorization", "content-type", "content-length", "x-request-id", "via", "connection", "accept-encoding"}
    assert received["headers"]["accept-encoding"] == "identity"
    invented = {name: value for name, value in received["headers"].items() if name not in expected}
    assert not invented, f"headers the client never sent reached the upstream: {invented}"


def test_sdk_headers_are_forwarded_but_not_its_organization(core_gateway, upstream):
    client = sync_client(core_gateway, organization="org-sdk", default_headers={"X-Team": "search"})
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    [received] = upstream_requests(upstream, "/v1/chat/completions")
    assert "openai-organization" not in received["headers"]  # see tests/integration/test_security.py
    assert received["headers"]["x-team"] == "search"
    assert received["headers"]["user-agent"].startswith("OpenAI/Python")


def test_request_id_echoed_generated_and_forwarded(core_gateway, upstream):
    client = sync_client(core_gateway)
    messages = [{"role": "user", "content": "ids"}]

    given = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=messages, extra_headers={"X-Request-ID": "req-client-42"}
    )
    assert given.headers["x-request-id"] == "req-client-42"
    assert given.parse().choices[0].message.content == "echo: ids"

    first = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages)
    second = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages)
    generated = [first.headers.get("x-request-id"), second.headers.get("x-request-id")]
    assert all(generated), "the each_backend must generate an x-request-id when the client sends none"
    assert generated[0] != generated[1]

    upstream_ids = [r["headers"].get("x-request-id") for r in upstream_requests(upstream, "/v1/chat/completions")]
    assert upstream_ids == ["req-client-42", *generated]

    # An id that is not a sane token (here with spaces and a quote) is replaced, not relayed.
    upstream.clear()
    odd = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=messages, extra_headers={"X-Request-ID": 'bad id "with" spaces'}
    )
    replaced = odd.headers.get("x-request-id")
    assert replaced and replaced != 'bad id "with" spaces'
    assert [r["headers"].get("x-request-id") for r in upstream.requests()] == [replaced]


def test_streamed_response_carries_gateway_headers(core_gateway):
    client = sync_client(core_gateway)
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream headers"}],
        stream=True,
        extra_headers={"x-request-id": "stream-req-7"},
    ) as response:
        assert response.headers["x-request-id"] == "stream-req-7"
        assert response.headers["x-alloy-provider"] == "openai"
        assert response.headers["x-alloy-model"] == "gpt-4o-mini"
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
    assert text == "echo: stream headers"


def test_alloy_provider_and_model_headers(each_backend):
    client = sync_client(each_backend)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "headers"}]
    )
    assert raw.status_code == 200
    assert raw.headers["x-alloy-provider"] == "openai"
    assert raw.headers["x-alloy-model"] == "gpt-4o-mini"
    raw = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="x")
    assert raw.headers["x-alloy-provider"] == "openai"
    assert raw.headers["x-alloy-model"] == "text-embedding-3-small"

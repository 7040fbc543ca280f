"""Anthropic Messages clients through the running gateway: the official ``anthropic`` SDK against
``POST /v1/messages`` and ``/v1/messages/count_tokens``, routed by model to three strict upstreams:
the Anthropic emulator (native passthrough, which also counts tokens), the mock OpenAI upstream
and the Gemini emulator (both translated). Every test runs once per route and checks what the SDK
read and what the upstream received, in the upstream's own shape.
"""

import base64
import os
import sys

import anthropic
import orjson
import pytest

from harness import Emulator, assert_no_crash_logged, gateway_env, start_emulator_process, start_gateway_process
from harness import start_mock_process

PROVIDER_KEY = "sk-provider"
MASTER_KEY = "alloy-master"
COUNTING_EMULATOR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "client_apis", "anthropic_emulator_counting.py"
)
# route -> the model the client asks for (the Anthropic one by provider/model: the model is spliced)
ROUTES = {
    "anthropic": "anthropic/claude-3-5-haiku-20241022",
    "openai": "gpt-4o-mini",
    "gemini": "gemini-2.0-flash",
}
UPSTREAM_MODEL = {"anthropic": "claude-3-5-haiku-20241022", "openai": "gpt-4o-mini", "gemini": "gemini-2.0-flash"}
PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
LOOKUP = {
    "name": "lookup",
    "description": "Look something up.",
    "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
}


def start_stack(tmp_path_factory, config_extra="", anthropic_extra=""):
    """The three upstreams and a gateway in front of them (the master key set, no retries unless a
    model asks): {"gateway", "anthropic", "openai", "gemini", "stop"}. ``config_extra`` follows the
    ``[wildcards]`` table, with ``{anthropic_base}`` standing for the Anthropic emulator's address."""
    started = []
    try:
        mock = start_mock_process("--api-key", PROVIDER_KEY)
        started.append(mock)
        counting = Emulator(
            ["--port", "0", "--api-key", PROVIDER_KEY], gateway_env(), command=(sys.executable, COUNTING_EMULATOR)
        )
        started.append(counting)
        gemini = start_emulator_process("gemini", "--api-key", PROVIDER_KEY)
        started.append(gemini)
        extra = config_extra.replace("{anthropic_base}", counting.base)
        config = f"""
        [server]
        master_key = "env:MK"

        [router]
        max_retries = 0
        backoff_base = 0.001
        backoff_max = 0.002

        [providers.openai]
        base_url = "{mock.base}/v1"
        api_key = "env:PK"

        [providers.anthropic]
        base_url = "{counting.base}"
        api_key = "env:PK"
        {anthropic_extra}

        [providers.gemini]
        base_url = "{gemini.base}"
        api_key = "env:PK"

        [wildcards]
        "gpt-*" = "openai"
        {extra}
        """
        path = tmp_path_factory.mktemp("client-api") / "alloy.toml"
        gateway = start_gateway_process(path, config, {"PK": PROVIDER_KEY, "MK": MASTER_KEY})
        started.append(gateway)
    except BaseException:
        for process in started:
            process.stop()
        raise

    def stop():
        assert_no_crash_logged(gateway)
        for process in started:
            process.stop()

    return {"gateway": gateway, "anthropic": counting, "openai": mock, "gemini": gemini, "stop": stop}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = start_stack(tmp_path_factory)
    yield stack
    stack["stop"]()


@pytest.fixture
def client(stack):
    for name in ("anthropic", "openai", "gemini"):
        stack[name].clear()
    return anthropic.Anthropic(base_url=stack["gateway"].base, api_key=MASTER_KEY, max_retries=0)


@pytest.fixture(params=list(ROUTES))
def route(request):
    return request.param


def received(stack, route):
    """What the route's upstream received, oldest first."""
    return stack[route].requests()


def dump(message):
    return message.model_dump(exclude_none=True)


# --- complete answers -------------------------------------------------------------------------------


def test_a_message(stack, client, route):
    raw = client.messages.with_raw_response.create(
        model=ROUTES[route], max_tokens=50, messages=[{"role": "user", "content": "hello there"}]
    )
    message = raw.parse()
    assert [(b.type, b.text) for b in message.content] == [("text", "echo: hello there")]
    assert message.role == "assistant" and message.id.startswith("msg_") and message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert message.model == (UPSTREAM_MODEL[route] if route == "anthropic" else ROUTES[route])
    assert raw.headers["x-alloy-provider"] == route and raw.headers["x-request-id"]
    # The SDK's own request id (its logs, a support ticket): Anthropic's when it answered natively,
    # else the gateway's, under the name Anthropic uses.
    assert message._request_id and message._request_id == raw.headers["request-id"]
    if route != "anthropic":
        assert message._request_id == raw.headers["x-request-id"]
    [sent] = received(stack, route)
    if route == "anthropic":
        assert sent["path"] == "/v1/messages"
        assert sent["headers"]["x-api-key"] == PROVIDER_KEY and sent["headers"]["anthropic-version"] == "2023-06-01"
        assert "authorization" not in sent["headers"]
        # The client's body as it was sent, the model alone replaced (same keys, same order).
        expected = {
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "hello there"}],
            "model": UPSTREAM_MODEL[route],
        }
        assert sent["body"] == expected and list(sent["body"]) == list(expected)
    elif route == "openai":
        assert sent["path"] == "/v1/chat/completions" and sent["headers"]["authorization"] == "Bearer " + PROVIDER_KEY
        assert sent["body"] == {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hello there"}],
            "max_completion_tokens": 50,
        }
        assert not any(name.startswith("anthropic-") or name == "x-api-key" for name in sent["headers"])
    else:
        assert sent["path"] == "/v1beta/models/gemini-2.0-flash:generateContent"
        assert sent["body"]["contents"] == [{"role": "user", "parts": [{"text": "hello there"}]}]
        assert sent["body"]["generationConfig"]["maxOutputTokens"] == 50


def test_the_system_prompt_reaches_the_upstream_in_its_shape(stack, client, route):
    system = [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "Be kind.", "cache_control": {"type": "ephemeral"}},
    ]
    message = client.messages.create(
        model=ROUTES[route], max_tokens=50, system=system, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text == "echo: hi"
    body = received(stack, route)[-1]["body"]
    if route == "anthropic":
        assert body["system"] == system  # cache_control and all
    elif route == "openai":
        assert body["messages"][0] == {"role": "system", "content": "Be brief.\n\nBe kind."}
    else:
        assert body["systemInstruction"] == {"parts": [{"text": "Be brief.\n\nBe kind."}]}


def test_tool_use_then_tool_result(stack, client, route):
    ask = {"role": "user", "content": "please call tool"}
    first = client.messages.create(model=ROUTES[route], max_tokens=100, tools=[LOOKUP], messages=[ask])
    assert first.stop_reason == "tool_use"
    [call] = [b for b in first.content if b.type == "tool_use"]
    assert call.name == "lookup" and call.input == {"query": "please call tool"} and call.id
    result = {"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}
    history = [ask, {"role": "assistant", "content": [dump(b) for b in first.content]}]
    history.append({"role": "user", "content": [result, {"type": "text", "text": "thanks"}]})
    second = client.messages.create(model=ROUTES[route], max_tokens=100, tools=[LOOKUP], messages=history)
    assert second.stop_reason == "end_turn" and second.content[0].text == "echo: thanks"
    body = received(stack, route)[-1]["body"]
    if route == "anthropic":
        assert body["messages"][2]["content"][0] == result
    elif route == "openai":
        assert body["messages"][1]["tool_calls"][0]["id"] == call.id
        assert body["messages"][2] == {"role": "tool", "tool_call_id": call.id, "content": "sunny"}
        assert body["tools"][0]["function"]["name"] == "lookup"
    else:
        responses = [p["functionResponse"] for c in body["contents"] for p in c["parts"] if "functionResponse" in p]
        assert responses[0]["name"] == "lookup"


def test_an_image_reaches_the_upstream_in_its_shape(stack, client, route):
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}}
    message = client.messages.create(
        model=ROUTES[route],
        max_tokens=50,
        messages=[{"role": "user", "content": [image, {"type": "text", "text": "what is this"}]}],
    )
    assert message.content[0].text == "echo: what is this"
    parts = received(stack, route)[-1]["body"]
    if route == "anthropic":
        assert parts["messages"][0]["content"][0] == image
    elif route == "openai":
        assert parts["messages"][0]["content"][0] == {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64," + PIXEL},
        }
    else:
        assert parts["contents"][0]["parts"][0] == {"inlineData": {"mimeType": "image/png", "data": PIXEL}}


def test_a_pdf_document_reaches_the_upstream_in_its_shape(stack, client, route):
    pdf = base64.b64encode(b"%PDF-1.4\n%tiny\n").decode()
    document = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": pdf}}
    message = client.messages.create(
        model=ROUTES[route], max_tokens=50, messages=[{"role": "user", "content": [document, {"type": "text", "text": "summarize"}]}]
    )
    assert message.content[0].text == "echo: summarize"
    body = received(stack, route)[-1]["body"]
    if route == "anthropic":
        assert body["messages"][0]["content"][0] == document
    elif route == "openai":
        assert body["messages"][0]["content"][0]["file"]["file_data"] == "data:application/pdf;base64," + pdf
    else:
        assert body["contents"][0]["parts"][0] == {"inlineData": {"mimeType": "application/pdf", "data": pdf}}


def test_max_tokens_ends_with_max_tokens(stack, client, route):
    message = client.messages.create(
        model=ROUTES[route], max_tokens=2, messages=[{"role": "user", "content": "a b c d e f g h"}]
    )
    assert message.stop_reason == "max_tokens"


def test_stop_sequences_reach_the_upstream(stack, client, route):
    message = client.messages.create(
        model=ROUTES[route], max_tokens=50, stop_sequences=["###"], messages=[{"role": "user", "content": "x ### y"}]
    )
    body = received(stack, route)[-1]["body"]
    if route == "anthropic":
        assert (message.stop_reason, message.stop_sequence, message.content[0].text) == (
            "stop_sequence",
            "###",
            "echo: x ",
        )
    elif route == "openai":
        assert body["stop"] == ["###"]
    else:
        assert body["generationConfig"]["stopSequences"] == ["###"]


# --- streams -------------------------------------------------------------------------------------------


def test_a_stream_of_text(stack, client, route):
    events = list(
        client.messages.create(
            model=ROUTES[route], max_tokens=50, stream=True, messages=[{"role": "user", "content": "one two three"}]
        )
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds[1] == "content_block_start" and kinds[-3] == "content_block_stop"
    assert set(kinds[2:-3]) == {"content_block_delta"}
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == "echo: one two three"
    assert events[-2].delta.stop_reason == "end_turn" and events[-2].usage.output_tokens > 0
    body = received(stack, route)[-1]
    if route == "anthropic":
        assert body["body"]["stream"] is True
    elif route == "openai":
        assert body["body"]["stream"] is True and body["body"]["stream_options"] == {"include_usage": True}
    else:
        assert ":streamGenerateContent" in body["path"]


def test_a_streamed_tool_call(stack, client, route):
    with client.messages.stream(
        model=ROUTES[route], max_tokens=100, tools=[LOOKUP], messages=[{"role": "user", "content": "call tool for me"}]
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    assert any(e.type == "input_json" for e in events)  # the SDK's event for each input_json_delta
    [call] = [b for b in final.content if b.type == "tool_use"]
    assert call.name == "lookup" and call.input == {"query": "call tool for me"}
    assert final.stop_reason == "tool_use" and final.usage.output_tokens > 0


def test_a_streamed_max_tokens(stack, client, route):
    with client.messages.stream(
        model=ROUTES[route], max_tokens=2, messages=[{"role": "user", "content": "a b c d e f g h"}]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens" and final.content


# --- count_tokens ---------------------------------------------------------------------------------------


def test_count_tokens_is_exact_from_anthropic_and_estimated_elsewhere(stack, client, route):
    request = {
        "model": ROUTES[route],
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "one two three four"}],
    }
    raw = client.messages.with_raw_response.count_tokens(**request)
    count = raw.parse()
    if route == "anthropic":
        assert count.input_tokens == 6  # the emulator's own count: words of the system and the messages
        assert "x-alloy-token-count" not in raw.headers
        [sent] = received(stack, route)
        assert sent["path"] == "/v1/messages/count_tokens" and sent["body"]["model"] == UPSTREAM_MODEL[route]
        assert sent["headers"]["x-api-key"] == PROVIDER_KEY
    else:
        assert raw.headers["x-alloy-token-count"] == "estimate" and count.input_tokens >= 6
        assert received(stack, route) == []  # answered by the gateway itself
        assert raw.headers["request-id"] == raw.headers["x-request-id"]  # the SDK's _request_id


def test_a_body_the_translation_refuses_is_a_400_in_anthropic_shape(stack, client):
    with pytest.raises(anthropic.BadRequestError) as raised:
        client.messages.create(
            model=ROUTES["openai"],
            max_tokens=10,
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
            messages=[{"role": "user", "content": "hi"}],
        )
    assert raised.value.body["error"]["type"] == "invalid_request_error"
    assert raised.value.body["error"]["message"].startswith("tools.0.type:")
    assert raised.value.request_id and raised.value.request_id == raised.value.response.headers["x-request-id"]
    assert received(stack, "openai") == []


def test_the_answer_names_what_served_it(stack, client, route):
    raw = client.messages.with_raw_response.create(
        model=ROUTES[route], max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-alloy-provider"] == route and raw.headers["x-alloy-attempts"] == "1"
    assert raw.headers["x-alloy-model"] == UPSTREAM_MODEL[route]
    assert orjson.loads(raw.http_response.content)["type"] == "message"

"""OpenAI Responses clients through the running gateway: the official ``openai`` SDK's
``client.responses.create`` (and ``responses.stream``) against ``POST /v1/responses``, routed by
model to four strict upstreams: the mock's Responses API (passthrough, ``openai``), the mock's chat
completions through a provider configured with ``responses_api = false`` (``chat``), the Anthropic
emulator and the Gemini emulator (both translated onto chat completions, then to the provider's own
API). Each test checks what the SDK parsed and what the upstream received, in its own shape.
"""

import base64
import json

import httpx
import openai
import pytest

from harness import assert_no_crash_logged, start_emulator_process, start_gateway_process, start_mock_process

PROVIDER_KEY = "sk-provider"
MASTER_KEY = "alloy-master"
ROUTES = {
    "openai": "gpt-4o-mini",
    "chat": "chatonly/gpt-4o-mini",
    "anthropic": "claude-3-5-haiku-20241022",
    "gemini": "gemini-2.0-flash",
}
TRANSLATED = ("chat", "anthropic", "gemini")
UPSTREAM = {"openai": "openai", "chat": "openai", "anthropic": "anthropic", "gemini": "gemini"}
LOOKUP = {
    "type": "function",
    "name": "lookup",
    "description": "Look something up.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
}
PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    started = []
    try:
        mock = start_mock_process("--api-key", PROVIDER_KEY)
        started.append(mock)
        claude = start_emulator_process("anthropic", "--api-key", PROVIDER_KEY)
        started.append(claude)
        gemini = start_emulator_process("gemini", "--api-key", PROVIDER_KEY)
        started.append(gemini)
        config = f"""
        [server]
        master_key = "env:MK"

        [router]
        max_retries = 0

        [providers.openai]
        base_url = "{mock.base}/v1"
        api_key = "env:PK"

        [providers.chatonly]
        base_url = "{mock.base}/v1"
        api_key = "env:PK"
        responses_api = false

        [providers.anthropic]
        base_url = "{claude.base}"
        api_key = "env:PK"

        [providers.gemini]
        base_url = "{gemini.base}"
        api_key = "env:PK"

        [wildcards]
        "gpt-*" = "openai"
        """
        path = tmp_path_factory.mktemp("responses") / "alloy.toml"
        gateway = start_gateway_process(path, config, {"PK": PROVIDER_KEY, "MK": MASTER_KEY})
        started.append(gateway)
    except BaseException:
        for process in started:
            process.stop()
        raise
    yield {"gateway": gateway, "openai": mock, "anthropic": claude, "gemini": gemini}
    assert_no_crash_logged(gateway)
    for process in started:
        process.stop()


@pytest.fixture
def client(stack):
    for name in ("openai", "anthropic", "gemini"):
        stack[name].clear()
    return openai.OpenAI(base_url=stack["gateway"].base + "/v1", api_key=MASTER_KEY, max_retries=0)


@pytest.fixture(params=list(ROUTES))
def route(request):
    return request.param


def received(stack, route):
    """What the route's upstream received, oldest first."""
    return stack[UPSTREAM[route]].requests()


def assert_usage(usage):
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens == 0


# --- complete answers -------------------------------------------------------------------------------


def test_a_response(stack, client, route):
    raw = client.responses.with_raw_response.create(model=ROUTES[route], input="hello there", max_output_tokens=50)
    response = raw.parse()
    assert response.output_text == "echo: hello there"
    assert response.id.startswith("resp_") and response.object == "response" and response.status == "completed"
    assert [item.type for item in response.output] == ["message"]
    assert_usage(response.usage)
    assert raw.headers["x-request-id"]
    [sent] = received(stack, route)
    if route == "openai":  # passthrough: the client's body as it was sent
        assert sent["path"] == "/v1/responses" and sent["headers"]["authorization"] == "Bearer " + PROVIDER_KEY
        assert sent["body"] == {"input": "hello there", "max_output_tokens": 50, "model": "gpt-4o-mini"}
        assert response.model == "gpt-4o-mini"
        return
    assert response.model == ROUTES[route]
    if route == "chat":
        assert sent["path"] == "/v1/chat/completions"
        assert sent["body"] == {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hello there"}],
            "max_completion_tokens": 50,
        }
    elif route == "anthropic":
        assert sent["path"] == "/v1/messages"
        assert sent["body"]["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}] or sent[
            "body"
        ]["messages"] == [{"role": "user", "content": "hello there"}]
        assert sent["body"]["max_tokens"] == 50
    else:
        assert sent["path"] == "/v1beta/models/gemini-2.0-flash:generateContent"
        assert sent["body"]["contents"] == [{"role": "user", "parts": [{"text": "hello there"}]}]
        assert sent["body"]["generationConfig"]["maxOutputTokens"] == 50


def test_instructions_and_message_items_reach_the_upstream_in_its_shape(stack, client, route):
    history = [
        {"role": "user", "content": [{"type": "input_text", "text": "first"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "echo: first"}]},
        {"role": "user", "content": [{"type": "input_text", "text": "second"}]},
    ]
    response = client.responses.create(model=ROUTES[route], instructions="Be brief.", input=history)
    assert response.output_text == "echo: second"
    assert response.instructions == "Be brief."
    body = received(stack, route)[-1]["body"]
    if route == "openai":
        assert body["instructions"] == "Be brief." and body["input"] == history
    elif route == "chat":
        assert body["messages"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "echo: first"},
            {"role": "user", "content": "second"},
        ]
    elif route == "anthropic":
        assert body["system"] in ("Be brief.", [{"type": "text", "text": "Be brief."}])
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    else:
        assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
        assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]


def test_function_call_then_its_output(stack, client, route):
    ask = {"role": "user", "content": "please call tool"}
    first = client.responses.create(model=ROUTES[route], tools=[LOOKUP], input=[ask])
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "lookup" and call.call_id and call.status == "completed"
    import json

    assert json.loads(call.arguments) == {"query": "please call tool"}
    history = [ask, call.model_dump(exclude_none=True)]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "sunny"})
    history.append({"role": "user", "content": "thanks"})
    second = client.responses.create(model=ROUTES[route], tools=[LOOKUP], input=history)
    assert second.output_text == "echo: thanks"
    assert_usage(second.usage)
    body = received(stack, route)[-1]["body"]
    if route == "openai":
        assert body["input"][2] == {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
        assert body["tools"] == [LOOKUP]
    elif route == "chat":
        assert body["messages"][1]["tool_calls"][0]["id"] == call.call_id
        assert body["messages"][2] == {"role": "tool", "tool_call_id": call.call_id, "content": "sunny"}
        assert body["tools"][0]["function"]["name"] == "lookup"
    elif route == "anthropic":
        assert body["messages"][1]["content"][-1]["type"] == "tool_use"
        assert body["messages"][2]["content"][0]["tool_use_id"] == call.call_id
        assert body["tools"][0]["name"] == "lookup"
    else:
        responses = [p["functionResponse"] for c in body["contents"] for p in c["parts"] if "functionResponse" in p]
        assert responses and responses[0]["name"] == "lookup"


def test_an_image_reaches_the_translated_upstreams(stack, client):
    content = [
        {"type": "input_text", "text": "look"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PIXEL}"},
    ]
    for route in TRANSLATED:
        response = client.responses.create(model=ROUTES[route], input=[{"role": "user", "content": content}])
        assert response.output_text.startswith("echo: look")
        body = received(stack, route)[-1]["body"]
        if route == "chat":
            assert body["messages"][0]["content"][1] == {
                "type": "image_url",
                "image_url": {"url": f"data:image/png;base64,{PIXEL}"},
            }
        elif route == "anthropic":
            assert body["messages"][0]["content"][1]["source"] == {
                "type": "base64",
                "media_type": "image/png",
                "data": PIXEL,
            }
        else:
            assert body["contents"][0]["parts"][1]["inlineData"] == {"mimeType": "image/png", "data": PIXEL}


# --- streams ------------------------------------------------------------------------------------------


def test_a_stream(stack, client, route):
    events = list(client.responses.create(model=ROUTES[route], input="hello there", stream=True))
    kinds = [event.type for event in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * (len(kinds) - 8),
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text == "echo: hello there"
    done = events[-1].response
    assert done.status == "completed" and done.output_text == text
    assert_usage(done.usage)
    [sent] = received(stack, route)
    if route == "openai":
        assert sent["body"] == {"input": "hello there", "model": "gpt-4o-mini", "stream": True}
    elif route == "chat":
        assert sent["body"]["stream"] is True and sent["body"]["stream_options"] == {"include_usage": True}


def test_the_sdk_stream_helper_accumulates_a_streamed_function_call(stack, client, route):
    with client.responses.stream(model=ROUTES[route], tools=[LOOKUP], input="please call tool") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" in kinds
    [call] = [item for item in final.output if item.type == "function_call"]
    assert call.name == "lookup" and call.call_id
    import json

    assert json.loads(call.arguments) == {"query": "please call tool"}
    assert final.usage.total_tokens > 0


# --- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", TRANSLATED)
def test_previous_response_id_is_refused_where_alloy_cannot_honour_it(stack, client, route):
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model=ROUTES[route], input="again", previous_response_id="resp_abc")
    error = raised.value.body
    assert error["param"] == "previous_response_id" and "previous_response_id" in error["message"]
    assert "keeps no" in error["message"] and error["type"] == "invalid_request_error"
    assert received(stack, route) == []


def test_previous_response_id_passes_through_to_openai(stack, client):
    response = client.responses.create(model="gpt-4o-mini", input="again", previous_response_id="resp_abc")
    assert response.previous_response_id == "resp_abc"
    assert received(stack, "openai")[-1]["body"]["previous_response_id"] == "resp_abc"


@pytest.mark.parametrize("route", TRANSLATED)
def test_an_empty_input_is_refused_naming_input(stack, client, route):
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model=ROUTES[route], input=[], instructions="Be brief.")
    assert raised.value.body["param"] == "input" and "input" in raised.value.message
    assert received(stack, route) == []


def test_a_hosted_tool_is_refused_for_a_translated_model(stack, client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model=ROUTES["anthropic"], input="hi", tools=[{"type": "web_search"}])
    assert raised.value.body["param"] == "tools[0].type"
    assert received(stack, "anthropic") == []


def test_an_unknown_model_is_a_404(stack, client):
    with pytest.raises(openai.NotFoundError) as raised:
        client.responses.create(model="nobody-knows-this", input="hi")
    assert raised.value.body["code"] == "model_not_found"


def test_a_wrong_key_is_a_401(stack):
    client = openai.OpenAI(base_url=stack["gateway"].base + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.responses.create(model=ROUTES["anthropic"], input="hi")


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    "route, header", [("chat", "x-mock-fault"), ("anthropic", "x-emulator-fault"), ("gemini", "x-emulator-fault")]
)
def test_an_upstream_error_keeps_its_status_in_openai_shape(stack, client, route, header, stream):
    with pytest.raises(openai.RateLimitError) as raised:
        client.responses.create(model=ROUTES[route], input="hi", stream=stream, extra_headers={header: "status=429"})
    assert raised.value.status_code == 429
    assert isinstance(raised.value.body, dict) and raised.value.body.get("message")


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_error_page_becomes_an_openai_error(stack, client, stream):
    # A proxy in front of the provider answered with its HTML page: the client still gets JSON.
    with pytest.raises(openai.InternalServerError) as raised:
        client.responses.create(model=ROUTES["chat"], input="hi", stream=stream, extra_headers={"x-mock-fault": "status=502;html"})
    answer = raised.value.response
    assert answer.status_code == 502 and answer.headers["content-type"] == "application/json"
    error = answer.json()["error"]
    assert error["type"] == "server_error" and error["message"].startswith("upstream answered status 502: <html>")


@pytest.mark.parametrize("route, fault", [("anthropic", "mid-stream-error"), ("chat", "reset-mid-stream")])
def test_a_translated_stream_that_breaks_off_ends_with_response_failed(stack, client, route, fault):
    header = "x-mock-fault" if route == "chat" else "x-emulator-fault"
    events = list(client.responses.create(model=ROUTES[route], input="hello there", stream=True, extra_headers={header: fault}))
    assert events[0].type == "response.created" and events[-1].type == "response.failed"
    assert events[-1].response.status == "failed" and events[-1].response.error.message


def test_a_passed_through_stream_that_breaks_off_ends_with_a_responses_error_event(stack, client):
    # The upstream speaks the Responses API itself: Alloy's last event is that API's `error` event
    # (type, code, message), which a client dispatching on `type` reads; the SDK raises on it.
    answer = httpx.post(
        stack["gateway"].base + "/v1/responses",
        json={"model": ROUTES["openai"], "input": "a b c d e f g h", "stream": True},
        headers={"authorization": f"Bearer {MASTER_KEY}", "x-mock-fault": "reset-mid-stream"},
    )
    assert answer.status_code == 200
    events = [block for block in answer.text.split("\n\n") if block.strip()]
    assert events[0].startswith("event: response.created")
    name, data = events[-1].split("\n", 1)
    error = json.loads(data.removeprefix("data: "))
    assert name == "event: error" and error["type"] == "error"
    assert error["code"] == "upstream_protocol_error" and error["message"] and "param" in error
    with pytest.raises(openai.APIError) as raised:
        list(client.responses.create(model=ROUTES["openai"], input="a b c", stream=True, extra_headers={"x-mock-fault": "reset-mid-stream"}))
    assert raised.value.message == error["message"]


def test_stored_responses_are_reached_at_the_default_provider(stack, client):
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_stored_at_openai")
    [sent] = received(stack, "openai")
    assert sent["method"] == "GET" and sent["path"] == "/v1/responses/resp_stored_at_openai"


def test_off_the_allow_list_the_responses_api_is_off_for_every_provider(stack, start_gateway):
    claude = stack["anthropic"]
    gateway = start_gateway(
        config=f"""
        [providers.anthropic]
        base_url = "{claude.base}"
        api_key = "{PROVIDER_KEY}"

        [passthrough]
        allow = ["GET /v1/models"]
        """
    )
    claude.clear()
    client = openai.OpenAI(base_url=gateway.base + "/v1", api_key="anything", max_retries=0)
    with pytest.raises(openai.NotFoundError) as refused:
        client.responses.create(model=ROUTES["anthropic"], input="hi")
    assert "allow-list" in refused.value.message
    assert claude.requests() == []


# --- reasoning ----------------------------------------------------------------------------------------

THINKERS = {"anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}


@pytest.mark.parametrize("route", list(THINKERS))
def test_reasoning_effort_thinks_upstream_and_comes_back_as_a_reasoning_summary(stack, client, route):
    response = client.responses.create(
        model=THINKERS[route], input="six times seven", reasoning={"effort": "low"}, max_output_tokens=4000
    )
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert [part.text for part in response.output[0].summary] == ["Considering: six times seven"]
    assert response.output_text == "echo: six times seven"
    if route == "gemini":  # Gemini counts thoughts apart (thoughtsTokenCount); Anthropic does not
        assert response.usage.output_tokens_details.reasoning_tokens == 4  # "Considering: six times seven"
    body = received(stack, route)[-1]["body"]
    if route == "anthropic":
        assert body["thinking"]["type"] == "enabled" and body["thinking"]["budget_tokens"] >= 1024
    else:
        assert body["generationConfig"]["thinkingConfig"]["includeThoughts"] is True


@pytest.mark.parametrize("route", list(THINKERS))
def test_streamed_reasoning_comes_before_the_text(stack, client, route):
    with client.responses.stream(
        model=THINKERS[route], input="one two three", reasoning={"effort": "medium"}, max_output_tokens=8000
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds.index("response.reasoning_summary_text.done") < kinds.index("response.output_text.delta")
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output[0].summary[0].text == "Considering: one two three"
    assert final.output_text == "echo: one two three"

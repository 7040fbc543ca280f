"""One application, three provider APIs: the official openai SDK against an OpenAI route, an
Anthropic route and a Gemini route through one running gateway, each upstream a strict emulator.

Every test runs once per route and expects the same client-visible behaviour; what each provider
received is checked in its own shape (Anthropic's top-level ``system``, Gemini's
``systemInstruction``...).
"""

import base64
import json

import openai
import pytest

from harness import assert_no_crash_logged, start_emulator_process, start_gateway_process, start_mock_process

KEY = "sk-provider"
ROUTES = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-3-5-haiku-20241022",
    "gemini": "gemini-2.0-flash",
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look something up.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
}
PIXEL = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    started = []
    try:
        mock = start_mock_process("--api-key", KEY)
        started.append(mock)
        emulators = {}
        for name in ("anthropic", "gemini"):
            emulators[name] = start_emulator_process(name, "--api-key", KEY)
            started.append(emulators[name])
        config = f"""
        [providers.openai]
        base_url = "{mock.base}/v1"
        api_key = "env:PK"

        [providers.anthropic]
        kind = "anthropic"
        base_url = "{emulators['anthropic'].base}"
        api_key = "env:PK"

        [providers.gemini]
        kind = "gemini"
        base_url = "{emulators['gemini'].base}"
        api_key = "env:PK"
        """
        gateway = start_gateway_process(tmp_path_factory.mktemp("providers") / "alloy.toml", config, {"PK": KEY})
        started.append(gateway)
        client = openai.OpenAI(base_url=gateway.base + "/v1", api_key="client-key", max_retries=0)
        yield {"gateway": gateway, "client": client, "openai": mock, **emulators}
        assert_no_crash_logged(gateway)
    finally:
        for process in started:
            process.stop()


@pytest.fixture(params=list(ROUTES))
def route(request):
    return request.param


def last_body(stack, route):
    upstream = stack[route]
    body = upstream.requests()[-1]["body"]
    return json.loads(body) if isinstance(body, (str, bytes)) else body


def test_chat(stack, route):
    reply = stack["client"].chat.completions.with_raw_response.create(
        model=ROUTES[route], messages=[{"role": "user", "content": "hello there"}]
    )
    completion = reply.parse()
    assert completion.choices[0].message.content == "echo: hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens > 0 and completion.usage.total_tokens >= completion.usage.prompt_tokens
    assert reply.headers["x-alloy-provider"] == route
    if route == "anthropic":  # the provider's id of the answer, for a support ticket with it
        assert reply.headers["x-upstream-request-id"].startswith("req_emu_")


def test_a_translated_stream_carries_the_providers_request_id(stack):
    reply = stack["client"].chat.completions.with_raw_response.create(
        model=ROUTES["anthropic"], messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert reply.headers["x-upstream-request-id"].startswith("req_emu_")
    assert "".join(c.choices[0].delta.content or "" for c in reply.parse() if c.choices) == "echo: hi"


def test_stream_with_usage(stack, route):
    stream = stack["client"].chat.completions.create(
        model=ROUTES[route],
        messages=[{"role": "user", "content": "one two three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1


def test_system_prompt_reaches_the_provider_in_its_shape(stack, route):
    completion = stack["client"].chat.completions.create(
        model=ROUTES[route],
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
    )
    assert completion.choices[0].message.content == "echo: hi"
    body = last_body(stack, route)
    if route == "anthropic":
        assert "Be brief." in json.dumps(body["system"]) and all(m["role"] != "system" for m in body["messages"])
    elif route == "gemini":
        assert body["systemInstruction"]["parts"][0]["text"] == "Be brief."
    else:
        assert body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_tool_call(stack, route):
    completion = stack["client"].chat.completions.create(
        model=ROUTES[route], messages=[{"role": "user", "content": "please call tool now"}], tools=[WEATHER_TOOL]
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"query": "please call tool now"}


def test_allowed_tools_narrow_the_tools_the_model_may_call(stack, route):
    """``tool_choice: {type: allowed_tools}`` (a subset of the tools, and auto or required among
    them): each provider is offered only the allowed ones, and calls one when required."""
    other = {**WEATHER_TOOL, "function": {**WEATHER_TOOL["function"], "name": "forbidden"}}
    completion = stack["client"].chat.completions.create(
        model=ROUTES[route], messages=[{"role": "user", "content": "answer me"}], tools=[other, WEATHER_TOOL],
        tool_choice={"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "lookup"}}]}},
    )  # fmt: skip
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and [call.function.name for call in choice.message.tool_calls] == ["lookup"]
    body = last_body(stack, route)
    if route == "anthropic":
        assert [tool["name"] for tool in body["tools"]] == ["lookup"] and body["tool_choice"]["type"] == "any"
    elif route == "gemini":
        assert [f["name"] for f in body["tools"][0]["functionDeclarations"]] == ["lookup"]
        assert body["toolConfig"]["functionCallingConfig"]["mode"] == "ANY"
    else:  # OpenAI takes it as it is
        assert body["tool_choice"]["type"] == "allowed_tools" and len(body["tools"]) == 2


def test_allowed_tools_naming_a_tool_the_request_lacks_is_a_400(stack, route):
    with pytest.raises(openai.BadRequestError) as caught:
        stack["client"].chat.completions.create(
            model=ROUTES[route], messages=[{"role": "user", "content": "answer me"}], tools=[WEATHER_TOOL],
            tool_choice={"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {"name": "nope"}}]}},
        )  # fmt: skip
    assert caught.value.body["param"] == "tool_choice" or "tool_choice" in caught.value.body["message"]


def test_streamed_tool_call_accumulates(stack, route):
    with stack["client"].chat.completions.stream(
        model=ROUTES[route], messages=[{"role": "user", "content": "call tool for me"}], tools=[WEATHER_TOOL]
    ) as stream:
        final = stream.get_final_completion()
    [call] = final.choices[0].message.tool_calls
    assert call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"query": "call tool for me"}
    assert final.choices[0].finish_reason == "tool_calls"


def test_multi_turn_with_tool_result(stack, route):
    messages = [
        {"role": "user", "content": "call tool please"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"query": "x"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "user", "content": "thanks"},
    ]
    completion = stack["client"].chat.completions.create(model=ROUTES[route], messages=messages, tools=[WEATHER_TOOL])
    assert completion.choices[0].message.content  # the strict emulator accepted the whole history
    sent = last_body(stack, route)
    if route == "anthropic":
        results = [b for m in sent["messages"] for b in m["content"] if isinstance(b, dict) and b.get("type") == "tool_result"]
        assert results and results[0]["tool_use_id"] == "call_1"
    elif route == "gemini":
        responses = [p["functionResponse"] for c in sent["contents"] for p in c["parts"] if "functionResponse" in p]
        assert responses and responses[0]["name"] == "lookup"
    else:
        assert sent["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}


def test_image_part(stack, route):
    completion = stack["client"].chat.completions.create(
        model=ROUTES[route],
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": PIXEL}}],
            }
        ],
    )
    assert completion.choices[0].message.content == "echo: what is this"
    sent = json.dumps(last_body(stack, route))
    assert base64.b64encode(b"\x89PNG").decode()[:4] in sent


PDF = "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.4\n%tiny\n").decode()


def test_pdf_file_part(stack, route):
    """A PDF as OpenAI's ``file`` part reaches each provider in the form it reads PDFs: as it is
    (OpenAI), a base64 ``document`` block (Anthropic), ``inlineData`` (Gemini)."""
    part = {"type": "file", "file": {"filename": "report.pdf", "file_data": PDF}}
    completion = stack["client"].chat.completions.create(
        model=ROUTES[route], messages=[{"role": "user", "content": [part, {"type": "text", "text": "summarize it"}]}]
    )
    assert completion.choices[0].message.content == "echo: summarize it"
    first = last_body(stack, route)["contents" if route == "gemini" else "messages"][0]
    data = PDF.partition(",")[2]
    if route == "anthropic":
        assert first["content"][0] == {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": data}}
    elif route == "gemini":
        assert first["parts"][0] == {"inlineData": {"mimeType": "application/pdf", "data": data}}
    else:
        assert first["content"][0] == part


def test_max_tokens_truncates_with_length(stack, route):
    completion = stack["client"].chat.completions.create(
        model=ROUTES[route], messages=[{"role": "user", "content": "a b c d e f g h"}], max_tokens=2
    )
    assert completion.choices[0].finish_reason == "length"


def test_rate_limit_maps_to_the_sdk_error(stack, route):
    header = "x-mock-fault" if route == "openai" else "x-emulator-fault"
    with pytest.raises(openai.RateLimitError) as raised:
        stack["client"].chat.completions.create(
            model=ROUTES[route], messages=[{"role": "user", "content": "hi"}], extra_headers={header: "status=429"}
        )
    assert raised.value.status_code == 429
    assert isinstance(raised.value.body, dict) and "message" in raised.value.body


def test_embeddings_where_the_provider_has_them(stack):
    for route, model in (("openai", "text-embedding-3-small"), ("gemini", "gemini/text-embedding-004")):
        result = stack["client"].embeddings.create(model=model, input=["a", "b"], encoding_format="float")
        assert [d.index for d in result.data] == [0, 1] and len(result.data[0].embedding) > 0, route
    with pytest.raises(openai.BadRequestError):
        stack["client"].embeddings.create(model="anthropic/claude-3-5-haiku-20241022", input="a")


@pytest.mark.parametrize("route, model", [("openai", "text-embedding-3-small"), ("gemini", "gemini/text-embedding-004")])
def test_embeddings_come_in_base64_when_the_client_asks_on_every_route(stack, route, model):
    """``encoding_format: base64`` (float32 values, little-endian): Gemini answers float lists
    only, so the gateway encodes them; the SDK's default (it asks for base64 and decodes) reads
    the same vectors as ``float``."""
    import array
    import sys

    client = stack["client"]
    floats = client.embeddings.create(model=model, input=["a", "b"], encoding_format="float")
    encoded = client.embeddings.create(model=model, input=["a", "b"], encoding_format="base64")
    for plain, packed in zip(floats.data, encoded.data, strict=True):
        assert isinstance(packed.embedding, str), route
        values = array.array("f", base64.b64decode(packed.embedding))
        if sys.byteorder == "big":
            values.byteswap()
        assert list(values) == pytest.approx(plain.embedding, rel=1e-6)
    default = client.embeddings.create(model=model, input=["a", "b"])
    assert [d.embedding for d in default.data] == [pytest.approx(d.embedding, rel=1e-6) for d in floats.data]


def test_parse_with_an_optional_field_on_the_gemini_route(stack):
    """``chat.completions.parse`` with a pydantic model holding ``Optional[str]``: pydantic writes
    it as ``anyOf`` with a null type, which the strict Gemini emulator (like older Gemini models)
    refuses; the route sends it as ``nullable`` and the SDK parses the JSON answer."""
    from typing import Optional

    import pydantic

    class Echo(pydantic.BaseModel):
        echo: str
        note: Optional[str] = None

    completion = stack["client"].chat.completions.parse(
        model=ROUTES["gemini"], messages=[{"role": "user", "content": "hi"}], response_format=Echo
    )
    assert completion.choices[0].message.parsed == Echo(echo="hi")
    sent = last_body(stack, "gemini")["generationConfig"]["responseSchema"]["properties"]["note"]
    assert sent["nullable"] is True and sent["type"] == "string"

"""Reasoning and prompt caching through the running gateway: the official ``openai`` SDK asks with
``reasoning_effort`` and ``cache_control`` content parts, the gateway translates to the strict
Anthropic and Gemini emulators, and each test checks both ends: what the upstream received (its
request log, in its own shape: Claude's ``thinking`` budget, Gemini's ``thinkingConfig``, Anthropic's
``cache_control`` blocks) and what the SDK read (``reasoning_content`` as an extra field of the
message or delta, ``usage.prompt_tokens_details.cached_tokens`` and
``usage.completion_tokens_details.reasoning_tokens``), for complete answers and streams.

The processes are started once for the module with the harness's own starters (the ``start_*``
fixtures wrap the same functions); each test clears the emulators' logs and uses prompts of its own,
so the emulators' prompt caches never carry one test's prefix into another.
"""

import json

import openai
import pytest

from harness import assert_no_crash_logged, start_emulator_process, start_gateway_process

KEY = "sk-provider"
CLAUDE = "claude-sonnet-4-5"
GEMINI = "gemini-2.5-flash"
LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look something up.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    started = []
    try:
        emulators = {}
        for name in ("anthropic", "gemini"):
            emulators[name] = start_emulator_process(name, "--api-key", KEY)
            started.append(emulators[name])
        config = f"""
        [providers.anthropic]
        kind = "anthropic"
        base_url = "{emulators['anthropic'].base}"
        api_key = "env:PK"

        [providers.gemini]
        kind = "gemini"
        base_url = "{emulators['gemini'].base}"
        api_key = "env:PK"
        """
        gateway = start_gateway_process(tmp_path_factory.mktemp("reasoning") / "alloy.toml", config, {"PK": KEY})
        started.append(gateway)
        client = openai.OpenAI(base_url=gateway.base + "/v1", api_key="client-key", max_retries=0)
        yield {"gateway": gateway, "client": client, **emulators}
        assert_no_crash_logged(gateway)
    finally:
        for process in started:
            process.stop()


@pytest.fixture
def client(stack):
    stack["anthropic"].clear()
    stack["gemini"].clear()
    return stack["client"]


def sent(stack, name):
    """The bodies the upstream ``name`` received, oldest first."""
    return [entry["body"] for entry in stack[name].requests()]


def reasoning_of(chunks):
    return "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks if c.choices)


def content_of(chunks):
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def document(word, count=1500):
    return " ".join([word] * count)


# --- Anthropic ------------------------------------------------------------------------------------------------

def test_claude_reasoning_effort_becomes_a_thinking_budget_and_comes_back_as_reasoning_content(stack, client):
    raw = client.chat.completions.with_raw_response.create(
        model=CLAUDE, messages=[{"role": "user", "content": "what is six times seven"}], reasoning_effort="low",
        temperature=0.2,
    )  # fmt: skip
    completion = raw.parse()
    message = completion.choices[0].message
    assert message.content == "echo: what is six times seven"
    assert message.model_extra["reasoning_content"] == "Considering: what is six times seven"
    assert json.loads(raw.text)["choices"][0]["message"]["reasoning_content"] == message.model_extra["reasoning_content"]
    [body] = sent(stack, "anthropic")
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert body["max_tokens"] == 2048 + 4096 and "temperature" not in body  # Anthropic takes only 1 with thinking
    usage = completion.usage
    assert usage.completion_tokens == 6 + 6  # thinking counts as output, as OpenAI's reasoning does
    assert usage.prompt_tokens_details.cached_tokens == 0 and usage.prompt_tokens_details.cache_write_tokens == 0
    assert usage.completion_tokens_details is None  # Anthropic reports no thinking count of its own


def test_claude_4_6_reasoning_effort_becomes_adaptive_thinking_with_its_effort(stack, client):
    """Claude 4.6 and later think adaptively: ``output_config.effort`` says how hard, which the
    strict emulator accepts as Anthropic's API does (and refuses with an effort it does not know)."""
    completion = client.chat.completions.create(
        model="claude-sonnet-4-6", messages=[{"role": "user", "content": "what is seven times six"}], reasoning_effort="medium",
    )  # fmt: skip
    message = completion.choices[0].message
    assert message.content == "echo: what is seven times six"
    assert message.model_extra["reasoning_content"] == "Considering: what is seven times six"
    [body] = sent(stack, "anthropic")
    assert body["thinking"] == {"type": "adaptive"} and body["output_config"] == {"effort": "medium"}


def test_claude_thinking_streams_as_reasoning_content_deltas(stack, client):
    stream = client.chat.completions.create(
        model=CLAUDE, messages=[{"role": "user", "content": "one two three"}], reasoning_effort="high",
        max_completion_tokens=20000, stream=True, stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    assert reasoning_of(chunks) == "Considering: one two three"
    assert content_of(chunks) == "echo: one two three"
    first_content = next(i for i, c in enumerate(chunks) if c.choices and c.choices[0].delta.content)
    assert reasoning_of(chunks[first_content:]) == ""  # reasoning first, then the answer
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage.completion_tokens == 4 + 4
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens == 0
    [body] = sent(stack, "anthropic")
    # max_tokens is raised so that the answer keeps the default's 4096 tokens beside the budget.
    assert (body["thinking"], body["max_tokens"], body["stream"]) == ({"type": "enabled", "budget_tokens": 16384}, 20480, True)


def test_claude_cache_control_parts_reach_anthropic_and_cached_tokens_come_back(stack, client):
    messages = [
        {"role": "system", "content": [
            {"type": "text", "text": "You summarise."},
            {"type": "text", "text": document("alpha"), "cache_control": {"type": "ephemeral"}},
        ]},
        {"role": "user", "content": "summarise it"},
    ]  # fmt: skip
    first = client.chat.completions.create(model=CLAUDE, messages=messages).usage
    assert (first.prompt_tokens_details.cached_tokens, first.prompt_tokens_details.cache_write_tokens) == (0, 1502)
    second = client.chat.completions.create(model=CLAUDE, messages=messages).usage
    assert (second.prompt_tokens_details.cached_tokens, second.prompt_tokens_details.cache_write_tokens) == (1502, 0)
    assert first.prompt_tokens == second.prompt_tokens == 1502 + 2  # cache reads and writes count as prompt
    body = sent(stack, "anthropic")[-1]
    assert body["system"] == [
        {"type": "text", "text": "You summarise."},
        {"type": "text", "text": document("alpha"), "cache_control": {"type": "ephemeral"}},
    ]


def test_claude_cached_tokens_in_a_stream_usage_chunk(stack, client):
    ask = {"role": "user", "content": [{"type": "text", "text": document("beta"), "cache_control": {"type": "ephemeral", "ttl": "1h"}},
                                       {"type": "text", "text": "which word is this"}]}  # fmt: skip
    client.chat.completions.create(model=CLAUDE, messages=[ask])
    chunks = list(client.chat.completions.create(
        model=CLAUDE, messages=[ask], reasoning_effort="minimal", stream=True, stream_options={"include_usage": True}
    ))  # fmt: skip
    usage = chunks[-1].usage
    assert (usage.prompt_tokens_details.cached_tokens, usage.prompt_tokens_details.cache_write_tokens) == (1500, 0)
    assert reasoning_of(chunks).startswith("Considering: beta")
    first, second = sent(stack, "anthropic")
    assert first["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert second["thinking"] == {"type": "enabled", "budget_tokens": 1024}


def test_claude_tool_loop_with_reasoning_effort(stack, client):
    messages = [{"role": "user", "content": "call tool for the weather"}]
    first = client.chat.completions.create(model=CLAUDE, messages=messages, tools=[LOOKUP], reasoning_effort="medium")
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls" and message.model_extra["reasoning_content"]
    # The client sends the assistant message back as it got it (reasoning_content included).
    messages += [message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "sunny"}]  # fmt: skip
    second = client.chat.completions.create(model=CLAUDE, messages=messages, tools=[LOOKUP], reasoning_effort="medium")
    assert second.choices[0].message.content == "echo: sunny"
    asked, continued = sent(stack, "anthropic")
    assert asked["thinking"]["budget_tokens"] == 8192
    # The signed thinking block cannot come back through OpenAI messages, and Anthropic requires it
    # on a turn that continues a tool call: that turn is asked without thinking.
    assert "thinking" not in continued
    assert [block["type"] for block in continued["messages"][1]["content"]] == ["tool_use"]


def test_claude_forced_tool_choice_asks_without_thinking(stack, client):
    completion = client.chat.completions.create(
        model=CLAUDE, messages=[{"role": "user", "content": "weather"}], tools=[LOOKUP], tool_choice="required",
        reasoning_effort="high",
    )  # fmt: skip
    assert completion.choices[0].finish_reason == "tool_calls"
    assert "reasoning_content" not in completion.choices[0].message.model_extra
    [body] = sent(stack, "anthropic")
    assert "thinking" not in body and body["tool_choice"] == {"type": "any"}


# --- Gemini ---------------------------------------------------------------------------------------------------

def test_gemini_reasoning_effort_becomes_a_thinking_budget_with_thoughts_and_reasoning_tokens(stack, client):
    completion = client.chat.completions.create(
        model=GEMINI, messages=[{"role": "user", "content": "six times seven"}], reasoning_effort="medium", max_tokens=100
    )
    message = completion.choices[0].message
    assert (message.content, message.model_extra["reasoning_content"]) == ("echo: six times seven", "Considering: six times seven")
    [body] = sent(stack, "gemini")
    assert body["generationConfig"] == {"maxOutputTokens": 100, "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 8192}}
    usage = completion.usage
    assert usage.completion_tokens_details.reasoning_tokens == 4
    assert usage.completion_tokens == 4 + 4 and usage.prompt_tokens_details.cached_tokens == 0


def test_gemini_thoughts_stream_as_reasoning_content_deltas_with_usage(stack, client):
    chunks = list(client.chat.completions.create(
        model=GEMINI, messages=[{"role": "user", "content": "a b c d e f"}], reasoning_effort="low", stream=True,
        stream_options={"include_usage": True},
    ))  # fmt: skip
    assert reasoning_of(chunks) == "Considering: a b c d e f"
    assert content_of(chunks) == "echo: a b c d e f"
    first_content = next(i for i, c in enumerate(chunks) if c.choices and c.choices[0].delta.content)
    assert reasoning_of(chunks[:first_content]) == "Considering: a b c d e f"
    usage = chunks[-1].usage
    assert usage.completion_tokens_details.reasoning_tokens == 7 and usage.completion_tokens == 7 + 7
    [body] = sent(stack, "gemini")
    assert body["generationConfig"]["thinkingConfig"] == {"includeThoughts": True, "thinkingBudget": 2048}


def test_gemini_3_gets_a_thinking_level(stack, client):
    completion = client.chat.completions.create(
        model="gemini-3-pro-preview", messages=[{"role": "user", "content": "hi"}], reasoning_effort="minimal"
    )
    assert completion.choices[0].message.model_extra["reasoning_content"] == "Considering: hi"
    [body] = sent(stack, "gemini")
    assert body["generationConfig"]["thinkingConfig"] == {"includeThoughts": True, "thinkingLevel": "low"}


@pytest.mark.parametrize("stream", [False, True])
def test_a_gemini_3_tool_loop_sends_each_calls_signature_back(stack, client, stream):
    """Gemini 3 refuses a tool result whose call comes back without the thoughtSignature it was
    given; an OpenAI tool call has no field for it, so the gateway keeps it by the call's id."""
    model = "gemini-3-flash-preview"
    messages = [{"role": "user", "content": "call tool for the weather"}]
    if stream:
        chunks = list(client.chat.completions.create(model=model, messages=messages, tools=[LOOKUP], stream=True))
        [delta] = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls]
        call = {"id": delta.id, "type": "function", "function": {"name": delta.function.name, "arguments": delta.function.arguments}}
    else:
        first = client.chat.completions.create(model=model, messages=messages, tools=[LOOKUP])
        call = first.choices[0].message.tool_calls[0].model_dump()
    messages += [{"role": "assistant", "content": None, "tool_calls": [call]},
                 {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]  # fmt: skip
    second = client.chat.completions.create(model=model, messages=messages, tools=[LOOKUP])
    assert second.choices[0].message.content == 'result: {"content":"sunny"}'
    asked, continued = sent(stack, "gemini")
    signature = continued["contents"][1]["parts"][0]["thoughtSignature"]
    assert signature and signature != "skip_thought_signature_validator"  # the emulator's own


def test_a_gemini_3_tool_call_from_elsewhere_gets_googles_placeholder_signature(stack, client):
    """A history this gateway did not answer (another instance, another model) has no signature to
    give back: Google documents a placeholder for that, which Gemini 3 accepts."""
    call = {"id": "call_from_another_gateway", "type": "function", "function": {"name": "lookup", "arguments": '{"query": "x"}'}}
    messages = [
        {"role": "user", "content": "call tool for the weather"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "rainy"},
    ]
    completion = client.chat.completions.create(model="gemini-3-pro-preview", messages=messages, tools=[LOOKUP])
    assert completion.choices[0].message.content == 'result: {"content":"rainy"}'
    [body] = sent(stack, "gemini")
    assert body["contents"][1]["parts"][0]["thoughtSignature"] == "skip_thought_signature_validator"


def test_gemini_none_turns_thinking_off_where_it_can(stack, client):
    completion = client.chat.completions.create(
        model="gemini-2.5-flash-lite", messages=[{"role": "user", "content": "quick"}], reasoning_effort="none"
    )
    assert "reasoning_content" not in completion.choices[0].message.model_extra
    assert completion.usage.completion_tokens_details.reasoning_tokens == 0
    [body] = sent(stack, "gemini")
    assert body["generationConfig"] == {"thinkingConfig": {"thinkingBudget": 0}}


def test_gemini_implicit_cache_hits_come_back_as_cached_tokens_and_cache_control_is_ignored(stack, client):
    messages = [
        {"role": "system", "content": [{"type": "text", "text": document("gamma"), "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "first question"},
    ]
    first = client.chat.completions.create(model=GEMINI, messages=messages)
    messages += [{"role": "assistant", "content": first.choices[0].message.content}, {"role": "user", "content": "second"}]
    chunks = list(client.chat.completions.create(
        model=GEMINI, messages=messages, stream=True, stream_options={"include_usage": True}
    ))  # fmt: skip
    usage = chunks[-1].usage
    assert usage.prompt_tokens_details.cached_tokens == 1502  # system + the first question, seen before
    assert usage.prompt_tokens >= 1502
    assert all("cache_control" not in json.dumps(body) for body in sent(stack, "gemini"))


# --- both -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model, upstream", [("claude-3-5-haiku-20241022", "anthropic"), ("gemini-2.0-flash", "gemini")])
def test_models_that_do_not_think_answer_without_thinking(stack, client, model, upstream):
    completion = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], reasoning_effort="high")
    assert completion.choices[0].message.content == "echo: hi"
    assert "reasoning_content" not in completion.choices[0].message.model_extra
    [body] = sent(stack, upstream)
    assert "thinking" not in body and "thinkingConfig" not in body.get("generationConfig", {})


@pytest.mark.parametrize("model", [CLAUDE, GEMINI])
def test_an_unknown_reasoning_effort_is_a_400_naming_it(stack, client, model):
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], reasoning_effort="extreme")
    assert raised.value.status_code == 400 and raised.value.body["param"] == "reasoning_effort"
    assert sent(stack, "anthropic" if model == CLAUDE else "gemini") == []

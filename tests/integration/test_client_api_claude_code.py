"""A Claude-Code-shaped session through the running gateway, replayed with the ``anthropic`` SDK as
Claude Code sends it: ``/v1/messages?beta=true`` (the SDK's beta client, the query as Claude Code adds it), the key in ``x-api-key``
alone, ``anthropic-beta`` and Claude Code's other headers, a long cached system prompt in blocks,
Claude Code's tools (JSON Schema draft-07 with ``$schema`` and ``additionalProperties``), thinking,
``metadata.user_id``, streaming; then the tool result sent back with a system reminder, and
``count_tokens`` on the whole conversation. Against a native Anthropic provider (whose
``forward_client_headers`` lets ``anthropic-beta`` through), the mock OpenAI upstream and the Gemini
emulator: every answer parses in the SDK, and each upstream received the session in its own shape.
"""

import anthropic
import orjson
import pytest
from anthropic import _base_client

from test_client_api_messages import MASTER_KEY, PROVIDER_KEY, start_stack

http = getattr(_base_client, "httpx2", None) or _base_client.httpx
BETA_QUERY = {"beta": "true"}  # Claude Code's own client adds it to every Messages path
BETAS = ["claude-code-20250219", "interleaved-thinking-2025-05-14", "fine-grained-tool-streaming-2025-05-14"]
# route -> (main model, small fast model), as ANTHROPIC_DEFAULT_SONNET_MODEL / _HAIKU_MODEL would name them
MODELS = {
    "anthropic": ("claude-sonnet-4-5-20250929", "claude-3-5-haiku-20241022"),
    "openai": ("sonnet-on-gpt", "gpt-4o-mini"),
    "gemini": ("sonnet-on-gemini", "gemini-2.0-flash"),
}
CONFIG = """
[[models]]
name = "sonnet-on-gpt"
provider = "openai"
model = "gpt-4o-mini"

[[models]]
name = "sonnet-on-gemini"
provider = "gemini"
model = "gemini-2.0-flash"

[providers.anthropic-closed]
kind = "anthropic"
base_url = "{anthropic_base}"
api_key = "env:PK"
"""
SCHEMA = "http://json-schema.org/draft-07/schema#"


def tool(name, description, properties, required):
    schema = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
    return {"name": name, "description": description, "input_schema": {**schema, "$schema": SCHEMA}}


TODO = {
    "type": "object",
    "properties": {
        "content": {"type": "string", "minLength": 1},
        "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]},
        "activeForm": {"type": "string"},
    },
    "required": ["content", "status", "activeForm"],
    "additionalProperties": False,
}
TOOLS = [
    tool(
        "Bash",
        "Executes a given bash command in a persistent shell session with optional timeout.",
        {
            "command": {"type": "string", "description": "The command to execute"},
            "timeout": {"type": "number", "description": "Optional timeout in milliseconds (max 600000)"},
            "description": {"type": "string", "description": "Clear, concise description of what this command does"},
            "run_in_background": {"type": "boolean"},
        },
        ["command"],
    ),
    tool(
        "Read",
        "Reads a file from the local filesystem.",
        {"file_path": {"type": "string"}, "offset": {"type": "number"}, "limit": {"type": "number"}},
        ["file_path"],
    ),
    tool(
        "Edit",
        "Performs exact string replacements in files.",
        {
            "file_path": {"type": "string"},
            "old_string": {"type": "string"},
            "new_string": {"type": "string"},
            "replace_all": {"type": "boolean", "default": False},
        },
        ["file_path", "old_string", "new_string"],
    ),
    tool(
        "Grep",
        "A powerful search tool built on ripgrep.",
        {
            "pattern": {"type": "string"},
            "path": {"type": "string"},
            "output_mode": {"type": "string", "enum": ["content", "files_with_matches", "count"]},
            "-i": {"type": "boolean"},
        },
        ["pattern"],
    ),
    tool(
        "TodoWrite", "Create and manage a structured task list.", {"todos": {"type": "array", "items": TODO}}, ["todos"]
    ),
]
INSTRUCTIONS = "\n".join(
    f"- Rule {i}: when working on the repository, prefer the dedicated tools over shell commands, keep "
    f"answers short, and never invent file paths (see section {i % 7})."
    for i in range(120)
)  # about 20 KB, like Claude Code's own
SYSTEM = [
    {
        "type": "text",
        "text": "You are Claude Code, Anthropic's official CLI for Claude.",
        "cache_control": {"type": "ephemeral"},
    },
    {"type": "text", "text": INSTRUCTIONS, "cache_control": {"type": "ephemeral"}},
]
REMINDER = "<system-reminder>\nThe TodoWrite tool hasn't been used recently.\n</system-reminder>"
METADATA = {"user_id": "user_3f2a_account__session_7c1e5b2a-0d4e-4a57-9a3b-1f0c2d3e4f5a"}
HEADERS = {
    "x-app": "cli",
    "user-agent": "claude-cli/2.0.14 (external, cli)",
    "anthropic-dangerous-direct-browser-access": "true",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = start_stack(
        tmp_path_factory, config_extra=CONFIG, anthropic_extra='forward_client_headers = ["anthropic-beta"]'
    )
    yield stack
    stack["stop"]()


@pytest.fixture
def session(stack, monkeypatch):
    """(client, the requests it sent): the SDK with the key in x-api-key only, as Claude Code sends it
    with ANTHROPIC_API_KEY set."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name in ("anthropic", "openai", "gemini"):
        stack[name].clear()
    sent = []
    client = anthropic.Anthropic(
        base_url=stack["gateway"].base,
        api_key=None,
        max_retries=0,
        default_headers={"x-api-key": MASTER_KEY, **HEADERS},
        http_client=http.Client(event_hooks={"request": [sent.append]}),
    )
    return client, sent


@pytest.fixture(params=list(MODELS))
def route(request):
    return request.param


def stream_turn(client, model, messages):
    """One streamed turn as Claude Code asks for it: the SDK's events and its final message."""
    with client.beta.messages.stream(
        model=model,
        max_tokens=32000,
        system=SYSTEM,
        messages=messages,
        tools=TOOLS,
        metadata=METADATA,
        thinking={"type": "enabled", "budget_tokens": 4000},
        betas=BETAS,
        extra_query=BETA_QUERY,
    ) as stream:
        events = [event.type for event in stream]
        return events, stream.get_final_message()


def test_a_claude_code_session(stack, session, route):
    client, sent = session
    main, small = MODELS[route]

    # 1. The small fast model, not streamed (Claude Code's quick classification requests).
    quick = client.beta.messages.create(
        model=small,
        max_tokens=512,
        system=[{"type": "text", "text": "Analyze if this message indicates a new conversation topic."}],
        messages=[{"role": "user", "content": "fix the failing test"}],
        betas=BETAS,
        extra_body={"temperature": 0},
        extra_query=BETA_QUERY,
    )
    assert quick.content[0].text == "echo: fix the failing test" and quick.stop_reason == "end_turn"

    # 2. The main turn, streamed: the model asks for a tool.
    ask = {
        "role": "user",
        "content": [{"type": "text", "text": REMINDER}, {"type": "text", "text": "call tool: run the tests"}],
    }
    events, first = stream_turn(client, main, [ask])
    assert events[0] == "message_start" and events[-1] == "message_stop" and "input_json" in events
    assert first.stop_reason == "tool_use"
    [call] = [block for block in first.content if block.type == "tool_use"]
    assert call.name == "Bash" and "run the tests" in call.input["query"]

    # 3. The tool's result goes back (with a reminder, the cache breakpoint on the last block).
    result = {"type": "tool_result", "tool_use_id": call.id, "content": "3 passed, 1 failed", "is_error": False}
    answer = [result, {"type": "text", "text": "what failed?", "cache_control": {"type": "ephemeral"}}]
    history = [ask, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]}]
    history.append({"role": "user", "content": answer})
    events, second = stream_turn(client, main, history)
    assert second.stop_reason == "end_turn" and second.content[-1].text == "echo: what failed?"
    assert second.usage.input_tokens > 0 and second.usage.output_tokens > 0

    # 4. Claude Code counts the conversation's tokens.
    raw = client.beta.messages.with_raw_response.count_tokens(
        model=main, system=SYSTEM, messages=history, tools=TOOLS, betas=BETAS, extra_query=BETA_QUERY
    )
    assert raw.parse().input_tokens > 0
    assert raw.headers.get("x-alloy-token-count") == (None if route == "anthropic" else "estimate")

    # What the client sent: the beta path, the key in x-api-key alone, the beta header.
    assert [request.url.path for request in sent] == ["/v1/messages"] * 3 + ["/v1/messages/count_tokens"]
    for request in sent:
        assert request.url.query == b"beta=true" and "authorization" not in request.headers
        assert request.headers["x-api-key"] == MASTER_KEY
        assert request.headers["anthropic-beta"].startswith(",".join(BETAS))  # count_tokens adds its own

    received = stack[route].requests()
    if route == "anthropic":
        # Native: everything as the client sent it, the beta header included (forward_client_headers).
        assert [r["path"] for r in received] == ["/v1/messages?beta=true"] * 3 + ["/v1/messages/count_tokens?beta=true"]
        for request, client_request in zip(received, sent):
            assert request["body"] == orjson.loads(client_request.content)
            assert request["headers"]["anthropic-beta"] == client_request.headers["anthropic-beta"]
            assert request["headers"]["x-api-key"] == PROVIDER_KEY and request["headers"]["x-app"] == "cli"
            assert "anthropic-dangerous-direct-browser-access" not in request["headers"]
    elif route == "openai":
        assert len(received) == 3  # count_tokens is estimated by the gateway
        quick_body, first_body, second_body = (r["body"] for r in received)
        assert quick_body["model"] == "gpt-4o-mini" and quick_body["temperature"] == 0
        assert first_body["messages"][0] == {"role": "system", "content": SYSTEM[0]["text"] + "\n\n" + INSTRUCTIONS}
        assert [t["function"]["name"] for t in first_body["tools"]] == [t["name"] for t in TOOLS]
        assert first_body["tools"][0]["function"]["parameters"] == TOOLS[0]["input_schema"]
        assert first_body["reasoning_effort"] == "low" and first_body["user"] == METADATA["user_id"]
        assert first_body["stream_options"] == {"include_usage": True}
        assert {"role": "tool", "tool_call_id": call.id, "content": "3 passed, 1 failed"} in second_body["messages"]
        assert all(not name.startswith("anthropic-") for r in received for name in r["headers"])
    else:
        assert len(received) == 3
        first_body, second_body = received[1]["body"], received[2]["body"]
        assert first_body["systemInstruction"]["parts"][0]["text"].startswith(SYSTEM[0]["text"])
        declared = first_body["tools"][0]["functionDeclarations"]
        assert [d["name"] for d in declared] == [t["name"] for t in TOOLS]
        assert "$schema" not in orjson.dumps(declared).decode()  # cleaned for Gemini
        responses = [
            p["functionResponse"] for c in second_body["contents"] for p in c["parts"] if "functionResponse" in p
        ]
        assert responses[0]["name"] == "Bash"


def test_anthropic_beta_stays_behind_unless_the_provider_lets_it_through(stack, session):
    client, _ = session
    message = client.beta.messages.create(
        model="anthropic-closed/claude-sonnet-4-5-20250929",
        max_tokens=20,
        messages=[{"role": "user", "content": "hi"}],
        betas=BETAS,
        extra_query=BETA_QUERY,
    )
    assert message.content[0].text == "echo: hi"
    [request] = stack["anthropic"].requests()
    assert "anthropic-beta" not in request["headers"] and request["headers"]["anthropic-version"] == "2023-06-01"
    assert request["path"] == "/v1/messages?beta=true"


# Claude Code names an MCP server's tools mcp__<server>__<tool>: Anthropic takes up to 128 characters,
# OpenAI (and the mock, as strict) at most 64. Its user_id runs to ~150 characters, OpenAI's user to 64.
MCP_TOOL = tool(
    "mcp__github-enterprise-production__search_issues_and_pull_requests_across_repositories",
    "Searches issues and pull requests.",
    {"query": {"type": "string"}},
    ["query"],
)
LONG_USER_ID = "user_" + "3f2a9c" * 10 + "_account_4b1d2e3f-aaaa-bbbb-cccc-0123456789ab_session_7c1e5b2a-0d4e-4a57-9a3b-1f0c2d3e4f5a"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_tool_names_over_64_characters_go_to_openai_shortened_and_come_back_whole(stack, session, stream):
    client, _ = session
    tools = [MCP_TOOL, *TOOLS]  # the mock calls the first tool
    ask = {"role": "user", "content": "call tool: open issues about the cache"}
    request = dict(model="sonnet-on-gpt", max_tokens=1024, messages=[ask], tools=tools, metadata={"user_id": LONG_USER_ID})
    if stream:
        with client.messages.stream(**request) as events:
            first = events.get_final_message()
    else:
        first = client.messages.create(**request)
    [call] = [block for block in first.content if block.type == "tool_use"]
    assert call.name == MCP_TOOL["name"] and first.stop_reason == "tool_use"  # the client's own name

    result = {"type": "tool_result", "tool_use_id": call.id, "content": "2 issues"}
    history = [ask, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
               {"role": "user", "content": [result, {"type": "text", "text": "thanks"}]}]  # fmt: skip
    second = client.messages.create(**{**request, "messages": history, "tool_choice": {"type": "tool", "name": MCP_TOOL["name"]}})
    assert second.content[-1].type == "tool_use" and second.content[-1].name == MCP_TOOL["name"]

    first_body, second_body = (r["body"] for r in stack["openai"].requests())
    short = first_body["tools"][0]["function"]["name"]
    assert len(short) == 64 and short.startswith(MCP_TOOL["name"][:55])
    assert [t["function"]["name"] for t in first_body["tools"][1:]] == [t["name"] for t in TOOLS]  # short ones as they are
    assert second_body["tools"][0]["function"]["name"] == short
    assert second_body["tool_choice"] == {"type": "function", "function": {"name": short}}
    [sent_call] = [c for m in second_body["messages"] for c in m.get("tool_calls") or ()]
    assert sent_call["function"]["name"] == short
    assert len(first_body["user"]) == 64 and first_body["user"] == second_body["user"] != LONG_USER_ID

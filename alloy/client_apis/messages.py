"""Anthropic Messages API clients (``POST /v1/messages``) in front of the OpenAI Chat Completions API.

A client that speaks Anthropic Messages (Claude Code, the ``anthropic`` SDKs) sends its request here;
``chat_request_from_messages`` turns it into an OpenAI chat completions request that takes the
gateway's ordinary path to any provider. The answer comes back through
``messages_response_from_chat`` (a complete completion), ``MessagesStreamTranslator`` (a stream) or
``anthropic_error_body`` (an error), all in ``messages_response`` / ``messages_stream``.
``estimate_input_tokens`` answers ``/v1/messages/count_tokens`` without a tokenizer (the rules are in
``messages_tokens``). This module holds the request direction and re-exports the rest.

Validation is Anthropic's: ``model``, ``max_tokens`` (an integer >= 1) and a non-empty ``messages``
are required, roles are user / assistant, sampling values are in Anthropic's ranges, so a client
gets the 400 Anthropic would give, as ``alloy.errors.InvalidRequest`` whose message starts with the
field's path in Anthropic's dotted form (``messages.2.content.0.source.type: ...``) and whose
``param`` is that path.

Request mapping (Anthropic -> OpenAI)
    system              string or text blocks -> one leading ``system`` message (blocks joined with a
                        blank line: many OpenAI-compatible servers take only string content)
    user turn           ``tool_result`` blocks -> one ``tool`` message each, first and in order (OpenAI
                        wants them right after the assistant's tool_calls); the other blocks -> one
                        ``user`` message after them: a string when every block is text (joined with
                        a blank line), else content parts: text -> text; image base64 -> data: URL
                        image_url, image url -> image_url; document base64 PDF -> a ``file`` part,
                        document text source -> text
    tool_result         content (string or text blocks) -> the tool message text; ``is_error: true``
                        prefixes it with "Error: " (OpenAI has no flag for it). Images and PDFs a
                        tool returned cannot sit in a tool message: they move to the user message
                        that follows, and the tool text says so
    assistant turn      text blocks -> ``content`` (joined with a blank line; null with only tool
                        calls); ``tool_use`` -> ``tool_calls`` (``arguments`` = ``input`` as JSON);
                        ``thinking`` / ``redacted_thinking`` dropped (an OpenAI request has no field
                        for earlier reasoning, and the signature only means something to Anthropic).
                        A last assistant turn (Anthropic's "prefill") is sent as a plain assistant
                        message: most OpenAI models answer after it rather than continue it
    tools               custom tools -> function tools ``{name, description, parameters:
                        input_schema}`` (``strict`` kept); Anthropic server tools (``web_search_*``,
                        ``bash_*``, ``text_editor_*``, ``computer_*``, code execution...) -> 400:
                        nothing behind the gateway runs them or knows their schema. A name over
                        OpenAI's 64 characters is shortened going up and restored coming back
                        (``alloy.client_apis.tool_names``), in tools, tool_choice and tool_use turns
    tool_choice         auto / any / tool{name} / none -> "auto" / "required" / named function /
                        "none"; ``disable_parallel_tool_use: true`` -> ``parallel_tool_calls: false``.
                        Dropped without tools (OpenAI refuses tool_choice without tools)
    max_tokens          -> ``max_completion_tokens`` (OpenAI's current name; its reasoning models
                        refuse ``max_tokens``, and like Anthropic's it counts reasoning tokens)
    stop_sequences      -> ``stop`` (OpenAI itself takes at most 4 and answers 400 above that)
    temperature, top_p  passed as they are (Anthropic's range 0..1 is inside OpenAI's)
    top_k               validated, then DROPPED: OpenAI has no top_k and refuses unknown fields
    stream              -> ``stream`` plus ``stream_options.include_usage: true``, so the final usage
                        chunk exists for ``message_delta.usage``
    metadata.user_id    -> ``user``; an id over 64 characters (Claude Code's) as its SHA-256 in hex,
                        since OpenAI refuses a longer ``user``
    thinking            ``{type: enabled, budget_tokens}`` -> ``reasoning_effort`` by budget:
                        < 4096 low, < 16384 medium, else high (Claude Code's "think" 4000,
                        "think hard" 10000 and "ultrathink" 31999 land on the three levels);
                        disabled, adaptive and other types send no effort (the model's default)
    output_config       ``effort`` low / medium / high -> the same ``reasoning_effort``, xhigh / max
                        -> high; it wins over a thinking budget. ``format`` (or the beta top-level
                        ``output_format``) ``{type: json_schema, schema}`` -> ``response_format``
                        json_schema named "output", not strict: OpenAI's strict mode refuses schemas
                        Anthropic accepts, so the schema guides but is not enforced
Rejected with 400: server tools (above), ``mcp_servers`` (reached by Anthropic itself), image
sources other than base64 / url (Files API ``file`` ids), documents other than base64 PDF or plain
text, and any content block type this table does not name.
Ignored (hints with no OpenAI counterpart; the answer keeps its shape): ``cache_control`` anywhere
(OpenAI caches prefixes by itself), ``citations``, ``service_tier``, ``context_management``,
``container``, ``inference_geo``, ``speed``, a document's ``context`` and a text document's
``title`` (a PDF's becomes its file name), and any top-level field this table does not name
(clients send beta fields; refusing them would break a newer client outright).
Note: a reasoning_effort reaches the provider as it is; an OpenAI model that does not reason refuses
it with a 400, which ``anthropic_error_body`` relays.
"""

import hashlib

from alloy.client_apis.messages_content import chat_messages, invalid, string_field, system_messages
from alloy.client_apis.messages_response import anthropic_error_body, anthropic_error_type, messages_response_from_chat
from alloy.client_apis.messages_stream import MessagesStreamTranslator
from alloy.client_apis.messages_tokens import estimate_chat_tokens
from alloy.client_apis.tool_names import MAX_NAME, short_name
from alloy.errors import InvalidRequest

__all__ = [
    "MessagesStreamTranslator",
    "anthropic_error_body",
    "anthropic_error_type",
    "chat_request_from_messages",
    "estimate_input_tokens",
    "messages_response_from_chat",
]

TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}  # "tool" names a function
# thinking.budget_tokens below each bound -> that effort; at or above the last -> "high"
BUDGET_EFFORTS = ((4096, "low"), (16384, "medium"))
EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
MIN_THINKING_BUDGET = 1024
# Top-level fields the answer could not honour: field -> why.
REJECTED = {"mcp_servers": "MCP servers are reached by Anthropic itself; this model cannot use them"}


# --- the request ------------------------------------------------------------------------------------

def chat_request_from_messages(body):
    """An Anthropic Messages request body -> the OpenAI chat completions request (a dict).

    Raises:
        alloy.errors.InvalidRequest: a body Anthropic would refuse, or one the OpenAI request cannot
            express (see the module docstring); ``param`` is the field's dotted path.
    """
    check_required(body)
    for name, why in REJECTED.items():
        if body.get(name):
            raise invalid(name, why)
    chat = {
        "model": body["model"],
        "messages": system_messages(body.get("system")) + chat_messages(body["messages"]),
        "max_completion_tokens": body["max_tokens"],
    }
    chat.update(sampling_fields(body))
    chat.update(tool_fields(body.get("tools"), body.get("tool_choice")))
    effort = reasoning_effort(body.get("thinking"), body.get("output_config"))
    if effort:
        chat["reasoning_effort"] = effort
    output_format = output_format_of(body)
    if output_format is not None:
        chat["response_format"] = response_format(output_format)
    user = user_of(body.get("metadata"))
    if user is not None:
        chat["user"] = user
    if stream_of(body):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def estimate_input_tokens(body):
    """An Anthropic ``count_tokens`` body (a Messages body; ``max_tokens`` not needed) -> the estimated
    input tokens (an int >= 1), counted on its OpenAI translation (see ``messages_tokens``).

    Raises:
        alloy.errors.InvalidRequest: as ``chat_request_from_messages`` would for the same body.
    """
    check_model_and_messages(body)
    return estimate_chat_tokens(chat_request_from_messages({**body, "max_tokens": 1, "stream": False}))


def check_required(body):
    """What every Messages request needs (``count_tokens`` needs the same but ``max_tokens``)."""
    check_model_and_messages(body)
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise invalid("max_tokens", "Field required")
    if not is_int(max_tokens):
        raise invalid("max_tokens", "Input should be a valid integer")
    if max_tokens < 1:
        raise invalid("max_tokens", "Input should be greater than or equal to 1")


def check_model_and_messages(body):
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    for name in ("model", "messages"):
        if body.get(name) is None:
            raise invalid(name, "Field required")
    if not isinstance(body["model"], str) or not body["model"]:
        raise invalid("model", "Input should be a non-empty string")
    if not isinstance(body["messages"], list):
        raise invalid("messages", "Input should be a valid list")
    if not body["messages"]:
        raise invalid("messages", "at least one message is required")


def is_int(value):
    return type(value) is int  # bool is an int to Python, not to JSON Schema


def is_number(value):
    return type(value) in (int, float)


def sampling_fields(body):
    fields = {}
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is None:
            continue
        if not is_number(value) or not 0 <= value <= 1:
            raise invalid(name, "Input should be a number between 0 and 1")
        fields[name] = value
    top_k = body.get("top_k")
    if top_k is not None and (not is_int(top_k) or top_k < 0):
        raise invalid("top_k", "Input should be a non-negative integer")
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(stop, str) for stop in stops):
            raise invalid("stop_sequences", "Input should be a list of strings")
        if stops:
            fields["stop"] = stops
    return fields


def stream_of(body):
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise invalid("stream", "Input should be a valid boolean")
    return bool(stream)


def user_of(metadata):
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise invalid("metadata", "Input should be a valid dictionary")
    user_id = metadata.get("user_id")
    if user_id is not None and not isinstance(user_id, str):
        raise invalid("metadata.user_id", "Input should be a valid string")
    if user_id is not None and len(user_id) > MAX_NAME:
        # OpenAI refuses a user over 64 characters; Claude Code's ids run to ~150. The same id
        # always gives the same digest, which is all the field is for (one user's requests).
        return hashlib.sha256(user_id.encode()).hexdigest()
    return user_id


# --- tools, reasoning, output format ---------------------------------------------------------------

def tool_fields(tools, choice):
    if tools is None:
        tools = []
    if not isinstance(tools, list):
        raise invalid("tools", "Input should be a valid list")
    fields = {}
    if tools:
        fields["tools"] = [function_tool(tool, f"tools.{i}") for i, tool in enumerate(tools)]
    if choice is None:
        return fields
    if not isinstance(choice, dict) or choice.get("type") not in (*TOOL_CHOICES, "tool"):
        raise invalid("tool_choice", "Input should be an object with type 'auto', 'any', 'tool' or 'none'")
    if choice["type"] == "tool":
        mapped = {"type": "function", "function": {"name": short_name(string_field(choice, "name", "tool_choice"))}}
    else:
        mapped = TOOL_CHOICES[choice["type"]]
    if tools:
        fields["tool_choice"] = mapped
        if choice.get("disable_parallel_tool_use") is True and mapped != "none":
            fields["parallel_tool_calls"] = False
    return fields


def function_tool(tool, path):
    if not isinstance(tool, dict):
        raise invalid(path, "Input should be a valid dictionary")
    kind = tool.get("type")
    if kind not in (None, "custom"):
        raise invalid(f"{path}.type", f"tool type {kind!r} is an Anthropic server tool; this model cannot run it")
    schema = tool.get("input_schema")
    if not isinstance(schema, dict):
        raise invalid(f"{path}.input_schema", "Field required")
    function = {"name": short_name(string_field(tool, "name", path))}  # OpenAI's 64 characters at most
    description = tool.get("description")
    if description is not None:
        if not isinstance(description, str):
            raise invalid(f"{path}.description", "Input should be a valid string")
        function["description"] = description
    function["parameters"] = schema
    if tool.get("strict") is True:
        function["strict"] = True
    return {"type": "function", "function": function}


def reasoning_effort(thinking, output_config):
    """The ``reasoning_effort`` for Anthropic's thinking settings, or None (see the docstring)."""
    effort = budget_effort(thinking)
    if output_config is None:
        return effort
    if not isinstance(output_config, dict):
        raise invalid("output_config", "Input should be a valid dictionary")
    named = output_config.get("effort")
    if named is None:
        return effort
    if not isinstance(named, str) or named not in EFFORTS:
        raise invalid("output_config.effort", "Input should be " + ", ".join(map(repr, EFFORTS)))
    return EFFORTS[named]


def budget_effort(thinking):
    if thinking is None:
        return None
    if not isinstance(thinking, dict) or not isinstance(thinking.get("type"), str):
        raise invalid("thinking", "Input should be an object with a type")
    if thinking["type"] != "enabled":
        return None  # disabled, adaptive, or a newer type: no hint, the model's default applies
    budget, path = thinking.get("budget_tokens"), "thinking.enabled.budget_tokens"
    if not is_int(budget):
        raise invalid(path, "Input should be a valid integer")
    if budget < MIN_THINKING_BUDGET:
        raise invalid(path, f"Input should be greater than or equal to {MIN_THINKING_BUDGET}")
    for bound, effort in BUDGET_EFFORTS:
        if budget < bound:
            return effort
    return "high"


def output_format_of(body):
    """``output_config.format`` (GA) or the beta top-level ``output_format``, with its path."""
    config = body.get("output_config")
    if isinstance(config, dict) and config.get("format") is not None:
        return config["format"], "output_config.format"
    if body.get("output_format") is not None:
        return body["output_format"], "output_format"
    return None


def response_format(output_format):
    spec, path = output_format
    if not isinstance(spec, dict) or spec.get("type") != "json_schema":
        raise invalid(f"{path}.type", "Input should be 'json_schema'")
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise invalid(f"{path}.schema", "Field required")
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}

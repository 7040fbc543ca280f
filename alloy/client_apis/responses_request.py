"""An OpenAI Responses request as an OpenAI Chat Completions request, for a model whose providers do
not answer the Responses API themselves (Anthropic, Gemini, OpenAI-compatible servers configured
with ``responses_api = false``).

Pure functions, no I/O. A body the chat request cannot express is refused here with the 400 OpenAI
would give (``alloy.errors.InvalidRequest`` whose ``param`` names the field, ``input[2].content[0]``),
before anything goes upstream.

Request mapping (Responses -> Chat Completions)
    instructions        -> a leading ``system`` message
    input (a string)    -> one ``user`` message
    input (items)       in order:
      message           ``{role, content}`` (``type: "message"`` optional); role user / system /
                        developer / assistant kept. Content is a string or parts: ``input_text`` and
                        an assistant's ``output_text`` -> text; ``refusal`` -> text; ``input_image``
                        with an ``image_url`` (a URL or a data: URL) -> ``image_url`` (``detail``
                        kept); ``input_file`` with ``file_data`` -> a ``file`` part. Text-only
                        content becomes one string (every OpenAI-compatible server takes that)
      function_call     -> a ``tool_calls`` entry (id = ``call_id``) on one assistant message;
                        consecutive calls, and the assistant text just before them, share it
      function_call_output
                        -> a ``tool`` message (``tool_call_id`` = ``call_id``; output parts as text);
                        images and files it returned move to a user message after the tool
                        messages of that turn, and the tool text says so
      reasoning         dropped (earlier reasoning has no place in a chat request; encrypted
                        content only means something to OpenAI)
    tools               ``{type: function, name, description, parameters, strict}`` (flat) -> the
                        nested chat function tool
    tool_choice         "auto" / "none" / "required" kept; ``{type: function, name}`` -> the named
                        chat function; ``{type: allowed_tools, mode, tools}`` -> only those tools,
                        and ``mode`` as the choice. Dropped without tools (chat refuses tool_choice
                        alone)
    parallel_tool_calls kept (with tools)
    max_output_tokens   -> ``max_completion_tokens``
    temperature, top_p  kept
    reasoning.effort    -> ``reasoning_effort``; "xhigh" -> "high"
    text.format         json_schema ``{name, schema, strict, description}`` -> ``response_format``
                        json_schema; json_object kept; text sends nothing
    stream              -> ``stream`` plus ``stream_options.include_usage`` (usage for
                        ``response.completed``)
    user, safety_identifier -> ``user`` (safety_identifier wins)
Refused (400), because Alloy keeps no state and runs no tools: ``previous_response_id``,
``conversation``, ``prompt`` (stored prompts), ``background: true``, ``item_reference`` items,
hosted tools (web_search, file_search, code_interpreter, mcp, computer use, image generation...)
and their items, a ``file_id`` image or file, and any item or part type this table does not name.
Ignored: ``store`` (nothing is stored: a translated response cannot be fetched later),
``metadata``, ``include``, ``truncation``, ``service_tier``, ``prompt_cache_key``,
``text.verbosity``, ``reasoning.summary``, ``top_logprobs``, ``max_tool_calls`` and any other
top-level field (newer SDKs send new fields; refusing them would break those clients outright).
"""

import orjson

from alloy.client_apis.messages_content import collapse, with_attachment_note
from alloy.errors import InvalidRequest

EFFORTS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high", "xhigh": "high"}
ROLES = ("user", "system", "developer", "assistant")
TOOL_CHOICES = ("auto", "none", "required")
# Top-level fields that need state Alloy does not keep: field -> why.
STATEFUL = {
    "previous_response_id": "this model's provider keeps no Responses state and Alloy stores none: "
    "send the whole conversation in input instead of previous_response_id",
    "conversation": "this model's provider keeps no conversations and Alloy stores none: "
    "send the whole conversation in input",
    "prompt": "stored prompts live with OpenAI; this model's provider cannot read them",
}


def invalid(param, message):
    return InvalidRequest(f"Invalid '{param}': {message}", param=param)


def chat_request_from_responses(body):
    """A Responses request body (decoded) -> the chat completions request (a dict).

    Raises:
        alloy.errors.InvalidRequest: a body OpenAI would refuse, or one the chat request cannot
            express (see the module docstring).
    """
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model")
    for name, why in STATEFUL.items():
        if body.get(name) is not None:
            raise InvalidRequest(f"{name} is not supported for model '{model}': {why}", param=name)
    if body.get("background") is True:
        raise invalid("background", "background responses need stored state; this model's provider has none")
    chat = {"model": model, "messages": instruction_messages(body.get("instructions")) + input_messages(body)}
    tools = function_tools(body.get("tools"))
    if tools:
        choice = body.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
            tools, choice = allowed_tools(tools, choice)
        chat["tools"] = tools
        choice = tool_choice(choice)
        if choice is not None:
            chat["tool_choice"] = choice
        if isinstance(body.get("parallel_tool_calls"), bool):
            chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    max_tokens = body.get("max_output_tokens")
    if max_tokens is not None:
        if type(max_tokens) is not int or max_tokens < 1:
            raise invalid("max_output_tokens", "expected an integer greater than or equal to 1")
        chat["max_completion_tokens"] = max_tokens
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None:
            if type(value) not in (int, float):
                raise invalid(name, "expected a number")
            chat[name] = value
    effort = reasoning_effort(body.get("reasoning"))
    if effort is not None:
        chat["reasoning_effort"] = effort
    response_format = text_format(body.get("text"))
    if response_format is not None:
        chat["response_format"] = response_format
    user = body.get("safety_identifier") or body.get("user")
    if isinstance(user, str) and user:
        chat["user"] = user
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise invalid("stream", "expected a boolean")
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


# --- input ------------------------------------------------------------------------------------------

def instruction_messages(instructions):
    if instructions is None or instructions == "":
        return []
    if not isinstance(instructions, str):
        raise invalid("instructions", "expected a string")
    return [{"role": "system", "content": instructions}]


def input_messages(body):
    given = body.get("input")
    if given is None:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input")
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    if not isinstance(given, list):
        raise invalid("input", "expected a string or an array of input items")
    if not given:  # refused here, in the client's terms: the chat request's own refusal names messages
        raise invalid("input", "empty array; expected at least one input item")
    messages = []
    attachments = []  # images and files tools returned: a user message after the tool messages
    for i, item in enumerate(given):
        path = f"input[{i}]"
        if not isinstance(item, dict):
            raise invalid(path, "expected an object")
        kind = item.get("type", "message")
        if attachments and kind != "function_call_output":
            messages.append({"role": "user", "content": attachments})
            attachments = []
        if kind == "message":
            add_message(messages, item, path)
        elif kind == "function_call":
            add_function_call(messages, item, path)
        elif kind == "function_call_output":
            message, moved = tool_message(item, path)
            messages.append(message)
            attachments.extend(moved)
        elif kind == "reasoning":
            continue
        elif kind == "item_reference":
            raise invalid(path, "item_reference needs stored items; this model's provider has none")
        else:
            raise invalid(f"{path}.type", f"input item type {kind!r} cannot be sent to this model")
    if attachments:
        messages.append({"role": "user", "content": attachments})
    return messages


def add_message(messages, item, path):
    role = item.get("role")
    if role not in ROLES:
        raise invalid(f"{path}.role", "expected one of " + ", ".join(map(repr, ROLES)))
    content = item.get("content")
    if isinstance(content, str):
        messages.append({"role": role, "content": content})
        return
    if not isinstance(content, list):
        raise invalid(f"{path}.content", "expected a string or an array of content parts")
    parts = [content_part(part, f"{path}.content[{j}]", role) for j, part in enumerate(content)]
    messages.append({"role": role, "content": collapse(parts) if parts else ""})


def content_part(part, path, role):
    if not isinstance(part, dict):
        raise invalid(path, "expected an object")
    kind = part.get("type")
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": string(part, "text", path)}
    if kind == "refusal":
        return {"type": "text", "text": string(part, "refusal", path)}
    if role == "user" and kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise invalid(f"{path}.image_url", "only images given by image_url (a URL or a data: URL) can be sent to this model")
        image = {"url": url}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if role == "user" and kind == "input_file":
        data = part.get("file_data")
        if not isinstance(data, str) or not data:
            raise invalid(f"{path}.file_data", "only files given inline as file_data can be sent to this model")
        filename = part.get("filename")
        return {
            "type": "file",
            "file": {"filename": filename if isinstance(filename, str) and filename else "file", "file_data": data},
        }
    raise invalid(f"{path}.type", f"content part type {kind!r} in a {role} message cannot be sent to this model")


def add_function_call(messages, item, path):
    arguments = item.get("arguments", "")
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments).decode()
    call = {
        "id": string(item, "call_id", path),
        "type": "function",
        "function": {"name": string(item, "name", path), "arguments": arguments},
    }
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant" and isinstance(last.get("content"), (str, type(None))):
        last.setdefault("tool_calls", []).append(call)  # the text just before, or the call before
        return
    messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def tool_message(item, path):
    """A ``function_call_output`` -> (the tool message, the images and files it returned). A chat
    tool message holds text only: those move to a user message after the call's tool messages,
    and the tool text says so (as the Messages API's tool results do)."""
    output = item.get("output")
    moved = []
    if isinstance(output, list):  # output parts: their text
        texts = []
        for j, part in enumerate(output):
            where = f"{path}.output[{j}]"
            converted = content_part(part, where, "user")
            if converted["type"] == "text":
                texts.append(converted["text"])
            else:
                moved.append(converted)
        output = with_attachment_note("\n\n".join(texts), moved)
    elif not isinstance(output, str):
        raise invalid(f"{path}.output", "expected a string or an array of content parts")
    return {"role": "tool", "tool_call_id": string(item, "call_id", path), "content": output}, moved


def string(mapping, name, path):
    value = mapping.get(name)
    if not isinstance(value, str):
        raise invalid(f"{path}.{name}", "expected a string")
    return value


# --- tools, reasoning, output format -----------------------------------------------------------------

def function_tools(tools):
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise invalid("tools", "expected an array")
    out = []
    for i, tool in enumerate(tools):
        path = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise invalid(path, "expected an object")
        kind = tool.get("type")
        if kind != "function":
            raise invalid(f"{path}.type", f"tool type {kind!r} is run by OpenAI itself; this model cannot use it")
        function = {"name": string(tool, "name", path)}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        parameters = tool.get("parameters")
        function["parameters"] = parameters if isinstance(parameters, dict) else {"type": "object", "properties": {}}
        if tool.get("strict") is True:
            function["strict"] = True
        out.append({"type": "function", "function": function})
    return out


def allowed_tools(tools, choice):
    """``{type: allowed_tools, mode, tools: [{type: function, name}...]}``: the chat request gets
    only the tools named, and ``mode`` (auto or required) as its tool_choice."""
    mode = choice.get("mode", "auto")
    if mode not in ("auto", "required"):
        raise invalid("tool_choice.mode", "expected 'auto' or 'required'")
    named = choice.get("tools")
    if not isinstance(named, list) or not named:
        raise invalid("tool_choice.tools", "expected a non-empty array of tools")
    names = set()
    for i, tool in enumerate(named):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise invalid(f"tool_choice.tools[{i}]", "only function tools can be allowed for this model")
        names.add(string(tool, "name", f"tool_choice.tools[{i}]"))
    kept = [tool for tool in tools if tool["function"]["name"] in names]
    if len(kept) < len(names):
        raise invalid("tool_choice.tools", "names a tool the request's tools do not have")
    return kept, mode


def tool_choice(choice):
    if choice is None or choice in TOOL_CHOICES:
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": string(choice, "name", "tool_choice")}}
    raise invalid("tool_choice", "expected 'auto', 'none', 'required' or {type: 'function', name}")


def reasoning_effort(reasoning):
    if reasoning is None:
        return None
    if not isinstance(reasoning, dict):
        raise invalid("reasoning", "expected an object")
    effort = reasoning.get("effort")
    if effort is None:
        return None
    if effort == "none":
        return "none"  # asked for no reasoning: the providers that can stop thinking do (Gemini 2.5 Flash)
    if not isinstance(effort, str) or effort not in EFFORTS:
        raise invalid("reasoning.effort", "expected one of none, " + ", ".join(EFFORTS))
    return EFFORTS[effort]


def text_format(text):
    if text is None:
        return None
    if not isinstance(text, dict):
        raise invalid("text", "expected an object")
    spec = text.get("format")
    if spec is None:
        return None
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind != "json_schema":
        raise invalid("text.format.type", "expected 'text', 'json_schema' or 'json_object'")
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise invalid("text.format.schema", "expected an object")
    json_schema = {"name": string(spec, "name", "text.format"), "schema": schema}
    for name in ("description", "strict"):
        if spec.get(name) is not None:
            json_schema[name] = spec[name]
    return {"type": "json_schema", "json_schema": json_schema}

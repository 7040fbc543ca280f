"""Anthropic Messages content -> OpenAI chat messages: the ``system`` and ``messages`` part of
``chat_request_from_messages`` (the mapping is in ``alloy.client_apis.messages``), and the small
validators both modules use. Errors are ``InvalidRequest`` naming the dotted path of the field.
"""

import orjson

from alloy.client_apis.tool_names import short_name
from alloy.errors import InvalidRequest

IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
JOIN = "\n\n"  # between text blocks that become one OpenAI string


def invalid(path, message):
    """A 400 naming the field the way Anthropic does: ``path: message``."""
    return InvalidRequest(f"{path}: {message}", param=path)


def string_field(mapping, name, path):
    value = mapping.get(name)
    if not isinstance(value, str) or not value:
        raise invalid(f"{path}.{name}", "Input should be a non-empty string")
    return value


# --- system and messages ----------------------------------------------------------------------------

def system_messages(system):
    if system is None:
        return []
    if isinstance(system, str):
        text = system
    elif isinstance(system, list):
        text = JOIN.join(text_of(block, f"system.{i}") for i, block in enumerate(system))
    else:
        raise invalid("system", "Input should be a valid string or a list of text blocks")
    return [{"role": "system", "content": text}] if text else []


def chat_messages(messages):
    """Anthropic turns -> OpenAI messages (a user turn may become several: see the docstring)."""
    out = []
    for i, message in enumerate(messages):
        path = f"messages.{i}"
        if not isinstance(message, dict):
            raise invalid(path, "Input should be a valid dictionary")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise invalid(f"{path}.role", "Input should be 'user' or 'assistant'")
        blocks = content_blocks(message.get("content"), f"{path}.content")
        out.extend(user_turn(blocks, path) if role == "user" else assistant_turn(blocks, path))
    return out


def content_blocks(content, path):
    """Message content as a list of blocks (a string is shorthand for one text block)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise invalid(path, "Input should be a valid string or a list of content blocks")
    for j, block in enumerate(content):
        block_type(block, f"{path}.{j}")
    return content


def block_type(block, path):
    if not isinstance(block, dict):
        raise invalid(path, "Input should be a valid dictionary")
    kind = block.get("type")
    if not isinstance(kind, str):
        raise invalid(f"{path}.type", "Field required")
    return kind


def text_of(block, path):
    if block_type(block, path) != "text":
        raise invalid(f"{path}.type", "Input should be 'text'")
    text = block.get("text")
    if not isinstance(text, str):
        raise invalid(f"{path}.text", "Input should be a valid string")
    return text


def unsupported_block(kind, path, where):
    return invalid(f"{path}.type", f"content block type {kind!r} in {where} cannot be sent to this model")


def user_turn(blocks, path):
    tool_messages, attachments, parts = [], [], []
    for j, block in enumerate(blocks):
        where = f"{path}.content.{j}"
        kind = block["type"]
        if kind == "tool_result":
            message, moved = tool_message(block, where)
            tool_messages.append(message)
            attachments.extend(moved)
        elif kind in PART_BUILDERS:
            parts.append(PART_BUILDERS[kind](block, where))
        else:
            raise unsupported_block(kind, where, "a user turn")
    parts = attachments + parts
    if not parts:
        return tool_messages
    return [*tool_messages, {"role": "user", "content": collapse(parts)}]


def collapse(parts):
    """Text-only content as one string (what every OpenAI-compatible server takes), else parts."""
    if all(part["type"] == "text" for part in parts):
        return JOIN.join(part["text"] for part in parts if part["text"])  # an empty block adds no blank line
    return parts


def text_part(block, path):
    return {"type": "text", "text": text_of(block, path)}


def source_of(block, path):
    source = block.get("source")
    if not isinstance(source, dict):
        raise invalid(f"{path}.source", "Field required")
    return source, source.get("type")


def image_part(block, path):
    source, kind = source_of(block, path)
    where = f"{path}.source"
    if kind == "base64":
        media_type = string_field(source, "media_type", where)
        if media_type not in IMAGE_TYPES:
            raise invalid(f"{where}.media_type", "Input should be " + ", ".join(map(repr, IMAGE_TYPES)))
        url = f"data:{media_type};base64,{string_field(source, 'data', where)}"
    elif kind == "url":
        url = string_field(source, "url", where)
    else:
        raise invalid(f"{where}.type", f"image source type {kind!r} cannot be sent to this model (use base64 or url)")
    return {"type": "image_url", "image_url": {"url": url}}


def document_part(block, path):
    source, kind = source_of(block, path)
    where = f"{path}.source"
    if kind == "text":
        return {"type": "text", "text": string_field(source, "data", where)}
    if kind == "base64" and source.get("media_type") == "application/pdf":
        title = block.get("title")
        data = string_field(source, "data", where)
        filename = title if isinstance(title, str) and title else "document.pdf"
        return {"type": "file", "file": {"filename": filename, "file_data": f"data:application/pdf;base64,{data}"}}
    raise invalid(f"{where}.type", "only base64 PDF and plain text documents can be sent to this model")


# Content block type -> the OpenAI content part for it (in user turns and tool results).
PART_BUILDERS = {"text": text_part, "image": image_part, "document": document_part}


def with_attachment_note(text, moved):
    """A tool message's ``text``, saying where the ``moved`` parts (images, files) went: a chat
    tool message holds text only, so they follow in the next user message."""
    if not moved:
        return text
    note = f"[{len(moved)} attachment(s) returned by this tool follow in the next user message]"
    return f"{text}\n{note}" if text else note


def tool_message(block, path):
    """A ``tool_result`` block -> (the OpenAI tool message, parts that must move to the user message)."""
    tool_use_id = string_field(block, "tool_use_id", path)
    content = block.get("content")
    texts, moved = [], []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for k, item in enumerate(content):
            where = f"{path}.content.{k}"
            kind = block_type(item, where)
            if kind not in PART_BUILDERS:
                raise unsupported_block(kind, where, "a tool_result")
            part = PART_BUILDERS[kind](item, where)
            if part["type"] == "text":
                texts.append(part["text"])
            else:
                moved.append(part)
    elif content is not None:
        raise invalid(f"{path}.content", "Input should be a valid string or a list of content blocks")
    text = with_attachment_note(JOIN.join(texts), moved)
    if block.get("is_error") is True:
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": tool_use_id, "content": text}, moved


def assistant_turn(blocks, path):
    texts, calls = [], []
    for j, block in enumerate(blocks):
        where = f"{path}.content.{j}"
        kind = block["type"]
        if kind == "text":
            texts.append(text_of(block, where))
        elif kind == "tool_use":
            calls.append(tool_call(block, where))
        elif kind not in ("thinking", "redacted_thinking"):
            raise unsupported_block(kind, where, "an assistant turn")
    if not texts and not calls:
        return []  # thinking alone: nothing OpenAI can carry
    message = {"role": "assistant", "content": JOIN.join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def tool_call(block, path):
    arguments = block.get("input")
    if not isinstance(arguments, dict):
        raise invalid(f"{path}.input", "Input should be a valid dictionary")
    function = {"name": short_name(string_field(block, "name", path)), "arguments": orjson.dumps(arguments).decode()}
    return {"id": string_field(block, "id", path), "type": "function", "function": function}

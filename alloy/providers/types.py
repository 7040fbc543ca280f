"""What the provider modules share: the settings a translator is given, the call it returns, and
how a model name becomes a path segment. A module of its own so that the provider modules and the
package that lists them import it without a cycle."""

import re
from dataclasses import dataclass, field

from alloy.errors import InvalidRequest


@dataclass(frozen=True)
class TranslateSettings:
    api_key: str | None
    api_version: str | None = None  # anthropic-version / Azure api-version
    max_tokens_default: int = 4096  # Anthropic requires max_tokens; used when the client sent none


@dataclass(frozen=True)
class UpstreamCall:
    method: bytes
    path: bytes  # e.g. b"/v1/messages" or b"/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    headers: list = field(default_factory=list)  # [(b"x-api-key", b"..."), ...]
    body: bytes = b""
    stream: bool = False


# Azure deployment names and Gemini model ids are letters, digits, "-", "_", "." (and ":" in some
# Gemini ids); nothing that would need percent-encoding, which a next hop may decode into "/".
_SEGMENT = re.compile(r"[A-Za-z0-9._:~-]+")


def path_segment(model):
    """A model name as one segment of an upstream URL path (Azure deployments, Gemini models).
    Anything but a plain name is refused rather than encoded: "/", "%", "?", spaces or controls
    and the dot segments "." and ".." would let a client pick another path on the upstream."""
    if _SEGMENT.fullmatch(model) is None or model in (".", ".."):
        raise InvalidRequest(
            f"the model name {model!r} cannot name an upstream deployment: use letters, digits, '-', '_', '.' or ':'",
            param="model",
        )
    return model.encode()


def data_url(url, param, what):
    """A base64 data URL (``data:image/png;base64,...``, with parameters too:
    ``data:text/plain;charset=utf-8;base64,...``, RFC 2397) -> (media type, base64 data), or raises
    the client's 400 naming ``what`` it was given as (an image, a file)."""
    header, comma, data = url[5:].partition(",") if url.startswith("data:") else ("", "", "")
    media_type, *_, encoding = header.lower().split(";") if ";" in header else (header.lower(), "")
    if not comma or encoding.strip() != "base64" or not media_type:
        raise InvalidRequest(f"{param}: a data URL {what} must be data:<type>;base64,<data>", param=param)
    return media_type, data


def file_data(part, param):
    """A chat ``file`` part -> (media type, base64 data). Only the file itself can be translated:
    a ``file_id`` names a file stored at OpenAI, which another provider cannot read."""
    file = part.get("file")
    given = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(given, str):
        raise InvalidRequest(f"{param}.file: this provider needs the file itself, as file_data (a base64 data URL), not a file_id", param=param)
    return data_url(given, param, "file")


def function_name(item):
    """The name of ``{function: {name}}`` (a chat tool, a named tool_choice), or None when the item
    has any other shape: what a client sent is read without trusting its types."""
    function = item.get("function") if isinstance(item, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) else None


def allowed_tools(tools, choice):
    """Chat's ``tool_choice: {type: allowed_tools, allowed_tools: {mode, tools}}`` for a provider
    without it: (the tools the client allowed, ``mode`` as a plain tool_choice). Any other choice:
    (``tools``, ``choice``) unchanged. The tools it names must be among the request's function tools."""
    if not isinstance(choice, dict) or choice.get("type") != "allowed_tools":
        return tools, choice
    allowed = choice.get("allowed_tools")
    if not isinstance(allowed, dict):
        raise InvalidRequest("tool_choice.allowed_tools must be an object with mode and tools", param="tool_choice")
    mode = allowed.get("mode", "auto")
    if mode not in ("auto", "required"):
        raise InvalidRequest("tool_choice.allowed_tools.mode must be 'auto' or 'required'", param="tool_choice")
    named = allowed.get("tools")
    if not isinstance(named, list) or not named:
        raise InvalidRequest("tool_choice.allowed_tools.tools must be a non-empty array", param="tool_choice")
    names = set()
    for tool in named:
        name = function_name(tool) if isinstance(tool, dict) and tool.get("type") == "function" else None
        if name is None:
            raise InvalidRequest("tool_choice.allowed_tools.tools: only function tools, each {type: function, function: {name}}", param="tool_choice")
        names.add(name)
    kept = [tool for tool in tools if function_name(tool) in names]
    missing = names - {function_name(tool) for tool in kept}
    if missing:
        raise InvalidRequest(f"tool_choice.allowed_tools names a tool the request does not define: {sorted(missing)[0]}", param="tool_choice")
    return kept, mode


def base64_embeddings(answer):
    """An embeddings answer whose vectors are float lists, each vector as OpenAI's
    ``encoding_format: base64`` gives it: its float32 values, little-endian, in base64. For a
    provider that answers floats only (Gemini), when the client asked for base64."""
    import array  # only for this answer: a gateway that never sees one never loads them
    import base64
    import sys

    import orjson

    document = orjson.loads(answer)
    for item in document.get("data") or ():
        vector = item.get("embedding") if isinstance(item, dict) else None
        if isinstance(vector, list):
            packed = array.array("f", vector)
            if sys.byteorder == "big":
                packed.byteswap()
            item["embedding"] = base64.b64encode(packed.tobytes()).decode()
    return orjson.dumps(document)

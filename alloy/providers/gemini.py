"""Google Gemini API (``generateContent``, ``streamGenerateContent``, ``batchEmbedContents``) behind
the OpenAI Chat Completions and Embeddings APIs.

Request mapping (OpenAI -> Gemini), chat
    messages            ``system`` / ``developer`` -> ``systemInstruction.parts`` (one text part each,
                        in order, wherever they stand); ``user`` -> role "user", ``assistant`` ->
                        role "model", ``tool`` -> a ``functionResponse`` part of a "user" turn.
                        Consecutive turns of one role merge (Gemini wants one functionResponse per
                        functionCall of the previous model turn, in one user turn).
    content parts       text -> ``{text}`` (empty text dropped: Gemini refuses empty parts);
                        image_url data: URL -> ``inlineData {mimeType, data}``; http(s) URL ->
                        ``fileData {fileUri, mimeType}`` with the type guessed from the extension
                        (``image/jpeg`` when it says nothing). Gemini fetches only some public URLs
                        itself; others answer 400 from Gemini. file with ``file_data`` (a data
                        URL: PDF, text...) -> ``inlineData``; a ``file_id`` -> 400. input_audio -> 400.
    tool_calls          -> ``functionCall {name, args}``, ``args`` = the decoded ``arguments`` (a JSON
                        object; "" reads as {}), with the ``thoughtSignature`` Gemini gave that call
                        when this process relayed it; on Gemini 3, a turn of calls without any
                        gets Google's placeholder on its first (Gemini 3 refuses unsigned calls)
    tool messages       -> ``functionResponse {name, response: {"content": X}}``: ``name`` is looked up
                        from the assistant tool call with that ``tool_call_id`` (400 when none);
                        X is the tool text, or the JSON object when the text decodes to one
    tools               function tools -> one ``tools`` entry ``{functionDeclarations: [...]}``; the
                        ``parameters`` schema is reduced to the OpenAPI subset Gemini accepts (see
                        ``clean_schema``: local ``$ref``s are inlined; ``additionalProperties``,
                        ``$schema``, ``strict``, ``title``... are dropped; ``type: [T, "null"]`` ->
                        ``type: T, nullable``; an enum of non-strings keeps its type and goes into
                        the description)
    tool_choice         auto/none/required -> ``toolConfig.functionCallingConfig.mode`` AUTO/NONE/ANY;
                        a named function -> ANY + ``allowedFunctionNames``; sent only with tools;
                        ``{type: allowed_tools, allowed_tools: {mode, tools}}`` -> only those tools
                        declared, ``mode`` (auto or required) as the choice
    generationConfig    temperature, top_p -> topP, max_completion_tokens / max_tokens ->
                        maxOutputTokens, stop -> stopSequences, n -> candidateCount, seed,
                        presence_penalty, frequency_penalty; response_format json_object ->
                        ``responseMimeType: application/json``; json_schema -> that plus
                        ``responseSchema`` (cleaned like tool parameters)
    reasoning_effort    -> ``generationConfig.thinkingConfig`` with ``includeThoughts: true`` (so the
                        thought summaries come back as ``reasoning_content``) and, by model:
                        Gemini 3 -> ``thinkingLevel`` (minimal / low / medium / high as they are on
                        Flash; Pro has low and high only: minimal -> low, medium -> high); xhigh and
                        max -> high; other thinking models (2.5...) -> ``thinkingBudget`` by
                        ``THINKING_BUDGETS``: minimal 512 (2.5 Flash-Lite's least), low 2048, medium
                        8192, high 16384, xhigh and max 24576 (2.5 Flash's most). "none" ->
                        ``thinkingBudget: 0`` on 2.5 Flash and Flash-Lite, which can stop thinking;
                        nothing elsewhere (2.5 Pro and Gemini 3 always think). Ignored for models
                        that do not think (Gemini 1.x and 2.0, Gemma), which refuse a thinkingConfig.
                        Gemini counts thinking inside ``maxOutputTokens``; it is passed unchanged
    cache_control       on content parts or messages (Anthropic's prompt caching): ignored. Gemini
                        caches repeated prefixes by itself (implicit caching) and its explicit
                        caches are named resources (``cachedContent``) that no OpenAI field names
    stream              -> the ``:streamGenerateContent?alt=sse`` method
Rejected with 400: ``logprobs: true``, ``top_logprobs``, audio output, the legacy ``functions`` /
``function_call``, ``function`` role messages, non-function tools, a ``reasoning_effort`` OpenAI
does not define.
Ignored (no Gemini counterpart; the answer keeps its shape): ``parallel_tool_calls``, ``user``,
``logit_bias``, ``service_tier``, ``store``, ``metadata``, ``prediction`` and any field this table
does not name.

Response mapping (Gemini -> OpenAI)
    parts               text -> ``content`` (joined); functionCall -> ``tool_calls``; ``thought: true``
                        parts -> ``reasoning_content`` (joined; Gemini's thought summaries, not its raw
                        thinking). A function call's ``thoughtSignature`` is remembered under its
                        tool call id and sent back with that call on a later turn; Gemini 3 calls
                        without one get Google's placeholder (``alloy.providers.gemini_signatures``)
    usage               promptTokenCount (which includes cached tokens) + toolUsePromptTokenCount
                        -> prompt_tokens;
                        candidatesTokenCount + thoughtsTokenCount -> completion_tokens;
                        ``prompt_tokens_details.cached_tokens`` = cachedContentTokenCount and
                        ``completion_tokens_details.reasoning_tokens`` = thoughtsTokenCount (0 when
                        absent), on every answer, complete or streamed

Embeddings: ``input`` (a string or a list of strings) -> ``batchEmbedContents`` with one request per
string; ``dimensions`` -> ``outputDimensionality``. Token-array input -> 400. The answer carries
float lists; a client that asked for ``encoding_format: base64`` gets them encoded by the relay
(``alloy.providers.types.base64_embeddings``).

Complete answers: ``translate_response`` here; streams: ``gemini_stream``.
"""

import mimetypes
import re
import time

import orjson

from alloy.providers import gemini_signatures as signatures
from alloy.providers import types as providers  # UpstreamCall, path_segment
from alloy.errors import InvalidRequest, UpstreamProtocolError, error_payload
from alloy.providers.gemini_stream import (
    StreamTranslator,
    block_reason,
    candidate_index,
    chat_id,
    choice_parts,
    finish_reason,
    openai_error,
    openai_usage,
    tool_call_failure,
    translate_error,
)
from alloy.usage import count

__all__ = ["StreamTranslator", "build_request", "translate_response"]

CHAT = "chat/completions"
EMBEDDINGS = "embeddings"
SYSTEM_ROLES = frozenset(("system", "developer"))
TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
# OpenAI field -> generationConfig field, passed as they are.
GENERATION_FIELDS = {
    "temperature": "temperature",
    "top_p": "topP",
    "n": "candidateCount",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
# The OpenAPI 3.0 Schema subset Gemini's ``Schema`` object knows; every other key is dropped.
SCHEMA_KEYS = frozenset((
    "type", "format", "description", "nullable", "enum", "maxItems", "minItems", "properties",
    "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example",
    "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum",
))  # fmt: skip
DEFAULT_IMAGE_TYPE = "image/jpeg"
# reasoning_effort -> thinkingBudget (Gemini 2.5 and other budget-driven thinking models): inside
# every 2.5 model's range (Pro 128..32768, Flash 0..24576, Flash-Lite 512..24576).
THINKING_BUDGETS = {"minimal": 512, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 24576, "max": 24576}
# reasoning_effort -> thinkingLevel (Gemini 3): Flash has the four levels, Pro low and high.
FLASH_LEVELS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
PRO_LEVELS = {"minimal": "low", "low": "low", "medium": "high", "high": "high", "xhigh": "high", "max": "high"}
# Models that do not think: a thinkingConfig is refused there, so reasoning_effort is ignored.
NO_THINKING = re.compile(r"(?:gemini-(?:1\.|2\.0-(?!flash-thinking))|gemma-)")
LEVEL_MODELS = re.compile(r"gemini-3")  # thinkingLevel rather than thinkingBudget
CAN_STOP_THINKING = re.compile(r"gemini-2\.5-flash")  # thinkingBudget 0 turns thinking off


def _truthy(value):
    return bool(value)


def _present(value):
    return value is not None


def _audio_modality(value):
    return isinstance(value, list) and "audio" in value


# field -> (test of the value, why). A field whose test is true cannot be answered faithfully.
REJECTED = {
    "logprobs": (_truthy, "log probabilities are not translated for Gemini"),
    "top_logprobs": (_present, "log probabilities are not translated for Gemini"),
    "audio": (_present, "audio output is not translated for Gemini"),
    "modalities": (_audio_modality, "audio output is not translated for Gemini"),
    "functions": (_present, "the legacy functions field is not supported; use tools"),
    "function_call": (_present, "the legacy function_call field is not supported; use tool_choice"),
}


# --- request ----------------------------------------------------------------------------------------

def build_request(body, upstream_model, endpoint, settings):
    """An OpenAI chat completions or embeddings body -> the Gemini call (see the module docstring).

    Raises:
        alloy.errors.InvalidRequest: what Gemini cannot express, with ``param`` naming the field.
    """
    model = providers.path_segment(upstream_model.removeprefix("models/")).decode()
    headers = [(b"content-type", b"application/json")]
    if settings.api_key:
        headers.insert(0, (b"x-goog-api-key", settings.api_key.encode()))
    prefix = b"/v1beta/models/" + model.encode()
    if endpoint == EMBEDDINGS:
        out = embeddings_body(body, "models/" + model)
        return providers.UpstreamCall(b"POST", prefix + b":batchEmbedContents", headers, orjson.dumps(out), False)
    if endpoint != CHAT:
        raise InvalidRequest(f"the Gemini API has no {endpoint} endpoint", code="unsupported_endpoint")
    out = chat_body(body, model)
    stream = bool(body.get("stream"))
    method = b":streamGenerateContent?alt=sse" if stream else b":generateContent"
    return providers.UpstreamCall(b"POST", prefix + method, headers, orjson.dumps(out), stream)


def chat_body(body, model):
    for name, (test, why) in REJECTED.items():
        if test(body.get(name)):
            raise InvalidRequest(f"{name}: {why}", param=name, code="unsupported_parameter")
    system, contents = convert_messages(body.get("messages"))
    if LEVEL_MODELS.search(model):
        signatures.sign_unsigned_turns(contents)  # Gemini 3 refuses unsigned function calls
    out = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": [{"text": text} for text in system]}
    tools = body.get("tools")
    if tools:
        if not isinstance(tools, list):
            raise InvalidRequest("tools must be an array", param="tools")
        tools, choice = providers.allowed_tools(tools, body.get("tool_choice"))
        out["tools"] = [{"functionDeclarations": [convert_tool(tool, i) for i, tool in enumerate(tools)]}]
        config = convert_tool_choice(choice)
        if config is not None:
            out["toolConfig"] = {"functionCallingConfig": config}
    generation = generation_config(body)
    thinking = thinking_config(body.get("reasoning_effort"), model)
    if thinking is not None:
        generation["thinkingConfig"] = thinking
    if generation:
        out["generationConfig"] = generation
    return out


def thinking_config(effort, model):
    """The ``thinkingConfig`` for a reasoning_effort on ``model``, or None (see the module docstring)."""
    if effort is None:
        return None
    if not isinstance(effort, str) or (effort != "none" and effort not in THINKING_BUDGETS):
        efforts = ", ".join(("none", *THINKING_BUDGETS))
        raise InvalidRequest(f"reasoning_effort must be one of {efforts}", param="reasoning_effort")
    if NO_THINKING.match(model):
        return None
    if effort == "none":
        return {"thinkingBudget": 0} if CAN_STOP_THINKING.match(model) else None
    if LEVEL_MODELS.match(model):
        levels = PRO_LEVELS if "pro" in model else FLASH_LEVELS
        return {"includeThoughts": True, "thinkingLevel": levels[effort]}
    return {"includeThoughts": True, "thinkingBudget": THINKING_BUDGETS[effort]}


def convert_messages(messages):
    """OpenAI messages -> (system texts, Gemini contents)."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty array", param="messages")
    system, contents, call_names = [], [], {}
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{param} must be an object", param=param)
        role = message.get("role")
        if not isinstance(role, str):
            raise InvalidRequest(f"{param}.role must be a string", param=f"{param}.role")
        if role in SYSTEM_ROLES:
            text = plain_text(message.get("content"), param)
            if text:
                system.append(text)
            continue
        if role == "user":
            parts, role = user_parts(message.get("content"), param), "user"
        elif role == "assistant":
            parts, role = model_parts(message, param, call_names), "model"
        elif role == "tool":
            parts, role = [function_response(message, param, call_names)], "user"
        else:
            raise InvalidRequest(f"{param}.role {role!r} is not supported", param=f"{param}.role")
        if not parts:
            continue  # an empty turn carries nothing, and Gemini refuses a content without parts
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    if not contents:
        # Every turn was empty (an empty string, no parts): the provider would refuse the request.
        raise InvalidRequest(
            "messages must contain a user or assistant message with some content: Gemini refuses empty messages",
            param="messages",
        )
    return system, contents


def plain_text(content, param):
    """The text of a string or an array of text parts (system, developer and tool messages)."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise InvalidRequest(f"{param}.content must be a string or an array", param=f"{param}.content")
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise InvalidRequest(f"{param}.content[{j}] must be a text part", param=f"{param}.content[{j}]")
        texts.append(part["text"])
    return "\n".join(texts)


def text_part(text):
    return [{"text": text}] if text else []


def user_parts(content, param):
    if content is None or isinstance(content, str):
        return text_part(content)
    if not isinstance(content, list):
        raise InvalidRequest(f"{param}.content must be a string or an array", param=f"{param}.content")
    parts = []
    for j, part in enumerate(content):
        where = f"{param}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.extend(text_part(part.get("text")))
        elif kind == "image_url":
            parts.append(image_part(part.get("image_url"), where))
        elif kind == "file":  # a PDF, text, audio...: Gemini reads them inline, as it reads images
            mime_type, data = providers.file_data(part, where)
            parts.append({"inlineData": {"mimeType": mime_type, "data": data}})
        else:
            raise InvalidRequest(f"{where}: content part type {kind!r} is not supported", param=where)
    return parts


def image_part(image, param):
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise InvalidRequest(f"{param}.image_url.url must be a string", param=param)
    if url.startswith("data:"):
        mime_type, data = providers.data_url(url, param, "image")
        return {"inlineData": {"mimeType": mime_type, "data": data}}
    if url.startswith(("https://", "http://")):
        guessed, _ = mimetypes.guess_type(url.partition("?")[0], strict=False)
        return {"fileData": {"mimeType": guessed or DEFAULT_IMAGE_TYPE, "fileUri": url}}
    raise InvalidRequest(f"{param}: an image URL must be http(s) or a base64 data URL", param=param)


def model_parts(message, param, call_names):
    content = message.get("content")
    parts = []
    if isinstance(content, list):
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in ("text", "refusal"):
                where = f"{param}.content[{j}]"
                raise InvalidRequest(f"{where}: assistant content part {kind!r} is not supported", param=where)
            parts.extend(text_part(part.get(kind)))
    elif content is None or isinstance(content, str):
        parts.extend(text_part(content))
    else:
        raise InvalidRequest(f"{param}.content must be a string or an array", param=f"{param}.content")
    calls = message.get("tool_calls") or ()
    if not isinstance(calls, (list, tuple)):
        raise InvalidRequest(f"{param}.tool_calls must be an array", param=f"{param}.tool_calls")
    for k, call in enumerate(calls):
        where = f"{param}.tool_calls[{k}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(f"{where} must be a function call with a name", param=where)
        try:
            args = orjson.loads(function.get("arguments") or "{}")
        except (orjson.JSONDecodeError, TypeError):
            args = None
        if not isinstance(args, dict):
            where += ".function.arguments"
            raise InvalidRequest(f"{where} must be a JSON object", param=where)
        if isinstance(call.get("id"), str):
            call_names[call["id"]] = function["name"]
        part = {"functionCall": {"name": function["name"], "args": args}}
        signature = signatures.recall(call.get("id"))
        if signature is not None:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def function_response(message, param, call_names):
    call_id = message.get("tool_call_id")
    name = call_names.get(call_id) if isinstance(call_id, str) else None
    if name is None:
        where = f"{param}.tool_call_id"
        raise InvalidRequest(f"{where} names no tool call of an earlier assistant message", param=where)
    text = plain_text(message.get("content"), param)
    try:
        decoded = orjson.loads(text)
    except orjson.JSONDecodeError:
        decoded = None
    return {"functionResponse": {"name": name, "response": {"content": decoded if isinstance(decoded, dict) else text}}}


def convert_tool(tool, i):
    function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequest(f"tools[{i}] must be a function tool with a name", param=f"tools[{i}]")
    out = {"name": function["name"]}
    if function.get("description"):
        out["description"] = function["description"]
    parameters = function.get("parameters")
    if isinstance(parameters, dict) and parameters.get("properties"):
        out["parameters"] = clean_schema(parameters)
    # A function without parameters is declared without a schema: Gemini refuses an OBJECT
    # schema with empty properties.
    return out


def clean_schema(schema, root=None, following=()):
    """A JSON Schema -> the subset Gemini's ``Schema`` accepts, recursively (see ``SCHEMA_KEYS``).

    A local ``$ref`` (``#/$defs/X`` or ``#/definitions/X``, what pydantic writes for a nested model)
    is replaced by the schema it names, so the structure reaches Gemini; a reference back into one
    being followed (a recursive model) becomes ``{}``: Gemini's Schema cannot say it. An enum of
    strings stays an enum; an enum of other values keeps its type and lists them in the
    description instead (Gemini's enums are strings only: ``[1, 2]`` as ``["1", "2"]`` would make
    the model answer strings a client's schema refuses)."""
    if not isinstance(schema, dict):
        return schema
    root = schema if root is None else root
    target = schema.get("$ref")
    if isinstance(target, str):
        named = _local_definition(root, target)
        if named is None or target in following:
            return {}
        return clean_schema(named, root, (*following, target))
    out = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, list):
            kinds = [kind for kind in value if kind != "null"]
            if len(kinds) < len(value):
                out["nullable"] = True
            if kinds:
                out["type"] = kinds[0]
        elif key == "const" and "enum" not in schema:
            out["enum"] = [value]
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: clean_schema(sub, root, following) for name, sub in value.items()}
        elif key == "items":
            out[key] = clean_schema(value, root, following)
        elif key == "anyOf" and isinstance(value, list):
            # pydantic writes ``Optional[X]`` as ``anyOf: [X, {"type": "null"}]``: Gemini says
            # that with ``nullable`` (older models refuse a "null" type), and one choice left is
            # just that choice (the field's own description and title kept over its type's).
            choices = [sub for sub in value if sub != {"type": "null"}]
            if len(choices) < len(value):
                out["nullable"] = True
            if len(choices) == 1 and isinstance(choices[0], dict):
                for name, kept in clean_schema(choices[0], root, following).items():
                    out.setdefault(name, kept)
            elif choices:
                out[key] = [clean_schema(sub, root, following) for sub in choices]
        elif key in SCHEMA_KEYS:
            out[key] = value
    enum = out.get("enum")
    if isinstance(enum, list) and not all(type(item) is str for item in enum):
        del out["enum"]
        values = ", ".join(orjson.dumps(item).decode() for item in enum)
        out["description"] = (out["description"] + " " if isinstance(out.get("description"), str) else "") + f"One of: {values}."
        if "type" not in out:
            kinds = {type(item) for item in enum}
            out["type"] = "boolean" if kinds == {bool} else "integer" if kinds == {int} else "number" if kinds <= {int, float} else "string"
    elif isinstance(enum, list):
        out["type"] = "string"
    return out


def _local_definition(root, target):
    """The schema ``target`` names inside ``root`` (``#/$defs/Name``, ``#/definitions/Name``)."""
    for prefix in ("#/$defs/", "#/definitions/"):
        if target.startswith(prefix):
            found = (root.get(prefix[2:-1]) or {}).get(target[len(prefix):])
            return found if isinstance(found, dict) else None
    return None


def convert_tool_choice(choice):
    if choice is None:
        return None
    if isinstance(choice, str) and choice in TOOL_MODES:
        return {"mode": TOOL_MODES[choice]}
    if providers.function_name(choice) is not None:
        return {"mode": "ANY", "allowedFunctionNames": [providers.function_name(choice)]}
    raise InvalidRequest("tool_choice must be auto, none, required or a named function", param="tool_choice")


def generation_config(body):
    out = {name: body[field] for field, name in GENERATION_FIELDS.items() if body.get(field) is not None}
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        out["maxOutputTokens"] = max_tokens
    stop = body.get("stop")
    if stop is not None:
        out["stopSequences"] = [stop] if isinstance(stop, str) else stop
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        out["responseMimeType"] = "application/json"
    elif kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise InvalidRequest("response_format.json_schema.schema must be an object", param="response_format")
        out["responseMimeType"] = "application/json"
        out["responseSchema"] = clean_schema(schema)
    elif response_format is not None and kind != "text":
        raise InvalidRequest(f"response_format type {kind!r} is not supported", param="response_format")
    return out


def embeddings_body(body, model_name):
    given = body.get("input")
    texts = [given] if isinstance(given, str) else given
    if not isinstance(texts, list) or not texts or not all(isinstance(text, str) for text in texts):
        raise InvalidRequest("input must be a string or a non-empty array of strings for Gemini", param="input")
    dimensions = body.get("dimensions")
    requests = []
    for text in texts:
        request = {"model": model_name, "content": {"parts": [{"text": text}]}}
        if dimensions is not None:
            request["outputDimensionality"] = dimensions
        requests.append(request)
    return {"requests": requests}


# --- response ----------------------------------------------------------------------------------------

def translate_response(status, body, model, endpoint):
    """A complete Gemini answer -> (status, OpenAI JSON bytes): a completion, an embedding list or an error."""
    if status != 200:
        return translate_error(status, body)
    try:
        data = orjson.loads(body)
        if endpoint == EMBEDDINGS:
            return 200, orjson.dumps(embedding_list(data, model))
        return chat_completion(data, model)
    except (orjson.JSONDecodeError, AttributeError, TypeError, KeyError):
        error = UpstreamProtocolError("the Gemini answer is not a GenerateContentResponse")
        return error.status, orjson.dumps(error_payload(error))


def chat_completion(data, model):
    candidates = data.get("candidates") or []
    if not candidates:
        reason = block_reason(data)
        if reason:
            message = f"Gemini blocked the prompt ({reason})"
            return 400, orjson.dumps(openai_error("invalid_request_error", "content_filter", message))
        raise KeyError("candidates")
    choices = [completion_choice(candidate, i) for i, candidate in enumerate(candidates)]
    first = choices[0]["message"]
    failure = None if first["content"] or first.get("tool_calls") else tool_call_failure(candidates[0])
    if failure is not None:  # the model's tool call failed and nothing else was said
        return 502, orjson.dumps(failure)
    completion = {
        "id": chat_id(data),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": openai_usage(data.get("usageMetadata") or {}),
    }
    return 200, orjson.dumps(completion)


def completion_choice(candidate, position):
    texts, calls, thoughts = choice_parts(candidate)
    reply = {"role": "assistant", "content": "".join(texts) if texts or not calls else None, "refusal": None}
    if thoughts:
        reply["reasoning_content"] = "".join(thoughts)
    if calls:
        reply["tool_calls"] = calls
    index = candidate_index(candidate, position)
    finish = finish_reason(candidate.get("finishReason"), bool(calls)) or "stop"
    return {"index": index, "message": reply, "logprobs": None, "finish_reason": finish}


def embedding_list(data, model):
    vectors = [item["values"] for item in data["embeddings"]]
    usage = data.get("usageMetadata")  # counts of another type read as none, capped (alloy.usage.count)
    tokens = count(usage, "promptTokenCount")
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": vector} for i, vector in enumerate(vectors)],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": count(usage, "totalTokenCount") or tokens},
    }

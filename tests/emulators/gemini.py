"""A strict, deterministic emulator of the Google Gemini API (``generativelanguage.googleapis.com``),
written from Google's public API reference: run ``python tests/emulators/gemini.py --port 0``.

What it serves (``/v1beta/models/{model}:{method}``, POST, JSON bodies)
    generateContent            -> one GenerateContentResponse
    streamGenerateContent      -> ``?alt=sse``: ``data: {...}\\r\\n\\r\\n`` events (CRLF, as Google sends);
                                  without it: one JSON array of the same responses
    batchEmbedContents         -> ``{"embeddings": [{"values": [8 floats]}, ...]}``
    embedContent               -> ``{"embedding": {"values": [8 floats]}}``
    GET/DELETE /_emulator/requests  the request log (not authenticated, not logged)

Strictness (answered in Google's error shape ``{"error": {code, message, status}}``)
    no key (``x-goog-api-key`` header or ``?key=``) -> 403 PERMISSION_DENIED; a key other than
    ``--api-key`` -> 400 INVALID_ARGUMENT with ErrorInfo reason API_KEY_INVALID (what the real API
    answers); a field the message type does not have -> 400 "Unknown name"; a value of the wrong
    type -> 400; empty ``contents``, empty ``parts``, an empty text part, a part with two data fields,
    a role other than user/model, a functionCall outside a model turn, a functionResponse whose name
    no earlier functionCall has, on Gemini 3 a model step of the current turn whose first functionCall
    has no ``thoughtSignature``, an OBJECT schema without properties, an enum on a non-string schema,
    an unknown function calling mode, more than 5 stop sequences -> 400 INVALID_ARGUMENT; a model
    that is neither ``gemini*`` nor an embedding model -> 404 NOT_FOUND.
    ``generationConfig.thinkingConfig`` (includeThoughts, thinkingBudget, thinkingLevel) as the thinking
    guide describes it -> 400 INVALID_ARGUMENT for: any thinking setting on a model that does not
    think (Gemini 1.x, 2.0, Gemma); thinkingBudget and thinkingLevel together; a budget outside the
    model's range (-1 is dynamic everywhere; 2.5 Pro 128..32768, 2.5 Flash 0..24576, 2.5 Flash-Lite
    0 or 512..24576, other thinking models 0..32768 except Gemini 3, which cannot turn thinking off);
    thinkingLevel before Gemini 3, or a level the model lacks (Pro: low, high; Flash: minimal, low,
    medium, high; any case).

Replies
    text: ``"echo: " + the last user text`` (``{"echo": text}`` when responseMimeType is JSON); a last
    turn with function responses and no text: ``"result: " + the response as JSON``; with tools and
    mode ANY, or a mode other than NONE and "call tool" in the last user text: a functionCall to
    the first declared (or first allowed)
    function with args ``{"query": text}``. ``maxOutputTokens`` counts words (cut -> MAX_TOKENS);
    stop sequences cut the text; ``candidateCount`` candidates; usage counts words.
    Models that think (2.5 and later) think unless thinkingBudget is 0: "Considering: " + the last
    user text, counted in ``thoughtsTokenCount`` and taken from ``maxOutputTokens`` first; with
    ``includeThoughts`` it comes back as a ``thought: true`` part before the answer (its own chunk
    when streamed), and a function call it led to carries a ``thoughtSignature``.
    Implicit caching on those models: a request whose systemInstruction, tools and first k contents
    (k >= 1, at least 1024 words together) equal those of an earlier request to the same model
    reports them as ``cachedContentTokenCount`` (still counted in promptTokenCount). Entries do not
    expire.

Faults, header ``x-emulator-fault``: ``status=<code>`` (that status, Google's shape),
``block-prompt`` (promptFeedback.blockReason SAFETY, no candidates), ``cut-stream`` (the stream ends
before any finishReason), ``stream-error`` (one chunk, then an error object in the stream).
"""

import argparse
import asyncio
import base64
import hashlib
import math
import os
import re
import signal
import sys
from collections import deque

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:  # run as a script: make the alloy package importable
    sys.path.insert(0, REPO)

import orjson  # noqa: E402

from alloy.core import LAST_CHUNK, RequestParser, frame_chunk, frame_response, frame_stream_head  # noqa: E402
from alloy.errors import AlloyError  # noqa: E402

JSON_HEADER = b"content-type: application/json; charset=UTF-8\r\n"
SSE_HEADER = b"content-type: text/event-stream\r\n"
PREFIX = b"/v1beta/models/"
LOG_HOOK = b"/_emulator/requests"
DIMENSIONS = 8
STATUS_NAMES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}  # fmt: skip
SCHEMA_TYPES = frozenset(("string", "number", "integer", "boolean", "array", "object"))
FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
NO_THINKING = re.compile(r"(?:gemini-(?:1\.|2\.0-(?!flash-thinking))|gemma-)")  # models that do not think
LEVEL_MODELS = re.compile(r"gemini-3")  # thinkingLevel models; they always think
# model pattern -> the thinkingBudget values it takes besides -1 (dynamic), first match wins
BUDGET_RANGES = [
    (re.compile(r"gemini-2\.5-pro"), ((128, 32768),)),
    (re.compile(r"gemini-2\.5-flash-lite"), ((0, 0), (512, 24576))),
    (re.compile(r"gemini-2\.5-flash"), ((0, 24576),)),
    (re.compile(r"gemini-3"), ((1, 32768),)),
    (re.compile(r""), ((0, 32768),)),
]
PRO_LEVELS = frozenset(("low", "high"))
FLASH_LEVELS = frozenset(("minimal", "low", "medium", "high"))
MIN_CACHED = 1024  # words a prefix needs for implicit caching
DATA_FIELDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode", "codeExecutionResult")

# Message type -> field -> type. A type is a scalar name, a message name, ("list", T) or ("map", T).
S, I, N, B, ANY, OBJ = "string", "int", "number", "bool", "any", "object"
MESSAGES = {
    "GenerateContentRequest": {
        "model": S, "contents": ("list", "Content"), "systemInstruction": "Content", "tools": ("list", "Tool"),
        "toolConfig": "ToolConfig", "generationConfig": "GenerationConfig",
        "safetySettings": ("list", "SafetySetting"), "cachedContent": S,
    },
    "Content": {"role": S, "parts": ("list", "Part")},
    "Part": {
        "text": S, "inlineData": "Blob", "fileData": "FileData", "functionCall": "FunctionCall",
        "functionResponse": "FunctionResponse", "executableCode": ANY, "codeExecutionResult": ANY,
        "thought": B, "thoughtSignature": S, "videoMetadata": ANY,
    },
    "Blob": {"mimeType": S, "data": S},
    "FileData": {"mimeType": S, "fileUri": S},
    "FunctionCall": {"id": S, "name": S, "args": OBJ},
    "FunctionResponse": {"id": S, "name": S, "response": OBJ},
    "Tool": {
        "functionDeclarations": ("list", "FunctionDeclaration"), "googleSearch": ANY,
        "googleSearchRetrieval": ANY, "codeExecution": ANY, "urlContext": ANY,
    },
    "FunctionDeclaration": {
        "name": S, "description": S, "parameters": "Schema", "parametersJsonSchema": ANY,
        "response": "Schema", "behavior": S,
    },
    "Schema": {
        "type": S, "format": S, "title": S, "description": S, "nullable": B, "enum": ("list", S),
        "maxItems": I, "minItems": I, "properties": ("map", "Schema"), "required": ("list", S),
        "minProperties": I, "maxProperties": I, "minLength": I, "maxLength": I, "pattern": S,
        "example": ANY, "anyOf": ("list", "Schema"), "propertyOrdering": ("list", S), "default": ANY,
        "items": "Schema", "minimum": N, "maximum": N,
    },
    "ToolConfig": {"functionCallingConfig": "FunctionCallingConfig"},
    "FunctionCallingConfig": {"mode": S, "allowedFunctionNames": ("list", S)},
    "GenerationConfig": {
        "stopSequences": ("list", S), "responseMimeType": S, "responseSchema": "Schema",
        "responseJsonSchema": ANY, "responseModalities": ("list", S), "candidateCount": I,
        "maxOutputTokens": I, "temperature": N, "topP": N, "topK": I, "seed": I, "presencePenalty": N,
        "frequencyPenalty": N, "responseLogprobs": B, "logprobs": I, "thinkingConfig": "ThinkingConfig",
        "speechConfig": ANY, "mediaResolution": S,
    },
    "ThinkingConfig": {"includeThoughts": B, "thinkingBudget": I, "thinkingLevel": S},
    "SafetySetting": {"category": S, "threshold": S},
    "BatchEmbedContentsRequest": {"requests": ("list", "EmbedContentRequest")},
    "EmbedContentRequest": {"model": S, "content": "Content", "taskType": S, "title": S, "outputDimensionality": I},
}  # fmt: skip
SCALARS = {
    S: (lambda v: isinstance(v, str), "TYPE_STRING"),
    I: (lambda v: isinstance(v, int) and not isinstance(v, bool), "TYPE_INT32"),
    N: (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "TYPE_FLOAT"),
    B: (lambda v: isinstance(v, bool), "TYPE_BOOL"),
    OBJ: (lambda v: isinstance(v, dict), "TYPE_MESSAGE"),
    ANY: (lambda v: True, ""),
}


class GoogleError(Exception):
    def __init__(self, status, message, reason=None):
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason

    def body(self):
        error = {"code": self.status, "message": self.message, "status": STATUS_NAMES.get(self.status, "UNKNOWN")}
        if self.reason:
            info = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": self.reason, "domain": "googleapis.com"}
            error["details"] = [info]
        return {"error": error}


def invalid(message):
    return GoogleError(400, message)


def camel(name):
    head, *rest = name.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def snake(name):
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


# --- structural validation (what the proto JSON parser refuses) ------------------------------

def check(value, kind, path):
    """Validate ``value`` against ``kind``; return it with field names in camelCase."""
    if isinstance(kind, tuple):
        container, item = kind
        if container == "list":
            if not isinstance(value, list):
                raise invalid(f"Invalid value at '{path}' (list), {orjson.dumps(value).decode()[:60]}")
            return [check(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, dict):
            raise invalid(f"Invalid value at '{path}' (map), {orjson.dumps(value).decode()[:60]}")
        return {key: check(v, item, f"{path}[{key!r}].value") for key, v in value.items()}
    if kind in SCALARS:
        test, type_name = SCALARS[kind]
        if not test(value):
            raise invalid(f"Invalid value at '{path}' ({type_name}), {orjson.dumps(value).decode()[:60]}")
        return value
    if not isinstance(value, dict):
        raise invalid(f"Invalid value at '{path}' (type.googleapis.com/google.ai.generativelanguage.v1beta.{kind})")
    fields, out = MESSAGES[kind], {}
    for key, item in value.items():
        name = camel(key)
        if name not in fields:
            where = f" at '{path}'" if path else ""
            raise invalid(f'Invalid JSON payload received. Unknown name "{key}"{where}: Cannot find field.')
        out[name] = check(item, fields[name], f"{path}.{snake(name)}" if path else snake(name))
    return out


def check_schema(schema, path, top):
    kind = str(schema.get("type", "")).lower()
    if kind and kind not in SCHEMA_TYPES:
        raise invalid(f"* {path}.type: unknown type {schema['type']!r}")
    if top and kind != "object":
        raise invalid(f"* {path}.type: parameters must be of type OBJECT")
    if kind == "object" and not schema.get("properties"):
        raise invalid(f"* {path}.properties: should be non-empty for OBJECT type")
    if "enum" in schema and kind != "string":
        raise invalid(f"* {path}.enum: only allowed for STRING type")
    for name, sub in (schema.get("properties") or {}).items():
        check_schema(sub, f"{path}.properties[{name}]", False)
    if "items" in schema:
        check_schema(schema["items"], f"{path}.items", False)
    for i, sub in enumerate(schema.get("anyOf") or ()):
        check_schema(sub, f"{path}.any_of[{i}]", False)


# --- semantic validation (what the service refuses) --------------------------------------------

def check_generate(request, model):
    contents = request.get("contents")
    if not contents:
        raise invalid("* GenerateContentRequest.contents: contents is not specified")
    called = set()
    for i, content in enumerate(contents):
        role = content.get("role", "user")
        if role not in ("user", "model"):
            raise invalid("Please use a valid role: user, model.")
        check_parts(content.get("parts"), f"contents[{i}]")
        for part in content["parts"]:
            if "functionCall" in part:
                if role != "model":
                    raise invalid(f"* GenerateContentRequest.contents[{i}]: function calls come from the model role")
                called.add(part["functionCall"].get("name"))
            if "functionResponse" in part:
                name = part["functionResponse"].get("name")
                if role != "user" or name not in called:
                    raise invalid(
                        f"* GenerateContentRequest.contents[{i}].parts: function response {name!r} "
                        "does not answer a function call of an earlier model turn"
                    )
    if "gemini-3" in model:
        check_signatures(contents)
    if "systemInstruction" in request:
        check_parts(request["systemInstruction"].get("parts"), "system_instruction")
    for i, tool in enumerate(request.get("tools") or ()):
        for j, declaration in enumerate(tool.get("functionDeclarations") or ()):
            where = f"tools[{i}].function_declarations[{j}]"
            if not FUNCTION_NAME.match(declaration.get("name", "")):
                raise invalid(f"* GenerateContentRequest.{where}.name: invalid function name")
            if "parameters" in declaration:
                check_schema(declaration["parameters"], f"GenerateContentRequest.{where}.parameters", True)
    calling = (request.get("toolConfig") or {}).get("functionCallingConfig") or {}
    if calling.get("mode", "AUTO") not in ("AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED"):
        raise invalid(f"Invalid value at 'tool_config.function_calling_config.mode', {calling['mode']!r}")
    if calling.get("allowedFunctionNames") and calling.get("mode") != "ANY":
        raise invalid("* allowed_function_names may be set only when the mode is ANY")
    config = request.get("generationConfig") or {}
    if len(config.get("stopSequences") or ()) > 5:
        raise invalid("* GenerationConfig.stop_sequences: at most 5 stop sequences")
    if not 1 <= config.get("candidateCount", 1) <= 8:
        raise invalid("* GenerationConfig.candidate_count: must be between 1 and 8")
    if not 0 <= config.get("temperature", 1) <= 2:
        raise invalid("* GenerationConfig.temperature: must be in [0.0, 2.0]")
    if "responseSchema" in config:
        if config.get("responseMimeType") != "application/json":
            raise invalid("* GenerationConfig.response_schema: requires response_mime_type application/json")
        check_schema(config["responseSchema"], "GenerationConfig.response_schema", False)
    if "thinkingConfig" in config:
        check_thinking(config["thinkingConfig"], model)


def check_thinking(thinking, model):
    where = "* GenerationConfig.thinking_config"
    if NO_THINKING.match(model) and thinking:
        raise invalid(f"{where}: thinking is not supported by models/{model}.")
    budget, level = thinking.get("thinkingBudget"), thinking.get("thinkingLevel")
    if budget is not None and level is not None:
        raise invalid(f"{where}: thinking_budget and thinking_level cannot be set together.")
    if budget is not None and budget != -1:
        ranges = next(ranges for pattern, ranges in BUDGET_RANGES if pattern.match(model))
        if not any(low <= budget <= high for low, high in ranges):
            if budget == 0:
                raise invalid("Budget 0 is invalid. This model only works in thinking mode.")
            spans = " or ".join(f"{low} to {high}" if low != high else str(low) for low, high in ranges)
            raise invalid(f"{where}.thinking_budget: the thinking budget {budget} is invalid; models/{model} takes {spans} (or -1).")
    if level is not None:
        levels = (PRO_LEVELS if "pro" in model else FLASH_LEVELS) if LEVEL_MODELS.match(model) else frozenset()
        if level.lower() not in levels:
            raise invalid(f"{where}.thinking_level: thinking level {level!r} is not supported by models/{model}.")


def check_parts(parts, path):
    if not parts:
        raise invalid(f"* GenerateContentRequest.{path}.parts: contents.parts must not be empty.")
    for j, part in enumerate(parts):
        present = [name for name in DATA_FIELDS if name in part]
        if len(present) != 1:
            raise invalid(f"* GenerateContentRequest.{path}.parts[{j}].data: required oneof field 'data' must have one initialized field")
        if present == ["text"] and not part["text"]:
            raise invalid("Unable to submit request because it has an empty text parameter.")


# --- replies ------------------------------------------------------------------------------------

def words(text):
    return len(text.split())


def thinks(model, config):
    """Whether ``model`` thinks for this request (models that think do unless the budget is 0)."""
    return not NO_THINKING.match(model) and (config.get("thinkingConfig") or {}).get("thinkingBudget") != 0


def check_signatures(contents):
    """Gemini 3 (the thought signatures guide): in the current turn (the contents after the last
    user text), the first function call of each model step must carry its thoughtSignature."""
    start = 0
    for i, content in enumerate(contents):
        if content.get("role", "user") == "user" and any("text" in part for part in content["parts"]):
            start = i + 1
    for i in range(start, len(contents)):
        calls = [part for part in contents[i]["parts"] if "functionCall" in part]
        if contents[i].get("role") == "model" and calls and not calls[0].get("thoughtSignature"):
            name = calls[0]["functionCall"].get("name")
            raise invalid(f"Function call is missing a thought_signature in functionCall parts. Additional data, function call `default_api:{name}`, position {i + 1}.")


def signature(text):
    """The thoughtSignature the emulator gives a function call it thought about (opaque bytes, base64)."""
    return base64.b64encode(hashlib.sha256(b"gemini-emulator:" + text.encode()).digest()).decode()


def reply_for(request, fault, model="gemini"):
    """The candidates' content, finish reason and usage for a valid GenerateContentRequest:
    (answer parts or None, finish reason, prompt words, answer words, thought text or None)."""
    contents, config = request["contents"], request.get("generationConfig") or {}
    prompt_words = sum(words(p.get("text", "")) for c in contents for p in c["parts"])
    prompt_words += sum(words(p.get("text", "")) for p in (request.get("systemInstruction") or {}).get("parts", ()))
    last = contents[-1]["parts"]
    text = " ".join(p["text"] for p in last if "text" in p)
    responses = [p["functionResponse"]["response"] for p in last if "functionResponse" in p]
    declarations = [d for t in request.get("tools") or () for d in t.get("functionDeclarations") or ()]
    calling = (request.get("toolConfig") or {}).get("functionCallingConfig") or {}
    if fault == "block-prompt":
        return None, None, prompt_words, 0, None
    thought = "Considering: " + (text or "the function results") if thinks(model, config) else None
    # ANY: the model must call one (as Gemini does); AUTO: when asked to ("call tool" in the text).
    if declarations and calling.get("mode") != "NONE" and ("call tool" in text or calling.get("mode") == "ANY") and not responses:
        name = (calling.get("allowedFunctionNames") or [declarations[0]["name"]])[0]
        part = {"functionCall": {"name": name, "args": {"query": text}}}
        if thought is not None:
            part["thoughtSignature"] = signature(thought)
        return [part], "STOP", prompt_words, 3, thought
    if responses and not text:
        answer = "result: " + orjson.dumps(responses if len(responses) > 1 else responses[0]).decode()
    elif config.get("responseMimeType") == "application/json":
        answer = orjson.dumps({"echo": text}).decode()
    else:
        answer = "echo: " + text
    reason = "STOP"
    for stop in config.get("stopSequences") or ():
        if stop in answer:
            answer = answer[: answer.index(stop)]
    limit = config.get("maxOutputTokens")
    if limit is not None and thought is not None:
        limit = max(0, limit - words(thought))  # thinking is taken from maxOutputTokens first
    if limit is not None and words(answer) > limit:
        answer, reason = " ".join(answer.split()[:limit]), "MAX_TOKENS"
    return ([{"text": answer}] if answer else []), reason, prompt_words, words(answer), thought


def usage_metadata(prompt, output, thoughts, cached):
    """``usageMetadata`` as Gemini writes it: counts that are 0 are left out (candidates excepted)."""
    usage = {"promptTokenCount": prompt, "candidatesTokenCount": output, "totalTokenCount": prompt + output + thoughts}
    if cached:
        usage["cachedContentTokenCount"] = cached
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def responses_for(model, request, serial, fault, stream, cached=0):
    """The GenerateContentResponse documents to send (one, or the stream's chunks)."""
    parts, reason, prompt, output, thought = reply_for(request, fault, model)
    config = request.get("generationConfig") or {}
    count = config.get("candidateCount", 1)
    thoughts = words(thought) * count if thought else 0
    shown = [{"text": thought, "thought": True}] if thought and (config.get("thinkingConfig") or {}).get("includeThoughts") else []
    base = {"modelVersion": model, "responseId": f"emu-{serial}"}
    usage = usage_metadata(prompt, output * count, thoughts, cached)
    if parts is None:
        return [{**base, "promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": usage}]
    if not stream or not parts or "functionCall" in parts[0]:
        pieces = [shown + parts] if not stream or not shown else [shown, parts]
    else:
        split = parts[0]["text"].split(" ")
        size = max(1, math.ceil(len(split) / 3))
        pieces = [[{"text": " ".join(split[i : i + size]) + (" " if i + size < len(split) else "")}] for i in range(0, len(split), size)]
        if shown:
            pieces.insert(0, shown)
    out = []
    for n, piece in enumerate(pieces):
        last = n == len(pieces) - 1
        candidates = []
        for index in range(count):
            candidate = {"content": {"role": "model", "parts": piece}, "index": index}
            if last:
                candidate["finishReason"] = reason
            candidates.append(candidate)
        done = sum(words(p.get("text", "")) for q in pieces[: n + 1] for p in q if not p.get("thought"))
        done = done if parts and "text" in parts[0] else (output if last else 0)
        running = usage_metadata(prompt, done * count, thoughts, cached)
        out.append({**base, "candidates": candidates, "usageMetadata": usage if last else running})
    if fault == "cut-stream":
        for document in out:
            for candidate in document["candidates"]:
                candidate.pop("finishReason", None)
        return out[:1]
    if fault == "stream-error":
        return out[:1] + [GoogleError(500, "An internal error has occurred.").body()]
    return out


def embedding(text, dimensions):
    digest = hashlib.sha256(text.encode()).digest()
    values = [(byte - 127.5) / 127.5 for byte in digest[:dimensions]]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


def embed(model, request):
    content = request.get("content") or {}
    check_parts(content.get("parts"), "content")
    if request.get("model", f"models/{model}") != f"models/{model}":
        raise invalid(f"* BatchEmbedContentsRequest.model: the model of each request must be models/{model}")
    text = " ".join(part.get("text", "") for part in content["parts"])
    dimensions = min(request.get("outputDimensionality") or DIMENSIONS, DIMENSIONS)
    return {"values": embedding(text, dimensions)}


# --- the server ------------------------------------------------------------------------------------

class Emulator:
    def __init__(self, api_key):
        self.api_key = api_key.encode() if api_key else None
        self.log = deque(maxlen=1000)
        self.serial = 0
        self.cache = ImplicitCache()

    def answer(self, request):
        """(status, header block, body bytes or list of SSE event bytes)."""
        path, _, query = request.target.partition(b"?")
        params = dict(item.partition(b"=")[::2] for item in query.split(b"&") if item)
        if path == LOG_HOOK:
            if request.method == b"DELETE":
                self.log.clear()
            return 200, JSON_HEADER, orjson.dumps({"requests": list(self.log)})
        self.log.append(logged(request))
        try:
            return self.route(request, path, params)
        except GoogleError as error:
            return error.status, JSON_HEADER, orjson.dumps(error.body())

    def route(self, request, path, params):
        key = request.headers.get(b"x-goog-api-key") or params.get(b"key")
        if not key:
            raise GoogleError(403, "Method doesn't allow unregistered callers (callers without established "
                              "identity). Please use API Key or other form of API consumer identity to call this API.")
        if self.api_key is not None and key != self.api_key:
            raise GoogleError(400, "API key not valid. Please pass a valid API key.", reason="API_KEY_INVALID")
        model, _, method = path[len(PREFIX) :].decode("latin-1").partition(":")
        if not path.startswith(PREFIX) or request.method != b"POST" or not model or "/" in model:
            raise GoogleError(404, f"The requested URL {path.decode('latin-1')} was not found on this server.")
        if not (model.startswith("gemini") or "embedding" in model):
            raise GoogleError(404, f"models/{model} is not found for API version v1beta, or is not supported for {method}.")
        fault = (request.headers.get(b"x-emulator-fault") or b"").decode("latin-1").strip()
        if fault.startswith("status="):
            status = int(fault[7:])
            raise GoogleError(status, f"Injected by x-emulator-fault: status {status}.")
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            raise invalid("Invalid JSON payload received. Unexpected token.") from None
        self.serial += 1
        if method in ("generateContent", "streamGenerateContent"):
            body = check(body, "GenerateContentRequest", "")
            check_generate(body, model)
            cached = self.cache.cached(model, body) if thinks(model, {}) else 0
            documents = responses_for(model, body, self.serial, fault, method != "generateContent", cached)
            if method == "generateContent":
                return 200, JSON_HEADER, orjson.dumps(documents[0])
            if params.get(b"alt") == b"sse":
                return 200, SSE_HEADER, [b"data: " + orjson.dumps(d) + b"\r\n\r\n" for d in documents]
            return 200, JSON_HEADER, orjson.dumps(documents)
        if method == "batchEmbedContents":
            requests = check(body, "BatchEmbedContentsRequest", "").get("requests")
            if not requests:
                raise invalid("* BatchEmbedContentsRequest.requests: requests is not specified")
            return 200, JSON_HEADER, orjson.dumps({"embeddings": [embed(model, r) for r in requests]})
        if method == "embedContent":
            return 200, JSON_HEADER, orjson.dumps({"embedding": embed(model, check(body, "EmbedContentRequest", ""))})
        raise GoogleError(404, f"The requested URL {path.decode('latin-1')} was not found on this server.")


class ImplicitCache:
    """Request prefixes seen before, per model: systemInstruction, tools and the first k contents."""

    def __init__(self):
        self.entries = set()

    def cached(self, model, request):
        """The words of the longest prefix of ``request`` an earlier request had; this one's are kept."""
        digest = hashlib.sha256(model.encode())
        head = {key: request.get(key) for key in ("systemInstruction", "tools", "toolConfig")}
        digest.update(orjson.dumps(head, option=orjson.OPT_SORT_KEYS))
        total = sum(words(p.get("text", "")) for p in (request.get("systemInstruction") or {}).get("parts", ()))
        found = 0
        for content in request["contents"]:
            digest.update(orjson.dumps(content, option=orjson.OPT_SORT_KEYS))
            total += sum(words(p.get("text", "")) for p in content["parts"])
            key = digest.hexdigest()
            if key in self.entries:
                found = total
            elif total >= MIN_CACHED:
                self.entries.add(key)
        return found


def logged(request):
    try:
        body = orjson.loads(request.body) if request.body else ""
    except orjson.JSONDecodeError:
        body = request.body.decode("utf-8", "replace")
    return {
        "method": request.method.decode("latin-1"),
        "path": request.target.decode("latin-1"),
        "headers": {k.decode("latin-1"): v.decode("latin-1") for k, v in request.headers.items()},
        "body": body,
    }


class Connection(asyncio.Protocol):
    def __init__(self, emulator):
        self.emulator = emulator
        self.parser = RequestParser()
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        try:
            requests = self.parser.feed(data)
        except AlloyError as error:
            body = orjson.dumps(GoogleError(400, error.message).body())
            self.transport.write(frame_response(error.status, JSON_HEADER, body, True))
            self.transport.close()
            return
        for request in requests:
            try:
                status, headers, payload = self.emulator.answer(request)
            except Exception as bug:  # an emulator bug answers 500 (visible in the test), the server lives on
                status, headers, payload = 500, JSON_HEADER, orjson.dumps(GoogleError(500, f"emulator bug: {bug!r}").body())
            close = not request.keep_alive
            if type(payload) is bytes:
                self.transport.write(frame_response(status, headers, payload, close))
            else:
                chunks = b"".join(frame_chunk(event) for event in payload)
                self.transport.write(frame_stream_head(status, headers, close) + chunks + LAST_CHUNK)
            if close:
                self.transport.close()
                return


async def serve(host, port, api_key):
    emulator = Emulator(api_key)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(emulator), host, port)
    bound = server.sockets[0].getsockname()
    print(f"gemini-emulator listening on http://{bound[0]}:{bound[1]}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()


def main(argv):
    parser = argparse.ArgumentParser(description="A strict, deterministic Gemini API emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on stderr)")
    parser.add_argument("--api-key", help="the only key accepted (default: any non-empty key)")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.api_key))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

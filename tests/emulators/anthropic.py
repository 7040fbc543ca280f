"""A strict Anthropic Messages API emulator: ``POST /v1/messages``, written from the public API reference.

    python tests/emulators/anthropic.py --port 0 [--api-key K]

prints ``anthropic-emulator listening on http://127.0.0.1:PORT`` to stderr and serves until SIGTERM.

Strict like the real API, in its error shape (``{"type": "error", "error": {type, message}}``):
a missing or wrong ``x-api-key`` is a 401 authentication_error (any non-empty key passes without
``--api-key``); a missing ``anthropic-version``, a body that is not JSON, an unknown top-level field, a
missing ``model`` / ``max_tokens`` / ``messages``, a ``system`` role inside ``messages``, roles that do
not alternate or a first turn that is not the user's, empty text blocks, a ``tool_result`` whose id
is not a ``tool_use`` of the turn just before, a ``tool_use`` left unanswered in the next turn,
malformed tools / tool_choice / images / metadata, and out-of-range sampling values are 400
invalid_request_errors. So are, as the API reference and the extended thinking and prompt caching
guides describe them:
    thinking            not {type: enabled, budget_tokens >= 1024} / {type: disabled} / {type:
                        adaptive}; enabled on a model that does not think (Claude 2, 3 before 3.7)
                        or no longer takes a budget (Opus 4.7); budget_tokens not below max_tokens
                        (checked for /v1/messages, not for count_tokens, which has no max_tokens);
                        with thinking on: a temperature other than 1, top_k, top_p outside 0.95..1,
                        a tool_choice that forces a tool (any, tool), and a last assistant turn with
                        tool_use that does not start with its thinking block
    thinking blocks     in a user turn, or whose signature the emulator did not issue (it signs its
                        own: an HMAC of the thinking text; redacted_thinking data likewise)
    cache_control       not {type: ephemeral[, ttl: 5m | 1h]}; on a block type that cannot carry it
                        (thinking, redacted_thinking); more than 4 in one request; a 1h one after a
                        5m one (tools, then system, then messages)
    fields              a block, system block or tool with a field its type does not have

Deterministic replies: ``"echo: " + the last user text`` (the tool results' text when the last user
turn has only those), one word per token. With thinking enabled (or adaptive), the reply starts
with a signed ``thinking`` block ("Considering: " + the text), plus a ``redacted_thinking`` block
when the text holds Anthropic's documented test string ``REDACTED_TRIGGER``; its words count as
output tokens and come off what max_tokens leaves the answer. With tools, a user text containing "call tool" (or a
tool_choice of ``any`` / ``tool``) gets one ``tool_use`` block for the first (or the named) tool with
input ``{"query": text}`` and stop_reason ``tool_use``, unless tool_choice is ``none``. A stop
sequence found in the reply cuts it there (``stop_sequence``); more words than ``max_tokens`` are cut
to ``max_tokens`` words (``max_tokens``). ``stream: true`` sends the documented event sequence:
message_start, per block content_block_start (a ping after the first), text_delta per word or
input_json_delta fragments (thinking_delta per word, then a signature_delta), content_block_stop;
then message_delta (stop reason, cumulative usage) and message_stop.

Prompt caching as the API reports it: the prefix up to each ``cache_control`` breakpoint (tools,
system, messages in that order, the model included) is cached once it is at least 1024 tokens
(words here); a request whose breakpoint prefix was cached before reads it
(``cache_read_input_tokens``), the prefix up to its last breakpoint beyond that is written
(``cache_creation_input_tokens``, split by ttl in ``cache_creation``), and ``input_tokens`` is what
follows the last breakpoint (at least 1). Entries do not expire.

Test hooks: ``GET /_emulator/requests`` returns the log (JSON list of {method, path, headers, body},
oldest first); ``DELETE`` clears it. Header ``x-emulator-fault``, items separated by ";":
    status=<400..599>[;retry-after=<s>]   answer that status with Anthropic's error body for it
    mid-stream-error                      a stream that sends an ``error`` event after its first delta
    cut-mid-stream                        a stream whose connection closes after its first delta
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import itertools
import os
import re
import signal
import sys

import orjson

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:  # run as a script: make the repository's ``alloy`` importable
    sys.path.insert(0, REPO)

from alloy.core import LAST_CHUNK, RequestParser, frame_chunk, frame_response, frame_stream_head  # noqa: E402
from alloy.errors import AlloyError  # noqa: E402

JSON_HEADER = b"content-type: application/json\r\n"
SSE_HEADER = b"content-type: text/event-stream; charset=utf-8\r\ncache-control: no-cache\r\n"
VERSIONS = frozenset((b"2023-06-01", b"2023-01-01"))
TOP_LEVEL = frozenset(
    ("model", "messages", "max_tokens", "metadata", "stop_sequences", "stream", "system", "temperature",
     "top_k", "top_p", "tools", "tool_choice", "thinking", "service_tier", "output_config")
)  # fmt: skip
EFFORTS = ("low", "medium", "high", "xhigh", "max")  # output_config.effort
TOOL_FIELDS = frozenset(("name", "description", "input_schema", "cache_control", "type"))
# block type -> the fields it may have (request side: "Extra inputs are not permitted" otherwise)
BLOCK_FIELDS = {
    "text": frozenset(("type", "text", "cache_control", "citations")),
    "image": frozenset(("type", "source", "cache_control")),
    "document": frozenset(("type", "source", "cache_control", "title", "context", "citations")),
    "tool_use": frozenset(("type", "id", "name", "input", "cache_control")),
    "tool_result": frozenset(("type", "tool_use_id", "content", "is_error", "cache_control")),
    "thinking": frozenset(("type", "thinking", "signature")),
    "redacted_thinking": frozenset(("type", "data")),
}
MIN_THINKING_BUDGET = 1024
MIN_THINKING_TOP_P = 0.95
THINKING_TYPES = frozenset(("enabled", "disabled", "adaptive"))
NO_THINKING = re.compile(r"claude-(?:instant|2|3-(?!7))")  # models that do not think
ADAPTIVE_ONLY = re.compile(r"claude-opus-4-7")  # manual thinking (budget_tokens) removed
CACHE_TTLS = ("1h", "5m")  # in the order they may appear in a request
MAX_BREAKPOINTS = 4
MIN_CACHEABLE = 1024  # tokens (words here) a prefix needs to be cached
SIGNING_KEY = b"anthropic-emulator thinking signatures"
# Anthropic's documented string that makes a thinking model answer a redacted_thinking block.
REDACTED_TRIGGER = "ANTHROPIC_MAGIC_STRING_TRIGGER_REDACTED_THINKING_46C9A13E193C177646C7398A98432ECCCE4C1253D5E2D82641AC0E52CC2876CB"
TOOL_CHOICE_TYPES = frozenset(("auto", "any", "tool", "none"))
IMAGE_TYPES = frozenset(("image/jpeg", "image/png", "image/gif", "image/webp"))
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
# status -> the Anthropic error type that status carries
STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
STREAM_FAULTS = frozenset(("mid-stream-error", "cut-mid-stream"))


class Reject(Exception):
    """An answer in Anthropic's error shape."""

    def __init__(self, status, message, kind=None, headers=b""):
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind or STATUS_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        self.headers = headers


def invalid(message):
    return Reject(400, message)


# --- validation: what the real API refuses ----------------------------------------------------------

def validate(body):
    """Raise ``Reject`` for a Messages request body the real API would refuse."""
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    for name in body:
        if name not in TOP_LEVEL:
            raise invalid(f"{name}: Extra inputs are not permitted")
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            raise invalid(f"{name}: Field required")
    if not isinstance(body["model"], str) or not body["model"]:
        raise invalid("model: Input should be a non-empty string")
    if not is_int(body["max_tokens"]) or body["max_tokens"] < 1:
        raise invalid("max_tokens: Input should be an integer greater than or equal to 1")
    check_system(body.get("system"))
    check_options(body)
    tool_names = check_tools(body.get("tools"), body.get("tool_choice"))
    check_messages(body["messages"], tool_names)
    check_thinking(body)
    check_cache_controls(body)


def validate_messages(body):
    """``validate`` plus what only a Messages call (which has a max_tokens) is refused for."""
    validate(body)
    thinking = body.get("thinking") or {}
    if thinking.get("type") == "enabled" and thinking["budget_tokens"] >= body["max_tokens"]:
        raise invalid(
            f"`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at "
            f"https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size "
            f"(max_tokens: {body['max_tokens']}, budget_tokens: {thinking['budget_tokens']})"
        )


def is_int(value):
    return type(value) is int


def is_number(value):
    return type(value) in (int, float)


def check_system(system):
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list) or not all(is_text_block(block) for block in system):
        raise invalid("system: Input should be a string or a list of text blocks")
    for j, block in enumerate(system):
        check_fields(block, BLOCK_FIELDS["text"], f"system.{j}")


def check_fields(holder, allowed, where):
    for name in holder:
        if name not in allowed:
            raise invalid(f"{where}.{name}: Extra inputs are not permitted")


def is_text_block(block):
    return isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str) and block["text"]


def check_options(body):
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict) or set(metadata) - {"user_id"}:
            raise invalid("metadata: only user_id is permitted")
        if metadata.get("user_id") is not None and not isinstance(metadata["user_id"], str):
            raise invalid("metadata.user_id: Input should be a valid string")
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) and s.strip() for s in stops)):
        raise invalid("stop_sequences: Input should be a list of non-whitespace strings")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise invalid("stream: Input should be a valid boolean")
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and (not is_number(value) or not 0 <= value <= 1):
            raise invalid(f"{name}: Input should be a number between 0 and 1")
    if body.get("top_k") is not None and (not is_int(body["top_k"]) or body["top_k"] < 0):
        raise invalid("top_k: Input should be a non-negative integer")
    config = body.get("output_config")
    if config is not None:
        if not isinstance(config, dict):
            raise invalid("output_config: Input should be a valid dictionary")
        check_fields(config, {"effort", "format"}, "output_config")
        if config.get("effort") is not None and config["effort"] not in EFFORTS:
            raise invalid(f"output_config.effort: Input should be {', '.join(repr(e) for e in EFFORTS)}")
        if config.get("format") is not None:
            schema_format = config["format"]
            if not isinstance(schema_format, dict) or schema_format.get("type") != "json_schema" or not isinstance(schema_format.get("schema"), dict):
                raise invalid("output_config.format: Input should be {type: 'json_schema', schema: {...}}")


def check_tools(tools, choice):
    names = []
    if tools is not None:
        if not isinstance(tools, list):
            raise invalid("tools: Input should be a valid list")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or set(tool) - TOOL_FIELDS:
                raise invalid(f"tools.{i}: unexpected fields")
            if not isinstance(tool.get("name"), str) or not TOOL_NAME.match(tool["name"]):
                raise invalid(f"tools.{i}.name: String should match pattern '{TOOL_NAME.pattern}'")
            schema = tool.get("input_schema")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                raise invalid(f"tools.{i}.input_schema: an object schema (type: object) is required")
            if "description" in tool and not isinstance(tool["description"], str):
                raise invalid(f"tools.{i}.description: Input should be a valid string")
            if tool["name"] in names:
                raise invalid(f"tools: Tool names must be unique ({tool['name']})")
            names.append(tool["name"])
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in TOOL_CHOICE_TYPES:
            raise invalid("tool_choice: Input should be an object with type auto, any, tool or none")
        if set(choice) - {"type", "name", "disable_parallel_tool_use"}:
            raise invalid("tool_choice: unexpected fields")
        if not names:
            raise invalid("tool_choice may only be specified while providing tools")
        if choice["type"] == "tool" and choice.get("name") not in names:
            raise invalid("tool_choice.name: must name one of the tools")
        if "disable_parallel_tool_use" in choice and not isinstance(choice["disable_parallel_tool_use"], bool):
            raise invalid("tool_choice.disable_parallel_tool_use: Input should be a valid boolean")
    return names


def check_messages(messages, tool_names):
    if not isinstance(messages, list) or not messages:
        raise invalid("messages: at least one message is required")
    seen_ids, pending = set(), set()  # tool_use ids seen so far; those the next turn must answer
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) - {"role", "content"}:
            raise invalid(f"messages.{i}: only role and content are permitted")
        role = message.get("role")
        if role == "system":
            raise invalid(
                f'messages.{i}.role: Unexpected role "system". The Messages API accepts a top-level `system` '
                "parameter, not \"system\" as an input message role."
            )
        if role not in ("user", "assistant"):
            raise invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if i == 0 and role != "user":
            raise invalid("messages: first message must use the \"user\" role")
        if i > 0 and messages[i - 1].get("role") == role:
            raise invalid('messages: roles must alternate between "user" and "assistant"')
        blocks = content_blocks(message.get("content"), i, last=i == len(messages) - 1)
        answered = set()
        for j, block in enumerate(blocks):
            check_block(block, role, f"messages.{i}.content.{j}")
            if block["type"] == "tool_use":
                if block["id"] in seen_ids:
                    raise invalid(f"messages.{i}.content.{j}: tool_use ids must be unique ({block['id']})")
                seen_ids.add(block["id"])
            elif block["type"] == "tool_result":
                if block["tool_use_id"] not in pending:
                    raise invalid(
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{block['tool_use_id']}. Each `tool_result` block must have a corresponding "
                        "`tool_use` block in the previous message."
                    )
                answered.add(block["tool_use_id"])
        if pending - answered:
            missing = ", ".join(sorted(pending - answered))
            raise invalid(
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                f"{missing}. Each `tool_use` block must have a corresponding `tool_result` block in the next message."
            )
        pending = {block["id"] for block in blocks if block["type"] == "tool_use"}


def content_blocks(content, i, last):
    if isinstance(content, str):
        if not content and not last:
            raise invalid(f"messages.{i}: all messages must have non-empty content")
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list) or (not content and not last):
        raise invalid(f"messages.{i}.content: Input should be a string or a non-empty list of blocks")
    return content


def check_block(block, role, where):
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        if not is_text_block(block):
            raise invalid(f"{where}: text content blocks must be non-empty")
    elif kind == "image" and role == "user":
        source = block.get("source")
        if not isinstance(source, dict):
            raise invalid(f"{where}.source: Field required")
        if source.get("type") == "base64":
            if source.get("media_type") not in IMAGE_TYPES or not isinstance(source.get("data"), str):
                raise invalid(f"{where}.source: base64 images need media_type in {sorted(IMAGE_TYPES)} and data")
        elif source.get("type") == "url":
            if not isinstance(source.get("url"), str) or not source["url"].startswith(("https://", "http://")):
                raise invalid(f"{where}.source.url: Input should be an http(s) URL")
        else:
            raise invalid(f"{where}.source.type: Input should be 'base64' or 'url'")
    elif kind == "document" and role == "user":
        source = block.get("source")
        if not isinstance(source, dict):
            raise invalid(f"{where}.source: Field required")
        kinds = {"base64": "application/pdf", "text": "text/plain"}
        if source.get("type") in kinds:
            if source.get("media_type") != kinds[source["type"]] or not isinstance(source.get("data"), str):
                raise invalid(f"{where}.source: a {source['type']} document needs media_type {kinds[source['type']]!r} and data")
        elif source.get("type") == "url":
            if not isinstance(source.get("url"), str) or not source["url"].startswith(("https://", "http://")):
                raise invalid(f"{where}.source.url: Input should be an http(s) URL")
        else:
            raise invalid(f"{where}.source.type: Input should be 'base64', 'text' or 'url'")
    elif kind == "tool_use" and role == "assistant":
        if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
            raise invalid(f"{where}: tool_use blocks need an id and a name")
        if not isinstance(block.get("input"), dict):
            raise invalid(f"{where}.input: Input should be a valid dictionary")
    elif kind == "tool_result" and role == "user":
        if not isinstance(block.get("tool_use_id"), str):
            raise invalid(f"{where}.tool_use_id: Field required")
        content = block.get("content")
        if content is not None and not isinstance(content, str):
            if not isinstance(content, list) or not all(isinstance(b, dict) and b.get("type") in ("text", "image") for b in content):
                raise invalid(f"{where}.content: Input should be a string or a list of text and image blocks")
        if "is_error" in block and not isinstance(block["is_error"], bool):
            raise invalid(f"{where}.is_error: Input should be a valid boolean")
    elif kind == "thinking" and role == "assistant":
        if not isinstance(block.get("thinking"), str) or not isinstance(block.get("signature"), str):
            raise invalid(f"{where}: thinking blocks need thinking and signature strings")
        if not hmac.compare_digest(block["signature"], sign(block["thinking"])):
            raise invalid(f"{where}: Invalid `signature` in `thinking` block")
    elif kind == "redacted_thinking" and role == "assistant":
        if not isinstance(block.get("data"), str) or not hmac.compare_digest(block["data"], REDACTED_DATA):
            raise invalid(f"{where}: Invalid `data` in `redacted_thinking` block")
    else:
        raise invalid(f"{where}: block type {kind!r} is not permitted in a {role} message")
    check_fields(block, BLOCK_FIELDS[kind], where)


def check_thinking(body):
    """The thinking setting, and what it rules out elsewhere in the request."""
    thinking = body.get("thinking")
    if thinking is None:
        return
    if not isinstance(thinking, dict) or thinking.get("type") not in THINKING_TYPES:
        raise invalid("thinking: Input tag should be 'enabled', 'disabled' or 'adaptive'")
    kind = thinking["type"]
    check_fields(thinking, {"type", "budget_tokens"} if kind == "enabled" else {"type"}, f"thinking.{kind}")
    if kind == "disabled":
        return
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not is_int(budget):
            raise invalid("thinking.enabled.budget_tokens: Field required")
        if budget < MIN_THINKING_BUDGET:
            raise invalid(f"thinking.enabled.budget_tokens: Input should be greater than or equal to {MIN_THINKING_BUDGET}")
        if NO_THINKING.match(body["model"]):
            raise invalid(f"thinking: the model {body['model']} does not support extended thinking")
        if ADAPTIVE_ONLY.match(body["model"]):
            raise invalid(f'thinking.type.enabled is not supported for this model. Use thinking.type.adaptive ({body["model"]})')
    if body.get("temperature") is not None and body["temperature"] != 1:
        raise invalid("`temperature` may only be set to 1 when thinking is enabled. Please consult our documentation "
                      "at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#important-considerations-when-using-extended-thinking")
    if body.get("top_k") is not None:
        raise invalid("`top_k` must be unset when thinking is enabled")
    if body.get("top_p") is not None and not MIN_THINKING_TOP_P <= body["top_p"] <= 1:
        raise invalid(f"`top_p` must be greater than or equal to {MIN_THINKING_TOP_P} or unset when thinking is enabled")
    if (body.get("tool_choice") or {}).get("type") in ("any", "tool"):
        raise invalid("Thinking may not be enabled when tool_choice forces tool use.")
    for i in range(len(body["messages"]) - 1, -1, -1):
        message = body["messages"][i]
        if message["role"] != "assistant":
            continue
        blocks = message_blocks(message)
        if any(block["type"] == "tool_use" for block in blocks) and blocks[0]["type"] not in ("thinking", "redacted_thinking"):
            raise invalid(
                f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                f"`{blocks[0]['type']}`. When `thinking` is enabled, a final `assistant` message must start with a "
                "thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend "
                "you include thinking blocks from previous turns. To avoid this requirement, disable `thinking`."
            )
        return


def cache_breakpoints(body):
    """[(where, cache_control)] of the request, in the order Anthropic reads them."""
    found = [(f"tools.{i}", tool["cache_control"]) for i, tool in enumerate(body.get("tools") or ()) if "cache_control" in tool]
    system = body.get("system")
    if isinstance(system, list):
        found += [(f"system.{j}", b["cache_control"]) for j, b in enumerate(system) if "cache_control" in b]
    for i, message in enumerate(body["messages"]):
        found += [(f"messages.{i}.content.{j}", b["cache_control"])
                  for j, b in enumerate(message_blocks(message)) if "cache_control" in b]  # fmt: skip
    return found


def check_cache_controls(body):
    breakpoints = cache_breakpoints(body)
    seen_5m = False
    for where, cache in breakpoints:
        if not isinstance(cache, dict) or cache.get("type") != "ephemeral" or set(cache) - {"type", "ttl"}:
            raise invalid(f"{where}.cache_control: Input should be an object with type 'ephemeral'")
        ttl = cache.get("ttl", "5m")
        if ttl not in CACHE_TTLS:
            raise invalid(f"{where}.cache_control.ttl: Input should be '5m' or '1h'")
        if ttl == "1h" and seen_5m:
            raise invalid("a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block")
        seen_5m = seen_5m or ttl == "5m"
    if len(breakpoints) > MAX_BREAKPOINTS:
        raise invalid(f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {len(breakpoints)}.")


def sign(thinking):
    """The signature the emulator gives (and expects back on) a thinking block."""
    return base64.b64encode(hmac.new(SIGNING_KEY, thinking.encode(), hashlib.sha256).digest()).decode()


REDACTED_DATA = sign("redacted_thinking")


# --- replies ------------------------------------------------------------------------------------------

def words_of(value):
    return len(value.split())


def block_text(block):
    if block.get("type") == "text":
        return block["text"]
    if block.get("type") == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            return " ".join(b.get("text", "") for b in content if b.get("type") == "text")
        return content or ""
    return ""


def message_blocks(message):
    content = message["content"]
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def last_user_text(messages):
    blocks = message_blocks([m for m in messages if m["role"] == "user"][-1])
    texts = [b["text"] for b in blocks if b.get("type") == "text"]
    return " ".join(texts) if texts else " ".join(block_text(b) for b in blocks)


def input_tokens(body):
    system = body.get("system")
    count = words_of(system) if isinstance(system, str) else sum(words_of(b["text"]) for b in system or ())
    for message in body["messages"]:
        count += sum(words_of(block_text(block)) for block in message_blocks(message))
    return max(count, 1)


def prefix_items(body):
    """The request as the cache sees it, in order: [(item without its cache_control, words, cache_control)]."""
    items = [({"tool": without_cache(tool)}, 0, tool.get("cache_control")) for tool in body.get("tools") or ()]
    system = body.get("system")
    system_blocks = [{"type": "text", "text": system}] if isinstance(system, str) else system or []
    items += [({"system": without_cache(b)}, words_of(b["text"]), b.get("cache_control")) for b in system_blocks]
    for i, message in enumerate(body["messages"]):
        items += [({"message": i, "role": message["role"], "block": without_cache(b)}, words_of(block_text(b)),
                   b.get("cache_control")) for b in message_blocks(message)]  # fmt: skip
    return items


def without_cache(holder):
    return {k: v for k, v in holder.items() if k != "cache_control"}


class PromptCache:
    """Prefixes written by earlier requests (keyed by model and content up to a breakpoint)."""

    def __init__(self):
        self.entries = set()

    def usage(self, body):
        """The input side of the usage: input_tokens and the cache reads and writes."""
        items = prefix_items(body)
        words, total, keys, breakpoints = [], 0, [], []
        digest = hashlib.sha256(body["model"].encode())
        for k, (item, count, cache) in enumerate(items):
            total += count
            digest.update(orjson.dumps(item, option=orjson.OPT_SORT_KEYS))
            words.append(total)
            keys.append(digest.hexdigest())
            if cache is not None:
                breakpoints.append((k, cache.get("ttl", "5m")))
        read_at = max((k for k, _ in breakpoints if keys[k] in self.entries), default=-1)
        read = words[read_at] if read_at >= 0 else 0
        written = {"5m": 0, "1h": 0}
        previous = read
        for k, ttl in breakpoints:
            if k > read_at and words[k] >= MIN_CACHEABLE:
                written[ttl] += words[k] - previous
                previous = words[k]
                self.entries.add(keys[k])
        write = written["5m"] + written["1h"]
        return {
            "input_tokens": max(1, total - read - write),
            "cache_creation_input_tokens": write,
            "cache_read_input_tokens": read,
            "cache_creation": {"ephemeral_5m_input_tokens": written["5m"], "ephemeral_1h_input_tokens": written["1h"]},
        }


def thinking_blocks(body, text):
    """The thinking the reply starts with when the request turned thinking on (else [])."""
    if (body.get("thinking") or {}).get("type") not in ("enabled", "adaptive"):
        return []
    thought = "Considering: " + text
    blocks = [{"type": "thinking", "thinking": thought, "signature": sign(thought)}]
    if REDACTED_TRIGGER in text:
        blocks.append({"type": "redacted_thinking", "data": REDACTED_DATA})
    return blocks


def reply(body, serial, usage):
    """The message the emulator answers: (content blocks, stop_reason, stop_sequence, usage)."""
    text = last_user_text(body["messages"])
    tools, choice = body.get("tools") or [], body.get("tool_choice") or {"type": "auto"}
    wants_tool = "call tool" in text or choice["type"] in ("any", "tool")
    thinking = thinking_blocks(body, text)
    thought = sum(words_of(block.get("thinking", "")) for block in thinking)
    if tools and wants_tool and choice["type"] != "none":
        name = choice["name"] if choice["type"] == "tool" else tools[0]["name"]
        block = {"type": "tool_use", "id": f"toolu_emu_{serial:06d}", "name": name, "input": {"query": text}}
        return [*thinking, block], "tool_use", None, {**usage, "output_tokens": thought + 3 + words_of(text)}
    answer, stop_reason, stop_sequence = "echo: " + text, "end_turn", None
    found = [(answer.find(s), s) for s in body.get("stop_sequences") or () if s in answer]
    if found:
        position, stop_sequence = min(found)
        answer, stop_reason = answer[:position], "stop_sequence"
    words, room = answer.split(" "), max(0, body["max_tokens"] - thought)
    if len(words) > room:
        answer, stop_reason, stop_sequence = " ".join(words[:room]), "max_tokens", None
    content = [*thinking, {"type": "text", "text": answer}] if answer else thinking
    return content, stop_reason, stop_sequence, {**usage, "output_tokens": thought + words_of(answer)}


def message_object(body, serial, usage):
    content, stop_reason, stop_sequence, usage = reply(body, serial, usage)
    return {
        "id": f"msg_emu_{serial:06d}",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": {**usage, "service_tier": "standard"},
    }


def stream_events(message):
    """The documented event sequence of ``message``, as (event name, data) pairs."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None, "usage": {**usage, "output_tokens": 1}}
    events = [("message_start", {"message": start})]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            opening, words = {"type": "text", "text": ""}, block["text"].split(" ")
            deltas = [{"type": "text_delta", "text": (" " if k else "") + word} for k, word in enumerate(words)]
        elif block["type"] == "thinking":
            opening, words = {"type": "thinking", "thinking": "", "signature": ""}, block["thinking"].split(" ")
            deltas = [{"type": "thinking_delta", "thinking": (" " if k else "") + word} for k, word in enumerate(words)]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif block["type"] == "redacted_thinking":
            opening, deltas = block, []
        else:
            opening = {**block, "input": {}}
            arguments = orjson.dumps(block["input"]).decode()
            third = max(1, len(arguments) // 3)
            pieces = ["", arguments[:third], arguments[third : 2 * third], arguments[2 * third :]]
            deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in pieces]
        events.append(("content_block_start", {"index": index, "content_block": opening}))
        if index == 0:
            events.append(("ping", {}))
        events.extend(("content_block_delta", {"index": index, "delta": delta}) for delta in deltas)
        events.append(("content_block_stop", {"index": index}))
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    counts = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
    events.append(("message_delta", {"delta": delta, "usage": {name: usage[name] for name in counts}}))
    events.append(("message_stop", {}))
    return [encode_event(name, data) for name, data in events]


def encode_event(name, data):
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **data}) + b"\n\n"


OVERLOADED_EVENT = encode_event("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})


# --- the server ----------------------------------------------------------------------------------------

class Emulator:
    """What the connections share: the expected key, the request log, the message counter, the
    prompt cache."""

    def __init__(self, api_key):
        self.api_key = api_key.encode() if api_key else None
        self.drip = 0.0  # seconds between a stream's events (--drip-ms); 0: all at once
        self.log = []
        self.serial = itertools.count(1)
        self.connections = set()
        self.cache = PromptCache()

    def answer(self, request):
        """-> (status, header block, body bytes or list of SSE events, stream fault or None)."""
        path = request.target.partition(b"?")[0]
        if path == b"/_emulator/requests":
            if request.method == b"DELETE":
                self.log.clear()
            return 200, JSON_HEADER, orjson.dumps(self.log), None
        self.log.append(logged(request))
        serial = next(self.serial)
        request_id = f"req_emu_{serial:06d}"
        try:
            status, headers, payload, fault = self.messages(request, path, serial)
        except Reject as reject:
            error = {"type": "error", "error": {"type": reject.kind, "message": reject.message}, "request_id": request_id}
            status, headers, payload, fault = reject.status, JSON_HEADER + reject.headers, orjson.dumps(error), None
        return status, headers + b"request-id: " + request_id.encode() + b"\r\n", payload, fault

    def messages(self, request, path, serial):
        if path != b"/v1/messages":
            raise Reject(404, f"Not found: {path.decode('latin-1')}")
        if request.method != b"POST":
            raise Reject(405, f"Method {request.method.decode('latin-1')} not allowed", "invalid_request_error")
        headers = request.headers
        key = headers.get(b"x-api-key")
        if not key:
            raise Reject(401, "x-api-key header is required")
        if self.api_key is not None and key != self.api_key:
            raise Reject(401, "invalid x-api-key")
        version = headers.get(b"anthropic-version")
        if version is None:
            raise invalid("anthropic-version: header is required")
        if version not in VERSIONS:
            raise invalid(f"anthropic-version: unknown version {version.decode('latin-1')!r}")
        fault = parse_fault(headers.get(b"x-emulator-fault"))
        if isinstance(fault, int):
            retry = b"retry-after: 1\r\n" if fault in (429, 529) else b""
            raise Reject(fault, f"Injected by x-emulator-fault: status {fault}", headers=retry)
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            raise invalid("There was an error parsing the body: not valid JSON") from None
        validate_messages(body)
        message = message_object(body, serial, self.cache.usage(body))
        if body.get("stream"):
            return 200, SSE_HEADER, stream_events(message), fault
        return 200, JSON_HEADER, orjson.dumps(message), None


def parse_fault(spec):
    """``x-emulator-fault`` -> an error status, a stream fault name, or None."""
    if spec is None:
        return None
    status, fault = None, None
    for item in spec.decode("latin-1").split(";"):
        name, _, value = item.strip().partition("=")
        if name == "status" and value.isdigit() and 400 <= int(value) <= 599:
            status = int(value)
        elif name in STREAM_FAULTS and not value:
            fault = name
        elif name != "retry-after":
            raise invalid(f"x-emulator-fault: cannot apply {item.strip()!r}")
    return status if status is not None else fault


def logged(request):
    try:
        body = orjson.loads(request.body) if request.body else ""
    except orjson.JSONDecodeError:
        body = request.body.decode("utf-8", "replace")
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in request.headers.items()}
    return {"method": request.method.decode("latin-1"), "path": request.target.decode("latin-1"), "headers": headers, "body": body}


class Connection(asyncio.Protocol):
    """Answers each request as soon as it is complete, in order (nothing here waits)."""

    def __init__(self, emulator):
        self.emulator = emulator
        self.parser = RequestParser()
        self.transport = None
        self.continue_sent = False

    def connection_made(self, transport):
        self.transport = transport
        self.emulator.connections.add(self)

    def connection_lost(self, exc):
        self.emulator.connections.discard(self)

    def data_received(self, data):
        if self.transport.is_closing():
            return
        try:
            requests = self.parser.feed(data)
        except AlloyError as error:
            body = orjson.dumps({"type": "error", "error": {"type": "invalid_request_error", "message": error.message}})
            self.transport.write(frame_response(error.status, JSON_HEADER, body, True))
            self.transport.close()
            return
        for request in requests:
            if not self.serve(request):
                self.transport.close()
                return
        if self.parser.expect_continue and not self.continue_sent:
            # RFC 9110 section 10.1.1: the client holds the body back until told to send it.
            self.continue_sent = True
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        elif requests:
            self.continue_sent = False

    def serve(self, request):
        """Write the answer; False when the connection must close after it."""
        status, headers, payload, fault = self.emulator.answer(request)
        close = not request.keep_alive
        if type(payload) is bytes:
            self.transport.write(frame_response(status, headers, payload, close))
            return not close
        write = self.transport.write
        write(frame_stream_head(status, headers, close))
        if fault is None and self.emulator.drip:
            self.drip(payload, close)
            return True  # the connection is closed, if it must be, after the last event
        if fault is None:
            write(b"".join(frame_chunk(event) for event in payload) + LAST_CHUNK)
            return not close
        # message_start, content_block_start, ping, the first delta: then the fault.
        write(b"".join(frame_chunk(event) for event in payload[:4]))
        if fault == "cut-mid-stream":
            return False  # the body is never finished: the client sees the connection close
        write(frame_chunk(OVERLOADED_EVENT) + LAST_CHUNK)
        return not close


    def drip(self, events, close):
        """A stream's events ``--drip-ms`` apart, as a model writes them (a client can leave mid-way)."""

        def send(at):
            if self.transport.is_closing():
                return
            if at == len(events):
                self.transport.write(LAST_CHUNK)
                if close:
                    self.transport.close()
                return
            self.transport.write(frame_chunk(events[at]))
            asyncio.get_running_loop().call_later(self.emulator.drip, send, at + 1)

        send(0)


async def serve(host, port, api_key, drip=0.0):
    emulator = Emulator(api_key)
    emulator.drip = drip
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(emulator), host, port)
    bound = server.sockets[0].getsockname()
    print(f"anthropic-emulator listening on http://{bound[0]}:{bound[1]}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()
    for connection in list(emulator.connections):
        connection.transport.close()


def main(argv):
    parser = argparse.ArgumentParser(prog="anthropic-emulator", description="A strict Anthropic Messages API emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--api-key", help="accept only this x-api-key (default: any non-empty key)")
    parser.add_argument("--drip-ms", type=float, default=0, help="pace a stream's events this many ms apart")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.api_key, args.drip_ms / 1000))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

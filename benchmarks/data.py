"""Canonical inputs of the micro-benchmarks, built once at import.

Every input is what Alloy sees on the wire in production, not a toy: the request head is what the
official OpenAI Python SDK sends (its ``X-Stainless-*`` headers included), the upstream response is
what api.openai.com answers, and the stream is 200 ``chat.completion.chunk`` events as they arrive
from a streaming chat completion. Each input comes with the reference result the benchmarks check
their output against (``extra_info["correct"]``).
"""

import orjson

# --- request bodies ------------------------------------------------------------------------------

MODEL = "gpt-4o-mini"
REWRITTEN_MODEL = "gpt-4o-mini-2024-07-18"

SMALL_CHAT = {
    "model": MODEL,
    "messages": [
        {"role": "system", "content": "You are a concise assistant. Answer in one sentence."},
        {"role": "user", "content": "What is the capital of France, and why is it famous for its bridges?"},
    ],
    "temperature": 0.2,
    "max_tokens": 64,
    "stream": False,
}
SMALL_BODY = orjson.dumps(SMALL_CHAT)


def _big_chat(target_bytes):
    """A long conversation (a pasted document plus turns) of about ``target_bytes``, with ``model``
    and ``stream`` at the end so a scanner has to skip the whole document to find them."""
    paragraph = (
        "The quarterly report shows revenue growth of 12% driven by the \"enterprise\" segment; "
        "churn fell to 3.1% while support tickets per customer dropped. Café Zürich — ünïcödé too.\n"
    )
    messages = [{"role": "system", "content": "Summarise the user's documents faithfully."}]
    size = 0
    turn = 0
    while size < target_bytes:
        content = paragraph * 40
        messages.append({"role": "user" if turn % 2 == 0 else "assistant", "content": content})
        size += len(content.encode()) + 40
        turn += 1
    return {"messages": messages, "temperature": 0.0, "model": MODEL, "stream": True}


BIG_CHAT = _big_chat(1_000_000)
BIG_BODY = orjson.dumps(BIG_CHAT)

# --- the request as it arrives from the OpenAI Python SDK ---------------------------------------

REQUEST_TARGET = b"/v1/chat/completions"
_REQUEST_HEADERS = [
    (b"Host", b"127.0.0.1:8080"),
    (b"Accept-Encoding", b"gzip, deflate"),
    (b"Connection", b"keep-alive"),
    (b"Accept", b"application/json"),
    (b"Content-Type", b"application/json"),
    (b"User-Agent", b"OpenAI/Python 1.40.0"),
    (b"X-Stainless-Lang", b"python"),
    (b"X-Stainless-Package-Version", b"1.40.0"),
    (b"X-Stainless-OS", b"Linux"),
    (b"X-Stainless-Arch", b"x64"),
    (b"X-Stainless-Runtime", b"CPython"),
    (b"X-Stainless-Runtime-Version", b"3.11.7"),
    (b"Authorization", b"Bearer sk-alloy-0123456789abcdefghijklmnopqrstuvwxyzABCDEF"),
    (b"X-Stainless-Async", b"async:asyncio"),
    (b"x-stainless-retry-count", b"0"),
]


def _request(body):
    head = b"POST " + REQUEST_TARGET + b" HTTP/1.1\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in _REQUEST_HEADERS)
    head += b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    return head + body


def _request_headers(body):
    headers = {name.lower(): value for name, value in _REQUEST_HEADERS}
    headers[b"content-length"] = str(len(body)).encode()
    return headers


SMALL_REQUEST = _request(SMALL_BODY)
BIG_REQUEST = _request(BIG_BODY)
# what every parser must report: (method, target, lower-cased headers, body)
SMALL_REQUEST_EXPECTED = (b"POST", REQUEST_TARGET, _request_headers(SMALL_BODY), SMALL_BODY)
BIG_REQUEST_EXPECTED = (b"POST", REQUEST_TARGET, _request_headers(BIG_BODY), BIG_BODY)

# --- upstream responses -------------------------------------------------------------------------

COMPLETION = {
    "id": "chatcmpl-A1b2C3d4E5f6G7h8I9j0",
    "object": "chat.completion",
    "created": 1732780800,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Paris is the capital of France; its 37 bridges "
                        "over the Seine, like the Pont Neuf, are landmarks.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 38, "completion_tokens": 24, "total_tokens": 62},
    "system_fingerprint": "fp_0ba0d124f1",
}
COMPLETION_BODY = orjson.dumps(COMPLETION)

# the headers api.openai.com sends with a chat completion (values anonymised)
RESPONSE_HEADERS = [
    (b"date", b"Thu, 28 Nov 2024 13:40:00 GMT"),
    (b"content-type", b"application/json"),
    (b"connection", b"keep-alive"),
    (b"access-control-expose-headers", b"X-Request-ID"),
    (b"openai-organization", b"user-abc123"),
    (b"openai-processing-ms", b"412"),
    (b"openai-version", b"2020-10-01"),
    (b"x-ratelimit-limit-requests", b"10000"),
    (b"x-ratelimit-limit-tokens", b"200000"),
    (b"x-ratelimit-remaining-requests", b"9999"),
    (b"x-ratelimit-remaining-tokens", b"199950"),
    (b"x-ratelimit-reset-requests", b"8.64s"),
    (b"x-ratelimit-reset-tokens", b"15ms"),
    (b"x-request-id", b"req_0123456789abcdef0123456789abcdef"),
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains; preload"),
    (b"cf-cache-status", b"DYNAMIC"),
    (b"server", b"cloudflare"),
]


def _response_head(extra):
    head = b"HTTP/1.1 200 OK\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in RESPONSE_HEADERS + extra)
    return head + b"\r\n"


RESPONSE = _response_head([(b"content-length", str(len(COMPLETION_BODY)).encode())]) + COMPLETION_BODY
RESPONSE_EXPECTED = (
    200,
    RESPONSE_HEADERS + [(b"content-length", str(len(COMPLETION_BODY)).encode())],
    COMPLETION_BODY,
)

# --- a streamed chat completion: 200 chat.completion.chunk events -----------------------------

WORDS = ("Paris", " is", " the", " capital", " of", " France", ",", " known", " for", " bridges")


def _chunk_event(index, content, finish=None):
    return {
        "id": "chatcmpl-A1b2C3d4E5f6G7h8I9j0",
        "object": "chat.completion.chunk",
        "created": 1732780800,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0ba0d124f1",
        "choices": [{"index": 0, "delta": {"content": content} if content is not None else {},
                     "logprobs": None, "finish_reason": finish}],
    }


SSE_EVENTS_DATA = [orjson.dumps(_chunk_event(i, WORDS[i % len(WORDS)])) for i in range(199)]
SSE_EVENTS_DATA.append(orjson.dumps(_chunk_event(199, None, "stop")))
SSE_STREAM = b"".join(b"data: " + data + b"\n\n" for data in SSE_EVENTS_DATA) + b"data: [DONE]\n\n"
# what a splitter must produce: (event name or None, data)
SSE_EXPECTED = [(None, data) for data in SSE_EVENTS_DATA] + [(None, b"[DONE]")]


def _pieces(data, size):
    return [data[i : i + size] for i in range(0, len(data), size)]


# the stream as it comes off a TLS socket: arbitrary 1,400-byte pieces cut through events
SSE_STREAM_PIECES = _pieces(SSE_STREAM, 1400)

# the same stream as an upstream chunked response: one chunk per event, as OpenAI sends it
STREAM_RESPONSE_HEAD = _response_head([(b"transfer-encoding", b"chunked")]).replace(
    b"content-type: application/json", b"content-type: text/event-stream; charset=utf-8"
)
_EVENTS = [b"data: " + data + b"\n\n" for data in SSE_EVENTS_DATA] + [b"data: [DONE]\n\n"]
CHUNKED_BODY = b"".join(b"%x\r\n%s\r\n" % (len(event), event) for event in _EVENTS) + b"0\r\n\r\n"
STREAM_RESPONSE = STREAM_RESPONSE_HEAD + CHUNKED_BODY
STREAM_RESPONSE_PIECES = _pieces(STREAM_RESPONSE, 1400)
STREAM_RESPONSE_EXPECTED = (
    200,
    [
        (name, b"text/event-stream; charset=utf-8" if name == b"content-type" else value)
        for name, value in RESPONSE_HEADERS + [(b"transfer-encoding", b"chunked")]
    ],
    SSE_STREAM,
)

# --- framing inputs -----------------------------------------------------------------------------

# what Alloy forwards to the client after dropping hop-by-hop fields
FORWARD_HEADERS = [(name, value) for name, value in RESPONSE_HEADERS if name != b"connection"]
UPSTREAM_REQUEST_HEADERS = [
    (b"host", b"api.openai.com"),
    (b"authorization", b"Bearer sk-proj-0123456789abcdefghijklmnopqrstuvwxyz"),
    (b"content-type", b"application/json"),
    (b"accept", b"application/json"),
    (b"user-agent", b"alloy/0.1"),
]
SSE_EVENT = _EVENTS[0]

# --- routing table ------------------------------------------------------------------------------

EXACT_MODELS = [
    f"{family}{suffix}"
    for family in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3", "o4-mini", "claude-sonnet-4", "gemini-2.5-pro",
                   "llama-3.3-70b", "mistral-large", "command-r-plus")
    for suffix in ("", "-latest", "-2024-08-06", "-fast", "-eu")
]  # 50 names
PREFIXES = ["openai", "anthropic", "gemini", "groq", "together", "fireworks", "mistral", "deepseek",
            "openrouter", "azure"]
WILDCARDS = ["gpt-4o-*", "claude-*-4*", "gemini-*-flash*", "*-instruct", "ft:gpt-4o-mini:*:*",
             "llama-*-8b*", "qwen*", "o1*", "mixtral-*", "*-vision-preview"]
ROUTE_LOOKUPS = {
    # label: (model asked for, expected (target, upstream model))
    "exact": ("claude-sonnet-4-latest", ("exact:claude-sonnet-4-latest", "claude-sonnet-4-latest")),
    "prefix": ("groq/llama-3.1-70b-versatile", ("prefix:groq", "llama-3.1-70b-versatile")),
    "wildcard": ("ft:gpt-4o-mini:acme:custom-v2", ("wildcard:ft:gpt-4o-mini:*:*", "ft:gpt-4o-mini:acme:custom-v2")),
    "miss": ("not-a-model-anyone-serves", None),
}

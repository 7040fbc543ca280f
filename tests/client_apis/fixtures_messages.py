"""OpenAI chat completions shapes as Python data, written from the public API reference (completion
object, chunk object, streaming with ``stream_options.include_usage``), for the Anthropic Messages
client API tests: complete answers, and chunk streams as OpenAI sends them (``usage: null`` on every
chunk but the last, a usage chunk with empty ``choices``, then ``[DONE]``).
"""

import orjson

COMPLETION_ID = "chatcmpl-A1b2C3"
CREATED = 1_760_000_000


def completion(message, finish="stop", usage=None, **choice_extra):
    """A ``chat.completion`` with one choice."""
    choice = {"index": 0, "message": {"role": "assistant", "refusal": None, **message}, "logprobs": None,
              "finish_reason": finish, **choice_extra}  # fmt: skip
    return {
        "id": COMPLETION_ID,
        "object": "chat.completion",
        "created": CREATED,
        "model": "gpt-4o-2024-08-06",
        "choices": [choice],
        "usage": usage or {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    }


def chunk(delta=None, finish=None, usage=None, index=0, **choice_extra):
    """A ``chat.completion.chunk``: a delta of choice ``index``, or (``delta`` None) the usage chunk."""
    body = {"id": COMPLETION_ID, "object": "chat.completion.chunk", "created": CREATED, "model": "gpt-4o",
            "system_fingerprint": "fp_1", "usage": usage}  # fmt: skip
    if delta is None and finish is None:
        body["choices"] = []
    else:
        choice = {"index": index, "delta": delta or {}, "logprobs": None, "finish_reason": finish, **choice_extra}
        body["choices"] = [choice]
    return body


def usage(prompt, completion_tokens, cached=None):
    result = {"prompt_tokens": prompt, "completion_tokens": completion_tokens, "total_tokens": prompt + completion_tokens}
    if cached is not None:
        result["prompt_tokens_details"] = {"cached_tokens": cached, "audio_tokens": 0}
    return result


def tool_start(index, call_id, name):
    function = {"name": name, "arguments": ""}
    return {"tool_calls": [{"index": index, "id": call_id, "type": "function", "function": function}]}


def tool_arguments(index, fragment):
    return {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}


ROLE = {"role": "assistant", "content": "", "refusal": None}

# "Hello, world!" in three deltas, then the finish chunk and the usage chunk.
TEXT_CHUNKS = [
    chunk(ROLE),
    chunk({"content": "Hello"}),
    chunk({"content": ", world"}),
    chunk({"content": "!"}),
    chunk({}, "stop"),
    chunk(usage=usage(9, 4)),
]

# Text, then two parallel tool calls whose arguments come split across chunks (as OpenAI sends them:
# all of call 0, then all of call 1), then finish tool_calls and usage with cached prompt tokens.
TOOL_CHUNKS = [
    chunk({"role": "assistant", "content": None, "refusal": None}),
    chunk({"content": "Let me check."}),
    chunk(tool_start(0, "call_weather1", "get_weather")),
    chunk(tool_arguments(0, '{"ci')),
    chunk(tool_arguments(0, 'ty": "Par')),
    chunk(tool_arguments(0, 'is", "unit": "c"}')),
    chunk(tool_start(1, "call_time2", "get_time")),
    chunk(tool_arguments(1, '{"tz": "Europe/Paris"}')),
    chunk({}, "tool_calls"),
    chunk(usage=usage(120, 40, cached=100)),
]
TOOL_CALLS = [
    ("call_weather1", "get_weather", {"city": "Paris", "unit": "c"}),
    ("call_time2", "get_time", {"tz": "Europe/Paris"}),
]

# A reasoning model behind an OpenAI-compatible server (DeepSeek, vLLM): reasoning, then the answer.
REASONING_CHUNKS = [
    chunk({"role": "assistant", "content": None, "reasoning_content": ""}),
    chunk({"reasoning_content": "The user wants "}),
    chunk({"reasoning_content": "six times seven."}),
    chunk({"content": "42"}),
    chunk({}, "stop"),
    chunk(usage=usage(20, 30)),
]


def to_wire(chunks, done=True):
    """The SSE bytes an OpenAI server sends for ``chunks``."""
    wire = b"".join(b"data: " + orjson.dumps(item) + b"\n\n" for item in chunks)
    return wire + (b"data: [DONE]\n\n" if done else b"")


def feed_all(translator, chunks, done=True):
    """Feed each chunk's data (and [DONE]) to ``translator``, then ``finish``; all events out."""
    out = []
    for item in chunks:
        out.extend(translator.feed(orjson.dumps(item)))
    if done:
        out.extend(translator.feed(b"[DONE]"))
    out.extend(translator.finish())
    return out


def parse_events(events):
    """Anthropic SSE events (bytes, one event each) -> [(event name, decoded data)], checking framing."""
    parsed = []
    for raw in events:
        assert raw.endswith(b"\n\n") and raw.count(b"\n\n") == 1, raw
        name_line, data_line = raw[:-2].split(b"\n")
        assert name_line.startswith(b"event: ") and data_line.startswith(b"data: "), raw
        name, data = name_line[7:].decode(), orjson.loads(data_line[6:])
        assert data["type"] == name, raw  # Anthropic's SDK dispatches on both; they must agree
        parsed.append((name, data))
    return parsed


def blocks_of(events):
    """What a client assembles: per index, the start block with its deltas applied (and whether it
    was stopped), in the order the blocks were started."""
    blocks, stopped = {}, set()
    for name, data in events:
        if name == "content_block_start":
            assert data["index"] == len(blocks), "blocks must be started at consecutive indexes"
            blocks[data["index"]] = dict(data["content_block"], _json="")
        elif name == "content_block_delta":
            assert data["index"] in blocks and data["index"] not in stopped, "delta outside its open block"
            block, delta = blocks[data["index"]], data["delta"]
            field = {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "_json"}[delta["type"]]
            block[field] += delta["partial_json" if field == "_json" else field]
        elif name == "content_block_stop":
            assert data["index"] in blocks and data["index"] not in stopped
            stopped.add(data["index"])
    assert stopped == set(blocks), "every started block is stopped"
    for block in blocks.values():
        raw = block.pop("_json")
        if block["type"] == "tool_use" and raw:
            block["input"] = orjson.loads(raw)
    return [blocks[i] for i in range(len(blocks))]


# A complete answer with text and the two tool calls of TOOL_CALLS (what TOOL_CHUNKS stream).
TOOL_COMPLETION = completion(
    {
        "content": "Let me check.",
        "tool_calls": [
            {"id": i, "type": "function", "function": {"name": n, "arguments": orjson.dumps(a).decode()}}
            for i, n, a in TOOL_CALLS
        ],
    },
    "tool_calls",
    usage=usage(120, 40, cached=100),
)

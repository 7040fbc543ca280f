"""Translation cost: what a request to Anthropic or Gemini costs Alloy on top of a passthrough.

Per request: decode the client's JSON, build the provider's document (``build_request``), and
translate the provider's complete answer back (``translate_response``); per streamed event: one
provider SSE event into OpenAI chunks (``StreamTranslator.feed``). The passthrough row (scan +
model splice, what an OpenAI-compatible route costs) is the baseline in each group.
"""

import orjson
import pytest

from alloy import core
from alloy.providers import TranslateSettings, anthropic, gemini
from data import SMALL_BODY, SMALL_CHAT

SETTINGS = TranslateSettings(api_key="sk-bench")

ANTHROPIC_ANSWER = orjson.dumps(
    {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku-20241022",
        "content": [{"type": "text", "text": "Paris is the capital of France."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 25, "output_tokens": 9},
    }
)
GEMINI_ANSWER = orjson.dumps(
    {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "Paris is the capital of France."}]}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {"promptTokenCount": 25, "candidatesTokenCount": 9, "totalTokenCount": 34},
        "responseId": "r-1",
    }
)
ANTHROPIC_DELTA = orjson.dumps({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " Paris"}})
GEMINI_DELTA = orjson.dumps(
    {"candidates": [{"content": {"role": "model", "parts": [{"text": " Paris"}]}, "index": 0}], "responseId": "r-1"}
)
ANTHROPIC_START = orjson.dumps(
    {
        "type": "message_start",
        "message": {"id": "msg_01", "type": "message", "role": "assistant", "model": "claude", "content": [],
                    "stop_reason": None, "usage": {"input_tokens": 25, "output_tokens": 1}},
    }
)
ANTHROPIC_BLOCK = orjson.dumps({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})


def passthrough(body):
    result = core.scan_body(body)
    return core.rewrite_model(result, "gpt-4o-mini-2024-07-18")


def round_trip(translator, answer):
    def run(body):
        call = translator.build_request(orjson.loads(body), "upstream-model", "chat/completions", SETTINGS)
        status, reply = translator.translate_response(200, answer, "upstream-model", "chat/completions")
        return call, status, reply

    return run


def _anthropic_stream():
    translator = anthropic.StreamTranslator("claude", False)
    translator.feed(b"message_start", ANTHROPIC_START)
    translator.feed(b"content_block_start", ANTHROPIC_BLOCK)
    translator.feed(b"content_block_delta", ANTHROPIC_DELTA)  # the first text goes with the role chunk
    return translator


def _gemini_stream():
    translator = gemini.StreamTranslator("gemini", False)
    translator.feed(None, GEMINI_DELTA)
    return translator


REQUESTS = {
    "passthrough": passthrough,
    "anthropic": round_trip(anthropic, ANTHROPIC_ANSWER),
    "gemini": round_trip(gemini, GEMINI_ANSWER),
}


def _reply_text(name, result):
    if name == "passthrough":
        return orjson.loads(result)["messages"] == SMALL_CHAT["messages"]
    _, status, reply = result
    return status == 200 and orjson.loads(reply)["choices"][0]["message"]["content"] == "Paris is the capital of France."


@pytest.mark.parametrize("route", list(REQUESTS))
def test_translate_request_and_answer(benchmark, route):
    run = REQUESTS[route]
    benchmark.group = "translate: 300 B chat request + complete answer"
    benchmark.extra_info["impl"] = route
    benchmark.extra_info["correct"] = bool(_reply_text(route, run(SMALL_BODY)))
    benchmark(run, SMALL_BODY)


@pytest.mark.parametrize("route", ["anthropic", "gemini"])
def test_translate_stream_event(benchmark, route):
    translator = _anthropic_stream() if route == "anthropic" else _gemini_stream()
    name, data = (b"content_block_delta", ANTHROPIC_DELTA) if route == "anthropic" else (None, GEMINI_DELTA)
    [chunk] = translator.feed(name, data)
    benchmark.group = "translate: one streamed text event"
    benchmark.extra_info["impl"] = route
    benchmark.extra_info["correct"] = orjson.loads(chunk[6:])["choices"][0]["delta"]["content"] == " Paris"
    benchmark(translator.feed, name, data)

"""Client API translation cost: what a Responses (or Messages) client pays Alloy to reach a provider
through chat completions, next to a passthrough.

Per request: decode the client's body and build the chat completions body
(``chat_request_from_responses`` / ``chat_request_from_messages``, then ``orjson.dumps``), and make
the client's answer from a complete chat completion (``response_from_chat`` /
``messages_response_from_chat``, then ``orjson.dumps``). The passthrough row (scan + model splice,
what ``POST /v1/responses`` to an OpenAI provider costs) is the baseline. Per streamed chunk: one
chat completion chunk into the client's events (``ResponseBuilder.feed`` next to
``MessagesStreamTranslator.feed``). A Responses route to Anthropic or Gemini pays these on top of
the provider translation measured in ``test_bench_translate.py``.
"""

import orjson
import pytest

from alloy import core
from alloy.client_apis.messages import chat_request_from_messages, messages_response_from_chat
from alloy.client_apis.messages_stream import MessagesStreamTranslator
from alloy.client_apis.responses_request import chat_request_from_responses
from alloy.client_apis.responses_stream import ResponseBuilder, response_from_chat

RESPONSES_BODY = orjson.dumps({
    "model": "claude-sonnet-4-5",
    "instructions": "You are a concise assistant. Answer in one sentence.",
    "input": [{"role": "user", "content": [{"type": "input_text", "text": "What is the capital of France?"}]}],
    "max_output_tokens": 256,
})  # fmt: skip
MESSAGES_BODY = orjson.dumps({
    "model": "claude-sonnet-4-5",
    "system": "You are a concise assistant. Answer in one sentence.",
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
    "max_tokens": 256,
})  # fmt: skip
ANSWER = orjson.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris is the capital of France."},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 25, "completion_tokens": 9, "total_tokens": 34},
})  # fmt: skip
CHUNK = orjson.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [
    {"index": 0, "delta": {"content": " Paris"}, "finish_reason": None}]})  # fmt: skip


def passthrough(body):
    return core.rewrite_model(core.scan_body(body), "gpt-4o-mini-2024-07-18")


def responses(body):
    request = orjson.loads(body)
    chat = orjson.dumps(chat_request_from_responses(request))
    return chat, orjson.dumps(response_from_chat(orjson.loads(ANSWER), request, request["model"]))


def messages(body):
    request = orjson.loads(body)
    chat = orjson.dumps(chat_request_from_messages(request))
    return chat, orjson.dumps(messages_response_from_chat(orjson.loads(ANSWER), request["model"]))


ROUTES = {"passthrough": (passthrough, RESPONSES_BODY), "responses": (responses, RESPONSES_BODY),
          "messages": (messages, MESSAGES_BODY)}  # fmt: skip


def correct(route, result):
    if route == "passthrough":
        return orjson.loads(result)["model"] == "gpt-4o-mini-2024-07-18"
    chat, answer = result
    said = orjson.loads(answer)
    text = said["output"][0]["content"][0]["text"] if route == "responses" else said["content"][0]["text"]
    return orjson.loads(chat)["messages"][0]["role"] == "system" and text == "Paris is the capital of France."


@pytest.mark.parametrize("route", list(ROUTES))
def test_client_api_request_and_answer(benchmark, route):
    run, body = ROUTES[route]
    benchmark.group = "client API: request to chat completions + complete answer back"
    benchmark.extra_info["impl"] = route
    benchmark.extra_info["correct"] = bool(correct(route, run(body)))
    benchmark(run, body)


@pytest.mark.parametrize("route", ["responses", "messages"])
def test_client_api_stream_chunk(benchmark, route):
    if route == "responses":
        translator = ResponseBuilder(orjson.loads(RESPONSES_BODY), "claude-sonnet-4-5")
    else:
        translator = MessagesStreamTranslator("claude-sonnet-4-5")
    translator.feed(CHUNK)  # the opening events
    [event] = translator.feed(CHUNK)
    benchmark.group = "client API: one streamed chat chunk"
    benchmark.extra_info["impl"] = route
    benchmark.extra_info["correct"] = b'" Paris"' in event
    benchmark(translator.feed, CHUNK)

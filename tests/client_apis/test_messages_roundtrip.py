"""Both directions at once: an Anthropic client in front of an Anthropic provider. The client API
(Anthropic -> OpenAI) and the provider translator ``alloy.providers.anthropic`` (OpenAI -> Anthropic)
are written apart, from the two API references; composed, they must give back what went in for what
both can express: requests, complete answers, and streams event by event. What is lost on the way is
asserted too, so a change to either side that loses more fails here."""

import orjson
import pytest

from alloy.client_apis import MessagesStreamTranslator, chat_request_from_messages, messages_response_from_chat
from alloy.providers import TranslateSettings, anthropic
from fixtures_messages import blocks_of, parse_events

MODEL = "claude-sonnet-4-5"
CHAT = "chat/completions"
SETTINGS = TranslateSettings(api_key="sk-ant-test")
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def text(value):
    return {"type": "text", "text": value}


def tool_use(call_id, name, arguments):
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}


def through_both(body):
    """Anthropic request -> (client API) OpenAI request -> (provider translator) Anthropic request."""
    call = anthropic.build_request(chat_request_from_messages(body), body["model"], CHAT, SETTINGS)
    return orjson.loads(call.body)


# --- requests ----------------------------------------------------------------------------------------------

LOSSLESS_REQUEST = {
    "model": MODEL,
    "max_tokens": 512,
    "system": "Be brief.",
    "messages": [
        {"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/map.png"}},
            text("Weather at these places?"),
        ]},
        {"role": "assistant", "content": [text("Checking."), tool_use("toolu_1", "get_weather", {"city": "Paris"}),
                                          tool_use("toolu_2", "get_weather", {"city": "Oslo"})]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "4C"},
            text("Thanks. Which is warmer?"),
        ]},
    ],
    "tools": [WEATHER],
    "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    "stop_sequences": ["###"],
    "temperature": 0.3,  # not with top_p: the translation sends one of them (temperature)
    "metadata": {"user_id": "user_42"},
    "stream": True,
}  # fmt: skip


def test_a_request_both_can_express_comes_back_unchanged():
    assert through_both(LOSSLESS_REQUEST) == LOSSLESS_REQUEST


@pytest.mark.parametrize(
    "fields, original, returned",
    [
        # Text blocks of one turn become one OpenAI string: the text survives, the block boundaries not.
        ({"messages": [{"role": "user", "content": [text("a"), text("b")]}]}, None,
         {"messages": [{"role": "user", "content": [text("a\n\nb")]}]}),
        # top_k has no OpenAI counterpart.
        ({"top_k": 5}, "top_k", None),
        # Thinking becomes a reasoning_effort ("low") and comes back as that effort's budget, with
        # max_tokens raised above it (Anthropic wants budget_tokens below max_tokens).
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, None,
         {"thinking": {"type": "enabled", "budget_tokens": 2048}, "max_tokens": 2058}),
        # Earlier thinking blocks are not sent to an OpenAI model.
        ({"messages": [{"role": "user", "content": [text("hi")]},
                       {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"},
                                                         text("hello")]}]},
         None,
         {"messages": [{"role": "user", "content": [text("hi")]}, {"role": "assistant", "content": [text("hello")]}]}),
    ],
)  # fmt: skip
def test_what_is_lost_on_the_way(fields, original, returned):
    body = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": [text("hi")]}], **fields}
    back = through_both(body)
    if original is not None:
        assert original in body and original not in back
    for name, value in (returned or {}).items():
        assert back[name] == value


# --- complete answers -----------------------------------------------------------------------------------------

def anthropic_message(content, stop_reason="end_turn", usage=None):
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 25, "output_tokens": 9, "cache_creation_input_tokens": 0,
                           "cache_read_input_tokens": 0},
    }  # fmt: skip


LOSSLESS_ANSWERS = [
    anthropic_message([text("Paris is warmer.")]),
    anthropic_message([text("Checking."), tool_use("toolu_1", "get_weather", {"city": "Paris"}),
                       tool_use("toolu_2", "get_weather", {"city": "Oslo"})], "tool_use"),
    anthropic_message([tool_use("toolu_1", "get_time", {})], "tool_use"),
    anthropic_message([text("Once upon a")], "max_tokens"),
    anthropic_message([text("cached")], usage={"input_tokens": 7, "output_tokens": 2, "cache_creation_input_tokens": 0,
                                               "cache_read_input_tokens": 2048}),
]  # fmt: skip


@pytest.mark.parametrize("message", LOSSLESS_ANSWERS, ids=["text", "tools", "no-arguments", "max_tokens", "cached"])
def test_an_answer_both_can_express_comes_back_unchanged(message):
    status, body = anthropic.translate_response(200, orjson.dumps(message), MODEL, CHAT)
    assert status == 200
    assert messages_response_from_chat(orjson.loads(body), MODEL) == message


def test_stop_sequence_and_cache_writes_are_lost_on_the_way():
    usage = {"input_tokens": 7, "output_tokens": 2, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 0}
    message = anthropic_message([text("a b")], "stop_sequence", usage) | {"stop_sequence": "###"}
    _, body = anthropic.translate_response(200, orjson.dumps(message), MODEL, CHAT)
    back = messages_response_from_chat(orjson.loads(body), MODEL)
    assert (back["stop_reason"], back["stop_sequence"]) == ("end_turn", None)  # OpenAI does not name the stop
    assert back["usage"]["input_tokens"] == 107  # cache writes are plain input to OpenAI


# --- streams ------------------------------------------------------------------------------------------------

def sse(payload):
    return payload["type"].encode(), orjson.dumps(payload)


ANTHROPIC_STREAM = [
    {"type": "message_start", "message": {"id": "msg_01", "type": "message", "role": "assistant", "model": MODEL,
     "content": [], "stop_reason": None, "stop_sequence": None,
     "usage": {"input_tokens": 25, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 5}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me "}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "check."}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1,
     "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"city": '}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'}},
    {"type": "content_block_stop", "index": 1},
    {"type": "content_block_start", "index": 2,
     "content_block": {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}}},
    {"type": "content_block_stop", "index": 2},
    {"type": "message_delta", "delta": {"type": "stop_reason", "stop_reason": "tool_use", "stop_sequence": None},
     "usage": {"output_tokens": 30}},
    {"type": "message_stop"},
]  # fmt: skip


def stream_through_both(events):
    provider = anthropic.StreamTranslator(MODEL, True)
    client = MessagesStreamTranslator(MODEL)
    out = []
    for event in events:
        for openai_event in provider.feed(*sse(event)):
            out.extend(client.feed(openai_event.removeprefix(b"data: ").removesuffix(b"\n\n")))
    for openai_event in provider.finish():
        out.extend(client.feed(openai_event.removeprefix(b"data: ").removesuffix(b"\n\n")))
    out.extend(client.finish())
    return parse_events(out)


def test_a_stream_comes_back_block_for_block_with_its_fragments():
    back = stream_through_both(ANTHROPIC_STREAM)
    original = [(event["type"], event) for event in ANTHROPIC_STREAM if event["type"] != "ping"]
    assert blocks_of(back) == blocks_of(original) == [
        text("Let me check."),
        tool_use("toolu_1", "get_weather", {"city": "Paris"}),
        tool_use("toolu_2", "get_time", {}),
    ]

    def fragments(events):
        return [e["delta"].get("partial_json") or e["delta"].get("text") for name, e in events
                if name == "content_block_delta" and (e["delta"].get("partial_json") or e["delta"].get("text"))]

    # One fragment more: the provider translator sends arguments "{}" for a call without any (OpenAI
    # clients parse arguments as JSON), which reads as the same empty input.
    assert fragments(back) == [*fragments(original), "{}"]
    delta = back[-2][1]
    assert delta["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert delta["usage"] == {"input_tokens": 25, "output_tokens": 30, "cache_creation_input_tokens": 0,
                              "cache_read_input_tokens": 5}  # fmt: skip


def test_an_anthropic_error_mid_stream_reaches_the_client_with_its_type():
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    back = stream_through_both([*ANTHROPIC_STREAM[:4], error])
    assert back[-1] == ("error", error)
    assert "message_stop" not in [name for name, _ in back]

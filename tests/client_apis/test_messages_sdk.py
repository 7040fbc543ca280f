"""What the ``anthropic`` SDK sees: its real client talks to a stand-in for Alloy (an HTTP transport
that runs the Messages client API translation around canned OpenAI answers), so the SDK's own request
serialisation goes through ``chat_request_from_messages`` and its own parsing, stream accumulation
and error classes read what the translation answers. Every stream event is also validated strictly
against the SDK's ``RawMessageStreamEvent`` models (the SDK itself constructs them leniently)."""

import anthropic
import orjson
import pydantic
import pytest
from anthropic import _base_client
from anthropic.types import ErrorResponse, Message, RawMessageStreamEvent

from alloy.client_apis import (
    MessagesStreamTranslator,
    anthropic_error_body,
    chat_request_from_messages,
    estimate_input_tokens,
    messages_response_from_chat,
)
from alloy.core import SSESplitter
from alloy.errors import AlloyError, error_response_body
from fixtures_messages import (
    REASONING_CHUNKS,
    TEXT_CHUNKS,
    TOOL_CALLS,
    TOOL_CHUNKS,
    TOOL_COMPLETION,
    completion,
    to_wire,
    usage,
)

# The SDK's HTTP library: httpx before anthropic 2.x, its fork httpx2 since.
http = getattr(_base_client, "httpx2", None) or _base_client.httpx
MODEL = "claude-sonnet-4-5"
STREAM_EVENTS = pydantic.TypeAdapter(RawMessageStreamEvent)
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
ASK = {"model": MODEL, "max_tokens": 1024, "messages": [{"role": "user", "content": "Weather in Paris?"}]}

# Each chunk fixture and the complete answer the same upstream would give without streaming.
TEXT_COMPLETION = completion({"content": "Hello, world!"}, usage=usage(9, 4))
REASONING_COMPLETION = completion(
    {"content": "42", "reasoning_content": "The user wants six times seven."}, usage=usage(20, 30)
)
PAIRS = [(TEXT_CHUNKS, TEXT_COMPLETION), (TOOL_CHUNKS, TOOL_COMPLETION), (REASONING_CHUNKS, REASONING_COMPLETION)]


class Gateway:
    """The transport: Messages body -> chat request (kept in ``seen``) -> canned OpenAI answer -> Anthropic.

    ``answer`` is a completion dict, a list of chunks (a stream), raw SSE bytes (a stream as it is), or
    (status, OpenAI error dict)."""

    def __init__(self, answer):
        self.answer = answer
        self.seen = []
        self.events = []  # every Anthropic stream event sent, decoded

    def client(self):
        transport = http.MockTransport(self.handle)
        return anthropic.Anthropic(
            api_key="sk-alloy", base_url="http://alloy.test", max_retries=0, http_client=http.Client(transport=transport)
        )

    def handle(self, request):
        body = orjson.loads(request.content)
        try:
            if request.url.path == "/v1/messages/count_tokens":
                return self.json(200, {"input_tokens": estimate_input_tokens(body)})
            chat = chat_request_from_messages(body)
        except AlloyError as exc:
            return self.error(exc.status, error_response_body(exc))
        self.seen.append(chat)
        if isinstance(self.answer, tuple):
            status, error = self.answer
            return self.error(status, orjson.dumps(error))
        if chat.get("stream"):
            wire = self.answer if isinstance(self.answer, bytes) else to_wire(self.answer)
            return http.Response(200, content=self.stream(wire, body["model"]), headers={"content-type": "text/event-stream"})
        message = messages_response_from_chat(self.answer, body["model"])
        Message.model_validate(message, strict=True)
        return self.json(200, message)

    def error(self, status, openai_body):
        body = anthropic_error_body(status, openai_body)
        ErrorResponse.model_validate_json(body, strict=True)
        return http.Response(status, content=body, headers={"content-type": "application/json"})

    def json(self, status, payload):
        return http.Response(status, content=orjson.dumps(payload), headers={"content-type": "application/json"})

    def stream(self, wire, model):
        splitter, translator, out = SSESplitter(), MessagesStreamTranslator(model), []
        for _name, data in [*splitter.feed(wire), *splitter.flush()]:
            out.extend(translator.feed(data))
        out.extend(translator.finish())
        for event in out:
            data = orjson.loads(event.split(b"\ndata: ", 1)[1])
            # Strict: every required field, every literal (the SDK itself constructs leniently).
            if data["type"] == "error":
                ErrorResponse.model_validate(data, strict=True)
            else:
                STREAM_EVENTS.validate_python(data, strict=True)
            self.events.append(data)
        return b"".join(out)


def dump(message):
    return message.model_dump(exclude_none=True)


# --- complete answers -----------------------------------------------------------------------------------

def test_create_reads_text_tool_use_stop_reason_and_usage():
    gateway = Gateway(TOOL_COMPLETION)
    message = gateway.client().messages.create(**ASK, tools=[WEATHER])
    assert isinstance(message, Message)
    assert message.model == MODEL and message.role == "assistant" and message.id.startswith("msg_")
    assert message.stop_reason == "tool_use"
    text, *calls = message.content
    assert text.type == "text" and text.text == "Let me check."
    assert [(c.type, c.id, c.name, c.input) for c in calls] == [("tool_use", *call) for call in TOOL_CALLS]
    assert (message.usage.input_tokens, message.usage.output_tokens, message.usage.cache_read_input_tokens) == (20, 40, 100)
    Message.model_validate(messages_response_from_chat(TOOL_COMPLETION, MODEL), strict=True)


def test_create_reads_thinking_before_text():
    message = Gateway(REASONING_COMPLETION).client().messages.create(
        **ASK, thinking={"type": "enabled", "budget_tokens": 2048}
    )
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "The user wants six times seven."


def test_the_sdk_request_reaches_the_upstream_as_an_openai_request():
    gateway = Gateway(TEXT_COMPLETION)
    gateway.client().messages.create(
        model=MODEL,
        max_tokens=300,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "text", "text": "Weather where this is?"},
            ]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                               "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}]},
        ],
        tools=[WEATHER],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        thinking={"type": "enabled", "budget_tokens": 10000},
        stop_sequences=["###"],
        metadata={"user_id": "user_42"},
    )  # fmt: skip
    assert gateway.seen == [{
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "text", "text": "Weather where this is?"},
            ]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        ],
        "max_completion_tokens": 300,
        "stop": ["###"],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                                    "parameters": WEATHER["input_schema"]}}],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning_effort": "medium",
        "user": "user_42",
    }]  # fmt: skip


# --- streams ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("chunks, complete", PAIRS, ids=["text", "tools", "reasoning"])
def test_the_streamed_final_message_equals_the_complete_answer(chunks, complete):
    gateway = Gateway(chunks)
    with gateway.client().messages.stream(**ASK, tools=[WEATHER]) as stream:
        streamed = stream.get_final_message()
    assert gateway.seen[0]["stream"] is True and gateway.seen[0]["stream_options"] == {"include_usage": True}
    expected = messages_response_from_chat(complete, MODEL)
    assert dump(streamed) == dump(Message.model_validate(expected))


def test_text_stream_yields_the_deltas():
    with Gateway(TEXT_CHUNKS).client().messages.stream(**ASK) as stream:
        assert list(stream.text_stream) == ["Hello", ", world", "!"]


def test_the_sdk_parses_tool_input_as_it_streams():
    with Gateway(TOOL_CHUNKS).client().messages.stream(**ASK, tools=[WEATHER]) as stream:
        seen = [(event.partial_json, event.snapshot) for event in stream if event.type == "input_json"]
    # The SDK parses each call's fragments so far (partial JSON); the third completes call 0.
    assert [fragment for fragment, _ in seen] == ['{"ci', 'ty": "Par', 'is", "unit": "c"}', '{"tz": "Europe/Paris"}']
    assert [snapshot for _, snapshot in seen][2:] == [{"city": "Paris", "unit": "c"}, {"tz": "Europe/Paris"}]


def test_raw_events_arrive_in_anthropic_order():
    gateway = Gateway(TOOL_CHUNKS)
    with gateway.client().messages.create(**ASK, tools=[WEATHER], stream=True) as events:
        kinds = [(event.type, getattr(event, "index", None)) for event in events]
    assert kinds == [
        ("message_start", None),
        ("content_block_start", 0), ("content_block_delta", 0), ("content_block_stop", 0),
        ("content_block_start", 1), ("content_block_delta", 1), ("content_block_delta", 1), ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("content_block_start", 2), ("content_block_delta", 2), ("content_block_stop", 2),
        ("message_delta", None), ("message_stop", None),
    ]  # fmt: skip


def test_usage_of_the_final_message_comes_from_the_usage_chunk():
    with Gateway(TOOL_CHUNKS).client().messages.stream(**ASK) as stream:
        final = stream.get_final_message()
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.cache_read_input_tokens) == (20, 40, 100)


# --- errors ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "status, error_class, kind",
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (503, anthropic.InternalServerError, "overloaded_error"),
    ],
)
def test_an_upstream_error_raises_the_sdk_error_class_with_the_message(status, error_class, kind):
    error = {"error": {"message": "Rate limit reached for gpt-4o", "type": "requests", "param": None, "code": None}}
    with pytest.raises(error_class) as caught:
        Gateway((status, error)).client().messages.create(**ASK)
    assert caught.value.status_code == status
    assert caught.value.body == {"type": "error", "error": {"type": kind, "message": "Rate limit reached for gpt-4o"}}


def test_an_invalid_request_is_a_bad_request_naming_the_field():
    gateway = Gateway(TEXT_COMPLETION)
    with pytest.raises(anthropic.BadRequestError) as caught:
        gateway.client().messages.create(**ASK, tools=[{"type": "web_search_20250305", "name": "web_search"}])
    assert caught.value.body["error"] == {
        "type": "invalid_request_error",
        "message": "tools.0.type: tool type 'web_search_20250305' is an Anthropic server tool; this model cannot run it",
    }
    assert gateway.seen == [], "nothing went upstream"


def test_an_error_in_the_stream_raises_in_the_sdk():
    wire = to_wire(TEXT_CHUNKS[:2], done=False) + b'data: {"error": {"message": "overloaded", "code": "overloaded"}}\n\n'
    gateway = Gateway(wire)
    with pytest.raises(anthropic.APIStatusError) as caught:
        with gateway.client().messages.stream(**ASK) as stream:
            stream.get_final_message()
    assert caught.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "overloaded"}}


def test_a_stream_that_breaks_off_raises_instead_of_returning_a_truncated_message():
    gateway = Gateway(to_wire(TOOL_CHUNKS[:4], done=False))
    with pytest.raises(anthropic.APIStatusError) as caught:
        with gateway.client().messages.stream(**ASK) as stream:
            stream.get_final_message()
    assert caught.value.body["error"]["type"] == "api_error"


def test_a_stream_without_done_after_its_finish_is_whole():
    with Gateway(to_wire(TEXT_CHUNKS, done=False)).client().messages.stream(**ASK) as stream:
        assert stream.get_final_message().content[0].text == "Hello, world!"


# --- count_tokens ------------------------------------------------------------------------------------------

def test_count_tokens_answers_the_estimate_for_the_sdk_request():
    client = Gateway(TEXT_COMPLETION).client()
    small = client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    large = client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "Hi " * 1000}], tools=[WEATHER])
    assert 0 < small.input_tokens < 20 < large.input_tokens

"""``estimate_input_tokens``: the documented character-based estimate, rule by rule."""

import base64
import math

import orjson
import pytest

from alloy.client_apis import estimate_input_tokens
from alloy.errors import InvalidRequest

MODEL = "claude-sonnet-4-5"
PER_MESSAGE = 4


def estimate(*messages, **fields):
    return estimate_input_tokens({"model": MODEL, "messages": list(messages), **fields})


def user(content):
    return {"role": "user", "content": content}


def pdf(pages):
    body = b"%%PDF-1.7\n1 0 obj << /Type /Pages /Count %d >> endobj\n" % pages
    body += b"".join(b"%d 0 obj << /Type /Page /Parent 1 0 R >> endobj\n" % (i + 2) for i in range(pages))
    return base64.b64encode(body).decode()


def test_ascii_text_counts_four_characters_a_token_plus_the_message():
    assert estimate(user("a" * 400)) == 100 + PER_MESSAGE
    assert estimate(user("a" * 401)) == 101 + PER_MESSAGE  # rounded up per string


def test_other_characters_count_one_token_each():
    assert estimate(user("日本語です")) == 5 + PER_MESSAGE
    assert estimate(user("héllo")) == math.ceil(4 / 4) + 1 + PER_MESSAGE


def test_system_counts_as_a_message():
    assert estimate(user("a" * 40), system="b" * 80) == (10 + PER_MESSAGE) + (20 + PER_MESSAGE)


def test_tools_add_the_tool_prompt_and_their_serialised_definition():
    tool = {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}
    definition = {"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}}
    expected = 1 + PER_MESSAGE + 346 + math.ceil(len(orjson.dumps(definition)) / 4)
    assert estimate(user("Hi"), tools=[tool]) == expected


def test_tool_calls_and_results_count():
    call = {"type": "tool_use", "id": "t1", "name": "abcd", "input": {"k": "v"}}  # arguments '{"k":"v"}', 9 chars
    result = {"type": "tool_result", "tool_use_id": "t1", "content": "x" * 8}
    turns = [user("Hi"), {"role": "assistant", "content": [call]}, user([result])]
    assert estimate(*turns) == (1 + PER_MESSAGE) + (PER_MESSAGE + 1 + 3) + (PER_MESSAGE + 2)


def test_an_image_counts_1600_wherever_it_is():
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * 100_000}}
    assert estimate(user([image])) == 1600 + PER_MESSAGE
    in_result = {"type": "tool_result", "tool_use_id": "t", "content": [image]}
    note = "[1 attachment(s) returned by this tool follow in the next user message]"
    assert estimate(user([in_result])) == (PER_MESSAGE + math.ceil(len(note) / 4)) + (PER_MESSAGE + 1600)


@pytest.mark.parametrize("pages", [1, 3])
def test_a_pdf_counts_3000_a_page(pages):
    document = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": pdf(pages)}}
    assert estimate(user([document])) == 3000 * pages + PER_MESSAGE


def test_a_pdf_whose_pages_cannot_be_found_counts_one_page():
    document = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "!!!"}}
    assert estimate(user([document])) == 3000 + PER_MESSAGE


def test_more_text_never_counts_less():
    counts = [estimate(user("word " * n)) for n in range(0, 200, 7)]
    assert counts == sorted(counts) and counts[0] >= 1


def test_max_tokens_is_not_needed_and_stream_is_ignored():
    assert estimate(user("Hi"), stream=True) == estimate(user("Hi"), max_tokens=5)


@pytest.mark.parametrize(
    "body, param",
    [
        ({"messages": [user("Hi")]}, "model"),
        ({"model": MODEL}, "messages"),
        ({"model": MODEL, "messages": []}, "messages"),
        ({"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ({"model": MODEL, "messages": [user("Hi")], "tools": [{"type": "web_search_20250305", "name": "w"}]},
         "tools.0.type"),
    ],
)  # fmt: skip
def test_a_request_anthropic_would_refuse_is_refused(body, param):
    with pytest.raises(InvalidRequest) as caught:
        estimate_input_tokens(body)
    assert caught.value.param == param

"""The Responses request as a chat completions request (alloy.client_apis.responses_request): each
row of the mapping table, and the 400s for what a translated model cannot honour."""

import pytest

from alloy.client_apis.responses_request import chat_request_from_responses
from alloy.errors import InvalidRequest

WEATHER = {"type": "function", "name": "weather", "description": "The weather.", "strict": True,
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}  # fmt: skip


def chat(**body):
    return chat_request_from_responses({"model": "claude-x", "input": "hi", **body})


def refused(**body):
    with pytest.raises(InvalidRequest) as raised:
        chat_request_from_responses({"model": "claude-x", "input": "hi", **body})
    return raised.value


def test_a_string_input_and_instructions():
    assert chat(instructions="Be brief.") == {
        "model": "claude-x",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
    }


def test_message_items_keep_their_roles_and_text_parts_become_one_string():
    given = [
        {"type": "message", "role": "developer", "content": "rules"},
        {"role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "c", "annotations": []}]},
    ]
    assert chat(input=given)["messages"] == [
        {"role": "developer", "content": "rules"},
        {"role": "user", "content": "a\n\nb"},
        {"role": "assistant", "content": "c"},
    ]


def test_images_and_files_become_content_parts():
    content = [
        {"type": "input_text", "text": "look"},
        {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"},
        {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,AAAA"},
    ]
    assert chat(input=[{"role": "user", "content": content}])["messages"][0]["content"] == [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,AAAA"}},
    ]


def test_function_calls_join_the_assistant_text_before_them_and_outputs_become_tool_messages():
    given = [
        {"role": "user", "content": "weather?"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": '{"city":"Paris"}'},
        {"type": "function_call", "call_id": "c2", "name": "weather", "arguments": '{"city":"Rome"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "rain"}]},
    ]
    messages = chat(input=given)["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}},
            {"id": "c2", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Rome"}'}},
        ],
    }
    assert messages[2:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "rain"},
    ]


def test_images_a_tool_returned_follow_its_tool_messages_in_a_user_message():
    """A chat tool message holds text only; the Responses API lets a function_call_output return
    images. They move to one user message after the turn's tool messages (never between them)."""
    image = {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}
    given = [
        {"role": "user", "content": "look"},
        {"type": "function_call", "call_id": "c1", "name": "shot", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "shot", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "here"}, image]},
        {"type": "function_call_output", "call_id": "c2", "output": [image]},
        {"role": "user", "content": "what do you see?"},
    ]
    messages = chat(input=given)["messages"]
    note = "[1 attachment(s) returned by this tool follow in the next user message]"
    picture = {"type": "image_url", "image_url": {"url": image["image_url"]}}
    assert messages[2:] == [
        {"role": "tool", "tool_call_id": "c1", "content": "here\n" + note},
        {"role": "tool", "tool_call_id": "c2", "content": note},
        {"role": "user", "content": [picture, picture]},
        {"role": "user", "content": "what do you see?"},
    ]


def test_tools_are_nested_and_tool_choice_mapped():
    body = chat(tools=[WEATHER], tool_choice={"type": "function", "name": "weather"}, parallel_tool_calls=False)
    assert body["tools"] == [{"type": "function", "function": {
        "name": "weather", "description": "The weather.", "parameters": WEATHER["parameters"], "strict": True}}]  # fmt: skip
    assert body["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    assert body["parallel_tool_calls"] is False
    assert chat(tools=[WEATHER], tool_choice="required")["tool_choice"] == "required"
    assert "tool_choice" not in chat(tool_choice="auto")  # chat refuses tool_choice without tools


def test_allowed_tools_narrow_the_tools_and_their_mode_is_the_choice():
    other = {**WEATHER, "name": "time"}
    choice = {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "time"}]}
    body = chat(tools=[WEATHER, other], tool_choice=choice)
    assert [tool["function"]["name"] for tool in body["tools"]] == ["time"] and body["tool_choice"] == "required"
    assert chat(tools=[WEATHER], tool_choice={**choice, "mode": "auto", "tools": [{"type": "function", "name": "weather"}]})["tool_choice"] == "auto"
    for bad in ({**choice, "mode": "none"}, {**choice, "tools": []}, {**choice, "tools": [{"type": "function", "name": "absent"}]}):
        with pytest.raises(InvalidRequest):
            chat(tools=[WEATHER], tool_choice=bad)


def test_sampling_limits_reasoning_format_user_and_stream():
    body = chat(
        max_output_tokens=64, temperature=0.5, top_p=0.9, reasoning={"effort": "xhigh", "summary": "auto"},
        text={"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True}},
        safety_identifier="u-1", stream=True, store=True, metadata={"k": "v"}, include=["reasoning.encrypted_content"],
    )  # fmt: skip
    assert body == {
        "model": "claude-x",
        "messages": [{"role": "user", "content": "hi"}],
        "max_completion_tokens": 64,
        "temperature": 0.5,
        "top_p": 0.9,
        "reasoning_effort": "high",
        "response_format": {"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True}},
        "user": "u-1",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert chat(reasoning={"effort": "none"})["reasoning_effort"] == "none"  # no thinking, where it can stop
    assert "reasoning_effort" not in chat(reasoning={})
    assert "response_format" not in chat(text={"format": {"type": "text"}})


@pytest.mark.parametrize(
    "body, param",
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"background": True}, "background"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]},
         "input[0].content[0].image_url"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
        ({"tool_choice": {"type": "web_search"}, "tools": [WEATHER]}, "tool_choice"),
        ({"input": None}, "input"),
    ],
)  # fmt: skip
def test_what_a_translated_model_cannot_honour_is_a_400_naming_the_field(body, param):
    error = refused(**body)
    assert error.status == 400 and error.param == param


def test_previous_response_id_says_why():
    message = refused(previous_response_id="resp_1").message
    assert "keeps no Responses state" in message and "send the whole conversation" in message


def test_usage_carries_the_cache_reads_and_writes_a_chat_answer_reports():
    """The Anthropic translation's chat usage holds cache writes; OpenAI's holds none (0)."""
    from alloy.client_apis.responses_response import response_usage

    anthropic_usage = {"prompt_tokens": 1504, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 1502}}
    assert response_usage(anthropic_usage) == {
        "input_tokens": 1504, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 1502},
        "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 1511,
    }  # fmt: skip
    openai_usage = {"prompt_tokens": 10, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 4}}
    assert response_usage(openai_usage)["input_tokens_details"] == {"cached_tokens": 4, "cache_write_tokens": 0}

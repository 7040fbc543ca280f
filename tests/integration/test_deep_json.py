"""Bodies nested deeper than the gateway can write back. orjson reads JSON up to 1024 levels deep
but writes at most 254, and a request is written back whenever the gateway re-encodes it (a
repeated top-level key), translates it (Anthropic, Gemini, the Messages API) or estimates its
tokens. Such a body is the client's error: a 400 in the shape of the API it called, on a
connection that stays open, never a dropped connection."""

import http.client
import json

import pytest

DEPTH = 300  # past orjson's 254, well within its reader's 1024


def nested(depth):
    return json.loads("[" * depth + "]" * depth)


def deep_chat(model="gpt-4o-mini"):
    """A chat body whose ``model`` comes twice (the scanner re-encodes it) and holds a deep value."""
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}], "x": nested(DEPTH)})
    return body.replace('{"model"', '{"model": "%s", "model"' % model, 1)


def deep_messages():
    tool = {"name": "deep", "input_schema": {"type": "object", "properties": {"a": {"type": "array", "items": nested(DEPTH)}}}}
    return json.dumps({"model": "gpt-4o-mini", "max_tokens": 5, "tools": [tool], "messages": [{"role": "user", "content": "hi"}]})


def deep_anthropic_chat():
    tool = {"type": "function", "function": {"name": "deep", "parameters": {"type": "object", "properties": {"a": {"default": nested(DEPTH)}}}}}
    return json.dumps({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}], "tools": [tool]})


@pytest.fixture
def gateway(start_gateway, mock):
    return start_gateway(
        config=f"""
        [providers.openai]
        base_url = "{mock.base}/v1"
        api_key = "sk-provider"

        [providers.anthropic]
        kind = "anthropic"
        base_url = "{mock.base}"
        api_key = "sk-provider"
        """
    )


@pytest.mark.parametrize(
    "path, body, shape",
    [
        ("/v1/chat/completions", deep_chat(), "openai"),
        ("/v1/chat/completions", deep_anthropic_chat(), "openai"),
        ("/v1/messages", deep_messages(), "anthropic"),
        ("/v1/messages/count_tokens", deep_messages(), "anthropic"),
    ],
)
def test_a_body_too_deep_to_write_back_is_a_400_and_the_connection_lives_on(gateway, mock, path, body, shape):
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    try:
        connection.request("POST", path, body, {"content-type": "application/json"})
        response = connection.getresponse()
        answer = json.loads(response.read())
        assert response.status == 400, answer
        error = answer["error"]
        assert "nested too deeply" in error["message"]
        assert (answer.get("type"), error["type"]) == (("error", "invalid_request_error") if shape == "anthropic" else (None, "invalid_request_error"))
        # The same connection serves the next request.
        connection.request("POST", "/v1/chat/completions", json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ok"}]}), {"content-type": "application/json"})
        follow = connection.getresponse()
        assert follow.status == 200 and json.loads(follow.read())["choices"][0]["message"]["content"] == "echo: ok"
    finally:
        connection.close()
    assert "Traceback" not in gateway.stderr  # answered as the client's error, not met as a bug


def deeper_than_orjson_reads(path):
    """Valid JSON nested 1,100 levels (past orjson's reader, 1,024), as text: json.dumps recurses."""
    deep = "[" * 1100 + "]" * 1100
    if path == "/v1/chat/completions":  # its model twice: the scanner reads the whole body
        return '{"model":"gpt-4o-mini","model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"x":%s}' % deep
    return '{"model":"gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"x":%s}' % deep


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_a_body_deeper_than_the_reader_is_nested_too_deeply_not_invalid(gateway, path):
    # orjson's depth limit is a decode error: it was answered "not valid JSON", which it is.
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    try:
        connection.request("POST", path, deeper_than_orjson_reads(path), {"content-type": "application/json"})
        response = connection.getresponse()
        answer = json.loads(response.read())
        assert response.status == 400 and "nested too deeply" in answer["error"]["message"], answer
    finally:
        connection.close()

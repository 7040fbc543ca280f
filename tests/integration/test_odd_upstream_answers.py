"""Answers a translator was not written for: a provider (or a proxy, or a local model server in its
place) whose answer has a field of another JSON type than the API documents, or a count past 64
bits. Each such answer ends: translated with the odd field left out when the rest stands, as
Alloy's 502 ``upstream_protocol_error`` when it does not, or, for a stream already under way, as
the stream's error event. Never a client left waiting, never a shape the SDKs cannot parse.

Through a running gateway, the upstream is a scripted one that answers each request with the body
the request carries in ``x-answer`` (base64). And in process, a translator that raises (a bug) shows
the safety net every relay has: the client gets its answer's end all the same.
"""

import json

import anthropic
import openai
import pytest

from alloy import config as alloy_config
from alloy.errors import UpstreamTimeout
from alloy.observability import Observability
from alloy.providers import anthropic_stream
from fake_transport import wired as wire_gateway
from harness import assert_no_crash_logged, start_gateway_process
from scripted_upstream import ScriptedUpstream, answer

MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
           "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn"}  # fmt: skip
CANDIDATE = {"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP", "index": 0}


def completion(finish_reason="stop", **message):
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi", **message},
                         "finish_reason": finish_reason}]}  # fmt: skip


def events(*payloads):
    return b"".join(b"data: " + json.dumps(p).encode() + b"\r\n\r\n" for p in payloads)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    upstream = ScriptedUpstream()
    gateway = start_gateway_process(
        tmp_path_factory.mktemp("odd") / "alloy.toml",
        f"""
        [router]
        max_retries = 0
        [providers.anthropic]
        base_url = "{upstream.base}"
        api_key = "sk-ant-provider"
        total_timeout = 10
        [providers.gemini]
        base_url = "{upstream.base}"
        api_key = "g-provider"
        total_timeout = 10
        [providers.local]
        kind = "openai"
        base_url = "{upstream.base}/v1"
        api_key = "sk-local"
        responses_api = false
        total_timeout = 10
        [providers.localhx]
        kind = "openai"
        base_url = "{upstream.base}/v1"
        api_key = "sk-local"
        responses_api = false
        total_timeout = 10
        client = "httpx"
        """,
    )
    yield gateway
    gateway.stop()
    upstream.close()
    assert_no_crash_logged(gateway)
    assert "Fatal error on transport" not in gateway.stderr


def chat_client(gateway):
    return openai.OpenAI(base_url=gateway.base + "/v1", api_key="client", max_retries=0, timeout=8)


def messages_client(gateway):
    return anthropic.Anthropic(base_url=gateway.base, api_key="client", max_retries=0, timeout=8)


def ask(gateway, model, headers, **extra):
    return chat_client(gateway).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], extra_headers=headers, **extra
    )


@pytest.mark.parametrize(
    "usage",
    [[1], "many", {"input_tokens": 2**63, "cache_read_input_tokens": 2**63, "output_tokens": 2**64}],
    ids=["a list", "a string", "past 64 bits"],
)
def test_an_anthropic_usage_of_another_shape_is_read_as_what_it_can_say(gateway, usage):
    reply = ask(gateway, "anthropic/claude-x", answer({**MESSAGE, "usage": usage}))
    assert reply.choices[0].message.content == "hi"
    assert 0 <= reply.usage.prompt_tokens <= 3 * 10**12 and 0 <= reply.usage.completion_tokens <= 10**12


def test_a_gemini_stream_whose_usage_is_a_list_still_ends_with_done(gateway):
    body = events({"candidates": [CANDIDATE], "usageMetadata": [1]})
    chunks = list(ask(gateway, "gemini/gemini-2.5-flash", answer(body, "text/event-stream"), stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hi"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_a_gemini_candidate_index_that_is_not_a_number_is_its_position(gateway):
    reply = ask(gateway, "gemini/gemini-2.5-flash", answer({"candidates": [{**CANDIDATE, "index": "x"}]}))
    assert reply.choices[0].index == 0


def test_a_gemini_function_call_without_a_string_name_is_a_502(gateway):
    parts = [{"functionCall": {"name": 7, "args": {}}}]
    with pytest.raises(openai.InternalServerError) as caught:
        ask(gateway, "gemini/gemini-2.5-flash", answer({"candidates": [{**CANDIDATE, "content": {"parts": parts}}]}))
    assert caught.value.status_code == 502 and caught.value.code == "upstream_protocol_error"


def test_an_anthropic_id_that_is_not_a_string_is_not_written_as_python(gateway):
    reply = ask(gateway, "anthropic/claude-x", answer({**MESSAGE, "id": {"a": 1}}))
    assert reply.id == "chatcmpl-anthropic"


def test_an_anthropic_tool_call_without_a_string_id_or_name_is_a_502(gateway):
    content = [{"type": "tool_use", "id": 5, "name": 7, "input": {}}]
    with pytest.raises(openai.InternalServerError) as caught:
        ask(gateway, "anthropic/claude-x", answer({**MESSAGE, "content": content, "stop_reason": "tool_use"}))
    assert caught.value.status_code == 502 and caught.value.code == "upstream_protocol_error"


@pytest.mark.parametrize(
    ("name", "event"),
    [
        ("a text that is a number", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 5}}),
        ("a tool without a name", {"type": "content_block_start", "index": 0,
                                   "content_block": {"type": "tool_use", "id": None, "name": 5, "input": {}}}),
    ],
)  # fmt: skip
def test_an_anthropic_stream_event_of_another_shape_ends_the_stream_with_its_error(gateway, name, event):
    start = {"type": "message_start", "message": {**MESSAGE, "content": [], "usage": {"input_tokens": 1}}}
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    stream = events(start, *([block] if event["type"] == "content_block_delta" else []), event)
    with pytest.raises(openai.APIError) as caught:
        list(ask(gateway, "anthropic/claude-x", answer(stream, "text/event-stream"), stream=True))
    assert "malformed upstream" in caught.value.message, name


@pytest.mark.parametrize("finish_reason", [["stop"], {"why": "stop"}], ids=["a list", "an object"])
def test_an_openai_finish_reason_of_another_shape_still_answers_a_messages_client(gateway, finish_reason):
    message = messages_client(gateway).messages.create(
        model="local/m", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
        extra_headers=answer(completion(finish_reason)),
    )  # fmt: skip
    assert message.content[0].text == "hi" and message.stop_reason == "end_turn"


@pytest.mark.parametrize("finish_reason", [["stop"], {"why": "stop"}], ids=["a list", "an object"])
def test_an_openai_finish_reason_of_another_shape_still_answers_a_responses_client(gateway, finish_reason):
    response = chat_client(gateway).responses.create(model="local/m", input="hi", extra_headers=answer(completion(finish_reason)))
    assert response.output_text == "hi" and response.status == "completed"


# --- the safety net: a translator that raises --------------------------------------------------------

REQUEST_BODY = b'{"model":"anthropic/claude-x","stream":%s,"messages":[{"role":"user","content":"hi"}]}'


@pytest.fixture
def wired(tmp_path):
    """A real Gateway in process, one client connection and one idle upstream connection to the
    Anthropic provider, both on fake transports."""
    path = tmp_path / "alloy.toml"
    path.write_text('[router]\nmax_retries = 0\n[providers.anthropic]\nbase_url = "http://127.0.0.1:9"\napi_key = "sk-ant-x"\n')
    client, upstream, transport, loop = wire_gateway(alloy_config.load(str(path), env={}), "anthropic")
    yield client, upstream, transport
    loop.close()


def send(client, stream):
    body = REQUEST_BODY % (b"true" if stream else b"false")
    client.data_received(b"POST /v1/chat/completions HTTP/1.1\r\nhost: g\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))


def test_a_translator_that_raises_on_a_whole_answer_gives_the_client_a_502(wired, monkeypatch, caplog):
    client, upstream, transport = wired

    def broken(*args):
        raise RuntimeError("a translator bug")

    monkeypatch.setattr("alloy.providers.anthropic.translate_response", broken)
    send(client, stream=False)
    body = json.dumps(MESSAGE).encode()
    upstream.data_received(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
    [written] = transport.writes
    assert written.startswith(b"HTTP/1.1 502 ") and b'"upstream_protocol_error"' in written
    assert client.current is None and not transport.closed  # answered; the connection serves on
    assert "could not be translated" in caplog.text and "a translator bug" in caplog.text


def test_a_translator_that_raises_mid_stream_ends_the_stream_with_its_error(wired, monkeypatch):
    client, upstream, transport = wired
    calls = []

    def feed(self, name, data):
        calls.append(name)
        if len(calls) > 2:
            raise RuntimeError("a translator bug")
        return original(self, name, data)

    original = anthropic_stream.StreamTranslator.feed
    monkeypatch.setattr(anthropic_stream.StreamTranslator, "feed", feed)
    send(client, stream=True)
    start = {"type": "message_start", "message": {**MESSAGE, "content": [], "usage": {"input_tokens": 1}}}
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "Hel"}}
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}}
    # The head and three events in one read: the head and the first chunks go out before the error.
    stream = events(start, block, delta)
    upstream.data_received(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n%s" % (len(stream), stream))
    sent = b"".join(transport.writes)
    assert sent.startswith(b"HTTP/1.1 200 OK\r\n") and b'"role":"assistant"' in sent
    assert b'"upstream_protocol_error"' in sent and sent.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
    assert transport.closed and upstream.closed  # the stream's end closes both sides


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_whole_translated_stream_whose_upstream_then_stalls_ends_as_finished(wired, framing):
    # Anthropic's message_stop came (the client has its [DONE]), then the upstream's own framing
    # was never finished: a length not filled, or no last chunk, until the idle timeout fired.
    client, upstream, transport = wired
    send(client, stream=True)
    start = {"type": "message_start", "message": {**MESSAGE, "content": [], "usage": {"input_tokens": 1}}}
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "Hello"}}
    ends = [{"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
            {"type": "message_stop"}]  # fmt: skip
    stream = events(start, block, *ends)
    if framing == "length":
        upstream.data_received(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n%s" % (len(stream) + 100, stream))
    else:
        upstream.data_received(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (len(stream), stream))
    upstream._fail(UpstreamTimeout("the upstream sent nothing for 3 s"))
    sent = b"".join(transport.writes)
    assert sent.count(b"data: [DONE]") == 1 and b'"error"' not in sent and b'"finish_reason":"stop"' in sent
    assert sent.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")  # the client's body ends, whole
    assert client.current is None  # the call ended as a finished answer


CHAT_CHUNK = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
WHOLE_CHAT_STREAM = events(
    {**CHAT_CHUNK, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello"}, "finish_reason": None}]},
    {**CHAT_CHUNK, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
) + b"data: [DONE]\r\n\r\n"


@pytest.mark.parametrize("framing", ["length", "chunked"])
@pytest.mark.parametrize("path", [b"/v1/chat/completions", b"/v1/messages"])
def test_a_whole_passthrough_stream_whose_upstream_then_stalls_ends_without_an_error(tmp_path, path, framing):
    # The [DONE] was relayed, then the upstream left its framing unfinished until the idle timeout
    # (a length not filled, no last chunk): the client's stream ends there with no error after it.
    # A chunked answer ends whole and the connection serves on; one the relay framed with the
    # upstream's length cannot be kept, and closes (a Messages client's body, chunked by its wire,
    # still ends whole).
    config = tmp_path / "alloy.toml"
    config.write_text('[router]\nmax_retries = 0\n[providers.openai]\nbase_url = "http://127.0.0.1:9/v1"\napi_key = "sk-x"\n')
    client, upstream, transport, loop = wire_gateway(alloy_config.load(str(config), env={}), "openai")
    try:
        body = b'{"model": "openai/gpt-4o-mini", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "hi"}]}'
        client.data_received(b"POST %s HTTP/1.1\r\nhost: g\r\ncontent-length: %d\r\n\r\n%s" % (path, len(body), body))
        stream = WHOLE_CHAT_STREAM
        if framing == "length":
            head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n" % (len(stream) + 100)
            upstream.data_received(head + stream)
        else:
            head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            upstream.data_received(head + b"%x\r\n%s\r\n" % (len(stream), stream))
        upstream._fail(UpstreamTimeout("the upstream sent nothing for 3 s"))
        sent = b"".join(transport.writes)
        assert b"error" not in sent
        if path == b"/v1/messages":
            assert b"event: message_stop" in sent and sent.endswith(b"\r\n0\r\n\r\n")
        else:
            assert sent.rstrip().endswith(b"data: [DONE]") if framing == "length" else sent.endswith(b"data: [DONE]\r\n\r\n\r\n0\r\n\r\n")
        assert transport.closed == (framing == "length")
    finally:
        loop.close()


def test_a_relay_that_raises_closes_the_client_rather_than_leave_it_waiting(wired, monkeypatch, caplog):
    client, upstream, transport = wired

    def broken(self, *args):
        raise RuntimeError("a relay bug")

    monkeypatch.setattr("alloy.relay.TranslatedRelay.upstream_events", broken)
    send(client, stream=False)
    upstream.data_received(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
    assert "unexpected error relaying" in caplog.text and "a relay bug" in caplog.text
    assert upstream.closed
    # The relay's own failure path answered (its 502) or, failing that, the connection was closed.
    assert transport.closed or b"".join(transport.writes).startswith(b"HTTP/1.1 502 ")


def test_a_bug_raising_a_type_error_is_a_logged_500_not_the_clients_400(wired, monkeypatch, caplog):
    # orjson's JSONEncodeError *is* TypeError: only its depth refusal may become the client's 400.
    client, upstream, transport = wired

    def broken(*args):
        raise TypeError("unsupported operand type(s)")

    monkeypatch.setattr("alloy.sending.TranslatedProvider.send", broken)
    send(client, stream=False)
    [written] = transport.writes
    assert written.startswith(b"HTTP/1.1 500 ") and b'"internal_error"' in written
    assert "unsupported operand type(s)" in caplog.text  # with its traceback

    def too_deep(*args):
        raise TypeError("Recursion limit reached")  # what orjson.dumps says of a body past 254 levels

    monkeypatch.setattr("alloy.sending.TranslatedProvider.send", too_deep)
    transport.writes.clear()
    send(client, stream=False)
    [written] = transport.writes
    assert written.startswith(b"HTTP/1.1 400 ") and b"nested too deeply" in written


def test_a_bug_answering_a_messages_client_is_a_500_in_anthropics_shape(wired, monkeypatch, caplog):
    # The anthropic SDK reads only its own error shape: the gateway's own 500 follows the client's API.
    client, upstream, transport = wired

    def broken(*args):
        raise RuntimeError("a bug on the Messages path")

    monkeypatch.setattr("alloy.client_apis.messages_endpoint.MessagesEndpoint._handle", broken)
    body = b'{"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}'
    client.data_received(b"POST /v1/messages HTTP/1.1\r\nhost: g\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
    [written] = transport.writes
    head, _, payload = written.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500 ") and b"\r\nrequest-id: " in head  # the id where Anthropic's clients read it
    assert json.loads(payload) == {
        "type": "error", "error": {"type": "api_error", "message": "the gateway met an internal error answering this request"},
    }  # fmt: skip
    assert transport.closed and "a bug on the Messages path" in caplog.text  # with its traceback


@pytest.mark.parametrize("framing", [b"content-length: 100", b"transfer-encoding: chunked"])
def test_a_messages_answer_that_times_out_before_reaching_the_client_is_a_504(tmp_path, framing):
    # The wire reads the chat answer back whole before writing a byte: the client was told nothing
    # yet, so a timeout is the timeout it is (504 timeout_error), not a broken answer (502).
    path = tmp_path / "alloy.toml"
    path.write_text('[router]\nmax_retries = 0\n[providers.openai]\nbase_url = "http://127.0.0.1:9/v1"\napi_key = "sk-x"\n')
    client, upstream, transport, loop = wire_gateway(alloy_config.load(str(path), env={}), "openai")
    try:
        body = b'{"model": "openai/gpt-4o-mini", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}'
        client.data_received(b"POST /v1/messages HTTP/1.1\r\nhost: g\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        upstream.data_received(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" + framing + b"\r\n\r\n")
        upstream._fail(UpstreamTimeout("the upstream sent nothing for 3 s"))
        head, _, payload = b"".join(transport.writes).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 504 ") and b"\r\nrequest-id: " in head
        assert json.loads(payload) == {"type": "error", "error": {"type": "timeout_error", "message": "the upstream sent nothing for 3 s"}}
        assert transport.closed
    finally:
        loop.close()


def test_counts_past_64_bits_are_capped_for_messages_and_responses_clients(gateway):
    huge = {"prompt_tokens": 1, "completion_tokens": 2**64 - 1, "total_tokens": 2**64}
    message = messages_client(gateway).messages.create(
        model="local/m", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
        extra_headers=answer({**completion(), "usage": huge}),
    )  # fmt: skip
    assert message.usage.output_tokens == 10**12
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    stream = events({**chunk, "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]},
                    {**chunk, "choices": [], "usage": huge}) + b"data: [DONE]\r\n\r\n"  # fmt: skip
    with chat_client(gateway).responses.stream(model="local/m", input="hi", extra_headers=answer(stream, "text/event-stream")) as events_:
        final = events_.get_final_response()
    assert final.output_text == "hi" and final.usage.output_tokens == 10**12


@pytest.mark.parametrize("usage", [{"promptTokenCount": -5}, {"promptTokenCount": "x"}, {"promptTokenCount": 2**63}, [1]],
                         ids=["negative", "a string", "past 10^12", "a list"])  # fmt: skip
def test_a_gemini_embeddings_usage_of_another_shape_is_read_as_what_it_can_say(gateway, usage):
    embeddings = {"embeddings": [{"values": [0.5, 0.25]}], "usageMetadata": usage}
    reply = chat_client(gateway).embeddings.create(model="gemini/text-embedding-004", input="hi",
                                                   encoding_format="float", extra_headers=answer(embeddings))  # fmt: skip
    assert reply.data[0].embedding == [0.5, 0.25]
    assert 0 <= reply.usage.prompt_tokens <= 10**12 and 0 <= reply.usage.total_tokens <= 10**12


def test_a_gemini_response_id_or_prompt_feedback_of_another_type_is_left_out(gateway):
    reply = ask(gateway, "gemini/gemini-2.5-flash", answer({"candidates": [CANDIDATE], "responseId": 7, "promptFeedback": [1]}))
    assert reply.choices[0].message.content == "hi" and reply.id.startswith("chatcmpl-") and reply.id != "chatcmpl-7"
    body = events({"candidates": [CANDIDATE], "responseId": {"a": 1}})
    chunks = list(ask(gateway, "gemini/gemini-2.5-flash", answer(body, "text/event-stream"), stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hi"


def test_an_emoji_whose_halves_come_in_two_chunks_reaches_messages_and_responses_clients_whole(gateway):
    # A server slicing text by UTF-16 units (JavaScript's) escapes each half of an emoji on its own:
    # valid JSON (RFC 8259 section 8.2), which the passthrough relays as it is; the translated
    # streams join the halves. A half whose other half never comes is U+FFFD.
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    pieces = ["a\ud83d", "\ude00b", " x\ud83d", "y"]
    stream = events(*({**chunk, "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]} for text in pieces),
                    {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}) + b"data: [DONE]\r\n\r\n"  # fmt: skip
    assert b"\\ud83d" in stream  # escaped as such on the wire
    headers = answer(stream, "text/event-stream")
    with messages_client(gateway).messages.stream(model="local/m", max_tokens=10, messages=[{"role": "user", "content": "hi"}], extra_headers=headers) as events_:
        message = events_.get_final_message()
    assert message.content[0].text == "a\U0001f600b x\ufffdy" and message.stop_reason == "end_turn"
    with chat_client(gateway).responses.stream(model="local/m", input="hi", extra_headers=headers) as events_:
        final = events_.get_final_response()
    assert final.output_text == "a\U0001f600b x\ufffdy" and final.status == "completed"


def test_a_whole_answer_cut_short_is_a_502_for_messages_and_responses_clients(gateway):
    # The upstream sends its JSON in one chunk, then closes without the last chunk: nothing of the
    # answer reached these clients (their wire reads it whole first), so they get Alloy's 502.
    cut = answer(completion(), cut=True)
    with pytest.raises(anthropic.InternalServerError) as caught:
        messages_client(gateway).messages.create(
            model="local/m", max_tokens=10, messages=[{"role": "user", "content": "hi"}], extra_headers=cut
        )
    assert caught.value.status_code == 502 and caught.value.body["error"]["type"] == "api_error"
    with pytest.raises(openai.InternalServerError) as caught:
        chat_client(gateway).responses.create(model="local/m", input="hi", extra_headers=cut)
    assert caught.value.status_code == 502 and caught.value.code == "upstream_protocol_error"


CHUNK = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}  # fmt: skip


BACKENDS = pytest.mark.parametrize("model", ["local/m", "localhx/m"], ids=["core", "httpx"])


@BACKENDS
def test_a_stream_that_ends_at_close_is_relayed_whole(gateway, model):
    # No length, no chunks (an HTTP/1.0 server, some proxies): the close is the stream's end.
    body = events(CHUNK) + b"data: [DONE]\n\n"
    chunks = list(ask(gateway, model, answer(body, "text/event-stream", until_close=True), stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "hi"


@BACKENDS
def test_a_stream_that_ends_at_close_inside_an_event_ends_with_an_error(gateway, model):
    # The connection closed halfway through an event: the stream was cut, not finished, and the
    # client must be able to tell (the SDK raises on the error event) rather than take a partial
    # answer for a whole one. (The httpx backend took the close for a clean end.)
    body = events(CHUNK) + b'data: {"id": "c1", "object": "chat.comp'
    stream = ask(gateway, model, answer(body, "text/event-stream", until_close=True), stream=True)
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert received == ["hi"]
    assert "inside an event" in str(caught.value)


@BACKENDS
@pytest.mark.parametrize("status", [99, 600, 999])
def test_a_status_outside_100_to_599_is_a_502(gateway, model, status):
    # RFC 9110 section 15: a status is 100-599. The httpx backend relayed "999" to the client, whose
    # SDK cannot classify it; the core backend answered 502, as both now do.
    with pytest.raises(openai.APIStatusError) as caught:
        ask(gateway, model, answer(completion(), status=status))
    assert caught.value.status_code == 502 and caught.value.code == "upstream_protocol_error"


def test_a_reset_ends_no_answer_read_until_close(gateway):
    # Only an orderly close ends a body that has neither a length nor chunks; a reset (the upstream
    # crashed, a proxy gave up) cuts it, between events or inside a JSON answer alike.
    stream = ask(gateway, "local/m", answer(events(CHUNK), "text/event-stream", reset=True), stream=True)
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert received == ["hi"]
    with pytest.raises((openai.APIError, json.JSONDecodeError)) as caught:
        ask(gateway, "local/m", answer(b'{"id": "x", "object": "chat.completion", "cr', reset=True))
    assert not isinstance(caught.value, json.JSONDecodeError)  # a body said cut, not a "whole" broken one


@pytest.fixture
def wired_observed(tmp_path):
    """As ``wired``, with the metrics and the access log on: the listeners of refusals."""
    path = tmp_path / "alloy.toml"
    path.write_text(
        '[router]\nmax_retries = 0\n[providers.openai]\nbase_url = "http://127.0.0.1:9/v1"\napi_key = "sk-x"\n'
        f'[log]\naccess = true\npath = "{tmp_path / "access.log"}"\n'
    )
    client, upstream, transport, loop = wire_gateway(alloy_config.load(str(path), env={}), "openai")
    observability = Observability(client.gateway)  # as the server sets it up at start
    yield client, transport
    observability.close()
    loop.close()


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"POST /v1/chat/completions HTTP/1.1\r\nhost: g\r\ncontent-length: 9\r\n\r\n{\"model\":", 400),  # not JSON
        (b"GET /v1/nowhere HTTP/1.1\r\nhost: g\r\n\r\n", 404),
        (b"POST /v1/chat/completions HTTP/1.1\r\nhost: g\r\ncontent-length: -1\r\n\r\n", 400),  # the parser's
    ],
)
def test_a_refusal_listener_that_raises_costs_the_client_nothing(wired_observed, monkeypatch, caplog, request_bytes, status):
    # The reporting of refusals (metrics, access log) ran unguarded: a bug there (one was found in
    # it before, for a CORS preflight) closed the client's connection with no answer at all.
    client, transport = wired_observed

    def broken(*args, **kwargs):
        raise RuntimeError("a reporting bug")

    # (The metrics and access log are extension types in the compiled build: their methods cannot be
    # patched, so the bug is put in the reporting that calls them.)
    monkeypatch.setattr("alloy.observability.Observability._report_refusal", broken)
    client.data_received(request_bytes)
    assert transport.writes and transport.writes[0].startswith(b"HTTP/1.1 %d " % status)
    assert "a reporting bug" in caplog.text

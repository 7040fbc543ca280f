"""The Gemini emulator as its users see it: ``python tests/emulators/gemini.py`` as a process, driven
with urllib. Checks that it refuses what Google refuses (in Google's error shape), that its replies
are deterministic, and that every body the translator builds is accepted by it."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import orjson
import pytest

from alloy.core import SSESplitter
from alloy.providers import TranslateSettings, gemini
from fixtures_gemini import REQUEST_CASES, THINKING_CASES

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "tests", "emulators", "gemini.py")
LISTENING = re.compile(r"^gemini-emulator listening on http://127\.0\.0\.1:(\d+)$")
KEY = "AIza-emulator"
GENERATE = "/v1beta/models/gemini-2.0-flash:generateContent"
HELLO = {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}


@pytest.fixture(scope="module")
def emulator():
    popen = subprocess.Popen(
        [sys.executable, SCRIPT, "--port", "0", "--api-key", KEY],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    found, ready = [], threading.Event()

    def read():
        for line in popen.stderr:
            match = LISTENING.match(line.rstrip("\n"))
            if match and not found:
                found.append(int(match.group(1)))
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(20) and found, "the emulator did not start"
        yield f"http://127.0.0.1:{found[0]}"
    finally:
        os.kill(popen.pid, signal.SIGTERM)
        popen.wait(10)


def post(base, path, body, key=KEY, headers=None):
    all_headers = {"content-type": "application/json", **(headers or {})}
    if key is not None:
        all_headers["x-goog-api-key"] = key
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    request = urllib.request.Request(base + path, data=data, method="POST", headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("content-type"), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("content-type"), error.read()


def google_error(answer, status, name):
    code, _, body = answer
    assert code == status, body
    error = json.loads(body)["error"]
    assert (error["code"], error["status"]) == (status, name)
    return error


def test_missing_key_is_403_permission_denied(emulator):
    google_error(post(emulator, GENERATE, HELLO, key=None), 403, "PERMISSION_DENIED")


def test_wrong_key_is_400_api_key_invalid(emulator):
    error = google_error(post(emulator, GENERATE, HELLO, key="AIza-wrong"), 400, "INVALID_ARGUMENT")
    assert error["details"][0]["reason"] == "API_KEY_INVALID"
    assert gemini.translate_response(400, orjson.dumps({"error": error}), "m", "chat/completions")[0] == 401


def test_key_in_query_is_accepted(emulator):
    assert post(emulator, GENERATE + "?key=" + KEY, HELLO, key=None)[0] == 200


@pytest.mark.parametrize(
    "body, needle",
    [
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role"),
        ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "valid role"),
        ({"contents": []}, "contents is not specified"),
        ({}, "contents is not specified"),
        ({"contents": [{"role": "user", "parts": []}]}, "must not be empty"),
        ({"contents": [{"role": "user", "parts": [{"text": ""}]}]}, "empty text"),
        ({"contents": [{"role": "user", "parts": [{"text": "a", "inlineData": {"mimeType": "image/png", "data": ""}}]}]}, "oneof"),
        ({**HELLO, "messages": []}, 'Unknown name "messages"'),
        ({**HELLO, "generationConfig": {"max_tokens": 5}}, 'Unknown name "max_tokens" at \'generation_config\''),
        ({**HELLO, "generationConfig": {"temperature": "hot"}}, "generation_config.temperature"),
        ({"contents": [{"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}]}, "function response"),
        ({"contents": [{"role": "user", "parts": [{"functionCall": {"name": "f", "args": {}}}]}]}, "model role"),
        ({**HELLO, "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}}]}]},
         'Unknown name "additionalProperties"'),
        ({**HELLO, "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "object", "properties": {}}}]}]}, "non-empty"),
        ({**HELLO, "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}}, "mode"),
        ({**HELLO, "generationConfig": {"stopSequences": ["a", "b", "c", "d", "e", "f"]}}, "stop"),
    ],
    ids=["assistant role", "system role", "empty contents", "no contents", "empty parts", "empty text", "two data fields",
         "unknown top-level field", "unknown nested field", "wrong type", "orphan functionResponse",
         "functionCall from user", "additionalProperties", "empty object schema", "bad mode", "six stops"],
)  # fmt: skip
def test_strict_rejections(emulator, body, needle):
    error = google_error(post(emulator, GENERATE, body), 400, "INVALID_ARGUMENT")
    assert needle in error["message"]


def generate(model):
    return f"/v1beta/models/{model}:generateContent"


def thinking(**config):
    return {**HELLO, "generationConfig": {"thinkingConfig": config}}


@pytest.mark.parametrize(
    "model, body, needle",
    [
        ("gemini-2.0-flash", thinking(thinkingBudget=1024), "thinking is not supported"),
        ("gemini-2.0-flash", thinking(includeThoughts=True), "thinking is not supported"),
        ("gemini-1.5-pro", thinking(thinkingBudget=0), "thinking is not supported"),
        ("gemini-2.5-flash", thinking(thinkingBudget=1024, thinkingLevel="low"), "cannot be set together"),
        ("gemini-2.5-pro", thinking(thinkingBudget=0), "only works in thinking mode"),
        ("gemini-2.5-pro", thinking(thinkingBudget=64), "128 to 32768"),
        ("gemini-2.5-flash", thinking(thinkingBudget=30000), "0 to 24576"),
        ("gemini-2.5-flash-lite", thinking(thinkingBudget=100), "0 or 512 to 24576"),
        ("gemini-3-pro-preview", thinking(thinkingBudget=0), "only works in thinking mode"),
        ("gemini-2.5-flash", thinking(thinkingLevel="low"), "thinking level 'low' is not supported"),
        ("gemini-3-pro-preview", thinking(thinkingLevel="medium"), "thinking level 'medium'"),
        ("gemini-3-flash-preview", thinking(thinkingLevel="extreme"), "thinking level 'extreme'"),
        ("gemini-2.5-flash", thinking(thinking_budget="lots"), "thinking_config.thinking_budget"),
        ("gemini-2.5-flash", thinking(budget=5), 'Unknown name "budget"'),
    ],
    ids=["2.0 budget", "2.0 includeThoughts", "1.5", "budget and level", "pro off", "pro too small", "flash too big",
         "flash-lite gap", "3 off", "level on 2.5", "medium on 3 pro", "unknown level", "wrong type", "unknown field"],
)  # fmt: skip
def test_thinking_config_rejections(emulator, model, body, needle):
    error = google_error(post(emulator, generate(model), body), 400, "INVALID_ARGUMENT")
    assert needle in error["message"]


@pytest.mark.parametrize(
    "model, config",
    [("gemini-2.5-flash", {"thinkingBudget": -1}), ("gemini-2.5-flash", {"thinkingBudget": 0}),
     ("gemini-2.5-flash-lite", {"thinkingBudget": 512}), ("gemini-2.5-pro", {"thinkingBudget": 32768}),
     ("gemini-3-pro-preview", {"thinkingLevel": "LOW"}), ("gemini-3-flash-preview", {"thinkingLevel": "minimal"}),
     ("gemini-3-flash-preview", {"thinkingBudget": 2048, "includeThoughts": True}), ("gemini-2.0-flash", {})],
)  # fmt: skip
def test_thinking_configs_the_api_takes(emulator, model, config):
    status, _, body = post(emulator, generate(model), thinking(**config))
    assert status == 200, body


def test_a_thinking_model_thinks_and_shows_thoughts_only_when_asked(emulator):
    answer = json.loads(post(emulator, generate("gemini-2.5-flash"), HELLO)[2])
    assert answer["candidates"][0]["content"]["parts"] == [{"text": "echo: hello there"}]
    assert answer["usageMetadata"] == {"promptTokenCount": 2, "candidatesTokenCount": 3, "thoughtsTokenCount": 3, "totalTokenCount": 8}
    shown = json.loads(post(emulator, generate("gemini-2.5-flash"), thinking(includeThoughts=True))[2])
    assert shown["candidates"][0]["content"]["parts"] == [{"text": "Considering: hello there", "thought": True}, {"text": "echo: hello there"}]
    off = json.loads(post(emulator, generate("gemini-2.5-flash"), thinking(thinkingBudget=0))[2])
    assert "thoughtsTokenCount" not in off["usageMetadata"]


def test_thinking_is_taken_from_max_output_tokens_first(emulator):
    body = {**HELLO, "generationConfig": {"maxOutputTokens": 4, "thinkingConfig": {"includeThoughts": True}}}
    candidate = json.loads(post(emulator, generate("gemini-2.5-flash"), body)[2])["candidates"][0]
    assert candidate["content"]["parts"][-1] == {"text": "echo:"} and candidate["finishReason"] == "MAX_TOKENS"


def test_a_function_call_after_thinking_carries_a_thought_signature(emulator):
    tools = [{"functionDeclarations": [{"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]}]
    body = {"contents": [{"role": "user", "parts": [{"text": "call tool"}]}], "tools": tools}
    [part] = json.loads(post(emulator, generate("gemini-2.5-pro"), body)[2])["candidates"][0]["content"]["parts"]
    assert part["functionCall"]["name"] == "lookup" and part["thoughtSignature"]
    [part] = json.loads(post(emulator, generate("gemini-2.0-flash"), body)[2])["candidates"][0]["content"]["parts"]
    assert "thoughtSignature" not in part


def test_a_thinking_stream_sends_the_thought_first(emulator):
    path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    body = {"contents": [{"role": "user", "parts": [{"text": "a b c d e f"}]}], "generationConfig": {"thinkingConfig": {"includeThoughts": True}}}
    events = [json.loads(data) for _, data in SSESplitter().feed(post(emulator, path, body)[2])]
    assert events[0]["candidates"][0]["content"]["parts"] == [{"text": "Considering: a b c d e f", "thought": True}]
    assert "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events[1:]) == "echo: a b c d e f"
    assert events[-1]["usageMetadata"]["thoughtsTokenCount"] == 7


def test_implicit_caching_of_a_repeated_prefix(emulator):
    document = {"role": "user", "parts": [{"text": " ".join(["omega"] * 1100)}]}
    ask = lambda text: {"contents": [document, {"role": "model", "parts": [{"text": "read"}]}, {"role": "user", "parts": [{"text": text}]}]}  # noqa: E731
    first = json.loads(post(emulator, generate("gemini-2.5-flash"), ask("first question"))[2])["usageMetadata"]
    assert "cachedContentTokenCount" not in first
    second = json.loads(post(emulator, generate("gemini-2.5-flash"), ask("second question"))[2])["usageMetadata"]
    assert (second["cachedContentTokenCount"], second["promptTokenCount"]) == (1101, 1103)
    older = json.loads(post(emulator, generate("gemini-2.0-flash"), ask("first question"))[2])["usageMetadata"]
    assert "cachedContentTokenCount" not in older  # implicit caching is for 2.5 and later
    short = {"contents": [{"role": "user", "parts": [{"text": "short prompt"}]}]}
    for _ in range(2):
        assert "cachedContentTokenCount" not in json.loads(post(emulator, generate("gemini-2.5-flash"), short)[2])["usageMetadata"]


def test_unknown_model_is_404(emulator):
    google_error(post(emulator, "/v1beta/models/gpt-4o:generateContent", HELLO), 404, "NOT_FOUND")


@pytest.mark.parametrize("status, name", [(429, "RESOURCE_EXHAUSTED"), (500, "INTERNAL"), (503, "UNAVAILABLE")])
def test_fault_injection(emulator, status, name):
    google_error(post(emulator, GENERATE, HELLO, headers={"x-emulator-fault": f"status={status}"}), status, name)


def test_echo_reply_and_max_tokens(emulator):
    status, _, body = post(emulator, GENERATE, HELLO)
    answer = json.loads(body)
    assert status == 200
    assert answer["candidates"][0]["content"] == {"role": "model", "parts": [{"text": "echo: hello there"}]}
    assert answer["candidates"][0]["finishReason"] == "STOP"
    assert answer["usageMetadata"] == {"promptTokenCount": 2, "candidatesTokenCount": 3, "totalTokenCount": 5}
    status, _, body = post(emulator, GENERATE, {**HELLO, "generationConfig": {"maxOutputTokens": 2}})
    candidate = json.loads(body)["candidates"][0]
    assert (candidate["content"]["parts"][0]["text"], candidate["finishReason"]) == ("echo: hello", "MAX_TOKENS")


def test_sse_stream_uses_crlf_and_ends_with_finish_and_usage(emulator):
    path = "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    status, content_type, body = post(emulator, path, {"contents": [{"role": "user", "parts": [{"text": "a b c d e f"}]}]})
    assert status == 200 and content_type.startswith("text/event-stream")
    assert body.endswith(b"\r\n\r\n") and b"\n\n" not in body.replace(b"\r\n", b"")
    events = [json.loads(data) for _, data in SSESplitter().feed(body)]
    assert len(events) == 3
    assert all("finishReason" not in e["candidates"][0] for e in events[:-1])
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert events[-1]["usageMetadata"]["candidatesTokenCount"] == 7
    assert "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events) == "echo: a b c d e f"


def test_embeddings_are_deterministic(emulator):
    path = "/v1beta/models/text-embedding-004:batchEmbedContents"
    body = {"requests": [{"model": "models/text-embedding-004", "content": {"parts": [{"text": t}]}} for t in ("a", "b")]}
    first, second = (json.loads(post(emulator, path, body)[2]) for _ in range(2))
    assert first == second
    assert [len(e["values"]) for e in first["embeddings"]] == [8, 8]
    body["requests"][0]["model"] = "models/other"
    google_error(post(emulator, path, body), 400, "INVALID_ARGUMENT")


def test_request_log(emulator):
    request = urllib.request.Request(emulator + "/_emulator/requests", method="DELETE")
    urllib.request.urlopen(request, timeout=5).read()
    post(emulator, GENERATE, HELLO)
    with urllib.request.urlopen(emulator + "/_emulator/requests", timeout=5) as response:
        log = json.load(response)["requests"]
    assert [(r["method"], r["path"], r["headers"]["x-goog-api-key"], r["body"]) for r in log] == [("POST", GENERATE, KEY, HELLO)]


# --- the translator against the emulator ---------------------------------------------------------------

def through(emulator, body, endpoint="chat/completions", model="gemini-2.0-flash"):
    call = gemini.build_request(body, model, endpoint, TranslateSettings(api_key=KEY))
    status, _, answer = post(emulator, call.path.decode(), call.body, key=None, headers={k.decode(): v.decode() for k, v in call.headers})
    return status, answer, call


@pytest.mark.parametrize("name, body, expected", REQUEST_CASES, ids=[case[0] for case in REQUEST_CASES])
def test_every_translated_request_is_accepted(emulator, name, body, expected):
    status, answer, _ = through(emulator, body)
    assert status == 200, answer
    out_status, completion = gemini.translate_response(status, answer, "gemini-2.0-flash", "chat/completions")
    assert out_status == 200 and json.loads(completion)["object"] == "chat.completion"


@pytest.mark.parametrize("model, effort, expected", THINKING_CASES, ids=[f"{c[0]}-{c[1]}" for c in THINKING_CASES])
def test_every_translated_thinking_config_is_accepted(emulator, model, effort, expected):
    if model.startswith("gemma"):
        return  # the emulator serves gemini models only; the translator sends gemma none
    status, answer, _ = through(emulator, {"messages": [{"role": "user", "content": "think"}], "reasoning_effort": effort}, model=model)
    assert status == 200, answer
    message = json.loads(gemini.translate_response(status, answer, model, "chat/completions")[1])["choices"][0]["message"]
    assert ("reasoning_content" in message) is bool(expected and expected.get("includeThoughts"))


def test_reasoning_effort_round_trips_as_reasoning_content_and_reasoning_tokens(emulator):
    body = {"messages": [{"role": "user", "content": "six times seven"}], "reasoning_effort": "medium"}
    status, answer, _ = through(emulator, body, model="gemini-2.5-flash")
    completion = json.loads(gemini.translate_response(status, answer, "g", "chat/completions")[1])
    message = completion["choices"][0]["message"]
    assert (message["reasoning_content"], message["content"]) == ("Considering: six times seven", "echo: six times seven")
    assert completion["usage"]["completion_tokens_details"] == {"reasoning_tokens": 4}
    assert completion["usage"]["completion_tokens"] == 4 + 4


def test_implicit_cache_hits_round_trip_as_cached_tokens(emulator):
    document = " ".join(["sigma"] * 1200)
    messages = [{"role": "system", "content": document}, {"role": "user", "content": "first"}]
    first = json.loads(gemini.translate_response(200, through(emulator, {"messages": messages}, model="gemini-2.5-pro")[1], "g", "chat/completions")[1])
    messages += [first["choices"][0]["message"], {"role": "user", "content": "second"}]
    status, answer, _ = through(emulator, {"messages": messages}, model="gemini-2.5-pro")
    usage = json.loads(gemini.translate_response(status, answer, "g", "chat/completions")[1])["usage"]
    assert usage["prompt_tokens_details"] == {"cached_tokens": 1201} and usage["prompt_tokens"] > 1201


def test_tool_round_trip(emulator):
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "additionalProperties": False}}}
    messages = [{"role": "user", "content": "please call tool"}]
    status, answer, _ = through(emulator, {"messages": messages, "tools": [tool]})
    message = json.loads(gemini.translate_response(status, answer, "g", "chat/completions")[1])["choices"][0]["message"]
    call = message["tool_calls"][0]
    assert (call["function"]["name"], json.loads(call["function"]["arguments"])) == ("lookup", {"query": "please call tool"})
    messages += [message, {"role": "tool", "tool_call_id": call["id"], "content": "42"}]
    status, answer, _ = through(emulator, {"messages": messages, "tools": [tool]})
    completion = json.loads(gemini.translate_response(status, answer, "g", "chat/completions")[1])
    assert completion["choices"][0]["message"]["content"] == 'result: {"content":"42"}'


def test_embeddings_through_the_emulator(emulator):
    status, answer, _ = through(emulator, {"input": ["x", "y"], "dimensions": 4}, "embeddings", "text-embedding-004")
    out = json.loads(gemini.translate_response(status, answer, "emb", "embeddings")[1])
    assert [(d["index"], len(d["embedding"])) for d in out["data"]] == [(0, 4), (1, 4)]


@pytest.mark.parametrize(
    "fault, last_code",
    [("", None), ("cut-stream", "upstream_protocol_error"), ("stream-error", "internal_error"), ("block-prompt", "content_filter")],
)
def test_stream_faults_through_the_translator(emulator, fault, last_code):
    body = {"messages": [{"role": "user", "content": "one two three"}], "stream": True}
    call = gemini.build_request(body, "gemini-2.0-flash", "chat/completions", TranslateSettings(api_key=KEY))
    headers = {k.decode(): v.decode() for k, v in call.headers}
    status, _, wire = post(emulator, call.path.decode(), call.body, key=None, headers={**headers, "x-emulator-fault": fault})
    assert status == 200
    translator, out = gemini.StreamTranslator("g", True), []
    for name, data in SSESplitter().feed(wire):
        out.extend(translator.feed(name, data))
    out.extend(translator.finish())
    assert out[-1] == b"data: [DONE]\n\n"
    last = json.loads(out[-2][6:])
    if last_code is None:
        assert last["usage"]["completion_tokens"] == 4
    else:
        assert last["error"]["code"] == last_code

"""The response cache and answers shaped oddly by their upstream, through a running gateway: an
answer stored as it came whose crossing over (JSON to stream, stream to JSON) cannot be built
costs one trip upstream, never a 500 for every later request until it expires; and a stream that
carried an error in another provider's shape is never stored. The upstream is scripted by the
request (``scripted_upstream``); the cache key does not see those headers, so one prompt can be
answered oddly first and well afterwards."""

import json
import uuid

import httpx
import pytest

from harness import assert_no_crash_logged, start_gateway_process
from scripted_upstream import ScriptedUpstream, answer

GOOD = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}  # fmt: skip


@pytest.fixture(scope="module")
def upstream():
    server = ScriptedUpstream()
    yield server
    server.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, upstream):
    process = start_gateway_process(
        tmp_path_factory.mktemp("cache-odd") / "alloy.toml",
        f"""
        [providers.openai]
        base_url = "{upstream.base}/v1"
        api_key = "sk-provider"
        [cache]
        enabled = true
        """,
    )
    yield process
    process.stop()
    assert_no_crash_logged(process)


def ask(gateway, prompt, scripted, stream=False):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]}
    if stream:
        body["stream"] = True
    headers = {"authorization": "Bearer client", **scripted}
    return httpx.post(gateway.base + "/v1/chat/completions", json=body, headers=headers, timeout=10)


def events(*chunks):
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


@pytest.mark.parametrize(
    "odd",
    [{"choices": {"0": "x"}}, {"choices": ["x"]}, {"choices": 5}],
    ids=["choices an object", "a choice a string", "choices a number"],
)
def test_a_stored_answer_that_cannot_cross_over_costs_one_trip_upstream(gateway, upstream, odd):
    prompt = f"odd {uuid.uuid4().hex[:8]}"
    first = ask(gateway, prompt, answer({**GOOD, **odd}))
    assert first.status_code == 200 and first.headers["x-alloy-cache"] == "miss"  # stored as it came
    before = len(upstream.requests)
    streamed = ask(gateway, prompt, answer(events({**GOOD, "object": "chat.completion.chunk", "choices": []})), stream=True)
    assert streamed.status_code == 200 and streamed.text.endswith("data: [DONE]\n\n")
    assert streamed.headers["x-alloy-cache"] == "miss" and len(upstream.requests) == before + 1
    # Its answer replaced the entry: the next stream is a hit, replayed as the upstream sent it.
    again = ask(gateway, prompt, answer({**GOOD, **odd}), stream=True)
    assert again.headers["x-alloy-cache"] == "hit" and len(upstream.requests) == before + 1
    assert "cached answer could not be replayed" in gateway.stderr


def test_a_stored_stream_that_cannot_cross_over_costs_one_trip_upstream(gateway, upstream):
    prompt = f"odd stream {uuid.uuid4().hex[:8]}"
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini"}
    odd = events({**chunk, "choices": [{"index": 0, "delta": "not an object", "finish_reason": None}]},
                 {**chunk, "choices": [], "usage": GOOD["usage"]})  # with its usage: it may answer JSON
    assert ask(gateway, prompt, answer(odd, "text/event-stream"), stream=True).headers["x-alloy-cache"] == "miss"
    before = len(upstream.requests)
    whole = ask(gateway, prompt, answer(GOOD))
    assert whole.status_code == 200 and whole.json()["choices"][0]["message"]["content"] == "hi"
    assert whole.headers["x-alloy-cache"] == "miss" and len(upstream.requests) == before + 1


@pytest.mark.parametrize(
    "stream",
    [
        b'event: error\ndata: {"message": "overloaded"}\n\ndata: [DONE]\n\n',
        events({"object": "error", "message": "the model crashed", "code": 500}),
    ],
    ids=["an error event", "a vLLM error object"],
)
def test_a_stream_that_carried_an_error_in_another_shape_is_not_stored(gateway, upstream, stream):
    prompt = f"error stream {uuid.uuid4().hex[:8]}"
    assert ask(gateway, prompt, answer(stream, "text/event-stream"), stream=True).headers["x-alloy-cache"] == "miss"
    before = len(upstream.requests)
    good = events({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]})  # fmt: skip
    assert ask(gateway, prompt, answer(good, "text/event-stream"), stream=True).headers["x-alloy-cache"] == "miss"
    assert len(upstream.requests) == before + 1

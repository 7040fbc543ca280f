"""A stream whose usage was hidden from its client is stored with it, for the clients who ask.

With ``[server] stream_usage = true`` (which keys, limits and budgets turn on) a stream whose client
did not ask for usage goes upstream asking, and the usage event is taken out before the client sees
it (``alloy.stream_usage``). The response cache records that stream with its usage event kept where
it was, so the stored stream answers every later request for the same prompt: a stream without
usage (the event left out again, as for the first client), a stream with ``include_usage`` (the
event in), and a plain JSON request (the completion's ``usage``). Before, the stored stream had no
usage and the last two went upstream again.
"""

import json

import pytest

from harness import assert_no_crash_logged
from test_cache_streams import body, complete, raw_stream, start_cache_gateway, unique, upstream_chats


@pytest.fixture(scope="module")
def gateway(shared_mock, tmp_path_factory):
    process = start_cache_gateway(shared_mock, tmp_path_factory.mktemp("cache-hidden"), server="stream_usage = true")
    yield process
    process.stop()
    assert_no_crash_logged(process)


def test_the_first_client_gets_no_usage_and_a_later_one_that_asks_gets_it_from_the_cache(gateway, upstream):
    text = unique()
    headers, first = raw_stream(gateway, body(text, True))
    assert headers["x-alloy-cache"] == "miss"
    assert not any('"usage"' in data for data in first)  # hidden from the client that did not ask
    headers, asked = raw_stream(gateway, body(text, True, include_usage=True))
    assert headers["x-alloy-cache"] == "hit"
    usage = json.loads(asked[-2])  # the event before [DONE]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] > 0
    assert [d for d in asked if d != asked[-2]] == first  # the same events otherwise
    assert len(upstream_chats(upstream)) == 1


def test_a_stream_whose_usage_was_hidden_answers_a_json_request_with_its_usage(gateway, upstream):
    text = unique()
    raw_stream(gateway, body(text, True))
    headers, completion = complete(gateway, body(text, False))
    assert headers["x-alloy-cache"] == "hit"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    assert len(upstream_chats(upstream)) == 1


def test_a_replay_to_a_client_that_did_not_ask_still_has_no_usage(gateway, upstream):
    text = unique()
    _, first = raw_stream(gateway, body(text, True))
    headers, again = raw_stream(gateway, body(text, True))
    assert headers["x-alloy-cache"] == "hit" and again == first
    assert len(upstream_chats(upstream)) == 1

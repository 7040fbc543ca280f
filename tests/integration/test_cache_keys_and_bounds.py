"""The response cache's keys and bounds, where a probe found them short: what reaches the upstream is
what the key holds (the query string, the provider's server and configured headers), a request
the upstream would refuse is not answered from the cache, an answer bigger than the whole store
evicts nothing, and the cache's own control headers never reach the provider.

Through a running gateway on the memory backend, with the official SDK or raw HTTP and the strict
mock's request log, as in test_cache_memory.py.
"""

import json
import urllib.error
import urllib.request

import openai
import pytest

from test_cache_memory import MASTER, chat, client, gateway_config, unique, upstream_chats


def post(gateway, body, target="/v1/chat/completions", headers=None):
    """(status, headers, parsed body) of one raw POST with the master key."""
    request = urllib.request.Request(
        gateway.base + target, data=json.dumps(body).encode(), method="POST",
        headers={"content-type": "application/json", "authorization": f"Bearer {MASTER}", **(headers or {})},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.load(error)


def reload(gateway):
    request = urllib.request.Request(gateway.base + "/admin/reload", method="POST", headers={"authorization": f"Bearer {MASTER}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_the_query_string_is_part_of_the_key(start_gateway, upstream):
    # The query goes upstream with the path: a request the upstream sees differently is another one.
    gateway = start_gateway(config=gateway_config(upstream), env={"K": "sk-provider"})
    body = {"model": "chat", "messages": [{"role": "user", "content": unique()}]}
    assert post(gateway, body)[1]["x-alloy-cache"] == "miss"
    assert post(gateway, body, "/v1/chat/completions?variant=b")[1]["x-alloy-cache"] == "miss"
    assert post(gateway, body, "/v1/chat/completions?variant=b")[1]["x-alloy-cache"] == "hit"
    assert post(gateway, body)[1]["x-alloy-cache"] == "hit"
    sent = [r["path"] for r in upstream.requests() if r["path"].startswith("/v1/chat/completions")]
    assert sent == ["/v1/chat/completions", "/v1/chat/completions?variant=b"]


def test_stream_options_without_a_stream_is_not_answered_from_the_cache(start_gateway, upstream):
    # A stored stream answers a plain request and the other way round, so "stream" and
    # "stream_options" were left out of the key; but stream_options without a stream is a request
    # OpenAI refuses (400), and the cache answered it 200.
    gateway = start_gateway(config=gateway_config(upstream), env={"K": "sk-provider"})
    text = unique()
    chat(gateway, text)  # stored
    with pytest.raises(openai.BadRequestError):
        chat(gateway, text, stream_options={"include_usage": True})
    streamed = client(gateway).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": text}], stream=True, stream_options={"include_usage": True}
    )
    assert streamed.response.headers["x-alloy-cache"] == "hit"  # a real stream still crosses over
    assert [chunk.usage for chunk in streamed][-1] is not None


def test_a_provider_a_reload_moves_or_rebills_starts_its_answers_afresh(start_gateway, start_mock, upstream, tmp_path):
    # The key named the provider and the upstream model, not where the provider is nor the account
    # its configured headers bill: after a reload to another server, or another organization, the
    # old answers were served and the new upstream never asked.
    other = start_mock("--api-key", "sk-provider")
    gateway = start_gateway(config=gateway_config(upstream), env={"K": "sk-provider"})
    path = tmp_path / "alloy-0.toml"
    text = unique()
    assert [chat(gateway, text)[0]["x-alloy-cache"] for _ in range(2)] == ["miss", "hit"]
    path.write_text(path.read_text().replace(upstream.base, other.base))
    reload(gateway)
    assert [chat(gateway, text)[0]["x-alloy-cache"] for _ in range(2)] == ["miss", "hit"]
    assert len(upstream_chats(other)) == 1
    path.write_text(path.read_text().replace('api_key = "env:K"', 'api_key = "env:K"\nheaders = { "OpenAI-Organization" = "org-a" }'))
    reload(gateway)
    assert [chat(gateway, text)[0]["x-alloy-cache"] for _ in range(2)] == ["miss", "hit"]
    path.write_text(path.read_text().replace("org-a", "org-b"))
    reload(gateway)
    assert chat(gateway, text)[0]["x-alloy-cache"] == "miss"
    assert [r["headers"].get("openai-organization") for r in upstream_chats(other)] == [None, "org-a", "org-b"]
    path.write_text(path.read_text().replace("org-b", "org-a"))
    reload(gateway)
    assert chat(gateway, text)[0]["x-alloy-cache"] == "hit"  # org-a's answer is still org-a's


def test_an_answer_bigger_than_the_whole_store_evicts_nothing(start_gateway, upstream):
    # max_entry_bytes (1 MiB by default) above max_bytes: an answer that could never fit was
    # stored, pushed every other entry out, and was evicted itself.
    gateway = start_gateway(config=gateway_config(upstream, "enabled = true\nmax_bytes = 4000"), env={"K": "sk-provider"})
    texts = [unique() for _ in range(3)]
    for text in texts:
        chat(gateway, text)
    big = unique()
    assert chat(gateway, big, headers={"x-mock-fault": "huge=8000"})[0]["x-alloy-cache"] == "miss"
    assert [chat(gateway, text)[0]["x-alloy-cache"] for text in texts] == ["hit", "hit", "hit"]
    assert chat(gateway, big, headers={"x-mock-fault": "huge=8000"})[0]["x-alloy-cache"] == "miss"


def test_the_caches_control_headers_stay_in_the_gateway(start_gateway, upstream):
    # x-alloy-cache-namespace named a tenant's namespace to the provider; no x-alloy-* header is
    # the provider's business (x-alloy-tags either: they are for the ledger).
    gateway = start_gateway(config=gateway_config(upstream), env={"K": "sk-provider"})
    chat(gateway, unique(), headers={"x-alloy-cache-namespace": "secret-ns", "x-alloy-cache-ttl": "5", "x-alloy-tags": "team-a"})
    [sent] = upstream_chats(upstream)
    assert not [name for name in sent["headers"] if name.lower().startswith("x-alloy-")]

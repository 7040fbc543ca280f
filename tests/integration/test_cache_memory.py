"""The response cache on the memory backend, through a running gateway with the official SDK.

What the user checks: a repeated request is answered without a second upstream call (the mock's
request log), with ``x-alloy-cache: hit`` and ``age``; anything that changes the answer misses;
key order and whitespace do not; namespaces keep tenants apart; the controls (Cache-Control,
x-alloy-cache-ttl, x-alloy-cache-namespace) do what they say; errors are never stored; the store
stays within its bytes; ``DELETE /admin/cache`` empties it. One gateway serves the module (each
test uses its own prompt, so tests do not share entries); the eviction and per-model tests start
their own.
"""

import json
import time
import urllib.request
import uuid

import openai
import pytest

from harness import assert_no_crash_logged, start_gateway_process

MASTER = "master-key"


def gateway_config(mock, cache="enabled = true", models=""):
    return f"""
    [server]
    master_key = "{MASTER}"

    [providers.openai]
    base_url = "{mock.base}/v1"
    api_key = "env:K"

    [cache]
    {cache}

    [[models]]
    name = "chat"
    provider = "openai"
    model = "gpt-4o-mini"
    aliases = ["chat-alias"]

    [[models]]
    name = "embed"
    provider = "openai"
    model = "text-embedding-3-small"
    {models}
    """


@pytest.fixture(scope="module")
def gateway(shared_mock, tmp_path_factory):
    path = tmp_path_factory.mktemp("cache") / "alloy.toml"
    process = start_gateway_process(path, gateway_config(shared_mock), env={"K": "sk-provider"})
    yield process
    process.stop()
    assert_no_crash_logged(process)


def client(gateway, **headers):
    return openai.OpenAI(base_url=gateway.base + "/v1", api_key=MASTER, max_retries=0, timeout=30, default_headers=headers)


def unique():
    return f"question {uuid.uuid4().hex[:8]}"


def chat(gateway, text, model="chat", headers=None, **params):
    """The raw answer (headers and parsed completion) of one chat completion."""
    raw = client(gateway).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], extra_headers=headers or {}, **params
    )
    return raw.headers, raw.parse()


def upstream_chats(mock):
    return [r for r in mock.requests() if r["path"] == "/v1/chat/completions"]


def post_raw(gateway, body, headers=None):
    request = urllib.request.Request(
        gateway.base + "/v1/chat/completions", data=body, method="POST",
        headers={"content-type": "application/json", "authorization": f"Bearer {MASTER}", **(headers or {})},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(response.headers), json.load(response)


def delete_cache(gateway, query="", key=MASTER):
    request = urllib.request.Request(gateway.base + "/admin/cache" + query, method="DELETE")
    if key:
        request.add_header("authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


# --- hits and misses -----------------------------------------------------------------------------


def test_a_repeated_request_is_answered_from_the_cache(gateway, upstream):
    text = unique()
    first_headers, first = chat(gateway, text)
    second_headers, second = chat(gateway, text)
    assert first_headers["x-alloy-cache"] == "miss"
    assert second_headers["x-alloy-cache"] == "hit"
    assert int(second_headers["age"]) >= 0
    assert second.model_dump() == first.model_dump()  # the same id, content and usage
    assert second.usage.total_tokens > 0
    assert len(upstream_chats(upstream)) == 1


def test_age_counts_seconds_since_the_answer_was_stored(gateway, upstream):
    text = unique()
    chat(gateway, text)
    time.sleep(1.1)
    headers, _ = chat(gateway, text)
    assert headers["x-alloy-cache"] == "hit" and int(headers["age"]) >= 1


@pytest.mark.parametrize(
    "change",
    [{"temperature": 0.5}, {"max_tokens": 3}, {"seed": 7}, {"n": 2}, {"user": "someone-else"}, {"model": "gpt-4o"}],
    ids=lambda change: next(iter(change)),
)
def test_any_answer_changing_parameter_misses(gateway, upstream, change):
    text = unique()
    chat(gateway, text)
    model = change.pop("model", None)
    if model:  # another model: through the plain provider route
        headers, _ = chat(gateway, text, model=f"openai/{model}")
    else:
        headers, _ = chat(gateway, text, **change)
    assert headers["x-alloy-cache"] == "miss"
    assert len(upstream_chats(upstream)) == 2


def test_key_order_and_whitespace_do_not_matter(gateway, upstream):
    text = unique()
    messages = [{"role": "user", "content": text}]
    first = json.dumps({"model": "chat", "messages": messages, "temperature": 0}).encode()
    second = b'{ "temperature" : 0 ,\n "messages":' + json.dumps(messages).encode() + b', "model":"chat"}'
    assert post_raw(gateway, first)[0]["x-alloy-cache"] == "miss"
    headers, body = post_raw(gateway, second)
    assert headers["x-alloy-cache"] == "hit"
    assert body["choices"][0]["message"]["content"] == f"echo: {text}"
    assert len(upstream_chats(upstream)) == 1


def test_a_number_spelled_as_an_integer_or_a_float_is_the_same_request(gateway, upstream):
    # JSON's 1 and 1.0 are one value to the provider: temperature 1 and 1.0 missed each other.
    text = unique()
    messages = json.dumps([{"role": "user", "content": text}]).encode()
    first = b'{"model":"chat","messages":%s,"temperature":1,"top_p":1.0,"seed":7}' % messages
    second = b'{"model":"chat","messages":%s,"temperature":1.0,"top_p":1,"seed":7}' % messages
    assert post_raw(gateway, first)[0]["x-alloy-cache"] == "miss"
    assert post_raw(gateway, second)[0]["x-alloy-cache"] == "hit"
    assert len(upstream_chats(upstream)) == 1


def test_an_alias_shares_the_answers_of_its_model(gateway, upstream):
    text = unique()
    chat(gateway, text, model="chat")
    headers, _ = chat(gateway, text, model="chat-alias")
    assert headers["x-alloy-cache"] == "hit"
    assert len(upstream_chats(upstream)) == 1


def test_completions_and_embeddings_are_cached_too(gateway, upstream):
    sdk = client(gateway)
    text = unique()
    for _ in range(2):
        raw = sdk.embeddings.with_raw_response.create(model="embed", input=text)
    assert raw.headers["x-alloy-cache"] == "hit"
    assert len(raw.parse().data[0].embedding) > 0
    for _ in range(2):
        raw = sdk.completions.with_raw_response.create(model="openai/gpt-3.5-turbo-instruct", prompt=text)
    assert raw.headers["x-alloy-cache"] == "hit"
    assert raw.parse().choices[0].text
    paths = [r["path"] for r in upstream.requests()]
    assert paths.count("/v1/embeddings") == 1 and paths.count("/v1/completions") == 1


def test_errors_are_never_stored(gateway, upstream):
    text = unique()
    fault = {"x-mock-fault": "status=400"}
    for _ in range(2):
        with pytest.raises(openai.BadRequestError):
            chat(gateway, text, headers=fault)
    assert len(upstream_chats(upstream)) == 2
    headers, _ = chat(gateway, text)  # the first success is a miss: nothing was stored before
    assert headers["x-alloy-cache"] == "miss"


# --- namespaces and controls -------------------------------------------------------------------------


def test_namespaces_keep_answers_apart(gateway, upstream):
    text = unique()
    chat(gateway, text, headers={"x-alloy-cache-namespace": "tenant-a"})
    other, _ = chat(gateway, text, headers={"x-alloy-cache-namespace": "tenant-b"})
    same, _ = chat(gateway, text, headers={"x-alloy-cache-namespace": "tenant-a"})
    default, _ = chat(gateway, text)
    assert (other["x-alloy-cache"], same["x-alloy-cache"], default["x-alloy-cache"]) == ("miss", "hit", "miss")
    assert len(upstream_chats(upstream)) == 3


def test_no_cache_refreshes_the_stored_answer(gateway, upstream):
    text = unique()
    _, first = chat(gateway, text)
    headers, refreshed = chat(gateway, text, headers={"cache-control": "no-cache"})
    assert headers["x-alloy-cache"] == "refresh"
    assert refreshed.id != first.id  # a new upstream answer
    headers, again = chat(gateway, text)
    assert headers["x-alloy-cache"] == "hit" and again.id == refreshed.id
    assert len(upstream_chats(upstream)) == 2


def test_no_store_does_not_store(gateway, upstream):
    text = unique()
    headers, _ = chat(gateway, text, headers={"cache-control": "no-store"})
    assert headers["x-alloy-cache"] == "bypass"
    assert chat(gateway, text)[0]["x-alloy-cache"] == "miss"
    # a stored answer may still answer a no-store request; both directives leave the cache out
    assert chat(gateway, text, headers={"cache-control": "no-store"})[0]["x-alloy-cache"] == "hit"
    assert chat(gateway, text, headers={"cache-control": "no-cache, no-store"})[0]["x-alloy-cache"] == "bypass"
    assert len(upstream_chats(upstream)) == 3


def test_ttl_header_expires_the_answer(gateway, upstream):
    text = unique()
    chat(gateway, text, headers={"x-alloy-cache-ttl": "1"})
    assert chat(gateway, text)[0]["x-alloy-cache"] == "hit"
    time.sleep(1.2)
    assert chat(gateway, text)[0]["x-alloy-cache"] == "miss"
    assert chat(gateway, text, headers={"x-alloy-cache-ttl": "0"})[0]["x-alloy-cache"] == "hit"
    assert len(upstream_chats(upstream)) == 2


@pytest.mark.parametrize(
    "header", [{"x-alloy-cache-ttl": "soon"}, {"x-alloy-cache-ttl": "-1"}, {"x-alloy-cache-namespace": "a b*"}]
)
def test_bad_controls_are_refused_clearly(gateway, upstream, header):
    with pytest.raises(openai.BadRequestError) as refused:
        chat(gateway, unique(), headers=header)
    assert refused.value.body["param"] == next(iter(header))
    assert upstream_chats(upstream) == []


# --- the admin API ---------------------------------------------------------------------------------


def test_delete_admin_cache_empties_a_namespace_or_everything(gateway, upstream):
    text = unique()
    chat(gateway, text, headers={"x-alloy-cache-namespace": "gone"})
    chat(gateway, text, headers={"x-alloy-cache-namespace": "kept"})
    status, body = delete_cache(gateway, "?namespace=global/gone")
    assert status == 200 and body["deleted"] == 1
    assert chat(gateway, text, headers={"x-alloy-cache-namespace": "gone"})[0]["x-alloy-cache"] == "miss"
    assert chat(gateway, text, headers={"x-alloy-cache-namespace": "kept"})[0]["x-alloy-cache"] == "hit"
    status, body = delete_cache(gateway)
    assert status == 200 and body["deleted"] >= 2
    assert chat(gateway, text, headers={"x-alloy-cache-namespace": "kept"})[0]["x-alloy-cache"] == "miss"


def test_delete_admin_cache_needs_the_master_key(gateway, upstream):
    status, body = delete_cache(gateway, key="wrong")
    assert status == 401 and body["error"]["type"]


def test_the_admin_api_refuses_other_methods_and_paths(gateway, upstream):
    for method, path, status in (("GET", "/admin/cache", 405), ("DELETE", "/admin/cache/everything", 404)):
        request = urllib.request.Request(gateway.base + path, method=method, headers={"authorization": f"Bearer {MASTER}"})
        try:
            urllib.request.urlopen(request, timeout=10)
        except urllib.error.HTTPError as error:
            assert error.code == status and json.load(error)["error"]["message"]
        else:
            raise AssertionError(f"{method} {path} was answered")


# --- bounds and per-model settings ----------------------------------------------------------------------


def test_the_store_evicts_least_recently_used_by_bytes(start_gateway, upstream):
    # Each answer is ~0.5 KB, plus its key and the entry allowance: 3 KB holds three, not six.
    gateway = start_gateway(config=gateway_config(upstream, "enabled = true\nmax_bytes = 3000"), env={"K": "sk-provider"})
    texts = [unique() for _ in range(6)]
    for text in texts:
        chat(gateway, text)
    assert chat(gateway, texts[-1])[0]["x-alloy-cache"] == "hit"  # the newest stays
    assert chat(gateway, texts[0])[0]["x-alloy-cache"] == "miss"  # the oldest went first


def test_an_answer_over_the_entry_cap_is_not_stored(start_gateway, upstream):
    gateway = start_gateway(config=gateway_config(upstream, "enabled = true\nmax_entry_bytes = 100"), env={"K": "sk-provider"})
    text = unique()
    chat(gateway, text)
    assert chat(gateway, text)[0]["x-alloy-cache"] == "miss"
    assert len(upstream_chats(upstream)) == 2


def test_a_model_may_turn_its_cache_on_alone(start_gateway, upstream):
    gateway = start_gateway(config=gateway_config(upstream, "", "cache = true"), env={"K": "sk-provider"})
    text = unique()
    for _ in range(2):
        headers, _ = chat(gateway, text)
    assert "x-alloy-cache" not in headers  # "chat" has no cache
    sdk = client(gateway)
    for _ in range(2):
        raw = sdk.embeddings.with_raw_response.create(model="embed", input=text)
    assert raw.headers["x-alloy-cache"] == "hit"
    assert len(upstream_chats(upstream)) == 2


def test_metrics_count_hits_misses_and_stored_bytes(gateway, upstream):
    from prometheus_client.parser import text_string_to_metric_families

    def scrape():
        request = urllib.request.Request(gateway.base + "/metrics", headers={"authorization": f"Bearer {MASTER}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
        return {
            (sample.name, sample.labels.get("result")): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name.startswith("alloy_cache_")
        }

    before = scrape()
    text = unique()
    chat(gateway, text)
    chat(gateway, text)
    after = scrape()
    assert after[("alloy_cache_requests_total", "hit")] - before.get(("alloy_cache_requests_total", "hit"), 0) == 1
    assert after[("alloy_cache_requests_total", "miss")] - before.get(("alloy_cache_requests_total", "miss"), 0) == 1
    assert after[("alloy_cache_stored_total", None)] - before.get(("alloy_cache_stored_total", None), 0) == 1
    assert after[("alloy_cache_stored_bytes_total", None)] > before.get(("alloy_cache_stored_bytes_total", None), 0)


def test_a_reload_keeps_the_store_and_applies_each_models_setting(start_gateway, upstream, tmp_path):
    gateway = start_gateway(config=gateway_config(upstream, "", "cache = true"), env={"K": "sk-provider"})
    sdk = client(gateway)
    text = unique()
    sdk.embeddings.create(model="embed", input=text)
    # the same file, with the chat model's cache turned on too (the fixture's first config file)
    path = tmp_path / "alloy-0.toml"
    path.write_text(path.read_text().replace('aliases = ["chat-alias"]', 'aliases = ["chat-alias"]\ncache = true'))
    request = urllib.request.Request(gateway.base + "/admin/reload", method="POST", headers={"authorization": f"Bearer {MASTER}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    raw = sdk.embeddings.with_raw_response.create(model="embed", input=text)
    assert raw.headers["x-alloy-cache"] == "hit"  # the store survived, the new group found its setting
    assert [chat(gateway, text)[0]["x-alloy-cache"] for _ in range(2)] == ["miss", "hit"]  # the new setting
    assert [r["path"] for r in upstream.requests()].count("/v1/embeddings") == 1


def test_a_mistyped_delete_empties_nothing(gateway, upstream):
    # An empty namespace (a script's unset variable) or an unknown parameter once emptied every
    # namespace: each is a 400 now, and the entry stays.
    text = "kept through mistyped deletes"
    chat(gateway, text, headers={"x-alloy-cache-namespace": "team-a"})
    for query in ("?namespace=", "?foo=bar", "?namespace=a&namespace=b", "?Namespace=team-a"):
        status, body = delete_cache(gateway, query)
        assert status == 400 and body["error"]["param"], (query, body)
    assert chat(gateway, text, headers={"x-alloy-cache-namespace": "team-a"})[0]["x-alloy-cache"] == "hit"


def test_a_cached_stream_to_an_http10_client_is_not_chunked(gateway, upstream):
    import socket

    text = unique()
    chat(gateway, text)  # stored
    body = json.dumps({"model": "chat", "messages": [{"role": "user", "content": text}], "stream": True}).encode()
    host, port = gateway.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.0\r\nContent-Type: application/json\r\nAuthorization: Bearer %s\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (MASTER.encode(), len(body), body)
        )
        received = b""
        while piece := sock.recv(65536):  # the close ends it
            received += piece
    head, _, sse = received.partition(b"\r\n\r\n")
    assert b"x-alloy-cache: hit" in head and b"transfer-encoding" not in head.lower()
    assert sse.startswith(b"data: ") and sse.rstrip().endswith(b"data: [DONE]")

"""Model routing from ``alloy.toml``: configured names and aliases, provider prefixes, unknown
models, and the /v1/models listing (answered by the gateway, or passed through to the upstream).
"""

import http.client
import json
from urllib.parse import urlsplit

import openai
import pytest

from harness import assert_no_crash_logged, start_gateway_process

PROVIDER_KEY = "sk-provider"


def routed_config(mock, client="core"):
    return f"""
    [providers.openai]
    kind = "openai"
    base_url = "{mock.base}/v1"
    api_key = "env:TEST_PROVIDER_KEY"
    client = "{client}"

    [[models]]
    name = "fast"
    provider = "openai"
    model = "gpt-4o-mini"
    aliases = ["quick", "team/quick"]

    [[models]]
    name = "embedder"
    provider = "openai"
    model = "text-embedding-3-small"
    """


def sdk(gateway):
    return openai.OpenAI(base_url=gateway.base + "/v1", api_key="client-key", max_retries=0, timeout=30.0)


def upstream_models(mock, path="/v1/chat/completions"):
    """The model names the upstream received on ``path``, in order."""
    models = []
    for record in mock.requests():
        if record["path"].split("?")[0] == path:
            body = record["body"]
            body = json.loads(body) if isinstance(body, (str, bytes)) else body
            models.append(body["model"])
    return models


def raw(base, method, path, body=None):
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        data = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def start_shared_gateway(directory, config):
    return start_gateway_process(directory / "alloy.toml", config, {"TEST_PROVIDER_KEY": PROVIDER_KEY})


@pytest.fixture(scope="module")
def routed(shared_mock, tmp_path_factory):
    """Models "fast" (aliases "quick" and "team/quick") and "embedder" configured."""
    gateway = start_shared_gateway(tmp_path_factory.mktemp("routed"), routed_config(shared_mock))
    yield gateway
    gateway.stop()
    assert_no_crash_logged(gateway)


@pytest.fixture(scope="module")
def plain(shared_mock, tmp_path_factory):
    """A provider and no models: a plain proxy."""
    gateway = start_shared_gateway(
        tmp_path_factory.mktemp("plain"),
        f"""
        [providers.openai]
        base_url = "{shared_mock.base}/v1"
        api_key = "env:TEST_PROVIDER_KEY"
        """,
    )
    yield gateway
    gateway.stop()
    assert_no_crash_logged(gateway)


@pytest.mark.parametrize("name", ["fast", "quick"])
def test_configured_name_and_alias_route_to_the_upstream_model(routed, upstream, name):
    raw_response = sdk(routed).chat.completions.with_raw_response.create(
        model=name, messages=[{"role": "user", "content": "route me"}]
    )
    assert raw_response.headers["x-alloy-model"] == "gpt-4o-mini"
    assert raw_response.headers["x-alloy-provider"] == "openai"
    assert raw_response.parse().choices[0].message.content == "echo: route me"
    assert upstream_models(upstream) == ["gpt-4o-mini"]


def test_routed_stream_and_embeddings(routed, upstream):
    client = sdk(routed)
    with client.chat.completions.with_streaming_response.create(
        model="quick", messages=[{"role": "user", "content": "routed stream"}], stream=True
    ) as response:
        assert response.headers["x-alloy-model"] == "gpt-4o-mini"
        text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
    assert text == "echo: routed stream"
    assert upstream_models(upstream) == ["gpt-4o-mini"]

    embedding = client.embeddings.with_raw_response.create(model="embedder", input="vector please")
    assert embedding.headers["x-alloy-model"] == "text-embedding-3-small"
    assert len(embedding.parse().data[0].embedding) > 0
    assert upstream_models(upstream, "/v1/embeddings") == ["text-embedding-3-small"]


def test_provider_prefix_routes_with_the_prefix_removed(routed, upstream):
    raw_response = sdk(routed).chat.completions.with_raw_response.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "prefixed"}]
    )
    assert raw_response.headers["x-alloy-model"] == "gpt-4o"
    assert raw_response.headers["x-alloy-provider"] == "openai"
    assert raw_response.parse().choices[0].message.content == "echo: prefixed"
    assert upstream_models(upstream) == ["gpt-4o"]


def test_provider_prefix_without_models_configured(plain, upstream):
    client = sdk(plain)
    client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "a"}])
    client.chat.completions.create(model="gpt-4.1-nano", messages=[{"role": "user", "content": "b"}])
    assert upstream_models(upstream) == ["gpt-4o", "gpt-4.1-nano"]


@pytest.mark.parametrize("name", ["gpt-4o", "unknown-model-xyz", "other/gpt-4o", "fast-ish"])
def test_unknown_model_is_404_model_not_found(routed, upstream, name):
    with pytest.raises(openai.NotFoundError) as caught:
        sdk(routed).chat.completions.create(model=name, messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 404
    assert caught.value.code == "model_not_found"
    assert name in caught.value.message
    assert caught.value.body["param"] == "model"
    assert upstream.requests() == [], "an unroutable model must never reach an upstream"


def test_unknown_model_on_embeddings_is_404(routed, upstream):
    with pytest.raises(openai.NotFoundError) as caught:
        sdk(routed).embeddings.create(model="text-embedding-ada-002", input="x")
    assert caught.value.code == "model_not_found"
    assert "text-embedding-ada-002" in caught.value.message
    assert upstream.requests() == []


def test_models_list_shows_configured_names_and_aliases(routed, upstream):
    client = sdk(routed)
    listed = {model.id: model for model in client.models.list()}
    assert set(listed) == {"fast", "quick", "team/quick", "embedder"}
    assert all(model.owned_by == "openai" for model in listed.values())
    assert all(model.object == "model" for model in listed.values())

    assert client.models.retrieve("quick").id == "quick"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("gpt-4o")
    assert caught.value.code == "model_not_found"
    assert not [r for r in upstream.requests() if r["path"].startswith("/v1/models")], "the gateway answers itself"


def test_a_model_a_chat_request_could_use_is_retrieved_though_not_listed(routed, upstream):
    """An application that checks a model with models.retrieve() before using it: a
    ``provider/model`` name routes, so it is found (owned by its provider), not only the listed ones."""
    client = sdk(routed)
    found = client.models.retrieve("openai/gpt-4.1-nano")
    assert found.id == "openai/gpt-4.1-nano" and found.owned_by == "openai"
    assert "openai/gpt-4.1-nano" not in {model.id for model in client.models.list()}
    reply = client.chat.completions.create(model="openai/gpt-4.1-nano", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "echo: hi"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("elsewhere/gpt-4.1-nano")  # no provider of that name: nothing routes it


def test_head_on_the_listing_is_answered_as_get_never_passed_through(routed, upstream):
    upstream.clear()
    for path, status in (("/v1/models", 200), ("/v1/models/quick", 200), ("/v1/models/gpt-4-internal", 404),
                         ("/v1/models/org%2Fprivate", 404)):  # fmt: skip
        got, headers, data = raw(routed.base, "HEAD", path)
        _, get_headers, body = raw(routed.base, "GET", path)
        assert got == status and data == b"", path
        assert headers["content-length"] == get_headers["content-length"] == str(len(body)), path
    assert not [r for r in upstream.requests() if r["path"].startswith("/v1/models")], "never the provider's key"


def test_a_model_id_with_a_slash_is_retrieved_as_the_sdk_spells_it(routed, upstream):
    # The SDK sends /v1/models/team%2Fquick; the raw spelling names the same model.
    assert sdk(routed).models.retrieve("team/quick").id == "team/quick"
    status, _, data = raw(routed.base, "GET", "/v1/models/team/quick")
    assert status == 200 and json.loads(data)["id"] == "team/quick"
    with pytest.raises(openai.NotFoundError) as caught:
        sdk(routed).models.retrieve("team/slow")
    assert "team/slow" in caught.value.message
    # Decoded, the id may not climb out of /v1/models, and no other encoding is let through.
    for path in ("/v1/models/a%2F..%2F..%2Fadmin%2Fkeys", "/v1/models/a%2F%2E%2E", "/v1/models/a%5Cb"):
        status, _, data = raw(routed.base, "GET", path)
        assert status == 400 and json.loads(data)["error"]["code"] == "invalid_path", path
    assert not [r for r in upstream.requests() if r["path"].startswith("/v1/models")]


def test_a_passed_through_model_id_with_a_slash_reaches_the_provider_as_one_segment(plain, upstream):
    with pytest.raises(openai.NotFoundError):
        sdk(plain).models.retrieve("meta-llama/llama-4-scout")  # the mock serves no such model
    [record] = upstream.requests()
    assert record["method"] == "GET" and record["path"] == "/v1/models/meta-llama%2Fllama-4-scout"
    # A real slash still splits segments: two segments are not a model id the allow-list passes.
    status, _, _ = raw_with_key(plain.base, "/v1/models/meta-llama%2Fllama-4-scout/extra")
    assert status == 404 and len(upstream.requests()) == 1


def test_models_list_is_passed_through_without_models_configured(plain, upstream):
    status, _, direct = raw_with_key(upstream.base, "/v1/models")
    assert status == 200
    upstream.clear()

    listed = sdk(plain).models.list()
    assert [m.id for m in listed] == [m["id"] for m in json.loads(direct)["data"]]
    [record] = upstream.requests()
    assert record["method"] == "GET"
    assert record["path"] == "/v1/models"
    assert record["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"


def raw_with_key(base, path):
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {PROVIDER_KEY}"})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("client", ["core", "httpx"])
def test_large_body_is_rewritten_intact(start_gateway, upstream, client):
    """A large request routed by alias: the model is rewritten, every other byte arrives intact."""
    gateway = start_gateway(config=routed_config(upstream, client), env={"TEST_PROVIDER_KEY": PROVIDER_KEY})
    words = " ".join(f"w{i}" for i in range(60000))  # ~400 KB of message text
    messages = [
        {"role": "system", "content": "x" * 100000},
        {"role": "user", "content": words},
    ]
    completion = sdk(gateway).chat.completions.create(model="quick", messages=messages)
    # The mock echoes the first words of a long prompt (mock_replies.ECHO_WORDS).
    content = completion.choices[0].message.content
    assert content.startswith("echo: w0 w1 w2") and ("echo: " + words).startswith(content)

    [record] = [r for r in upstream.requests() if r["path"] == "/v1/chat/completions"]
    body = record["body"]
    body = json.loads(body) if isinstance(body, (str, bytes)) else body
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"] == messages


def test_model_key_inside_messages_is_not_rewritten(routed, upstream):
    """Only the top-level "model" routes and is rewritten; a "model" string elsewhere stays as sent."""
    status, _, data = raw(
        routed.base,
        "POST",
        "/v1/chat/completions",
        {
            "messages": [{"role": "user", "content": '{"model": "fast"}'}],
            "metadata": {"model": "quick"},
            "model": "quick",
        },
    )
    assert status == 200, data
    [record] = upstream.requests()
    body = record["body"]
    body = json.loads(body) if isinstance(body, (str, bytes)) else body
    assert body["model"] == "gpt-4o-mini"
    assert body["messages"][0]["content"] == '{"model": "fast"}'
    assert body["metadata"] == {"model": "quick"}


def test_other_v1_paths_pass_through_to_the_default_provider(plain, upstream):
    """A /v1/ path the gateway does not handle goes upstream as it is, query string included,
    with the provider key; the upstream's answer (here its 404) comes back unchanged."""
    status, _, data = raw(plain.base, "GET", "/v1/files?purpose=batch&limit=2")
    direct_status, _, direct = raw_with_key(upstream.base, "/v1/files?purpose=batch&limit=2")
    assert (status, json.loads(data)) == (direct_status, json.loads(direct))
    record = upstream.requests()[0]
    assert record["method"] == "GET"
    assert record["path"] == "/v1/files?purpose=batch&limit=2"
    assert record["headers"]["authorization"] == f"Bearer {PROVIDER_KEY}"

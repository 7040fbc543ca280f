"""``POST /v1/responses/input_tokens`` and ``POST /v1/responses/compact`` (the openai SDK's
``responses.input_tokens.count`` and ``responses.compact``; Codex compacts long sessions): routed
by the body's model like ``POST /v1/responses``. To a provider that answers the Responses API
itself they pass through; to a translated one the token count is the gateway's estimate and
compaction is the client's 400. The upstreams are the mock (OpenAI) and the Anthropic emulator."""

import httpx
import openai
import pytest

from harness import assert_no_crash_logged, start_emulator_process, start_gateway_process, start_mock_process

PROVIDER_KEY = "sk-provider"


@pytest.fixture(scope="module")
def upstreams():
    started = []
    try:
        started.append(start_mock_process("--api-key", PROVIDER_KEY))
        started.append(start_emulator_process("anthropic", "--api-key", PROVIDER_KEY))
    except BaseException:
        for process in started:
            process.stop()
        raise
    yield dict(zip(("openai", "anthropic"), started))
    for process in started:
        process.stop()


@pytest.fixture(scope="module")
def gateway(upstreams, tmp_path_factory):
    env = {
        "OPENAI_API_KEY": PROVIDER_KEY,
        "OPENAI_BASE_URL": upstreams["openai"].base + "/v1",
        "ANTHROPIC_API_KEY": PROVIDER_KEY,
        "ANTHROPIC_BASE_URL": upstreams["anthropic"].base,
    }
    gateway = start_gateway_process(tmp_path_factory.mktemp("counting"), None, env)
    yield gateway
    assert_no_crash_logged(gateway)
    gateway.stop()


@pytest.fixture
def client(gateway, upstreams):
    for upstream in upstreams.values():
        upstream.clear()
    return openai.OpenAI(base_url=gateway.base + "/v1", api_key="anything", max_retries=0)


def test_input_tokens_pass_through_to_a_responses_provider(client, upstreams):
    counted = client.responses.input_tokens.count(model="gpt-4o-mini", input="three little words")
    assert counted.object == "response.input_tokens" and counted.input_tokens == 3  # the mock's count
    [sent] = upstreams["openai"].requests()
    assert sent["method"] == "POST" and sent["path"] == "/v1/responses/input_tokens"


def test_input_tokens_without_a_model_go_to_the_default_provider(client, upstreams):
    counted = client.responses.input_tokens.count(input="two words", instructions="be brief")
    assert counted.input_tokens == 4
    [sent] = upstreams["openai"].requests()
    assert sent["path"] == "/v1/responses/input_tokens"


def test_compact_passes_through_to_a_responses_provider(client, upstreams):
    compacted = client.responses.compact(
        model="gpt-4o-mini",
        input=[
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": "second question"},
        ],
    )
    assert compacted.object == "response.compaction"
    assert [item.type for item in compacted.output] == ["message", "message", "compaction"]
    assert compacted.output[-1].encrypted_content  # opaque, sent back in the next request's input
    assert compacted.usage.input_tokens == 2
    [sent] = upstreams["openai"].requests()
    assert sent["path"] == "/v1/responses/compact"


def test_input_tokens_for_a_translated_model_are_the_gateways_estimate(client, upstreams):
    raw = client.responses.input_tokens.with_raw_response.count(
        model="anthropic/claude-sonnet-4-5", input="Count these words for me, please.", instructions="be brief"
    )
    assert raw.headers["x-alloy-token-count"] == "estimate"
    assert raw.headers["x-request-id"]
    counted = raw.parse()
    assert counted.object == "response.input_tokens"
    assert 10 <= counted.input_tokens <= 40  # two messages of a few words, with their overheads
    assert upstreams["anthropic"].requests() == []  # Anthropic has no count for a Responses request
    assert upstreams["openai"].requests() == []


def test_compact_for_a_translated_model_is_refused_before_any_upstream(client, upstreams):
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.compact(model="anthropic/claude-sonnet-4-5", input="hello")
    error = refused.value.body
    assert refused.value.status_code == 400
    assert error["param"] == "model" and "compaction" in error["message"]
    assert upstreams["anthropic"].requests() == [] and upstreams["openai"].requests() == []


def test_other_posts_under_responses_stay_refused(gateway):
    answer = httpx.post(f"{gateway.base}/v1/responses/something_else", json={"model": "gpt-4o-mini"})
    assert answer.status_code == 405
    assert answer.json()["error"]["code"] == "method_not_allowed"

"""Zero-config (no file: the provider keys and ``*_BASE_URL`` in the environment): ``/v1/models``
lists every provider a key enables, by the names that reach it, and the Responses API reaches each of
them by those names. The upstreams are the mock (OpenAI) and the Anthropic and Gemini emulators."""

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
        started.append(start_emulator_process("gemini", "--api-key", PROVIDER_KEY))
    except BaseException:
        for process in started:
            process.stop()
        raise
    yield dict(zip(("openai", "anthropic", "gemini"), started))
    for process in started:
        process.stop()


def zero_config_env(upstreams, names):
    env = {}
    for name in names:
        env[f"{name.upper()}_API_KEY"] = PROVIDER_KEY
        env[f"{name.upper()}_BASE_URL"] = upstreams[name].base + ("/v1" if name == "openai" else "")
    return env


@pytest.fixture(scope="module")
def every_key(upstreams, tmp_path_factory):
    gateway = start_gateway_process(tmp_path_factory.mktemp("zero"), None, zero_config_env(upstreams, upstreams))
    yield gateway
    assert_no_crash_logged(gateway)
    gateway.stop()


@pytest.fixture
def client(every_key, upstreams):
    for upstream in upstreams.values():
        upstream.clear()
    return openai.OpenAI(base_url=every_key.base + "/v1", api_key="anything", max_retries=0)


def test_models_lists_every_provider_a_key_enables(client, upstreams):
    listed = {model.id: model.owned_by for model in client.models.list()}
    assert listed["gpt-4o-mini"] == "openai" and listed["gpt-5"] == "openai"  # the default: by bare name
    assert listed["anthropic/claude-sonnet-4-5"] == "anthropic" and listed["anthropic/claude-haiku-4-5"] == "anthropic"
    assert listed["gemini/gemini-2.5-flash"] == "gemini" and listed["gemini/gemini-2.0-flash"] == "gemini"
    assert {owner for owner in listed.values()} == {"openai", "anthropic", "gemini"}
    assert not any(r["path"].startswith("/v1/models") for r in upstreams["openai"].requests())


def test_a_model_is_retrieved_by_any_name_that_routes(client, every_key):
    # The SDK encodes the "/" of a provider/model id (%2F), which the gateway refuses in any path
    # (README, Security); the name unencoded is the model's path.
    assert client.models.retrieve("gpt-5").owned_by == "openai"
    for name, owner in (("anthropic/claude-sonnet-4-5", "anthropic"), ("anthropic/claude-3-5-haiku-20241022", "anthropic")):
        answer = httpx.get(f"{every_key.base}/v1/models/{name}")  # the second routes, though not listed
        assert answer.status_code == 200
        assert answer.json() == {"id": name, "object": "model", "created": 0, "owned_by": owner}


@pytest.mark.parametrize(
    "model, upstream, path",
    [
        ("gpt-4o-mini", "openai", "/v1/responses"),
        ("anthropic/claude-sonnet-4-5", "anthropic", "/v1/messages"),
        ("gemini/gemini-2.5-flash", "gemini", "/v1beta/models/gemini-2.5-flash:generateContent"),
    ],
)
def test_each_listed_name_reaches_its_provider_through_the_responses_api(client, upstreams, model, upstream, path):
    assert model in {m.id for m in client.models.list()}
    response = client.responses.create(model=model, input="hello there")
    assert response.output_text == "echo: hello there"
    [sent] = upstreams[upstream].requests()
    assert sent["path"] == path


def test_a_single_openai_compatible_provider_keeps_its_own_list(upstreams, tmp_path):
    gateway = start_gateway_process(tmp_path, None, zero_config_env(upstreams, ["openai"]))
    try:
        upstreams["openai"].clear()
        client = openai.OpenAI(base_url=gateway.base + "/v1", api_key="anything", max_retries=0)
        assert {m.id for m in client.models.list()} >= {"gpt-4o-mini", "text-embedding-3-small"}
        [sent] = upstreams["openai"].requests()
        assert sent["path"] == "/v1/models"  # passed through: the provider's own list
    finally:
        gateway.stop()


def test_without_any_key_the_built_in_mock_answers_the_responses_api(tmp_path):
    gateway = start_gateway_process(tmp_path, None, {})
    try:
        client = openai.OpenAI(base_url=gateway.base + "/v1", api_key="anything", max_retries=0)
        assert client.responses.create(model="gpt-4o-mini", input="hello").output_text == "echo: hello"
        events = list(client.responses.create(model="gpt-4o-mini", input="hello", stream=True))
        assert events[-1].type == "response.completed" and events[-1].response.output_text == "echo: hello"
    finally:
        gateway.stop()

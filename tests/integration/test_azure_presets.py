"""Azure deployment URLs and OpenAI-compatible presets, through a real gateway and the openai SDK.

The mock answers Azure's URL shape (``/openai/deployments/{name}/...?api-version=``, ``api-key``
header) as strictly as the real service: no api-key or no api-version is refused.
"""

import openai
import pytest

PROVIDER_KEY = "sk-provider"


def client(gateway):
    return openai.OpenAI(base_url=gateway.base + "/v1", api_key="client-key", max_retries=0)


@pytest.fixture
def azure_gateway(start_gateway, mock):
    return start_gateway(
        config=f"""
        [providers.azure-east]
        kind = "azure"
        base_url = "{mock.base}"
        api_key = "env:AZURE_KEY"
        api_version = "2024-10-21"

        [[models]]
        name = "gpt-4o"
        provider = "azure-east"
        model = "gpt4o-prod"
        """,
        env={"AZURE_KEY": PROVIDER_KEY},
    )


def test_azure_chat_goes_to_the_deployment_url_with_api_key(azure_gateway, mock):
    reply = client(azure_gateway).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello azure"}]
    )
    assert reply.parse().choices[0].message.content == "echo: hello azure"
    assert reply.headers["x-alloy-provider"] == "azure-east"
    [record] = [r for r in mock.requests() if "/chat/completions" in r["path"]]
    assert record["path"] == "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
    assert record["headers"]["api-key"] == PROVIDER_KEY
    assert "authorization" not in record["headers"]


def test_azure_stream(azure_gateway, mock):
    sdk = client(azure_gateway)
    stream = sdk.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "a b c"}], stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "echo: a b c"


def test_preset_kind_gets_its_default_family_and_prefix(start_gateway, mock):
    """A preset provider (kind = "mistral") at a local base URL: its model family routes to it."""
    gateway = start_gateway(
        config=f"""
        [providers.openai]
        base_url = "{mock.base}/v1"
        api_key = "env:K1"

        [providers.mistral]
        base_url = "{mock.base}/v1"
        api_key = "env:K2"
        """,
        env={"K1": PROVIDER_KEY, "K2": PROVIDER_KEY},
    )
    sdk = client(gateway)
    reply = sdk.chat.completions.with_raw_response.create(
        model="mistral-large-latest", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.headers["x-alloy-provider"] == "mistral"
    reply = sdk.chat.completions.with_raw_response.create(model="mistral/open-x", messages=[{"role": "user", "content": "hi"}])
    assert reply.headers["x-alloy-provider"] == "mistral"
    assert reply.headers["x-alloy-model"] == "open-x"
    reply = sdk.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert reply.headers["x-alloy-provider"] == "openai"


def test_zero_config_enables_each_provider_with_a_key(start_gateway, mock):
    gateway = start_gateway(
        env={
            "OPENAI_API_KEY": PROVIDER_KEY,
            "OPENAI_BASE_URL": f"{mock.base}/v1",
            "GROQ_API_KEY": PROVIDER_KEY,
            "GROQ_BASE_URL": f"{mock.base}/v1",
        }
    )
    sdk = client(gateway)
    reply = sdk.chat.completions.with_raw_response.create(
        model="groq/llama-3.1-8b-instant", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.headers["x-alloy-provider"] == "groq"
    assert mock.requests()[-1]["body"]["model"] == "llama-3.1-8b-instant"
    reply = sdk.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert reply.headers["x-alloy-provider"] == "openai"

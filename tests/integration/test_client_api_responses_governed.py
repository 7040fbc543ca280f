"""The Responses API under keys, limits and the ledger, through the running gateway with the openai
SDK: a translated call (to the Anthropic emulator) and a passthrough one (to the mock) go through the
same admission and accounting as chat completions. (The response cache stores chat, completions and
embeddings calls by the client's path, so Responses answers are not cached.)"""

import openai
import pytest

from governance_helpers import MASTER, create_key, post, usage_rows
from harness import assert_no_crash_logged, start_emulator_process, start_gateway_process, start_mock_process
from harness import wait_until

PROVIDER_KEY = "sk-provider"
CLAUDE = "claude-3-5-haiku-20241022"
SYNC = 3.0  # seconds for a new key to reach the gateway (sync_interval 0.1 s)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    started = []
    where = tmp_path_factory.mktemp("governed")
    db = where / "alloy.db"
    try:
        mock = start_mock_process("--api-key", PROVIDER_KEY)
        started.append(mock)
        claude = start_emulator_process("anthropic", "--api-key", PROVIDER_KEY)
        started.append(claude)
        config = f"""
        [providers.openai]
        base_url = "{mock.base}/v1"
        api_key = "{PROVIDER_KEY}"

        [providers.anthropic]
        base_url = "{claude.base}"
        api_key = "{PROVIDER_KEY}"

        [wildcards]
        "gpt-*" = "openai"

        [governance]
        path = "{db}"
        sync_interval = 0.1
        flush_interval = 0.1
        """
        gateway = start_gateway_process(where / "alloy.toml", config, {"ALLOY_MASTER_KEY": MASTER})
        started.append(gateway)
    except BaseException:
        for process in started:
            process.stop()
        raise
    yield {"gateway": gateway, "openai": mock, "anthropic": claude, "db": db}
    assert_no_crash_logged(gateway)
    for process in started:
        process.stop()


def key_for(stack, name, *options):
    """A new key, once the gateway knows it."""
    _, secret = create_key(stack["db"], name, *options)
    probe = {"model": "gpt-4o-mini", "input": "probe"}
    wait_until(lambda: post(stack["gateway"].port, secret, probe, path="/v1/responses")[0] != 401, timeout=SYNC)
    stack["openai"].clear()
    stack["anthropic"].clear()
    return openai.OpenAI(base_url=stack["gateway"].base + "/v1", api_key=secret, max_retries=0)


def test_a_key_limited_to_models_reaches_no_other_through_responses(stack):
    client = key_for(stack, "gpt-only", "--models", "gpt-*")
    assert client.responses.create(model="gpt-4o-mini", input="hello").output_text == "echo: hello"
    with pytest.raises(openai.NotFoundError) as refused:
        client.responses.create(model=CLAUDE, input="hello")
    assert refused.value.body["code"] == "model_not_found"
    assert stack["anthropic"].requests() == []


def test_a_keys_rpm_counts_translated_responses(stack):
    client = key_for(stack, "one-a-minute", "--rpm", "2")  # the probe was the first
    client.responses.create(model=CLAUDE, input="hello")
    with pytest.raises(openai.RateLimitError) as refused:
        client.responses.create(model=CLAUDE, input="hello again")
    assert refused.value.status_code == 429 and refused.value.response.headers.get("retry-after")
    assert len(stack["anthropic"].requests()) == 1


def test_the_ledger_counts_the_tokens_the_client_was_told(stack):
    client = key_for(stack, "ledger")

    def row():
        return {r["key"]: r for r in usage_rows(stack["db"])}.get("ledger")

    wait_until(lambda: row() is not None and row()["requests"] == 1, timeout=5)  # key_for's probe
    start = row()
    response = client.responses.create(model=CLAUDE, input="count these four words", max_output_tokens=50)
    streamed = list(client.responses.create(model=CLAUDE, input="and these three", stream=True))[-1].response
    told = (
        response.usage.input_tokens + streamed.usage.input_tokens,
        response.usage.output_tokens + streamed.usage.output_tokens,
    )
    assert told == (4 + 3, 5 + 4)  # the emulator's words: the prompt, "echo: " and the prompt
    wait_until(lambda: row()["requests"] == 3, timeout=5)
    counted = row()
    assert (counted["tokens_in"] - start["tokens_in"], counted["tokens_out"] - start["tokens_out"]) == told

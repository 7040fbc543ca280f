"""Retries and fallbacks across provider APIs: an OpenAI-compatible model falling back to Anthropic
and Gemini, an Anthropic model overloaded (529) retried and then falling back to OpenAI, and the
provider's Retry-After reaching the client through a translated error. The upstreams are the strict
emulators, the client is the official openai SDK, attempts are counted in the upstreams' logs.
"""

import openai
import pytest

from harness import assert_no_crash_logged, start_emulator_process, start_gateway_process, start_mock_process

KEY = "sk-provider"
CLAUDE = "claude-3-5-haiku-20241022"
GEMINI = "gemini-2.0-flash"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    started = []
    try:
        upstreams = {
            "openai": start_mock_process("--api-key", KEY),
            "down": start_mock_process("--api-key", KEY, "--fault", "status=503"),
            "anthropic": start_emulator_process("anthropic", "--api-key", KEY),
            "gemini": start_emulator_process("gemini", "--api-key", KEY),
        }
        started.extend(upstreams.values())
        config = f"""
        [router]
        max_retries = 1
        backoff_base = 0.01
        backoff_max = 0.05
        failure_threshold = 100000

        [providers.openai]
        base_url = "{upstreams['openai'].base}/v1"
        api_key = "env:PK"

        [providers.down]
        base_url = "{upstreams['down'].base}/v1"
        api_key = "env:PK"

        [providers.anthropic]
        kind = "anthropic"
        base_url = "{upstreams['anthropic'].base}"
        api_key = "env:PK"

        [providers.gemini]
        kind = "gemini"
        base_url = "{upstreams['gemini'].base}"
        api_key = "env:PK"

        [[models]]
        name = "gpt-4o"
        provider = "down"
        max_retries = 0
        fallbacks = ["claude", "gemini"]

        [[models]]
        name = "claude"
        provider = "anthropic"
        model = "{CLAUDE}"

        [[models]]
        name = "gemini"
        provider = "gemini"
        model = "{GEMINI}"

        [[models]]
        name = "claude-first"
        provider = "anthropic"
        model = "{CLAUDE}"
        fallbacks = ["gpt-backup"]

        [[models]]
        name = "gpt-backup"
        provider = "openai"
        model = "gpt-4o-mini"

        [[models]]
        name = "claude-once"
        provider = "anthropic"
        model = "{CLAUDE}"
        max_retries = 0
        """
        gateway = start_gateway_process(tmp_path_factory.mktemp("cross") / "alloy.toml", config, {"PK": KEY})
        started.append(gateway)
        client = openai.OpenAI(base_url=gateway.base + "/v1", api_key="client-key", max_retries=0, timeout=20)
        yield {"gateway": gateway, "client": client, **upstreams}
        assert_no_crash_logged(gateway)
    finally:
        for process in started:
            process.stop()


@pytest.fixture(autouse=True)
def clean_logs(stack):
    for name in ("openai", "down", "anthropic", "gemini"):
        stack[name].clear()


def test_openai_model_falls_back_to_anthropic_in_anthropic_shape(stack):
    raw = stack["client"].chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "fall over"}],
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: fall over"
    assert raw.headers["x-alloy-provider"] == "anthropic" and raw.headers["x-alloy-model"] == CLAUDE
    assert raw.headers["x-alloy-attempts"] == "2"
    assert len(stack["down"].requests()) == 1
    sent = stack["anthropic"].requests()
    assert len(sent) == 1 and sent[0]["body"]["model"] == CLAUDE and sent[0]["body"]["system"]
    assert stack["gemini"].requests() == []


def test_a_stream_falls_back_across_providers_before_its_first_byte(stack):
    stream = stack["client"].chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "stream elsewhere"}], stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: stream elsewhere"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert stream.response.headers["x-alloy-provider"] == "anthropic"


def test_when_every_fallback_fails_the_client_gets_the_last_answer(stack):
    # Both emulators apply the fault header; the failing OpenAI mock answers 503 anyway.
    with pytest.raises(openai.InternalServerError) as raised:
        stack["client"].chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "nobody home"}],
            extra_headers={"x-emulator-fault": "status=500"},
        )  # fmt: skip
    assert raised.value.status_code == 500
    headers = raised.value.response.headers
    assert headers["x-alloy-provider"] == "gemini" and headers["x-alloy-model"] == GEMINI
    assert headers["x-alloy-attempts"] == "5", "1 on gpt-4o, then 2 on each fallback (max_retries = 1)"
    assert "Injected by x-emulator-fault" in raised.value.message
    assert [len(stack[name].requests()) for name in ("down", "anthropic", "gemini")] == [1, 2, 2]


def test_anthropic_overloaded_is_retried_then_falls_back_to_openai(stack):
    raw = stack["client"].chat.completions.with_raw_response.create(
        model="claude-first",
        messages=[{"role": "user", "content": "overloaded?"}],
        extra_headers={"x-emulator-fault": "status=529"},  # the OpenAI mock ignores this header
    )
    assert raw.parse().choices[0].message.content == "echo: overloaded?"
    assert raw.headers["x-alloy-provider"] == "openai" and raw.headers["x-alloy-model"] == "gpt-4o-mini"
    assert raw.headers["x-alloy-attempts"] == "3"
    assert len(stack["anthropic"].requests()) == 2, "max_retries = 1: two attempts on Anthropic"
    assert len(stack["openai"].requests()) == 1


def test_anthropic_retry_after_reaches_the_client_on_a_translated_429(stack):
    with pytest.raises(openai.RateLimitError) as raised:
        stack["client"].chat.completions.create(
            model="claude-once",
            messages=[{"role": "user", "content": "slow down"}],
            extra_headers={"x-emulator-fault": "status=429"},
        )
    headers = raised.value.response.headers
    assert headers["retry-after"] == "1", "Anthropic's Retry-After, kept on the OpenAI-shaped error"
    assert headers["x-alloy-provider"] == "anthropic" and headers["x-alloy-attempts"] == "1"
    assert raised.value.body.get("message")
    assert len(stack["anthropic"].requests()) == 1

"""The gateway's retries and the SDK's: once Alloy has retried a request and it still fails with a
status the official SDKs retry (408, 409, 429, 5xx), the answer says ``x-should-retry: false``, so
an SDK does not send the whole sequence again (with both defaults, 3 x 3 calls to a provider that
is already failing). A request Alloy tried once (``max_retries = 0``) leaves retrying to the SDK,
as the provider would. Counted in the mock upstreams' request logs, with the openai SDK at its
default ``max_retries`` (2) as the client."""

import openai
import pytest

from harness import start_gateway_process
from reliability_gateway import a, any_gateway, clean_logs, gateway, gateways, mocks  # noqa: F401 (the fixtures this module uses)
from reliability_helpers import chats
from security_helpers import ScriptedUpstream


def retrying_sdk(gateway, headers=None):
    return openai.OpenAI(base_url=gateway.base + "/v1", api_key="client-key", max_retries=2, timeout=15.0, default_headers=headers)


def ask(client, model):
    return client.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": "hello"}])


def test_an_upstream_failure_the_gateway_retried_is_not_retried_again_by_the_sdk(any_gateway, a):
    client = retrying_sdk(any_gateway, {"x-mock-fault": "status=503"})
    with pytest.raises(openai.InternalServerError) as caught:
        ask(client, "solo")
    assert caught.value.status_code == 503
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert caught.value.response.headers["x-alloy-attempts"] == "3"
    assert len(chats(a)) == 3, "the gateway's three attempts, and no SDK retry of them"


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_the_upstreams_own_retry_advice_gives_way_to_the_gateways(tmp_path, kind):
    """An upstream that says ``x-should-retry: true`` on every 500: after the gateway's two
    attempts the client reads Alloy's advice alone, passthrough or translated."""
    body = b'{"error": {"message": "overloaded", "type": "server_error"}}'
    upstream = ScriptedUpstream(
        lambda request: b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\n"
        b"x-should-retry: true\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    )
    config = f"""
    [router]
    max_retries = 1
    backoff_base = 0.001

    [providers.up]
    kind = "{kind}"
    base_url = "http://127.0.0.1:{upstream.port}{'/v1' if kind == 'openai' else ''}"
    api_key = "sk-provider"

    [[models]]
    name = "m"
    provider = "up"
    model = "claude-sonnet-4-5"
    """
    gateway = start_gateway_process(tmp_path / "alloy.toml", config)
    try:
        with pytest.raises(openai.InternalServerError) as caught:
            ask(retrying_sdk(gateway), "m")
        assert caught.value.response.headers.get_list("x-should-retry") == ["false"]
        assert len(upstream.received) == 2
    finally:
        gateway.stop()
        upstream.stop()


def test_the_gateways_own_502_after_its_retries_is_not_retried_by_the_sdk(gateway, a):
    client = retrying_sdk(gateway, {"x-mock-fault": "reset"})
    with pytest.raises(openai.InternalServerError) as caught:
        ask(client, "solo")
    assert caught.value.status_code == 502
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(chats(a)) == 3


def test_a_request_the_gateway_tried_once_is_left_to_the_sdk_to_retry(gateway, mocks):
    client = retrying_sdk(gateway)
    with pytest.raises(openai.InternalServerError) as caught:
        ask(client, "once")  # max_retries = 0, on the always-503 mock
    assert "x-should-retry" not in caught.value.response.headers
    assert chats(mocks["down"]) == ["gpt-4o"] * 3, "one attempt by the gateway per SDK try: the SDK's 1 + 2 retries"


def test_a_4xx_the_sdk_does_not_retry_gets_no_advice(gateway, a):
    client = retrying_sdk(gateway, {"x-mock-fault": "status=400"})
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, "solo")
    assert "x-should-retry" not in caught.value.response.headers
    assert len(chats(a)) == 1


def test_an_anthropic_client_of_the_messages_endpoint_is_told_the_same(gateway, a):
    import anthropic

    client = anthropic.Anthropic(base_url=gateway.base, api_key="client-key", max_retries=2, timeout=15.0,
                                 default_headers={"x-mock-fault": "status=503"})  # fmt: skip
    with pytest.raises(anthropic.InternalServerError) as caught:
        client.messages.with_raw_response.create(model="solo", max_tokens=16, messages=[{"role": "user", "content": "hello"}])
    assert caught.value.status_code == 503
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(chats(a)) == 3, "the gateway's three attempts, and no SDK retry of them"

"""Passthrough by model: images, moderations, speech and the Responses API name a model in their JSON
body, and go where that model routes (aliases, prefixes, wildcards, deployments) instead of always
to the default provider; the model is rewritten in place like on the model endpoints. Without a
model they go to the default provider. A model whose provider speaks another API is refused.
"""

import json

import pytest

from security_helpers import parse_responses, send_and_read


def post(path, body):
    body = json.dumps(body).encode()
    return b"POST %s HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" % (
        path, len(body), body
    )


@pytest.fixture
def two_upstreams(start_gateway, start_mock, start_emulator):
    first, second = start_mock("--api-key", "sk-a"), start_mock("--api-key", "sk-b")
    anthropic = start_emulator("anthropic", "--api-key", "sk-ant")
    gateway = start_gateway(
        config=f"""
        default_provider = "first"

        [providers.first]
        base_url = "{first.base}/v1"
        api_key = "env:A"

        [providers.second]
        base_url = "{second.base}/v1"
        api_key = "env:B"

        [providers.anthropic]
        base_url = "{anthropic.base}"
        api_key = "env:C"

        [[models]]
        name = "painter"
        provider = "second"
        model = "gpt-image-1"

        [[models]]
        name = "claude"
        provider = "anthropic"
        model = "claude-3-5-haiku-latest"
        """,
        env={"A": "sk-a", "B": "sk-b", "C": "sk-ant"},
    )
    return gateway, first, second


@pytest.mark.parametrize(
    "path,body",
    [
        (b"/v1/images/generations", {"model": "painter", "prompt": "a red fox"}),
        (b"/v1/moderations", {"model": "painter", "input": "hello"}),
        (b"/v1/audio/speech", {"model": "painter", "input": "hello", "voice": "alloy"}),
        (b"/v1/responses", {"model": "painter", "input": "hello"}),
    ],
)
def test_a_model_bearing_endpoint_goes_where_its_model_routes(two_upstreams, path, body):
    gateway, first, second = two_upstreams
    parse_responses(send_and_read(gateway.port, post(path, body)))
    assert first.requests() == []
    [received] = second.requests()
    assert received["path"] == path.decode()
    assert received["body"]["model"] == "gpt-image-1"  # the route's upstream name, spliced in
    assert received["headers"]["authorization"] == "Bearer sk-b"


def test_without_a_model_the_default_provider_serves(two_upstreams):
    gateway, first, second = two_upstreams
    parse_responses(send_and_read(gateway.port, post(b"/v1/moderations", {"input": "hello"})))
    assert [r["path"] for r in first.requests()] == ["/v1/moderations"]
    assert second.requests() == []


def test_an_unrouted_or_foreign_model_is_refused_before_anything_is_sent(two_upstreams):
    gateway, first, second = two_upstreams
    [(status, _, payload)] = parse_responses(send_and_read(gateway.port, post(b"/v1/images/generations", {"model": "claude", "prompt": "x"})))
    assert status == 404 and "speaks another API" in json.loads(payload)["error"]["message"]
    [(status, _, payload)] = parse_responses(send_and_read(gateway.port, post(b"/v1/images/generations", {"model": "nobody", "prompt": "x"})))
    assert status == 404 and json.loads(payload)["error"]["code"] == "model_not_found"
    assert first.requests() == [] and second.requests() == []

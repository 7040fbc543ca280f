"""A deployment's provider quota (``rpm``/``tpm`` on a ``[[models]]`` deployment): requests past it
are not sent, so the provider's own 429 never comes. The balancer skips a deployment over its
quota, a model whose deployments are all over it falls back or answers 429 ``rate_limit_exceeded``
with ``Retry-After``; the upstream mocks' logs count what was really sent.
"""

import json
import urllib.error
import urllib.request


def ask(gateway, model):
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "count these four words"}]}).encode()
    request = urllib.request.Request(
        gateway.base + "/v1/chat/completions", data=body, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.load(error)


def gateway_with(start_gateway, mocks, models):
    providers = "".join(
        f'[providers.{name}]\nkind = "openai"\nbase_url = "{mock.base}/v1"\napi_key = "sk-provider"\n\n'
        for name, mock in mocks.items()
    )
    return start_gateway(config=providers + "[router]\nmax_retries = 0\n\n" + models)


def test_requests_past_a_deployments_rpm_are_refused_before_the_provider(start_gateway, mock):
    gateway = gateway_with(
        start_gateway, {"a": mock},
        '[[models]]\nname = "fast"\ndeployments = [{ provider = "a", model = "gpt-4o-mini", rpm = 3 }]\n',
    )  # fmt: skip
    mock.clear()
    results = [ask(gateway, "fast") for _ in range(5)]
    assert [status for status, _, _ in results] == [200, 200, 200, 429, 429]
    status, headers, body = results[3]
    assert body["error"]["code"] == "rate_limit_exceeded" and body["error"]["type"] == "rate_limit_error"
    assert "fast" in body["error"]["message"]
    assert 1 <= int(headers["retry-after"]) <= 60
    assert len(mock.requests()) == 3


def test_the_balancer_skips_a_deployment_over_its_quota(start_gateway, start_mock):
    quota, spare = start_mock("--api-key", "sk-provider"), start_mock("--api-key", "sk-provider")
    gateway = gateway_with(
        start_gateway, {"a": quota, "b": spare},
        '[[models]]\nname = "fast"\nstrategy = "round-robin"\ndeployments = [\n'
        '  { provider = "a", model = "gpt-4o-mini", rpm = 2 },\n  { provider = "b", model = "gpt-4o-mini" },\n]\n',
    )  # fmt: skip
    assert all(ask(gateway, "fast")[0] == 200 for _ in range(10))
    assert len(quota.requests()) <= 2 and len(quota.requests()) + len(spare.requests()) == 10


def test_a_model_over_its_quota_falls_back(start_gateway, start_mock):
    first, second = start_mock("--api-key", "sk-provider"), start_mock("--api-key", "sk-provider")
    gateway = gateway_with(
        start_gateway, {"a": first, "b": second},
        '[[models]]\nname = "fast"\nfallbacks = ["backup"]\ndeployments = [{ provider = "a", model = "gpt-4o-mini", rpm = 1 }]\n\n'
        '[[models]]\nname = "backup"\ndeployments = [{ provider = "b", model = "gpt-4o-mini" }]\n',
    )  # fmt: skip
    served = [ask(gateway, "fast")[1]["x-alloy-provider"] for _ in range(3)]
    assert served == ["a", "b", "b"]
    assert len(first.requests()) == 1 and len(second.requests()) == 2


def test_a_tokens_per_minute_quota_counts_the_answers_usage(start_gateway, mock):
    gateway = gateway_with(
        start_gateway, {"a": mock},
        '[[models]]\nname = "fast"\ndeployments = [{ provider = "a", model = "gpt-4o-mini", tpm = 30 }]\n',
    )  # fmt: skip
    mock.clear()
    used, statuses = 0, []
    for _ in range(6):
        status, _, body = ask(gateway, "fast")
        statuses.append(status)
        if status == 200:
            used += body["usage"]["total_tokens"]
    # Requests go while the minute's tokens are under 30; the first one past it is refused, unsent.
    refused_at = statuses.index(429)
    assert statuses[:refused_at] == [200] * refused_at and set(statuses[refused_at:]) == {429}
    one = used // refused_at  # every answer here counts the same tokens
    assert used >= 30 and used - one < 30  # the answer that reached 30 went; none after it
    assert len(mock.requests()) == refused_at

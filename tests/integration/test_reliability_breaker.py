"""The circuit breaker and readiness through the running gateway (README, "Reliability"):
a deployment failing ``failure_threshold`` times within ``failure_window`` cools for ``cooldown``
seconds (no requests), then admits exactly one probe; ``/health/ready`` shows each deployment's
state; a model whose every deployment cools answers 503 ``no_healthy_deployment``.

The breaker keeps state, so each gateway here serves models whose deployments no other test
touches. The failing upstreams are mocks started with a server-wide ``--fault``.
"""

import json
import time

import pytest

from harness import assert_no_crash_logged, in_parallel, start_gateway_process
from reliability_helpers import (
    PROVIDER_KEY,
    assert_proxied_headers,
    call,
    chats,
    get,
    openai_error,
    provider,
    started_mocks,
)

COOLDOWN = 1.5
PROBE_MS = 400  # the slow failing mock answers its 503 after this long


def ready(gateway):
    status, headers, data = get(gateway, "/health/ready")
    assert headers["content-type"].startswith("application/json")
    return status, json.loads(data)


def states(report, model):
    """provider -> state of ``model``'s deployments in a /health/ready body."""
    return {d["provider"]: d["state"] for d in report["models"][model]["deployments"]}


def start_gateway(directory, config):
    return start_gateway_process(directory / "alloy.toml", config, {"TEST_PROVIDER_KEY": PROVIDER_KEY})


@pytest.fixture(scope="module")
def mocks():
    yield from started_mocks(
        {
            "a": (),
            "b": (),
            "down": ("--fault", "status=503"),
            "down-slow": ("--fault", f"status=503;slow-first-byte={PROBE_MS}"),
            "flaky": ("--fault", "status=503", "--fail-times", "2"),
        }
    )


ROUTER = f"""
    [router]
    max_retries = 1
    backoff_base = 0.01
    backoff_max = 0.05
    failure_threshold = 2
    failure_window = 10.0
    cooldown = {COOLDOWN}
    strategy = "round-robin"
"""


@pytest.fixture(scope="module")
def breaker(mocks, tmp_path_factory):
    """Models "cb" (an always-503 deployment, slow to answer, beside a healthy one) and "recovering"
    (a deployment failing twice then healthy, beside a healthy one)."""
    config = (
        ROUTER
        + provider("a", mocks["a"])
        + provider("b", mocks["b"])
        + provider("down", mocks["down-slow"])
        + provider("flaky", mocks["flaky"])
        + """
    [[models]]
    name = "cb"
    deployments = [{ provider = "down", model = "gpt-4o-mini" }, { provider = "a", model = "gpt-4o-mini" }]

    [[models]]
    name = "recovering"
    deployments = [{ provider = "flaky", model = "gpt-4o-mini" }, { provider = "b", model = "gpt-4o-mini" }]
    """
    )
    gateway = start_gateway(tmp_path_factory.mktemp("breaker"), config)
    yield gateway
    gateway.stop()
    assert_no_crash_logged(gateway)


@pytest.fixture(scope="module")
def all_down(mocks, tmp_path_factory):
    """Model "dead" (two always-503 deployments, no fallback), "lonely" (one always-503 deployment,
    no fallback), "rescued" (another always-503 deployment with a fallback) and "alive"."""
    config = (
        ROUTER.replace("max_retries = 1", "max_retries = 0")
        + provider("a", mocks["a"])
        + provider("down", mocks["down"])
        + provider("down2", mocks["down"])
        + provider("down3", mocks["down"])
        + provider("down4", mocks["down"])
        + """
    [[models]]
    name = "dead"
    deployments = [{ provider = "down", model = "gpt-4o-mini" }, { provider = "down3", model = "gpt-4o-mini" }]

    [[models]]
    name = "lonely"
    provider = "down4"
    model = "o3-mini"

    [[models]]
    name = "rescued"
    provider = "down2"
    model = "gpt-4o"
    fallbacks = ["alive"]

    [[models]]
    name = "alive"
    provider = "a"
    model = "gpt-4.1-mini"
    """
    )
    gateway = start_gateway(tmp_path_factory.mktemp("all-down"), config)
    yield gateway
    gateway.stop()
    assert_no_crash_logged(gateway)


@pytest.fixture(autouse=True)
def clean_logs(mocks):
    for mock in mocks.values():
        mock.clear()


def test_ready_lists_every_deployment_healthy_at_start(breaker):
    status, report = ready(breaker)
    assert status == 200 and report["status"] == "ready", report
    assert set(report["models"]) == {"cb", "recovering"}
    cb = report["models"]["cb"]
    assert cb["healthy"] == 2
    assert cb["deployments"] == [
        {"provider": "down", "model": "gpt-4o-mini", "state": "healthy", "inflight": 0},
        {"provider": "a", "model": "gpt-4o-mini", "state": "healthy", "inflight": 0},
    ]
    # /health stays liveness only
    status, _, data = get(breaker, "/health")
    assert status == 200 and json.loads(data) == {"status": "ok"}


def test_failing_deployment_cools_then_gets_exactly_one_probe(breaker, mocks):
    down, a = mocks["down-slow"], mocks["a"]
    for i in range(8):
        reply = call(breaker, "cb", text=f"cb {i}")
        assert reply.status == 200 and reply.headers["x-alloy-provider"] == "a", reply
    assert len(chats(down)) == 2, "failure_threshold = 2: no request after the second failure"
    assert len(chats(a)) == 8
    cooled_at = time.monotonic()

    status, report = ready(breaker)
    assert status == 200 and report["status"] == "ready", "model cb still has a healthy deployment"
    assert states(report, "cb") == {"down": "cooling", "a": "healthy"}
    assert report["models"]["cb"]["healthy"] == 1

    # During the cooldown: nothing reaches the cooling deployment, and nothing waits for it.
    for i in range(4):
        reply = call(breaker, "cb", text=f"cooling {i}")
        assert reply.status == 200 and reply.attempts == 1 and reply.elapsed < PROBE_MS / 1000, reply
    assert len(chats(down)) == 2

    # After it (+1 s: the sweep), exactly one probe is admitted, even to concurrent requests.
    time.sleep(max(0.0, COOLDOWN + 1.1 - (time.monotonic() - cooled_at)))
    replies = in_parallel(
        [lambda: call(breaker, "cb", text="probe?")] * 2
        + [lambda i=i: (time.sleep(0.1 + 0.05 * i), call(breaker, "cb", text=f"during {i}"))[1] for i in range(4)]
        + [lambda: (time.sleep(0.15), ready(breaker))[1]]
    )
    *calls, (_, during) = replies
    assert all(r.status == 200 for r in calls), calls
    assert len(chats(down)) == 3, "exactly one probe after the cooldown"
    assert states(during, "cb")["down"] == "probing", during
    # The probe failed: cooling again.
    status, report = ready(breaker)
    assert states(report, "cb")["down"] == "cooling"
    assert call(breaker, "cb").status == 200
    assert len(chats(down)) == 3


def test_successful_probe_restores_the_deployment(breaker, mocks):
    flaky = mocks["flaky"]
    for i in range(6):
        assert call(breaker, "recovering", text=f"rec {i}").status == 200
    assert len(chats(flaky)) == 2  # its two failures: cooling
    assert states(ready(breaker)[1], "recovering")["flaky"] == "cooling"
    for i in range(3):
        assert call(breaker, "recovering").headers["x-alloy-provider"] == "b"
    assert len(chats(flaky)) == 2

    time.sleep(COOLDOWN + 1.1)
    providers = [call(breaker, "recovering", text=f"after {i}").headers["x-alloy-provider"] for i in range(6)]
    assert providers.count("flaky") >= 2, f"the probe succeeded: back in the rotation {providers}"
    assert all(x != y for x, y in zip(providers, providers[1:])), providers
    assert len(chats(flaky)) == 2 + providers.count("flaky")
    assert states(ready(breaker)[1], "recovering") == {"flaky": "healthy", "b": "healthy"}


def test_every_deployment_cooling_is_503_no_healthy_deployment(all_down, mocks):
    down = mocks["down"]
    status, report = ready(all_down)
    assert status == 200 and report["status"] == "ready"

    for _ in range(4):  # round-robin: each deployment fails twice (failure_threshold)
        reply = call(all_down, "dead")
        assert reply.status == 503 and reply.attempts == 1, reply
        assert openai_error(reply.data)["message"] == "Injected by x-mock-fault: status 503."
    assert chats(down).count("gpt-4o-mini") == 4

    reply = call(all_down, "dead")
    assert reply.status == 503, reply
    error = openai_error(reply.data)
    assert error["code"] == "no_healthy_deployment" and error["type"] == "server_error"
    assert reply.headers.get("retry-after", "").isdigit() and int(reply.headers["retry-after"]) >= 1, reply
    assert reply.headers.get("x-request-id")
    assert chats(down).count("gpt-4o-mini") == 4, "a cooling deployment gets no request"

    status, report = ready(all_down)
    assert status == 503 and report["status"] == "unavailable", report
    assert report["models"]["dead"]["healthy"] == 0
    assert states(report, "dead") == {"down": "cooling", "down3": "cooling"}
    assert report["models"]["alive"]["healthy"] == 1
    status, _, _ = get(all_down, "/health")
    assert status == 200, "liveness is not readiness"
    assert call(all_down, "alive").status == 200


def test_a_cooling_model_with_a_fallback_is_served_by_it(all_down, mocks):
    down, a = mocks["down"], mocks["a"]
    for _ in range(2):
        reply = call(all_down, "rescued")
        assert reply.status == 200 and reply.attempts == 2, reply
        assert_proxied_headers(reply, "gpt-4.1-mini", "a", 2)
    assert chats(down).count("gpt-4o") == 2
    reply = call(all_down, "rescued")
    assert reply.status == 200, reply
    assert_proxied_headers(reply, "gpt-4.1-mini", "a", 1)
    assert chats(down).count("gpt-4o") == 2, "the cooling deployment is skipped, straight to the fallback"
    assert chats(a).count("gpt-4.1-mini") >= 3


def test_a_model_with_one_deployment_and_no_fallback_is_never_cooled(all_down, mocks):
    """With nowhere else to send its requests, cooling it would only turn the provider's own
    answers into Alloy's 503s with a Retry-After an SDK waits out: every request still goes to
    the provider, which answers for itself."""
    down = mocks["down"]
    for _ in range(4):  # twice the failure_threshold
        reply = call(all_down, "lonely")
        assert reply.status == 503 and reply.attempts == 1, reply
        assert openai_error(reply.data)["message"] == "Injected by x-mock-fault: status 503."
    assert chats(down).count("o3-mini") == 4
    status, report = ready(all_down)
    assert states(report, "lonely") == {"down4": "healthy"}

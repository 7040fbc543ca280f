"""The setup the reliability modules share (test_reliability_retries.py,
test_reliability_timeouts.py and test_reliability_fallbacks.py): their mocks, their gateway's
configuration, the body of the module-scoped fixture that starts it, and the small client helpers
those modules use.

One gateway per module and upstream client, in front of shared mocks: two healthy ones (``a``,
``b``) and mocks started with a server-wide ``--fault`` (always 503, always slow, always 429 with a
long Retry-After). Faults of one request ride on ``x-mock-fault`` headers, which the gateway
forwards; ``x-mock-fail-times`` with a fresh ``x-mock-key`` makes "fail n times, then succeed"
(counted per mock process, so a fallback on another mock is not affected). The circuit breaker keeps
state across requests, so it is disabled here (``failure_threshold`` huge) and tested in
test_reliability_breaker.py.

A module of its own so that no test module loads another (the raw calls and checks are in
reliability_helpers.py).
"""

import uuid

import openai
import pytest

from harness import assert_no_crash_logged, start_gateway_process
from reliability_helpers import PROVIDER_KEY, provider, started_mocks

SLOW_MS = 700  # the "slow" mock's first-byte delay


# --- helpers --------------------------------------------------------------------------------------


def sdk(gateway, timeout=15.0):
    # max_retries=0: the SDK's own retries would hide the gateway's.
    return openai.OpenAI(base_url=gateway.base + "/v1", api_key="client-key", max_retries=0, timeout=timeout)


def fails(fault, times=1):
    """Headers for "``fault`` on the first ``times`` requests (of this key, per mock), then success"."""
    return {"x-mock-fault": fault, "x-mock-fail-times": str(times), "x-mock-key": uuid.uuid4().hex}


def events_of(data):
    """The ``data:`` payloads of an SSE body, in order."""
    return [block[6:] for block in data.decode().split("\n\n") if block.startswith("data: ")]


# --- processes ------------------------------------------------------------------------------------


MOCK_FAULTS = {  # each module's mocks: name -> the arguments it is started with
    "a": (),
    "b": (),
    "down": ("--fault", "status=503"),
    "slow": ("--fault", f"slow-first-byte={SLOW_MS}"),
    "limited": ("--fault", "status=429;retry-after=30"),
}


def gateway_config(m, client="core"):
    def p(name, mock, extra=""):
        return provider(name, mock, extra, client)

    return (
        """
    [router]
    max_retries = 2
    retry_deadline = 3.0
    backoff_base = 0.01
    backoff_max = 0.05
    retry_after_max = 5.0
    strategy = "round-robin"
    failure_threshold = 100000
    failure_window = 30.0
    cooldown = 30.0
    """
        + p("a", m["a"])
        + p("b", m["b"])
        + p("down", m["down"])
        + p("slow", m["slow"])
        + p("slow2", m["slow"])
        + p("limited", m["limited"])
        + p("timed", m["a"], "first_byte_timeout = 1.0\n    stream_idle_timeout = 1.0")
        + """
    [[models]]
    name = "solo"
    provider = "a"
    model = "gpt-4o-mini"

    [[models]]
    name = "timed"
    provider = "a"
    model = "gpt-4o-mini"
    first_byte_timeout = 1.0
    stream_idle_timeout = 1.0

    [[models]]
    name = "timed-provider"
    provider = "timed"
    model = "gpt-4o-mini"

    [[models]]
    name = "bounded"
    provider = "a"
    model = "gpt-4o-mini"
    total_timeout = 2.0

    [[models]]
    name = "bounded-retries"
    provider = "a"
    model = "gpt-4o-mini"
    total_timeout = 2.0
    max_retries = 20

    [[models]]
    name = "persistent"
    provider = "a"
    model = "gpt-4o-mini"
    max_retries = 20

    [[models]]
    name = "primary"
    provider = "down"
    model = "gpt-4o"
    max_retries = 1
    fallbacks = ["backup"]

    [[models]]
    name = "backup"
    provider = "b"
    model = "gpt-4.1-mini"

    [[models]]
    name = "doomed"
    provider = "down"
    model = "gpt-4o"
    max_retries = 0
    fallbacks = ["doomed-too"]

    [[models]]
    name = "once"
    provider = "down"
    model = "gpt-4o"
    max_retries = 0

    [[models]]
    name = "doomed-too"
    provider = "down"
    model = "o3-mini"
    max_retries = 1

    [[models]]
    name = "chain"
    provider = "down"
    model = "gpt-4o"
    max_retries = 0
    fallbacks = ["doomed-too", "backup"]

    [[models]]
    name = "guarded"
    provider = "a"
    model = "gpt-4o-mini"
    fallbacks = ["backup-a"]
    context_window_fallbacks = ["long"]
    content_policy_fallbacks = ["lenient"]

    [[models]]
    name = "backup-a"
    provider = "a"
    model = "gpt-4o"

    [[models]]
    name = "long"
    provider = "a"
    model = "gpt-4.1-mini"

    [[models]]
    name = "lenient"
    provider = "a"
    model = "o3-mini"

    [[models]]
    name = "pair"
    strategy = "round-robin"
    deployments = [{ provider = "a", model = "gpt-4o-mini" }, { provider = "b", model = "gpt-4o-mini" }]

    [[models]]
    name = "weighted"
    strategy = "weighted"
    deployments = [{ provider = "a", weight = 3 }, { provider = "b", weight = 1 }]

    [[models]]
    name = "half-down"
    strategy = "round-robin"
    max_retries = 1
    deployments = [{ provider = "down", model = "gpt-4o-mini" }, { provider = "a", model = "gpt-4o-mini" }]

    [[models]]
    name = "half-limited"
    strategy = "round-robin"
    max_retries = 1
    deployments = [{ provider = "limited", model = "gpt-4o-mini" }, { provider = "a", model = "gpt-4o-mini" }]

    [[models]]
    name = "least"
    strategy = "least-inflight"
    deployments = [{ provider = "slow", model = "gpt-4o-mini" }, { provider = "b", model = "gpt-4o-mini" }]

    [[models]]
    name = "quickest"
    strategy = "latency"
    deployments = [{ provider = "slow", model = "gpt-4o-mini" }, { provider = "b", model = "gpt-4o-mini" }]

    [[models]]
    name = "capped"
    deployments = [{ provider = "slow", model = "gpt-4o-mini", max_inflight = 2 }]

    [[models]]
    name = "capped-pair"
    deployments = [
      { provider = "slow", model = "gpt-4o-mini", max_inflight = 1 },
      { provider = "slow2", model = "gpt-4o-mini", max_inflight = 1 },
    ]
    """
    )


def started_gateways(mocks, tmp_path_factory):
    """The body of a module's ``gateways`` fixture: yields ``gateway(client)``, the module's gateway
    on that upstream client, each started when a test first needs it; stops them after the module."""
    started = {}

    def gateway(client):
        if client not in started:
            path = tmp_path_factory.mktemp(f"reliability-{client}") / "alloy.toml"
            env = {"TEST_PROVIDER_KEY": PROVIDER_KEY}
            started[client] = start_gateway_process(path, gateway_config(mocks, client), env)
        return started[client]

    yield gateway
    for process in started.values():
        process.stop()
    for process in started.values():
        assert_no_crash_logged(process)



# --- the fixtures every reliability module uses: import them by name into the module ------------
# (pytest registers an imported fixture per module, so each module still gets its own processes)


@pytest.fixture(scope="module")
def mocks():
    yield from started_mocks(MOCK_FAULTS)


@pytest.fixture(scope="module")
def gateways(mocks, tmp_path_factory):
    """The module's gateways, one per upstream client, each started when a test first needs it."""
    yield from started_gateways(mocks, tmp_path_factory)


@pytest.fixture
def gateway(gateways):
    """The gateway on the core upstream client."""
    return gateways("core")


@pytest.fixture(params=["core", "httpx"])
def any_gateway(request, gateways):
    """Runs the test once per upstream client."""
    return gateways(request.param)


@pytest.fixture(autouse=True)
def clean_logs(mocks):
    for mock in mocks.values():
        mock.clear()


@pytest.fixture
def a(mocks):
    return mocks["a"]


@pytest.fixture
def b(mocks):
    return mocks["b"]

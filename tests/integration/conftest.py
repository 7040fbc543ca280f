"""Fixtures of the integration tests: real ``alloy`` processes, started for a test and stopped after
it. The process classes and helpers are in harness.py (a plain module: see its docstring), imported
by the test modules directly.
"""

import pytest

from harness import start_emulator_process, start_gateway_process, start_mock_process, stopped_after


@pytest.fixture
def start_mock():
    """``start_mock("--api-key", "k", env={...})`` -> a running ``alloy mock-upstream``."""
    yield from stopped_after(start_mock_process)


@pytest.fixture
def start_emulator():
    """``start_emulator("anthropic", "--api-key", "k")`` -> a running emulator."""
    yield from stopped_after(start_emulator_process)


@pytest.fixture
def start_gateway(tmp_path):
    """``start_gateway(config=TOML or None, env={...}, args=[...])`` -> a running gateway."""
    started = []

    def start(config=None, env=None, args=()):
        return start_gateway_process(tmp_path / f"alloy-{len(started)}.toml", config, env, args)

    yield from stopped_after(start, started)


@pytest.fixture
def mock(start_mock):
    """A strict OpenAI emulator that expects the provider key ``sk-provider``."""
    return start_mock("--api-key", "sk-provider")


@pytest.fixture(params=["core", "httpx"])
def upstream_client(request):
    """Runs a test once per upstream backend."""
    return request.param


@pytest.fixture
def gateway(start_gateway, mock, upstream_client):
    """A gateway in front of ``mock`` with the provider key set, on the chosen upstream backend."""
    return start_gateway(
        config=f"""
        [providers.openai]
        kind = "openai"
        base_url = "{mock.base}/v1"
        api_key = "env:TEST_PROVIDER_KEY"
        client = "{upstream_client}"
        """,
        env={"TEST_PROVIDER_KEY": "sk-provider"},
    )


@pytest.fixture(scope="module")
def shared_mock():
    """A strict mock expecting the provider key ``sk-provider``, shared by the module that uses it:
    the per-test fixtures start a mock and a gateway for every test, about two seconds each on a
    loaded machine, so modules that only read the mock's log share one set of processes."""
    mock = start_mock_process("--api-key", "sk-provider")
    yield mock
    mock.stop()


@pytest.fixture(scope="module")
def recorder():
    """A ``RawUpstream`` (the exact bytes of every request it receives) for the module that uses it."""
    from raw_upstream import RawUpstream

    server = RawUpstream()
    yield server
    server.stop()


@pytest.fixture
def upstream(shared_mock):
    """The shared strict mock with an empty request log."""
    shared_mock.clear()
    return shared_mock


@pytest.fixture
def redis_server(tmp_path):
    """A real redis-server on a free port for this test, stopped by PID after it."""
    from redis_server import RedisServer

    server = RedisServer.start(tmp_path)
    yield server
    server.stop()

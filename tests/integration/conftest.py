"""Harness for integration tests: real ``alloy`` processes on loopback, started and stopped by PID.

``start_mock(...)`` runs ``alloy mock-upstream`` and ``start_gateway(...)`` runs the gateway; both
listen on port 0 and report the port they got on stderr ("listening on http://HOST:PORT"), so
parallel runs never collide. The gateway runs the core implementation selected by ``ALLOY_PURE``
in the test environment, so ``ALLOY_PURE=1 pytest`` runs the whole suite on the pure twin.
"""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request

import pytest

LISTENING = re.compile(r"listening on http://([^\s:]+):(\d+)")
START_TIMEOUT = 20.0
RUN_DIR = os.path.abspath(os.sep)


class Process:
    """A started ``alloy`` process, its address and everything it wrote to stderr."""

    def __init__(self, args, env, command=(sys.executable, "-m", "alloy")):
        self.popen = subprocess.Popen(
            [*command, *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=RUN_DIR,  # never the source tree: "-m alloy" must import the installed package
        )
        self.pid = self.popen.pid
        self.lines = []
        self._ready = threading.Event()
        self.port = None
        threading.Thread(target=self._read_stderr, daemon=True).start()
        if not self._ready.wait(START_TIMEOUT) or self.port is None:
            self.stop()
            raise RuntimeError(f"alloy {' '.join(args)} did not start:\n" + "".join(self.lines))
        self.base = f"http://127.0.0.1:{self.port}"

    def _read_stderr(self):
        for line in self.popen.stderr:
            self.lines.append(line)
            match = LISTENING.search(line)
            if match and self.port is None:
                self.port = int(match.group(2))
                self._ready.set()
        self._ready.set()

    @property
    def stderr(self):
        return "".join(self.lines)

    def signal(self, signum):
        if self.popen.poll() is None:
            os.kill(self.pid, signum)

    def wait(self, timeout):
        return self.popen.wait(timeout)

    def stop(self):
        if self.popen.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(5)


def _env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.endswith("_BASE_URL")}
    env.pop("ALLOY_MASTER_KEY", None)
    env.update(extra or {})
    return env


class Mock(Process):
    def requests(self):
        """The mock's request log: what the upstream really received."""
        with urllib.request.urlopen(self.base + "/_mock/requests", timeout=5) as response:
            return json.load(response)["requests"]

    def clear(self):
        request = urllib.request.Request(self.base + "/_mock/requests", method="DELETE")
        urllib.request.urlopen(request, timeout=5).close()


@pytest.fixture
def start_mock():
    started = []

    def start(*args, env=None):
        mock = Mock(["mock-upstream", "--host", "127.0.0.1", "--port", "0", *args], _env(env))
        started.append(mock)
        return mock

    yield start
    for process in started:
        process.stop()


EMULATORS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "emulators")


class Emulator(Process):
    """A strict provider emulator from tests/emulators (its request log at /_emulator/requests)."""

    def requests(self):
        with urllib.request.urlopen(self.base + "/_emulator/requests", timeout=5) as response:
            log = json.load(response)
        return log["requests"] if isinstance(log, dict) else log


@pytest.fixture
def start_emulator():
    """``start_emulator("anthropic", "--api-key", "k")`` -> a running emulator."""
    started = []

    def start(name, *args):
        script = os.path.join(EMULATORS, f"{name}.py")
        emulator = Emulator(["--port", "0", *args], _env(), command=(sys.executable, script))
        started.append(emulator)
        return emulator

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def start_gateway(tmp_path):
    """``start_gateway(config=TOML or None, env={...}, args=[...])`` -> a running gateway."""
    started = []

    def start(config=None, env=None, args=()):
        argv = ["--host", "127.0.0.1", "--port", "0", *args]
        if config is not None:
            path = tmp_path / f"alloy-{len(started)}.toml"
            path.write_text(textwrap.dedent(config))
            argv += ["--config", str(path)]
        gateway = Process(argv, _env(env))
        started.append(gateway)
        return gateway

    yield start
    for process in started:
        process.stop()


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


def wait_until(predicate, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False

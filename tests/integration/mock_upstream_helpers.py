"""Shared by the mock upstream tests (test_mock_upstream_api.py, test_mock_upstream_faults.py and
test_mock_upstream_http.py): ``MockProcess`` runs a real ``python -m alloy.mock_upstream`` on a free
port, as its users run it; the requests those tests send; and a raw-socket exchange whose answers
are parsed by h11, an independent oracle.

A module of its own so that no test module loads another.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.request

import h11
import httpx
import openai
import pytest

from harness import stopped_after

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LISTENING = re.compile(r"^alloy mock-upstream listening on http://127\.0\.0\.1:(\d+)$")
KEY = "sk-mock-test"
AUTH = {"authorization": f"Bearer {KEY}"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
SEARCH_TOOL = {
    "type": "function",
    "function": {"name": "search", "description": "Search", "parameters": {"type": "object", "properties": {}}},
}


class MockProcess:
    """``python -m alloy.mock_upstream`` on a free port; stopped by PID."""

    def __init__(self, *args):
        env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "alloy.mock_upstream", "--port", "0", *args],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines, self.port, ready = [], None, threading.Event()

        def read():
            for line in self.popen.stderr:
                self.lines.append(line)
                match = LISTENING.match(line.rstrip("\n"))
                if match and self.port is None:
                    self.port = int(match.group(1))
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(20) or self.port is None:
            self.stop()
            raise RuntimeError("the mock did not start:\n" + "".join(self.lines))
        self.base = f"http://127.0.0.1:{self.port}"

    def client(self, api_key=KEY, **options):
        options = {"max_retries": 0, "timeout": 10, **options}
        return openai.OpenAI(base_url=self.base + "/v1", api_key=api_key, **options)

    def requests(self):
        with urllib.request.urlopen(self.base + "/_mock/requests", timeout=5) as response:
            return json.load(response)["requests"]

    def stop(self):
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)


def user(text):
    return [{"role": "user", "content": text}]


def exchange(port, data, timeout=5.0):
    """Send raw bytes, read until the server closes; returns (status, headers, body) per response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return parse_responses(received)


def parse_responses(data):
    """Responses as (status, headers, body) parsed by h11, an independent oracle."""
    responses = []
    while data:
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
        conn.send(h11.EndOfMessage())
        conn.receive_data(data)
        status, headers, body = None, None, b""
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Response):
                status, headers = event.status_code, {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            elif event is h11.NEED_DATA:
                raise AssertionError(f"incomplete response: {data!r}")
        responses.append((status, headers, body))
        data = conn.trailing_data[0]
    return responses


def chat_request(text, extra=b"", connection=b""):
    body = json.dumps({"model": "gpt-4o-mini", "messages": user(text)}).encode()
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: mock\r\nAuthorization: Bearer " + KEY.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n%s%s\r\n%s" % (len(body), extra, connection, body)
    )


# --- the fixtures every mock-upstream module uses: import them by name into the module -----------
# (pytest registers an imported fixture per module, so each module still gets its own mock)


@pytest.fixture
def start_upstream():
    """``start_upstream(*args)`` -> a running ``MockProcess``; stopped after the test."""
    yield from stopped_after(MockProcess)


@pytest.fixture(scope="module")
def shared_upstream():
    process = MockProcess("--api-key", KEY)
    yield process
    process.stop()


@pytest.fixture
def upstream(shared_upstream):
    """The strict mock (expects ``KEY``), shared by the module's tests, with an empty request log."""
    assert shared_upstream.popen.poll() is None, "the mock exited:\n" + "".join(shared_upstream.lines)
    httpx.delete(shared_upstream.base + "/_mock/requests").raise_for_status()
    return shared_upstream

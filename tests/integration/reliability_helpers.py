"""Helpers of the reliability tests (test_reliability_*.py): raw chat
calls through the gateway, timed and with their headers; the upstream models a mock was asked for;
provider configuration lines; the strict mocks those tests start.

A module of its own so that neither test module loads the other.
"""

import http.client
import json
import time

from harness import start_mock_process

PROVIDER_KEY = "sk-provider"


class Reply:
    """One raw exchange with the gateway: status, lower-case headers, body bytes, seconds taken."""

    def __init__(self, status, headers, data, elapsed):
        self.status, self.headers, self.data, self.elapsed = status, headers, data, elapsed

    def json(self):
        return json.loads(self.data)

    @property
    def attempts(self):
        return int(self.headers["x-alloy-attempts"])

    def __repr__(self):
        return f"Reply({self.status}, {self.headers}, {self.data[:300]!r}, {self.elapsed:.2f}s)"


def call(gateway, model, text="hello", headers=None, stream=False, timeout=15.0):
    """POST /v1/chat/completions through the gateway; the whole answer read (a stream to its end)."""
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    if stream:
        body["stream"] = True
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=timeout)
    started = time.monotonic()
    try:
        connection.request(
            "POST", "/v1/chat/completions", body=json.dumps(body),
            headers={"Content-Type": "application/json", **(headers or {})},
        )  # fmt: skip
        response = connection.getresponse()
        data = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
        return Reply(response.status, headers, data, time.monotonic() - started)
    finally:
        connection.close()


def get(gateway, path, timeout=10.0):
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def chats(mock):
    """The upstream model of each chat request ``mock`` received, in order."""
    return [r["body"]["model"] for r in mock.requests() if r["path"].split("?")[0] == "/v1/chat/completions"]


def openai_error(data):
    error = json.loads(data)["error"]
    assert {"message", "type", "param", "code"} <= set(error), error
    assert isinstance(error["message"], str) and error["message"]
    return error


def assert_proxied_headers(reply, model, provider, attempts):
    assert reply.headers.get("x-alloy-model") == model, reply
    assert reply.headers.get("x-alloy-provider") == provider, reply
    assert reply.headers.get("x-alloy-attempts") == str(attempts), reply
    assert reply.headers.get("x-request-id"), reply


def start_mock(*args):
    """A strict mock (expects ``sk-provider``) with ``args``, e.g. a server-wide ``--fault``."""
    return start_mock_process("--api-key", PROVIDER_KEY, *args)


def started_mocks(faults):
    """The body of a ``mocks`` fixture: yields {name: a strict mock started with ``faults[name]``}
    (started in order), and stops them all after the module."""
    started = {}
    try:
        for name, args in faults.items():
            started[name] = start_mock(*args)
        yield started
    finally:
        for mock in started.values():
            mock.stop()


def provider(name, mock, extra="", client="core"):
    return f"""
    [providers.{name}]
    kind = "openai"
    base_url = "{mock.base}/v1"
    api_key = "env:TEST_PROVIDER_KEY"
    client = "{client}"
    {extra}
    """

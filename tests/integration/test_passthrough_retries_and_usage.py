"""What the gateway does with a passed-through request that may create something upstream (a file,
an upload part, a batch, a fine-tuning job), and with the answers of such endpoints.

- Such a request is sent again only when the upstream surely did not act on it: a 429 (refused
  before any work), or no connection at all. A 5xx, or a connection closed after the request went
  out, may come after the file or the job was made: sending it again made two or three of them
  (with the default max_retries = 2), also for a client that asked its SDK for no retries.
- Reading and deleting (GET, HEAD, DELETE) and the stateless endpoints (audio, images,
  moderations) are retried as before.
- Token accounting reads ``usage`` from model answers only: a file download or a batch object that
  carries the word counted hundreds of thousands of tokens against a key's tokens per minute.

Through a running gateway whose upstream is scripted (security_helpers.ScriptedUpstream), with the
official SDK as the client.
"""

import json

import openai
import pytest

from harness import wait_until
from metrics_helpers import scrape
from security_helpers import ScriptedUpstream

JSON_HEAD = b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\nretry-after: 0\r\ncontent-length: %d\r\n\r\n"
FILE = {"id": "file-1", "object": "file", "bytes": 5, "created_at": 1, "filename": "t.jsonl", "purpose": "batch", "status": "processed"}


def reply_with(script):
    """A reply function answering the n-th request with ``script(n, request)``: (status, JSON)."""

    def reply(request):
        status, body = script(len(server.received), request)
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return JSON_HEAD % (status, len(data)) + data

    server = ScriptedUpstream(reply)
    return server


@pytest.fixture
def gateway_for(start_gateway, tmp_path):
    servers = []

    def start(script):
        server = reply_with(script)
        servers.append(server)
        log = tmp_path / "access.log"
        gateway = start_gateway(
            config=f"""
            [router]
            max_retries = 2
            backoff_base = 0.001
            backoff_max = 0.002
            [providers.openai]
            base_url = "{server.base}/v1"
            api_key = "sk-provider"
            [log]
            path = "{log}"
            """
        )
        return gateway, server, log

    yield start
    for server in servers:
        server.stop()


def sdk(gateway):
    return openai.OpenAI(base_url=gateway.base + "/v1", api_key="client", max_retries=0, timeout=10)


ERROR = {"error": {"message": "The server had an error", "type": "server_error", "param": None, "code": None}}


def test_an_upload_the_upstream_failed_after_reading_is_not_sent_again(gateway_for):
    gateway, upstream, _ = gateway_for(lambda n, request: (502, ERROR))
    with pytest.raises(openai.InternalServerError):
        sdk(gateway).files.create(file=("t.jsonl", b"{}\n"), purpose="batch")
    with pytest.raises(openai.InternalServerError):
        sdk(gateway).batches.create(input_file_id="file-1", endpoint="/v1/chat/completions", completion_window="24h")
    assert [r.split(b" ", 2)[:2] for r in upstream.received] == [[b"POST", b"/v1/files"], [b"POST", b"/v1/batches"]]


def test_an_upload_refused_with_429_is_sent_again(gateway_for):
    limited = {"error": {"message": "Rate limit reached", "type": "requests", "param": None, "code": "rate_limit_exceeded"}}
    gateway, upstream, _ = gateway_for(lambda n, request: (429, limited) if n == 1 else (200, FILE))
    assert sdk(gateway).files.create(file=("t.jsonl", b"{}\n"), purpose="batch").id == "file-1"
    assert len(upstream.received) == 2  # a 429 is refused before any work: safe to send again


def test_reading_and_stateless_endpoints_are_retried_as_before(gateway_for):
    moderation = {"id": "modr-1", "model": "omni-moderation-latest", "results": []}

    def script(n, request):  # each request fails once, then succeeds
        if n % 2:
            return 500, ERROR
        return 200, moderation if b"/v1/moderations" in request.split(b"\r\n", 1)[0] else FILE

    gateway, upstream, _ = gateway_for(script)
    assert sdk(gateway).files.retrieve("file-1").id == "file-1"
    assert sdk(gateway).moderations.create(input="hi").id == "modr-1"
    assert len(upstream.received) == 4


def test_a_passed_through_answer_that_carries_usage_counts_no_tokens(gateway_for):
    # a batch's output file: every line holds the usage of a call made long ago, by the batch
    output = b'{"id":"r1","response":{"body":{"usage":{"prompt_tokens":100000,"completion_tokens":200000}}}}\n'
    gateway, upstream, log = gateway_for(lambda n, request: (200, output))
    assert sdk(gateway).files.content("file-1").content == output
    assert wait_until(lambda: log.exists() and log.read_text().strip(), 5)
    line = json.loads(log.read_text().splitlines()[-1])
    assert line["path"] == "/v1/files/file-1/content" and "prompt_tokens" not in line
    assert scrape(gateway.base).total("alloy_tokens_total") == 0

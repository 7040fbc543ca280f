"""Providers compress their answers when the request allows it, and the official SDKs always allow
it (``Accept-Encoding: gzip, deflate``). Alloy reads every answer it relays (usage for the ledger,
budgets and token limits; the whole body for the cache), so it asks upstream for an uncompressed
answer instead of forwarding the client's Accept-Encoding, unless a provider's configured headers
set one.

The upstream here behaves like a provider behind a CDN: it gzips a JSON answer whenever the
request's Accept-Encoding names gzip, and logs the Accept-Encoding it got.
"""

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest

from governance_helpers import create_key, ledger_cost, usage_rows
from harness import wait_until

USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
ANSWER = json.dumps(
    {
        "id": "chatcmpl-gz", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "compressed hello"}, "finish_reason": "stop"}],
        "usage": USAGE,
    }
).encode()  # fmt: skip


class CompressingUpstream:
    """One provider on 127.0.0.1: ``accepted`` holds each request's Accept-Encoding (None: absent)."""

    def __init__(self):
        self.accepted = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers["content-length"]))
                accepted = self.headers.get("accept-encoding")
                upstream.accepted.append(accepted)
                body = ANSWER
                self.send_response(200)
                self.send_header("content-type", "application/json")
                if accepted is not None and "gzip" in accepted:
                    body = gzip.compress(ANSWER)
                    self.send_header("content-encoding", "gzip")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream():
    server = CompressingUpstream()
    yield server
    server.close()


def provider(upstream, extra=""):
    return f"""
        [providers.openai]
        base_url = "{upstream.base}/v1"
        api_key = "sk-provider"
        {extra}
        """


def sdk(gateway, key="unused"):
    return openai.OpenAI(base_url=f"http://127.0.0.1:{gateway.port}/v1", api_key=key, max_retries=0)


def ask(client):
    return client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])


def test_the_upstream_is_asked_for_an_uncompressed_answer(start_gateway, upstream):
    gateway = start_gateway(config=provider(upstream))
    raw = ask(sdk(gateway))
    assert raw.parse().choices[0].message.content == "compressed hello"
    assert upstream.accepted == ["identity"]  # the SDK sent "gzip, deflate"; nothing else went on
    assert raw.headers.get("content-encoding") is None


def test_a_key_is_charged_for_an_answer_its_client_would_have_taken_gzipped(start_gateway, upstream, tmp_path):
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "sdk-user", "--tpm", "100000")
    prices = """
        [governance.prices."gpt-4o-mini"]
        input = 100000
        output = 100000
        """
    config = provider(upstream) + f"""
        [governance]
        path = "{db}"
        flush_interval = 0.1
        {prices}
        """
    gateway = start_gateway(config=config)
    client = sdk(gateway, secret)
    first = ask(client)
    second = ask(client)
    assert first.parse().usage.total_tokens == 18
    # The token window holds what the answer used (18), not the request's estimate.
    remaining = [int(raw.headers["x-ratelimit-remaining-tokens"]) for raw in (first, second)]
    assert remaining[0] - remaining[1] == 18
    assert wait_until(lambda: ledger_cost(db) > 0, timeout=5)
    [row] = usage_rows(db)
    assert (row["requests"], row["tokens_in"], row["tokens_out"]) == (2, 22, 14)
    assert row["cost_usd"] == pytest.approx(2 * 18 * 0.1)  # $0.10 a token, both ways


def test_the_cache_stores_an_answer_its_client_would_have_taken_gzipped(start_gateway, upstream):
    gateway = start_gateway(config=provider(upstream, "\n        [cache]\n        enabled = true\n"))
    client = sdk(gateway)
    first, second = ask(client), ask(client)
    assert (first.headers["x-alloy-cache"], second.headers["x-alloy-cache"]) == ("miss", "hit")
    assert second.parse().choices[0].message.content == "compressed hello"
    assert len(upstream.accepted) == 1


def test_a_configured_accept_encoding_is_sent_as_configured(start_gateway, upstream):
    """An operator who wants compressed answers (and gives up reading them) can say so."""
    gateway = start_gateway(config=provider(upstream, 'headers = { "Accept-Encoding" = "gzip" }'))
    raw = ask(sdk(gateway))
    assert upstream.accepted == ["gzip"]  # once, the configured value
    assert raw.headers["content-encoding"] == "gzip"  # relayed as it came; the SDK decodes it
    assert raw.parse().choices[0].message.content == "compressed hello"

"""Traces through the running gateway: W3C ``traceparent`` continued and propagated upstream, and the
spans exported over OTLP/HTTP to a collector stand-in that records what it receives.

The collector is a small HTTP server in this process answering ``POST /v1/traces`` with 200 and
keeping each decoded body; the upstream is the strict mock, whose request log shows the headers it
received. The client is the official openai SDK, with ``traceparent`` as an extra header.
"""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest

from harness import wait_until

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


class Collector:
    """An OTLP/HTTP collector stand-in: every export request's JSON, in order."""

    def __init__(self):
        self.exports = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                collector.exports.append((self.path, dict(self.headers), json.loads(body)))
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def spans(self):
        return [
            span
            for _, _, body in self.exports
            for resource in body["resourceSpans"]
            for scope in resource["scopeSpans"]
            for span in scope["spans"]
        ]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def collector():
    collector = Collector()
    yield collector
    collector.close()


def traced_gateway(start_gateway, mock, collector=None, start=True, extra=""):
    export = f'otlp_endpoint = "{collector.url}"\nheaders = {{ authorization = "env:OTLP_TOKEN" }}\n' if collector else ""
    return start_gateway(
        config=f"""
        [providers.openai]
        base_url = "{mock.base}/v1"
        api_key = "sk-provider"
        {extra}

        [tracing]
        enabled = true
        start = {"true" if start else "false"}
        service_name = "alloy-test"
        {export}
        """,
        env={"OTLP_TOKEN": "Bearer collector-token"},
    )


def ask(gateway, headers=None, model="gpt-4o-mini"):
    client = openai.OpenAI(base_url=gateway.base + "/v1", api_key="unused", max_retries=0)
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "trace me"}], extra_headers=headers or {}
    )


def upstream_traceparent(mock):
    return mock.requests()[-1]["headers"].get("traceparent")


def attribute(span, key):
    for item in span["attributes"]:
        if item["key"] == key:
            return next(iter(item["value"].values()))
    return None


def test_a_client_trace_is_continued_upstream_and_exported(start_gateway, mock, collector):
    gateway = traced_gateway(start_gateway, mock, collector)
    ask(gateway, {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01", "tracestate": "vendor=1"})
    sent = TRACEPARENT.match(upstream_traceparent(mock))
    assert sent is not None
    trace_id, attempt_span, flags = sent.groups()
    assert trace_id == CLIENT_TRACE and flags == "01" and attempt_span != CLIENT_SPAN
    assert mock.requests()[-1]["headers"].get("tracestate") == "vendor=1"
    assert wait_until(lambda: len(collector.spans()) >= 2, 5)
    path, headers, body = collector.exports[0]
    assert path == "/v1/traces" and headers["authorization"] == "Bearer collector-token"
    resource = body["resourceSpans"][0]["resource"]
    assert attribute(resource, "service.name") == "alloy-test"
    server, upstream = collector.spans()
    assert server["traceId"] == upstream["traceId"] == CLIENT_TRACE
    assert server["parentSpanId"] == CLIENT_SPAN and server["kind"] == 2
    assert upstream["parentSpanId"] == server["spanId"] and upstream["spanId"] == attempt_span
    assert upstream["kind"] == 3
    assert attribute(server, "http.response.status_code") == "200"
    assert attribute(server, "gen_ai.request.model") == "gpt-4o-mini"
    assert int(server["startTimeUnixNano"]) <= int(upstream["startTimeUnixNano"]) <= int(upstream["endTimeUnixNano"])
    assert int(upstream["endTimeUnixNano"]) <= int(server["endTimeUnixNano"])


def test_a_request_without_a_trace_starts_one(start_gateway, mock, collector):
    gateway = traced_gateway(start_gateway, mock, collector)
    ask(gateway, {"tracestate": "rojo=1"})
    ask(gateway, {"traceparent": "00-not-a-valid-header-01", "tracestate": "rojo=1"})  # malformed: ignored, never forwarded
    first, second = (TRACEPARENT.match(r["headers"]["traceparent"]) for r in mock.requests()[-2:])
    assert first and second and first.group(1) != second.group(1)
    # a tracestate belongs to the trace its traceparent names: with a new trace it is dropped (W3C
    # Trace Context, 3.3.1: without a valid traceparent the vendor state must be discarded)
    assert [r["headers"].get("tracestate") for r in mock.requests()[-2:]] == [None, None]
    assert wait_until(lambda: len(collector.spans()) >= 4, 5)
    roots = [span for span in collector.spans() if span["kind"] == 2]
    assert len(roots) == 2 and all("parentSpanId" not in span for span in roots)


def test_with_start_off_only_client_traces_are_followed(start_gateway, mock):
    gateway = traced_gateway(start_gateway, mock, start=False)
    ask(gateway)
    assert upstream_traceparent(mock) is None
    ask(gateway, {"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00"})
    assert TRACEPARENT.match(upstream_traceparent(mock)).group(1) == CLIENT_TRACE


def test_tracing_off_forwards_the_client_traceparent_untouched(gateway, mock):
    given = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    ask(gateway, {"traceparent": given})
    assert upstream_traceparent(mock) == given


def test_a_collector_that_is_down_costs_no_request(start_gateway, mock, collector):
    url = collector.url
    collector.close()  # nothing listens there any more
    gateway = start_gateway(
        config=f"""
        [providers.openai]
        base_url = "{mock.base}/v1"
        api_key = "sk-provider"

        [tracing]
        enabled = true
        otlp_endpoint = "{url}"
        """,
    )
    for _ in range(5):
        assert ask(gateway).choices[0].message.content
    assert gateway.popen.poll() is None


def test_spans_name_the_model_served_and_a_relayed_server_error(start_gateway, mock, collector):
    routed = """
        [[models]]
        name = "fast"
        provider = "openai"
        model = "gpt-4o-mini"

        [router]
        max_retries = 0
        """
    gateway = traced_gateway(start_gateway, mock, collector, extra=routed)
    ask(gateway, model="fast")
    with pytest.raises(openai.InternalServerError):
        ask(gateway, {"x-mock-fault": "status=500"}, model="fast")
    assert wait_until(lambda: len(collector.spans()) >= 4, 5)
    servers = [span for span in collector.spans() if span["kind"] == 2]
    assert [attribute(span, "gen_ai.request.model") for span in servers] == ["fast", "fast"]
    assert [attribute(span, "gen_ai.response.model") for span in servers] == ["gpt-4o-mini", "gpt-4o-mini"]
    assert attribute(servers[0], "error.type") is None and attribute(servers[1], "error.type") == "500"


def test_spans_follow_the_http_and_gen_ai_conventions(start_gateway, mock, collector):
    """A tracing backend groups server spans by ``{method} {route}`` and reads a model call from the
    GenAI attributes: the span names never hold a client's raw path (one name per file id would
    flood a backend's span index), and the attempt span is the inference call itself."""
    gateway = traced_gateway(start_gateway, mock, collector)
    answer = ask(gateway)
    client = openai.OpenAI(base_url=gateway.base + "/v1", api_key="unused", max_retries=0)
    client.embeddings.create(model="text-embedding-3-small", input="trace me")
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-abc123")  # passed through (the default allow-list), the mock has none
    assert wait_until(lambda: len(collector.spans()) >= 6, 5)
    servers = [span for span in collector.spans() if span["kind"] == 2]
    attempts = {span["parentSpanId"]: span for span in collector.spans() if span["kind"] == 3}
    chat, embeddings, files = servers
    assert chat["name"] == "POST /v1/chat/completions"
    assert attribute(chat, "http.route") == "/v1/chat/completions"
    assert attribute(chat, "gen_ai.operation.name") == "chat"
    assert attribute(chat, "gen_ai.provider.name") == "openai"
    assert attribute(chat, "gen_ai.usage.input_tokens") == str(answer.usage.prompt_tokens)
    assert attribute(chat, "gen_ai.usage.output_tokens") == str(answer.usage.completion_tokens)
    upstream = attempts[chat["spanId"]]
    assert upstream["name"] == "chat gpt-4o-mini"
    assert attribute(upstream, "gen_ai.operation.name") == "chat"
    assert attribute(upstream, "gen_ai.provider.name") == "openai"
    assert attribute(upstream, "gen_ai.request.model") == "gpt-4o-mini"
    assert attribute(upstream, "server.address") == "127.0.0.1"
    assert attribute(upstream, "server.port") == str(mock.port)
    assert embeddings["name"] == "POST /v1/embeddings"
    assert attribute(embeddings, "gen_ai.operation.name") == "embeddings"
    assert attempts[embeddings["spanId"]]["name"] == "embeddings text-embedding-3-small"
    # a passthrough path is named by the allow-list rule that let it through, not by the file's id
    assert files["name"] == "GET /v1/files/*" and attribute(files, "http.route") == "/v1/files/*"
    assert attribute(files, "url.path") == "/v1/files/file-abc123"
    assert attribute(files, "gen_ai.operation.name") is None
    assert "file-abc123" not in attempts[files["spanId"]]["name"]

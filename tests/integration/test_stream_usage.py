"""Every stream's usage is known to the account stage, also when its client did not ask for it.

With ``[server] stream_usage = true`` (keys, limits and budgets turn it on themselves) a streaming
chat request without ``stream_options.include_usage`` goes upstream asking for it; the client's
stream comes back exactly as it would have without the option (no ``"usage"`` field anywhere, no
extra chunk), and the call's ``usage`` holds the upstream's counts. Translated providers
(Anthropic) report their stream's usage to the account the same way. A client that asked for
usage itself gets it, untouched.

The gateway runs in this process so a finish listener can read each call's usage; the upstreams
are real processes (the strict OpenAI mock, the Anthropic emulator) and the client a raw socket, so
the bytes compared are the bytes on the wire.
"""

import json
import random
import socket

import pytest

from alloy.stream_usage import HiddenUsage
from harness import in_process_gateway, post_and_read, start_emulator_process, start_mock_process, wait_until

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "count these five words"}]}


@pytest.fixture(scope="module")
def upstreams():
    mock = start_mock_process("--api-key", "sk-provider")
    emulator = start_emulator_process("anthropic", "--api-key", "sk-ant")
    yield mock, emulator
    mock.stop()
    emulator.stop()


def gateway_config(tmp_path, upstreams, stream_usage):
    mock, emulator = upstreams
    path = tmp_path / f"alloy-{stream_usage}.toml"
    path.write_text(
        f"[server]\nstream_usage = {'true' if stream_usage else 'false'}\n\n"
        f'[providers.openai]\nbase_url = "{mock.base}/v1"\napi_key = "sk-provider"\n\n'
        f'[providers.anthropic]\nbase_url = "{emulator.base}"\napi_key = "sk-ant"\n\n'
        f'[wildcards]\n"claude-*" = "anthropic"\n"gpt-*" = "openai"\n'
    )
    return path


def unchunked(body):
    """The payload of a chunked body."""
    out, rest = b"", body
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return out
        out, rest = out + rest[:size], rest[size + 2 :]


def stream_through(port, body, calls):
    """(the SSE payload the client received, the usage the account saw) for one streaming chat."""
    before = len(calls)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head, framed = post_and_read(sock, b"/v1/chat/completions", json.dumps(body).encode())
    assert head.startswith(b"HTTP/1.1 200"), head
    assert wait_until(lambda: len(calls) == before + 1, 5)
    return unchunked(framed), calls[-1]


def normalized(sse):
    """A stream's events with what differs between two runs (ids, times) taken out."""
    events = []
    for line in sse.decode().split("\n"):
        if line.startswith("data: ") and line != "data: [DONE]":
            chunk = json.loads(line[6:])
            chunk.pop("id", None)
            chunk.pop("created", None)
            events.append(chunk)
    return events


@pytest.fixture(params=[False, True], ids=["usage-off", "usage-on"])
def gateway(request, tmp_path, upstreams):
    calls = []
    with in_process_gateway(gateway_config(tmp_path, upstreams, request.param)) as (port, gateway):
        gateway.pipeline.listeners.append(lambda call: calls.append(call.usage))
        yield port, calls, request.param


def test_a_stream_without_include_usage_reaches_the_client_unchanged_and_its_usage_the_account(gateway, upstreams):
    port, calls, stream_usage = gateway
    mock, _ = upstreams
    mock.clear()
    sse, usage = stream_through(port, {**CHAT, "stream": True}, calls)
    assert b'"usage"' not in sse  # neither "usage":null on each chunk nor the usage chunk
    assert sse.endswith(b"data: [DONE]\n\n")
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in normalized(sse) if c["choices"])
    assert text == "echo: count these five words"
    sent = mock.requests()[-1]["body"]
    if stream_usage:
        assert sent["stream_options"] == {"include_usage": True}
        assert usage["prompt_tokens"] == 4 and usage["completion_tokens"] == len(text.split())
    else:
        assert "stream_options" not in sent
        assert usage is None


def test_the_client_stream_is_the_same_with_and_without_hidden_usage(tmp_path, upstreams):
    streams = {}
    for stream_usage in (False, True):
        calls = []
        with in_process_gateway(gateway_config(tmp_path, upstreams, stream_usage)) as (port, gateway):
            gateway.pipeline.listeners.append(lambda call: calls.append(call.usage))
            streams[stream_usage] = normalized(stream_through(port, {**CHAT, "stream": True}, calls)[0])
    assert streams[True] == streams[False]


def test_a_client_that_asked_for_usage_gets_it_untouched(gateway):
    port, calls, _ = gateway
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    sse, usage = stream_through(port, body, calls)
    chunks = normalized(sse)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == usage
    assert all("usage" in chunk for chunk in chunks)  # "usage": null on the others, as OpenAI sends


def test_a_translated_stream_reports_its_usage_to_the_account(gateway):
    port, calls, _ = gateway
    sse, usage = stream_through(port, {**CHAT, "model": "claude-3-5-haiku-latest", "stream": True}, calls)
    assert b'"usage"' not in sse
    assert usage is not None and usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.parametrize("end", [b"\n\n", b"\r\n\r\n", b"\r\r"], ids=["lf", "crlf", "cr"])
@pytest.mark.parametrize("spaced", [False, True], ids=["compact", "spaced"])
def test_the_filter_keeps_events_whole_however_the_stream_is_cut(end, spaced):
    # Every blank line SSE allows ends an event (sse-starlette writes CRLF), and JSON written with
    # Python's default separators ("choices": []) is the same usage chunk: once, CRLF streams were
    # held whole to their end and spaced usage chunks reached clients that never asked for them.
    def event(obj):
        return b"data: " + json.dumps(obj, separators=(", ", ": ") if spaced else (",", ":")).encode() + end

    events = [event({"id": "c", "choices": [{"delta": {"content": f"w{i}"}}], "usage": None}) for i in range(5)]
    usage_chunk = event({"id": "c", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}})
    stream = b"".join(events) + usage_chunk + b"data: [DONE]" + end
    null = b', "usage": null' if spaced else b',"usage":null'
    expected = b"".join(e.replace(null, b"") for e in events) + b"data: [DONE]" + end
    rng = random.Random(7)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(1, 12)))
        pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
        hidden = HiddenUsage()
        seen = b"".join(hidden.feed(piece) for piece in pieces) + hidden.finish()
        assert seen == expected
        assert hidden.usage == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}


def test_a_usage_chunk_the_stream_never_ended_is_taken_out_too():
    # The upstream's last event, without its blank line (then the chunked end, no [DONE]): what is
    # held at the end is filtered as an ended event would be (a probe found it passed as it was).
    hidden = HiddenUsage()
    first = hidden.feed(b'data: {"choices":[{"delta":{"content":"a"}}],"usage":null}\n\n')
    assert first == b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'
    assert hidden.feed(b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}') == b""
    assert hidden.finish() == b""
    assert hidden.usage == {"prompt_tokens": 3, "completion_tokens": 5}
    cut = HiddenUsage()  # a content chunk cut there keeps its content, its null usage taken out
    cut.feed(b'data: {"choices":[{"delta":{"content":"b"}}],"usage":null}')
    assert cut.finish() == b'data: {"choices":[{"delta":{"content":"b"}}]}'


def test_the_filter_lets_an_event_through_as_soon_as_it_ends_and_gives_up_on_endless_ones():
    hidden = HiddenUsage()
    assert hidden.feed(b'data: {"choices":[{"delta":{"content":"a"}}]}\r\n') == b""
    assert hidden.feed(b"\r\n") == b'data: {"choices":[{"delta":{"content":"a"}}]}\r\n\r\n'  # an end across two reads
    endless = HiddenUsage()
    piece = b"x" * 65536
    seen = b"".join(endless.feed(piece) for _ in range(300))  # 19.7 MB, no event end anywhere
    assert endless.passing and seen == piece * 300
    assert endless.feed(b'"usage":null\n\n') == b'"usage":null\n\n'  # from then on, as it is


def test_a_client_that_leaves_after_the_usage_chunk_is_still_charged_its_tokens(gateway):
    # The openai SDK closes its connection at data: [DONE], before the stream's last chunk; a call
    # cancelled then once reported no usage at all (nothing charged, no tokens in the metrics).
    port, calls, _ = gateway
    raw = json.dumps({**CHAT, "stream": True, "stream_options": {"include_usage": True}}).encode()
    before = len(calls)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\n"
            b"x-mock-fault: drip=300\r\nContent-Length: %d\r\n\r\n%s" % (len(raw), raw)
        )
        received = b""
        while b'"usage":{' not in received:  # then leave before the stream's end
            received += sock.recv(65536)
    assert wait_until(lambda: len(calls) == before + 1, 5)
    assert calls[-1]["prompt_tokens"] > 0 and calls[-1]["completion_tokens"] > 0, calls[-1]

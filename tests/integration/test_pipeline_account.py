"""The account stage, as a future metrics or ledger listener sees it: every proxied request ends
exactly once, just after its answer was written, with its outcome (status, usage read from the answer
itself, Alloy's own error) and four clock reads in order.

The gateway runs in this process (its real ``Gateway`` on its own event loop in a thread) so a
listener can be added to its pipeline; the upstream is a real mock process and the client a raw
keep-alive socket.
"""

import json
import socket

import pytest

from harness import in_process_gateway, post_and_read, start_mock_process, wait_until

KEY = "sk-provider"


@pytest.fixture
def ended_calls(tmp_path):
    """(port, calls): a gateway whose pipeline appends each ended call's outcome to ``calls``."""
    mock = start_mock_process("--api-key", KEY)
    path = tmp_path / "alloy.toml"
    path.write_text(
        f'[router]\nmax_retries = 1\nbackoff_base = 0.001\nbackoff_max = 0.002\n\n'
        f'[providers.openai]\nbase_url = "{mock.base}/v1"\napi_key = "{KEY}"\n'
    )
    calls = []

    def record(call):
        calls.append(
            {
                "status": call.status,
                "usage": call.usage,
                "error": call.error.code if call.error is not None else None,
                "attempts": call.count,
                "clock": (call.arrived, call.sent_at, call.head_at, call.ended_at),
                "path": call.path,
            }
        )

    try:
        with in_process_gateway(path) as (port, gateway):
            gateway.pipeline.listeners.append(record)
            yield port, calls
    finally:
        mock.stop()


def ask(sock, body, extra=b""):
    return post_and_read(sock, b"/v1/chat/completions", json.dumps(body).encode(), extra)


CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "count me"}]}


def test_each_call_ends_once_with_status_usage_and_ordered_clock_reads(ended_calls):
    port, calls = ended_calls
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    _, body = ask(sock, CHAT)
    answered_usage = json.loads(body)["usage"]
    ask(sock, {**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    ask(sock, {**CHAT, "stream": True})  # no usage asked for: none to read
    sock.close()
    assert wait_until(lambda: len(calls) == 3, 5)  # listeners run just after the answer is written
    plain, streamed, bare = calls
    assert plain["status"] == 200 and plain["usage"] == answered_usage
    assert streamed["status"] == 200 and streamed["usage"]["prompt_tokens"] == answered_usage["prompt_tokens"]
    assert bare["usage"] is None
    for call in calls:
        arrived, sent, head, ended = call["clock"]
        assert 0 < arrived <= sent <= head <= ended
        assert call["attempts"] == 1 and call["error"] is None


def test_failed_and_retried_calls_end_once_too(ended_calls):
    port, calls = ended_calls
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head, _ = ask(sock, CHAT, b"x-mock-fault: status=503\r\n")  # retried once, then the upstream's 503
    assert head.startswith(b"HTTP/1.1 503")
    head, _ = ask(sock, {"model": "gpt-4o-mini"}, b"x-mock-fault: reset\r\n")  # Alloy's own 502
    assert head.startswith(b"HTTP/1.1 502")
    sock.close()
    assert wait_until(lambda: len(calls) == 2, 5)
    assert [(c["status"], c["attempts"], c["error"]) for c in calls] == [(503, 2, None), (502, 2, "bad_gateway")]
    assert all(c["path"] == b"/v1/chat/completions" for c in calls)

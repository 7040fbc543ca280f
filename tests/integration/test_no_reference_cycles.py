"""A request leaves nothing for Python's cyclic garbage collector: every object it creates is freed
by reference counting the moment the request ends. A cycle per request (an exchange and its
``Attempts`` pointing at each other, say) would make the collector run often under load, which is
paid in tail latency and memory between collections.

The gateway runs in this process (its real ``Gateway``, connections, proxy, attempts and upstream
pool, on its own event loop in a thread) so the collector can be asked; the upstream is a real mock
process and the client a raw keep-alive socket.
"""

import gc
import json
import socket

import pytest

from harness import in_process_gateway, post_and_read, start_mock_process

KEY = "sk-provider"


@pytest.fixture
def gateway_port(tmp_path):
    mock = start_mock_process("--api-key", KEY)
    path = tmp_path / "alloy.toml"
    path.write_text(
        f'[router]\nbackoff_base = 0.001\nbackoff_max = 0.002\n\n'
        f'[providers.openai]\nbase_url = "{mock.base}/v1"\napi_key = "{KEY}"\n\n'
        f'[[models]]\nname = "pair"\ndeployments = [{{ provider = "openai", model = "gpt-4o-mini" }}, '
        f'{{ provider = "openai", model = "gpt-4o" }}]\nstrategy = "least-inflight"\n\n'
        f'[wildcards]\n"gpt-*" = "openai"\n'
    )
    try:
        with in_process_gateway(path) as (port, _):
            yield port
    finally:
        mock.stop()


def exchange(sock, model, extra=b"", stream=False):
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}).encode()
    return post_and_read(sock, b"/v1/chat/completions", body, extra)[0]


def test_requests_leave_no_reference_cycles(gateway_port):
    sock = socket.create_connection(("127.0.0.1", gateway_port), timeout=10)
    kinds = [
        (b"gpt-4o-mini", b"", False),  # plain route
        (b"pair", b"", False),  # a configured model with two deployments
        (b"pair", b"", True),  # a stream
        (b"gpt-4o-mini", b"x-mock-fault: status=503\r\n", False),  # retried, then the last answer
    ]
    for model, extra, stream in kinds * 5:  # warm every path first (caches, pools, interned names)
        exchange(sock, model.decode(), extra, stream)
    gc.collect()
    gc.disable()
    try:
        tracked_before = len(gc.get_objects())
        for model, extra, stream in kinds * 50:
            head = exchange(sock, model.decode(), extra, stream)
            assert head.startswith((b"HTTP/1.1 200 ", b"HTTP/1.1 503 ")), head
        garbage = gc.collect()
        tracked_after = len(gc.get_objects())
    finally:
        gc.enable()
        sock.close()
    assert garbage == 0, f"{garbage} objects were only freed by the cyclic collector"
    # Nothing a request allocated outlives it either: 200 requests leave the collector's object
    # count where it was (a few objects of slack for the event loop's own bookkeeping).
    assert tracked_after - tracked_before < 20, f"{tracked_after - tracked_before} tracked objects survived 200 requests"

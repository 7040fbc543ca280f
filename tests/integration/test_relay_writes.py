"""How many writes an answer costs the client's socket: one per upstream read, the end of a chunked
body included. Each extra write is a system call on the path of every request.

In process, over fake transports that record each write: a real ``Gateway`` with one client
connection and one idle upstream connection, fed the client's request and the upstream's answer by
hand (as benchmarks/request_path_bench.py does), so nothing else can coalesce or split the writes.
"""

import pytest

from alloy import config as alloy_config
from fake_transport import wired as wire_gateway

BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
REQUEST = b"POST /v1/chat/completions HTTP/1.1\r\nhost: g\r\ncontent-length: %d\r\n\r\n%s" % (len(BODY), BODY)


@pytest.fixture
def wired():
    config = alloy_config.load(None, env={"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    client, upstream, transport, loop = wire_gateway(config, "openai")
    yield client, upstream, transport
    loop.close()


def test_a_chunked_answer_read_at_once_is_one_write_with_its_last_chunk(wired):
    client, upstream, transport = wired
    client.data_received(REQUEST)
    upstream.data_received(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    [written] = transport.writes
    assert written.startswith(b"HTTP/1.1 200 OK\r\n") and written.endswith(b"2\r\n{}\r\n0\r\n\r\n")


def test_a_stream_ends_in_the_write_of_its_last_read(wired):
    client, upstream, transport = wired
    client.data_received(REQUEST)
    upstream.data_received(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
    upstream.data_received(b"9\r\ndata: 1\n\n\r\n")
    upstream.data_received(b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n")
    assert len(transport.writes) == 3
    assert transport.writes[-1] == b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"


def test_the_events_of_one_read_go_out_as_one_chunk(wired):
    # An upstream frames each event as its own chunk; a read that brings twenty of them is one
    # chunk to the client (one framing, one piece to write), the same bytes to an SSE client.
    client, upstream, transport = wired
    client.data_received(REQUEST)
    events = [b"data: {\"n\": %d}\n\n" % n for n in range(20)]
    upstream.data_received(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        + b"".join(b"%x\r\n%s\r\n" % (len(event), event) for event in events)
    )
    [written] = transport.writes
    body = b"".join(events)
    assert written.endswith(b"\r\n\r\n%x\r\n%s\r\n" % (len(body), body))
    upstream.data_received(b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n")
    assert transport.writes[-1] == b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"


def test_an_event_cut_between_two_reads_goes_out_whole(wired):
    # The part of an event before its blank line is held: the client gets whole events only, so an
    # error event after a failure can never land in the middle of one (and an SDK parse it as JSON).
    client, upstream, transport = wired
    client.data_received(REQUEST)
    upstream.data_received(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
    upstream.data_received(b"b\r\ndata: {\"a\":\r\n")
    assert len(transport.writes) == 1  # the head alone
    upstream.data_received(b"5\r\n 1}\n\n\r\n")
    assert transport.writes[-1] == b"10\r\ndata: {\"a\": 1}\n\n\r\n"
    upstream.data_received(b"7\r\ndata: [\r\n0\r\n\r\n")  # the upstream ends inside an event: as it came
    assert transport.writes[-1] == b"7\r\ndata: [\r\n0\r\n\r\n"


def test_a_content_length_answer_is_one_write(wired):
    client, upstream, transport = wired
    client.data_received(REQUEST)
    upstream.data_received(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
    [written] = transport.writes
    assert written.endswith(b"\r\n\r\n{}")


def test_a_compressed_event_stream_goes_out_as_it_comes(wired):
    # Its bytes have no blank lines to cut at (they are gzip): holding them for whole events held
    # the stream to its end.
    client, upstream, transport = wired
    client.data_received(REQUEST)
    upstream.data_received(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    upstream.data_received(b"4\r\n\x1f\x8b\x08\x00\r\n")
    assert transport.writes[-1] == b"4\r\n\x1f\x8b\x08\x00\r\n"


def test_a_stream_with_no_event_end_goes_out_as_it_comes_once_found_not_sse(wired):
    # 16 MiB without a blank line: not SSE as Alloy knows it. What was held goes out, and from then
    # on every read at once (not held again for the next 16 MiB).
    client, upstream, transport = wired
    client.data_received(REQUEST)
    upstream.data_received(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
    piece = b"x" * 65536
    for _ in range(257):  # 16 MiB and one read
        upstream.data_received(b"%x\r\n%s\r\n" % (len(piece), piece))
    assert sum(len(w) for w in transport.writes[1:]) > 257 * 65536  # all of it went out
    before = len(transport.writes)
    upstream.data_received(b"3\r\nabc\r\n")
    assert len(transport.writes) == before + 1 and transport.writes[-1] == b"3\r\nabc\r\n"

"""SSESplitter: event-stream bodies cut into (event, data) pairs, however the bytes arrive."""

import pytest

from alloy import errors
from vectors import SSE_CASES, SSE_FLUSH_CASES


def split(core, pieces, **kwargs):
    splitter = core.SSESplitter(**kwargs)
    events = []
    for piece in pieces:
        events.extend(splitter.feed(piece))
    events.extend(splitter.flush())
    return events


@pytest.mark.parametrize("stream,expected", SSE_CASES)
def test_one_feed(core, stream, expected):
    assert split(core, [stream]) == expected


@pytest.mark.parametrize("stream,expected", SSE_CASES)
def test_byte_by_byte(core, stream, expected):
    assert split(core, [stream[i : i + 1] for i in range(len(stream))]) == expected


@pytest.mark.parametrize("stream,expected", SSE_CASES)
def test_split_at_every_byte(core, stream, expected):
    for cut in range(len(stream) + 1):
        assert split(core, [stream[:cut], stream[cut:]]) == expected, cut


@pytest.mark.parametrize("stream,expected", SSE_CASES)
def test_split_at_every_pair_of_bytes(core, stream, expected):
    if len(stream) > 60:
        stream = stream[:60]
        expected = split(core, [stream])
    for a in range(len(stream) + 1):
        for b in range(a, len(stream) + 1):
            assert split(core, [stream[:a], stream[a:b], stream[b:]]) == expected, (a, b)


@pytest.mark.parametrize("stream,expected", SSE_FLUSH_CASES)
def test_flush_returns_the_unterminated_last_event(core, stream, expected):
    assert split(core, [stream]) == expected
    assert split(core, [stream[i : i + 1] for i in range(len(stream))]) == expected


def test_terminated_events_come_out_of_feed_not_flush(core):
    splitter = core.SSESplitter()
    assert splitter.feed(b"data: 1\n\ndata: 2\n\nda") == [(None, b"1"), (None, b"2")]
    assert splitter.feed(b"ta: 3\n") == []
    assert splitter.feed(b"\n") == [(None, b"3")]
    assert splitter.flush() == []


def test_crlf_events_come_out_of_feed(core):
    splitter = core.SSESplitter()
    assert splitter.feed(b"data: 1\r\n\r\n") == [(None, b"1")]


def test_cr_split_from_lf_is_one_line_ending(core):
    splitter = core.SSESplitter()
    events = splitter.feed(b"data: a\r")
    events += splitter.feed(b"\ndata: b\r")
    events += splitter.feed(b"\n\r")
    events += splitter.feed(b"\n")
    events += splitter.flush()
    assert events == [(None, b"a\nb")]


def test_flush_on_empty_splitter(core):
    assert core.SSESplitter().flush() == []


def test_event_types(core):
    splitter = core.SSESplitter()
    (event,) = splitter.feed(b"event: delta\ndata: x\n\n")
    assert isinstance(event, tuple)
    name, data = event
    assert type(name) is bytes and type(data) is bytes


def test_many_events_in_one_feed(core):
    stream = b"".join(b"data: {\"i\":%d}\n\n" % i for i in range(1000))
    events = core.SSESplitter().feed(stream)
    assert events == [(None, b'{"i":%d}' % i) for i in range(1000)]


def test_large_event_under_limit(core):
    payload = b"x" * 1_000_000
    assert split(core, [b"data: ", payload[:500_000], payload[500_000:], b"\n\n"]) == [
        (None, payload)
    ]


def test_event_over_limit_is_upstream_protocol_error(core):
    splitter = core.SSESplitter(max_event_bytes=100)
    with pytest.raises(errors.UpstreamProtocolError) as info:
        splitter.feed(b"data: " + b"x" * 1000 + b"\n\n")
    assert info.value.status == 502


def test_unterminated_event_over_limit_is_refused_without_waiting(core):
    splitter = core.SSESplitter(max_event_bytes=100)
    with pytest.raises(errors.UpstreamProtocolError):
        for _ in range(100):
            splitter.feed(b"data: " + b"x" * 40)


def test_many_data_lines_over_limit_is_refused(core):
    splitter = core.SSESplitter(max_event_bytes=100)
    with pytest.raises(errors.UpstreamProtocolError):
        for _ in range(100):
            splitter.feed(b"data: xxxxxxxxxx\n")


def test_limit_is_per_event(core):
    splitter = core.SSESplitter(max_event_bytes=100)
    events = []
    for i in range(100):
        events.extend(splitter.feed(b"data: %02d-xxxxxxxxxxxxxxxxxxxx\n\n" % i))
    assert len(events) == 100


def test_comments_count_toward_nothing_harmful(core):
    # a long stream of keep-alive comments is not one growing event
    splitter = core.SSESplitter(max_event_bytes=100)
    events = []
    for _ in range(100):
        events.extend(splitter.feed(b": ping\n\n"))
    events.extend(splitter.feed(b"data: ok\n\n"))
    assert events == [(None, b"ok")]


def test_a_long_line_in_many_reads_is_one_data_line(core):
    # Held as its pieces and joined once at its end (each read scanned once: a hostile upstream's
    # 15 MB line in 4 KB reads once took 20 s of one CPU, the whole worker with it).
    splitter = core.SSESplitter()
    assert splitter.feed(b'event: delta\r\ndata: {"text": "') == []
    for _ in range(256):
        assert splitter.feed(b"A" * 4096) == []
    assert splitter.feed(b'"}\r') == []  # a CR ending a read, then its LF
    assert splitter.feed(b"\n\r\n") == [(b"delta", b'{"text": "' + b"A" * 4096 * 256 + b'"}')]


def test_a_line_past_the_limit_in_many_reads_is_refused_as_it_grows(core):
    splitter = core.SSESplitter(max_event_bytes=10_000)
    splitter.feed(b"data: ")
    with pytest.raises(errors.UpstreamProtocolError):
        for _ in range(4):
            splitter.feed(b"x" * 4096)

"""Unit tests of what may be stored (``alloy.cache.entries.entry_from_recording``): the cases an
upstream cannot be made to produce on demand through the mock (a stream cut exactly between two
events), and the round trip of an entry through the bytes a shared store keeps."""

from alloy.cache.entries import JSON, SSE, entry_from_recording, pack, unpack

EVENTS = [
    b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n',
    b'data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"total_tokens":3}}\n\n',
    b"data: [DONE]\n\n",
]


def test_a_finished_stream_is_stored_with_its_usage_event_located():
    entry = entry_from_recording(EVENTS, True, 10.0, 20.0, "global")
    assert entry.kind == SSE and entry.has_usage
    assert entry.stream_body(False) == EVENTS[0] + EVENTS[2]
    assert entry.stream_body(True) == b"".join(EVENTS)


def test_a_stream_cut_between_events_is_not_stored():
    assert entry_from_recording(EVENTS[:2], True, 10.0, 20.0, "global") is None


def test_a_stream_with_an_error_event_is_not_stored():
    error = b'data: {"error":{"message":"overloaded"}}\n\n'
    assert entry_from_recording([EVENTS[0], error, EVENTS[2]], True, 10.0, 20.0, "global") is None


def test_a_json_body_cut_short_is_not_stored():
    assert entry_from_recording([b'{"id":"c","choices":[{"mess'], False, 10.0, 20.0, "global") is None
    assert entry_from_recording([b'{"id":"c",', b'"choices":[]}'], False, 10.0, 20.0, "global").kind == JSON


def test_an_entry_survives_packing():
    entry = entry_from_recording(EVENTS, True, 10.5, 20.25, "global")
    back = unpack(pack(entry), "global")
    assert (back.kind, back.body, back.stored_at, back.expires_at) == (SSE, entry.body, 10.5, 20.25)
    assert (back.usage_start, back.usage_end) == (entry.usage_start, entry.usage_end)
    assert unpack(b"junk") is None

"""Picks the core implementation: the compiled ``alloy._core`` unless ``ALLOY_PURE=1`` is set or it
failed to build, in which case the pure-Python twin ``alloy._pycore`` (same API) serves.

``IMPLEMENTATION`` records which one was chosen ("compiled" or "pure") so a test can refuse to run
the compiled suite on the twin by accident and the server can say what it runs.
"""

import os

if os.environ.get("ALLOY_PURE") == "1":
    from alloy import _pycore as _impl

    IMPLEMENTATION = "pure"
else:
    try:
        from alloy import _core as _impl
    except ImportError:  # no compiler at install time: the twin is slower but complete
        from alloy import _pycore as _impl

        IMPLEMENTATION = "pure"
    else:
        IMPLEMENTATION = "compiled"

Request = _impl.Request
RequestParser = _impl.RequestParser
ResponseHead = _impl.ResponseHead
ResponseParser = _impl.ResponseParser
SSESplitter = _impl.SSESplitter
ScanResult = _impl.ScanResult
RouteTable = _impl.RouteTable
LAST_CHUNK = _impl.LAST_CHUNK
clean_path = _impl.clean_path
find_usage = _impl.find_usage
encode_headers = _impl.encode_headers
encode_forwarded = _impl.encode_forwarded
frame_response = _impl.frame_response
frame_head = _impl.frame_head
frame_stream_head = _impl.frame_stream_head
frame_request_head = _impl.frame_request_head
frame_chunk = _impl.frame_chunk
frame_request = _impl.frame_request
scan_body = _impl.scan_body
VIEW_BODY_ABOVE = _impl.VIEW_BODY_ABOVE
rewrite_model = _impl.rewrite_model
rewrite_model_parts = _impl.rewrite_model_parts
LimitCounters = _impl.LimitCounters
ratelimit_reset = _impl.ratelimit_reset
ratelimit_lines = _impl.ratelimit_lines
usage_cost = _impl.usage_cost
untracked = _impl.untracked
ledger_stored = _impl.ledger_stored
access_json_line = _impl.access_json_line
SlotObserver = _impl.SlotObserver
tune_allocator = _impl.tune_allocator
trim_heap = _impl.trim_heap
raise_open_file_limit = _impl.raise_open_file_limit

__all__ = [
    "IMPLEMENTATION",
    "LAST_CHUNK",
    "VIEW_BODY_ABOVE",
    "LimitCounters",
    "Request",
    "RequestParser",
    "ResponseHead",
    "ResponseParser",
    "RouteTable",
    "SSESplitter",
    "ScanResult",
    "SlotObserver",
    "access_json_line",
    "clean_path",
    "find_usage",
    "encode_forwarded",
    "encode_headers",
    "frame_chunk",
    "frame_head",
    "frame_request_head",
    "frame_request",
    "frame_response",
    "frame_stream_head",
    "raise_open_file_limit",
    "ratelimit_lines",
    "ratelimit_reset",
    "rewrite_model",
    "rewrite_model_parts",
    "trim_heap",
    "tune_allocator",
    "scan_body",
    "untracked",
    "ledger_stored",
    "usage_cost",
]

"""Answers built once at start: the gateway's fixed endpoints cost one write, no framing."""

from alloy.core import frame_response
from alloy.headers import JSON_HEADER


class Prebuilt:
    """A complete response in its two framings: keep the connection, or close it. For a HEAD
    request the same head (Content-Length included) without the body (RFC 9110 section 9.3.2)."""

    __slots__ = ("status", "keep_alive", "closing")

    def __init__(self, status, body, header_block=JSON_HEADER, head=False):
        self.status = status  # for the metrics and the access log of a /v1/ answer (the model listing)
        self.keep_alive = frame_response(status, header_block, body)
        self.closing = frame_response(status, header_block, body, True)
        if head and body:
            self.keep_alive = self.keep_alive[: -len(body)]
            self.closing = self.closing[: -len(body)]

    def head_only(self):
        """The same answer to a HEAD request: its head alone, Content-Length included."""
        head = Prebuilt.__new__(Prebuilt)
        head.status = self.status
        head.keep_alive = self.keep_alive[: self.keep_alive.index(b"\r\n\r\n") + 4]
        head.closing = self.closing[: self.closing.index(b"\r\n\r\n") + 4]
        return head

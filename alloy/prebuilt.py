"""Answers built once at start: the gateway's fixed endpoints cost one write, no framing."""

from alloy.core import frame_response
from alloy.headers import JSON_HEADER


class Prebuilt:
    """A complete response in its two framings: keep the connection, or close it. For a HEAD
    request the same head (Content-Length included) without the body (RFC 9110 section 9.3.2).
    A ``/v1/`` answer carries the request's ``x-request-id`` line (``id_line``), which the access
    log reads back with the size of its body."""

    __slots__ = ("status", "keep_alive", "closing", "id_line", "body_bytes")

    def __init__(self, status, body, header_block=JSON_HEADER, head=False, id_line=None):
        self.status = status  # for the metrics and the access log of a /v1/ answer (the model listing)
        self.id_line = id_line
        self.body_bytes = 0 if head else len(body)
        if id_line is not None:
            header_block += id_line
        self.keep_alive = frame_response(status, header_block, body)
        self.closing = frame_response(status, header_block, body, True)
        if head and body:
            self.keep_alive = self.keep_alive[: -len(body)]
            self.closing = self.closing[: -len(body)]

    def head_only(self):
        """The same answer to a HEAD request: its head alone, Content-Length included."""
        head = self._copy(self.id_line, 0)
        head.keep_alive = self.keep_alive[: self.keep_alive.index(b"\r\n\r\n") + 4]
        head.closing = self.closing[: self.closing.index(b"\r\n\r\n") + 4]
        return head

    def with_id(self, id_line):
        """The same answer for one request, its ``x-request-id`` line added to the head (a listing
        is built once and sent to many requests, each with its own id)."""
        made = self._copy(id_line, self.body_bytes)
        made.keep_alive = _with_line(self.keep_alive, id_line)
        made.closing = _with_line(self.closing, id_line)
        return made

    def _copy(self, id_line, body_bytes):
        made = Prebuilt.__new__(Prebuilt)
        made.status = self.status
        made.id_line = id_line
        made.body_bytes = body_bytes
        return made


def _with_line(data, line):
    end = data.index(b"\r\n\r\n") + 2
    return data[:end] + line + data[end:]

"""HTTP/1.0 keep-alive: an answer the connection outlives says so, in ``Connection: keep-alive``.

An HTTP/1.0 client keeps its connection only when it asked with ``Connection: keep-alive`` and the
answer carries the same option (RFC 9112 section 9.3 and its appendix C.2.2: the 1.0 mechanism is
not implied by the version). Without it, a 1.0 client such as ApacheBench (``ab -k``) reads the
answer until the connection closes, and waits for the keep-alive timeout each time.

Every answer Alloy writes is framed by the core for HTTP/1.1 clients, which need no such header.
Rather than teach each of the answer's writers (prebuilt answers, relays, errors, the cache, the
client APIs) about a client version that is rarely seen, a connection that meets an HTTP/1.0
keep-alive request writes through ``KeepAliveAnnouncer``: the first write of each such answer gets
the line after its status line, unless the answer closes the connection (``connection: close``,
which the core writes lower-case). HTTP/1.1 clients never meet it.
"""

KEEP_ALIVE_LINE = b"connection: keep-alive\r\n"
CLOSE_LINE = b"\r\nconnection: close\r\n"


class KeepAliveAnnouncer:
    """A client transport that adds ``KEEP_ALIVE_LINE`` to the head of the next answer when
    ``announce`` is set (by the client connection, for each HTTP/1.0 keep-alive request)."""

    __slots__ = ("transport", "announce")

    def __init__(self, transport):
        self.transport = transport
        self.announce = False

    def write(self, data):
        if self.announce:
            data = self._announced(bytes(data))
        self.transport.write(data)

    def writelines(self, pieces):
        if self.announce:
            pieces = list(pieces)
            if pieces:
                pieces[0] = self._announced(bytes(pieces[0]))
        self.transport.writelines(pieces)

    def _announced(self, data):
        """``data``, the start of an answer, with the keep-alive line after its status line."""
        self.announce = False
        head_end = data.find(b"\r\n\r\n")
        line_end = data.find(b"\r\n")
        if line_end < 0 or CLOSE_LINE in data[: head_end + 2 if head_end >= 0 else len(data)]:
            return data  # not a head, or one that closes the connection
        return data[: line_end + 2] + KEEP_ALIVE_LINE + data[line_end + 2 :]

    def __getattr__(self, name):  # everything else is the real transport's
        return getattr(self.transport, name)

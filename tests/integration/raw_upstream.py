"""A raw upstream for security tests: records the exact bytes of every connection it accepts.

``RawUpstream`` listens on 127.0.0.1 (port 0), one thread per connection. h11 (server role) is the
oracle that delimits requests: each request it reads whole is logged as a ``Received`` with the
exact bytes it was made of, and answered with one fixed, valid chat completion (``HTTP/1.1 200 OK``,
``content-type: application/json``, ``content-length``, keep-alive), so a keep-alive peer may send
the next request on the same connection. Bytes h11 refuses are logged as a ``Received`` carrying
the error, and the connection is closed: whatever follows such bytes has no trustworthy framing.

Unlike ``alloy mock-upstream`` (which parses requests into JSON for its log), nothing here is
interpreted beyond h11's framing: what the log holds is what was on the wire.
"""

import select
import socket
import threading
import time
from dataclasses import dataclass

import h11

REPLY_BODY = (
    b'{"id":"chatcmpl-raw","object":"chat.completion","created":0,"model":"raw-upstream",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}'
)
REPLY_HEADERS = [("content-type", "application/json"), ("content-length", str(len(REPLY_BODY)))]
MAX_EVENT = 1 << 20  # h11's default (16 KiB) would refuse a long but well-formed request line


@dataclass
class Received:
    """One request as the upstream received it (or the bytes h11 refused, with ``error`` set)."""

    connection: int
    raw: bytes  # exactly the bytes this request was made of (head and body), or the refused bytes
    request: h11.Request | None = None
    body: bytes = b""
    error: str | None = None  # h11's complaint, when the bytes were not a well-formed request

    def headers(self, name):
        """Every value of header ``name`` (bytes, lower-case), in order."""
        return [value for key, value in self.request.headers if key == name]


class _Link:
    """One accepted connection: its socket, h11 state and every byte it received."""

    def __init__(self, number, sock):
        self.number = number
        self.sock = sock
        self.raw = bytearray()
        self.start = 0  # where the request being read begins in ``raw``
        self.waiting = False  # blocked in recv() with nothing left to parse
        self.closed = False

    def pending(self):
        """Bytes received but not (yet) part of a complete request."""
        return bytes(self.raw[self.start :])


class RawUpstream:
    def __init__(self, host="127.0.0.1"):
        self.listener = socket.create_server((host, 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.base = f"http://{host}:{self.port}"
        self.host_header = f"{host}:{self.port}".encode()
        self._lock = threading.Lock()
        self._log = []
        self._links = []
        self._stopped = False
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    # --- the test's side --------------------------------------------------------------------------

    def reset(self):
        """Forget the log; close connections holding bytes of an unfinished request, so they cannot
        be read as the start of the next test's request."""
        with self._lock:
            self._log.clear()
            dirty = [link for link in self._links if not link.closed and link.pending()]
        for link in dirty:
            self._close(link)

    def received(self):
        with self._lock:
            return list(self._log)

    def leftovers(self):
        """``{connection number: bytes}`` for open connections holding bytes that are not (yet) a
        complete request."""
        with self._lock:
            return {link.number: link.pending() for link in self._links if not link.closed and link.pending()}

    def settle(self, timeout=1.0):
        """Wait (at most ``timeout``) until every connection thread has parsed all it received:
        blocked in recv() with no unread bytes in its socket."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                links = [link for link in self._links if not link.closed]
            busy = [link for link in links if not link.waiting]
            if not busy:
                try:
                    readable, _, _ = select.select([link.sock for link in links], [], [], 0)
                except (OSError, ValueError):  # a socket closed meanwhile
                    readable = [None]
                if not readable:
                    return True
            time.sleep(0.002)
        return False

    def stop(self):
        self._stopped = True
        with self._lock:
            links = list(self._links)
        for link in links:
            self._close(link)
        for thread in self._threads:
            thread.join(5)
        self.listener.close()

    # --- the server's side ------------------------------------------------------------------------

    def _accept(self):
        while not self._stopped:
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(None)
            with self._lock:
                link = _Link(len(self._links), sock)
                self._links.append(link)
            thread = threading.Thread(target=self._serve, args=(link,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _close(self, link):
        with self._lock:
            if link.closed:
                return
            link.closed = True
        try:
            link.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        link.sock.close()

    def _record(self, entry):
        with self._lock:
            self._log.append(entry)

    def _serve(self, link):
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_EVENT)
        request, body = None, []
        try:
            while True:
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError as error:
                    self._record(Received(link.number, link.pending(), request, b"".join(body), f"h11: {error}"))
                    return
                if event is h11.NEED_DATA:
                    link.waiting = True
                    try:
                        data = link.sock.recv(65536)
                    except OSError:
                        data = b""
                    link.waiting = False
                    if not data:
                        if link.pending():
                            error = "connection closed in the middle of a request"
                            self._record(Received(link.number, link.pending(), request, b"".join(body), error))
                        return
                    link.raw += data
                    conn.receive_data(data)
                elif isinstance(event, h11.Request):
                    request, body = event, []
                elif isinstance(event, h11.Data):
                    body.append(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    end = len(link.raw) - len(conn.trailing_data[0])
                    entry = Received(link.number, bytes(link.raw[link.start : end]), request, b"".join(body))
                    link.start = end
                    self._record(entry)
                    request, body = None, []
                    link.sock.sendall(
                        conn.send(h11.Response(status_code=200, headers=REPLY_HEADERS))
                        + conn.send(h11.Data(data=REPLY_BODY))
                        + conn.send(h11.EndOfMessage())
                    )
                    if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                        return  # the peer asked to close (Connection: close, HTTP/1.0)
                    conn.start_next_cycle()
                elif isinstance(event, h11.ConnectionClosed):
                    return
        except OSError:
            return
        finally:
            self._close(link)

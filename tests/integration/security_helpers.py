"""Shared by the security tests: a raw client whose replies h11 must read as whole, well-formed
responses, a scripted upstream that answers exactly the bytes a test gives it (headers an upstream
may send but the mock never does, answers of any size), and the gateway's resident memory."""

import socket
import threading

import h11

from harness import read_until_closed

IO_TIMEOUT = 10.0


def send_and_read(port, data, timeout=IO_TIMEOUT):
    """Send ``data`` on a new connection and read until the gateway closes it (fails after ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_until_closed(sock, timeout)


def parse_responses(data, head_requests=0):
    """Every response in ``data`` as (status, {name: [values]}, body), read by h11 as a client
    would; raises if the bytes are not a sequence of whole, well-formed responses."""
    out = []
    while data:
        client = h11.Connection(h11.CLIENT)
        client.send(h11.Request(method="HEAD" if head_requests else "GET", target="/", headers=[("host", "x")]))
        head_requests = max(0, head_requests - 1)
        client.receive_data(data)
        response, body, headers = None, b"", {}
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA:
                raise AssertionError(f"an incomplete response: {data[:300]!r}")
            if isinstance(event, h11.Response):
                response = event
                for name, value in event.headers:
                    headers.setdefault(name.decode(), []).append(value.decode("latin-1"))
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
        out.append((response.status_code, headers, body))
        data = client.trailing_data[0]
    return out


def rss_bytes(pid):
    """The resident memory of process ``pid`` (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


class ScriptedUpstream:
    """A loopback HTTP/1.1 server that reads each request (head and content-length body) and
    answers ``reply(request_bytes)``: bytes to send, or an iterable of byte pieces (a huge body,
    written until the gateway hangs up); an OSError from it closes the connection unanswered.
    Every request it read is kept in ``received``, and (connection number, request number on that
    connection) in ``numbers``; with ``numbered``, ``reply`` is given both as well."""

    def __init__(self, reply, numbered=False):
        self.reply = reply
        self.numbered = numbered
        self.received = []
        self.numbers = []
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self):
        self.stopped = True
        self.listener.close()

    def _accept(self):
        while not self.stopped:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(sock, self.connections), daemon=True).start()

    def _serve(self, sock, connection):
        buffer = b""
        served = 0
        with sock:
            try:
                while True:
                    while b"\r\n\r\n" not in buffer:
                        piece = sock.recv(65536)
                        if not piece:
                            return
                        buffer += piece
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    while len(buffer) < length:
                        buffer += sock.recv(65536)
                    request, buffer = head + b"\r\n\r\n" + buffer[:length], buffer[length:]
                    self.received.append(request)
                    served += 1
                    self.numbers.append((connection, served))
                    answer = self.reply(request, connection, served) if self.numbered else self.reply(request)
                    for piece in [answer] if isinstance(answer, bytes) else answer:
                        sock.sendall(piece)
            except OSError:
                return


def json_reply(body, headers=b""):
    """A 200 answer with a JSON ``body`` and extra raw ``headers`` lines."""
    return lambda request: (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n%scontent-length: %d\r\n\r\n%s"
        % (headers, len(body), body)
    )

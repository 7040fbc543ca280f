"""The raw HTTP/1.1 client of the front door tests (test_front_door_framing.py,
test_front_door_limits.py and test_front_door_isolation.py): one TCP connection to the gateway whose
reads go through a buffer and never block for long, the requests those tests send, and the checks
they share. Every read has a deadline, so a gateway that stops answering fails the test instead of
hanging it.

A module of its own so that no test module loads another.
"""

import json
import socket
import time

IO_TIMEOUT = 10.0  # no single read may block longer than this
HEALTH = b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n"


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-cased name -> value (last one wins)
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.headers} {self.body[:300]!r}>"


class Client:
    """One TCP connection to the gateway; reads go through a buffer and never block for long."""

    def __init__(self, port, timeout=IO_TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self.buffer = b""

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        self.sock.close()

    def _fill(self):
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            raise EOFError(f"the gateway closed the connection; unread bytes: {self.buffer[:300]!r}")
        self.buffer += data

    def read_until(self, marker):
        while marker not in self.buffer:
            self._fill()
        end = self.buffer.index(marker) + len(marker)
        out, self.buffer = self.buffer[:end], self.buffer[end:]
        return out

    def read_exact(self, size):
        while len(self.buffer) < size:
            self._fill()
        out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out

    def read_head(self):
        lines = self.read_until(b"\r\n\r\n")[:-4].split(b"\r\n")
        version, status = lines[0].split(b" ", 2)[:2]
        assert version == b"HTTP/1.1", lines[0]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.decode().lower()] = value.strip().decode("latin-1")
        return int(status), headers

    def read_chunk(self):
        """One chunk of a chunked body; ``b""`` for the last chunk (the trailer section is consumed)."""
        size = int(self.read_until(b"\r\n").split(b";")[0], 16)
        if size == 0:
            while self.read_until(b"\r\n") != b"\r\n":
                pass
            return b""
        data = self.read_exact(size)
        assert self.read_exact(2) == b"\r\n", "chunk data not followed by CRLF"
        return data

    def response(self):
        status, headers = self.read_head()
        if status < 200 or status in (204, 304):
            body = b""
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b"".join(iter(self.read_chunk, b""))
        elif "content-length" in headers:
            body = self.read_exact(int(headers["content-length"]))
        else:
            body = self.read_to_eof()
        return Response(status, headers, body)

    def read_to_eof(self):
        try:
            while True:
                self._fill()
        except EOFError:
            pass
        out, self.buffer = self.buffer, b""
        return out

    def closed_within(self, seconds):
        """True if the server closes the connection within ``seconds`` (bytes before it are buffered)."""
        deadline = time.monotonic() + seconds
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                self.sock.settimeout(remaining)
                try:
                    data = self.sock.recv(65536)
                except ConnectionResetError:
                    return True
                except TimeoutError:
                    return False
                if not data:
                    return True
                self.buffer += data
            return False
        finally:
            self.sock.settimeout(self.timeout)


def chat_body(text, stream=False):
    return json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], "stream": stream}).encode()


def chat(text, stream=False, extra=b""):
    body = chat_body(text, stream)
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


def reply_text(response):
    assert response.status == 200, response
    return response.json()["choices"][0]["message"]["content"]


def assert_openai_error(response, status, code=None):
    assert response.status == status, response
    assert response.headers.get("content-type", "").startswith("application/json"), response
    error = response.json()["error"]
    assert error["message"] and error["type"] == "invalid_request_error", error
    if code is not None:
        assert error["code"] == code, error


def assert_healthy(gateway):
    assert gateway.popen.poll() is None, f"gateway exited ({gateway.popen.returncode}):\n{gateway.stderr}"
    client = Client(gateway.port)
    client.send(HEALTH)
    assert client.response().status == 200
    client.close()


def assert_no_traceback(gateway):
    assert "Traceback" not in gateway.stderr, gateway.stderr


def bodies(mock):
    return [request["body"] for request in mock.requests()]


"""An upstream scripted by the client: each POST is answered 200 with the body its ``x-answer``
header carries (base64), with the status ``x-answer-status`` names (200 unless told, any three
digits), of the content type ``x-answer-type`` names (JSON unless told), with the
extra header ``x-answer-header`` names (``name: value``); with ``x-answer-fill: N``, each ``FILL`` of the body replaced by N letters; with
``x-answer-crumbs``, chunked one byte a chunk; with ``x-answer-cut``, chunked and cut
short: the body in one chunk, then the connection closes without the last chunk; with
``x-answer-close``, neither a length nor chunks: the body ends when the connection closes (HTTP/1.0
servers and some proxies); with ``x-answer-reset`` too, the connection is reset instead of closed
(a crash, a proxy giving up), which ends no body. Client headers such as these reach the upstream through Alloy, so a test can make the provider answer anything, request by request.
``requests`` counts what reached it."""

import base64
import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedUpstream:
    def __init__(self):
        self.requests = []  # the headers of each request that reached it
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers["content-length"]))
                upstream.requests.append({name.lower(): value for name, value in self.headers.items()})
                body = base64.b64decode(self.headers["x-answer"])
                if self.headers.get("x-answer-fill"):  # a long answer, which no header could carry
                    body = body.replace(b"FILL", b"a" * int(self.headers["x-answer-fill"]))
                self.send_response(int(self.headers.get("x-answer-status", "200")))
                self.send_header("content-type", self.headers.get("x-answer-type", "application/json"))
                extra = self.headers.get("x-answer-header")
                if extra:
                    name, _, value = extra.partition(":")
                    self.send_header(name.strip(), value.strip())
                if self.headers.get("x-answer-crumbs"):
                    # chunked, one byte a chunk, all written at once: a read of the gateway's holds
                    # thousands of chunks (a server that flushes each token, or a hostile one)
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    self.wfile.write(b"".join(b"1\r\n%c\r\n" % byte for byte in body) + b"0\r\n\r\n")
                    return
                if self.headers.get("x-answer-cut"):
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(body), body))  # and never the last chunk
                    self.close_connection = True
                    return
                if self.headers.get("x-answer-close"):
                    self.send_header("connection", "close")
                    self.end_headers()
                    self.wfile.write(body)  # its end is the connection's
                    self.close_connection = True
                    if self.headers.get("x-answer-reset"):
                        self.wfile.flush()
                        time.sleep(0.1)  # read by the gateway before the reset could discard it
                        # Closed here, with no lingering: a reset, before the server's own
                        # shutdown(SHUT_WR) could send an orderly end first.
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        self.wfile.close()
                        self.rfile.close()
                        self.connection.close()
                    return
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def answer(body, content_type="application/json", header=None, cut=False, until_close=False, reset=False, status=None, crumbs=False, fill=None):
    """The request headers that script the answer: ``body`` (bytes, or JSON to dump), its content
    type, one extra answer header (``"name: value"``), whether it is cut short, whether it ends
    at the connection's close, and whether that close is a reset."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    scripted = {"x-answer": base64.b64encode(data).decode(), "x-answer-type": content_type}
    if header is not None:
        scripted["x-answer-header"] = header
    if status is not None:
        scripted["x-answer-status"] = str(status)
    if crumbs:
        scripted["x-answer-crumbs"] = "1"
    if fill is not None:
        scripted["x-answer-fill"] = str(fill)
    if cut:
        scripted["x-answer-cut"] = "1"
    if until_close or reset:
        scripted["x-answer-close"] = "1"
    if reset:
        scripted["x-answer-reset"] = "1"
    return scripted

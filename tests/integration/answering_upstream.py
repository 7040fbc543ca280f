"""An upstream on a loopback port that answers whatever a test writes: ``answering(answer)`` reads
each request (head and Content-Length body, keep-alive) and calls ``answer(conn)`` to write its
answer on the raw socket, so a test can send any bytes, at any pace, and close when it likes."""

import socket
import threading


def answering(answer):
    """An upstream on a loopback port that reads each request (keep-alive) and has ``answer(conn)``
    write its answer: its port and stopper."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve(conn):
        with conn:
            received = b""
            try:
                while True:  # one request after another, as a keep-alive upstream
                    while b"\r\n\r\n" not in received:
                        more = conn.recv(65536)
                        if not more:
                            return
                        received += more
                    head, _, received = received.partition(b"\r\n\r\n")
                    length = int(next(line for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")).split(b":")[1])
                    while len(received) < length:
                        received += conn.recv(65536)
                    received = received[length:]
                    answer(conn)
            except OSError:
                pass

    def accept():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return server.getsockname()[1], server.close

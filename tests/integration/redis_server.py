"""A real ``redis-server`` for the tests that share limits, budgets or the cache across gateways.

``RedisServer.start(directory)`` runs one on a free loopback port (no persistence, no config file,
its own directory), waits until it answers PING, and ``stop()`` ends it by PID. ``kill()`` and
``restart()`` (on the same port) let a test take Redis away mid-load and bring it back empty;
``pause()`` and ``resume()`` make it silent for a while, its data kept (a network outage). .ci/run
installs redis-server; a machine without it fails these tests, loudly, rather than skipping them.
"""

import os
import shutil
import signal
import socket
import subprocess
import time

START_TIMEOUT = 10.0


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    def __init__(self, directory, port):
        self.directory = str(directory)
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.popen = None

    @classmethod
    def start(cls, directory, port=None):
        server = cls(directory, port or free_port())
        server._launch()
        return server

    def _launch(self):
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server; .ci/run does it)")
        self.popen = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.directory, "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.ping():
                return
            if self.popen.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self):
        """Take Redis away at once (SIGKILL): clients see connections reset and refused."""
        if self.popen is not None and self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)

    def restart(self):
        """Bring it back on the same port (empty: nothing was persisted)."""
        self.kill()
        self._launch()

    def pause(self):
        """Silence it (SIGSTOP): connections stay open and nothing answers, as in a network outage."""
        os.kill(self.popen.pid, signal.SIGSTOP)

    def resume(self):
        """It answers again (SIGCONT), with the data it held."""
        os.kill(self.popen.pid, signal.SIGCONT)

    def stop(self):
        if self.popen is not None and self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGCONT)  # a paused one could not act on SIGTERM
            os.kill(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)

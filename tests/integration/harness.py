"""Harness for integration tests: real ``alloy`` processes on loopback, started and stopped by PID,
and the small helpers the test modules share (polling, reading a socket to its close, SSE bodies).

``Mock`` runs ``alloy mock-upstream``, ``Process`` the gateway and ``Emulator`` a provider emulator
from tests/emulators; each listens on port 0 and reports the port it got on stderr ("listening on
http://HOST:PORT"), so parallel runs never collide. The gateway runs the core implementation
selected by ``ALLOY_PURE`` in the test environment, so ``ALLOY_PURE=1 pytest`` runs the whole suite
on the pure twin.

This is a plain module, not conftest.py: tests/conftest.py exists too, so ``from conftest import
...`` would name whichever conftest pytest imported last. tests/integration has no __init__.py, so
pytest's default "prepend" import mode puts this folder on sys.path and ``from harness import ...``
works from conftest.py (which holds the fixtures) and from the test modules, some of which start
their processes once per module with the classes below.
"""

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request

import pytest

from alloy import config as alloy_config
from alloy.server import Gateway

LISTENING = re.compile(r"listening on http://([^\s:]+):(\d+)")
START_TIMEOUT = 20.0
RUN_DIR = os.path.abspath(os.sep)
EMULATORS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "emulators")


class Process:
    """A started ``alloy`` process, its address and everything it wrote to stderr."""

    def __init__(self, args, env, command=(sys.executable, "-m", "alloy")):
        self.popen = subprocess.Popen(
            [*command, *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=RUN_DIR,  # never the source tree: "-m alloy" must import the installed package
        )
        self.pid = self.popen.pid
        self.lines = []
        self._ready = threading.Event()
        self.port = None
        threading.Thread(target=self._read_stderr, daemon=True).start()
        if not self._ready.wait(START_TIMEOUT) or self.port is None:
            self.stop()
            raise RuntimeError(f"alloy {' '.join(args)} did not start:\n" + "".join(self.lines))
        self.base = f"http://127.0.0.1:{self.port}"

    def _read_stderr(self):
        for line in self.popen.stderr:
            self.lines.append(line)
            match = LISTENING.search(line)
            if match and self.port is None:
                self.port = int(match.group(2))
                self._ready.set()
        self._ready.set()

    @property
    def stderr(self):
        return "".join(self.lines)

    def signal(self, signum):
        if self.popen.poll() is None:
            os.kill(self.pid, signum)

    def wait(self, timeout):
        return self.popen.wait(timeout)

    def stop(self):
        if self.popen.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(5)


def gateway_env(extra=None):
    """The test environment minus provider keys and base URLs and the master key, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.endswith("_BASE_URL")}
    env.pop("ALLOY_MASTER_KEY", None)
    env.update(extra or {})
    return env


class Mock(Process):
    def requests(self):
        """The mock's request log: what the upstream really received."""
        with urllib.request.urlopen(self.base + "/_mock/requests", timeout=5) as response:
            return json.load(response)["requests"]

    def clear(self):
        request = urllib.request.Request(self.base + "/_mock/requests", method="DELETE")
        urllib.request.urlopen(request, timeout=5).close()


class Emulator(Process):
    """A strict provider emulator from tests/emulators (its request log at /_emulator/requests)."""

    def requests(self):
        with urllib.request.urlopen(self.base + "/_emulator/requests", timeout=5) as response:
            log = json.load(response)
        return log["requests"] if isinstance(log, dict) else log

    def clear(self):
        request = urllib.request.Request(self.base + "/_emulator/requests", method="DELETE")
        urllib.request.urlopen(request, timeout=5).close()


def start_mock_process(*args, env=None):
    """``alloy mock-upstream *args`` on a free loopback port."""
    return Mock(["mock-upstream", "--host", "127.0.0.1", "--port", "0", *args], gateway_env(env))


def start_emulator_process(name, *args):
    """The emulator tests/emulators/NAME.py with ``args``, on a free port."""
    script = os.path.join(EMULATORS, f"{name}.py")
    return Emulator(["--port", "0", *args], gateway_env(), command=(sys.executable, script))


def start_gateway_process(path, config=None, env=None, args=()):
    """A gateway on a free loopback port with ``args``; ``config`` (TOML, dedented) written to
    ``path`` and passed with ``--config`` unless it is None."""
    argv = ["--host", "127.0.0.1", "--port", "0", *args]
    if config is not None:
        path.write_text(textwrap.dedent(config))
        argv += ["--config", str(path)]
    return Process(argv, gateway_env(env))


def stopped_after(start, started=None):
    """The body of a ``start_*`` fixture: yields ``start`` wrapped to keep each process it returns
    (in ``started``), and stops them all after the test."""
    started = [] if started is None else started

    def tracked(*args, **kwargs):
        process = start(*args, **kwargs)
        started.append(process)
        return process

    yield tracked
    for process in started:
        process.stop()


def start_proxy(start_gateway, mock, server="", client="core"):
    """Through the ``start_gateway`` fixture: a gateway whose one provider is ``mock`` (on upstream
    backend ``client``), with ``server`` lines under ``[server]``."""
    config = (
        f'[server]\n{server}\n\n[providers.openai]\nbase_url = "{mock.base}/v1"\napi_key = "env:K"\n'
        f'client = "{client}"\n'
    )
    return start_gateway(config=config, env={"K": "sk-provider"})


def assert_no_crash_logged(process):
    """At the end of a process's life: nothing it wrote to stderr is a traceback."""
    assert "Traceback" not in process.stderr, process.stderr


def wait_until(predicate, timeout=10.0, interval=0.05):
    """Polls ``predicate`` until it is true (True) or ``timeout`` seconds have passed (False).

    A predicate that raises (a row not written yet, a file not there yet) counts as not yet true;
    if it still raises at the deadline, that last error is raised, so a broken predicate fails the
    test with its own traceback instead of a bare False."""
    deadline = time.monotonic() + timeout
    error = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
            error = None
        except Exception as raised:  # noqa: BLE001 - re-raised below if it is the last word
            error = raised
        time.sleep(interval)
    if error is not None:
        raise error
    return False


def exit_code(process, seconds, name="the gateway"):
    """The exit code of ``process`` within ``seconds``; fails the test if it is still running."""
    try:
        return process.wait(seconds)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name} was still running {seconds} s later:\n{process.stderr}")


def in_parallel(functions):
    """Run the callables at once (each in a thread); their results in order."""
    results = [None] * len(functions)

    def run(i):
        try:
            results[i] = functions[i]()
        except BaseException as error:  # surfaced to the test below
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(functions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


# --- raw sockets and bodies -------------------------------------------------------------------------


def read_until_closed(sock, seconds):
    """Everything the peer sends until it closes; fails if it does not close within ``seconds``."""
    deadline = time.monotonic() + seconds
    data = b""
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            piece = sock.recv(65536)
        except ConnectionResetError:
            return data
        except TimeoutError:
            break
        if not piece:
            return data
        data += piece
    pytest.fail(f"the connection was still open after {seconds} s; received {data[-300:]!r}")


def dechunk(body):
    """The payload of a chunked HTTP/1.1 body (ending with the zero-size chunk)."""
    out, pos = b"", 0
    while True:
        end = body.index(b"\r\n", pos)
        size = int(body[pos:end], 16)
        if size == 0:
            return out
        out += body[end + 2 : end + 2 + size]
        pos = end + 4 + size


def stream_text(body):
    """The content deltas of an SSE body joined, and the data fields in order."""
    data = [line[5:].strip() for line in body.decode().split("\n") if line.startswith("data:")]
    text = "".join(
        (json.loads(d)["choices"][0].get("delta") or {}).get("content") or "" for d in data if d != "[DONE]"
    )
    return text, data


# --- the gateway in this process ------------------------------------------------------------------


@contextlib.contextmanager
def in_process_gateway(config_path):
    """The real ``Gateway`` for ``config_path`` serving on a loopback port from an event loop in a
    thread of this process, so a test can reach into it (its pipeline's listeners, the collector):
    yields (port, gateway)."""
    loop = asyncio.new_event_loop()
    gateway = Gateway(alloy_config.load(str(config_path), env={}), loop)
    server = loop.run_until_complete(loop.create_server(gateway.protocol, "127.0.0.1", 0))
    gateway.start_sweeping()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server.sockets[0].getsockname()[1], gateway
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def post_and_read(sock, path, body, extra=b""):
    """One POST on a keep-alive socket; (head, body bytes as framed) once the whole answer came."""
    sock.sendall(
        b"POST %s HTTP/1.1\r\nHost: g\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s"
        % (path, extra, len(body), body)
    )
    data = b""
    while True:
        data += sock.recv(65536)
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            continue
        if b"transfer-encoding: chunked" in head.lower():
            if rest.endswith(b"0\r\n\r\n"):
                return head, rest
        elif len(rest) >= int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]):
            return head, rest

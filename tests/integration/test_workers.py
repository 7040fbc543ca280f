"""``alloy --workers N``: a supervisor and N gateway processes sharing one port (SO_REUSEPORT).

The workers are found as the supervisor's children in /proc, and which worker holds which client
connection from /proc/net/tcp and each worker's socket descriptors: no header names the worker.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from harness import dechunk, exit_code, read_until_closed, stream_text, wait_until

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="--workers is Linux-only")

IO_TIMEOUT = 10.0
CONNECTIONS = 32  # with two workers, the chance that all of them land on one is 2**-31


# --- helpers --------------------------------------------------------------------------------------


def start(start_gateway, mock, workers=2, server=""):
    config = f'[server]\n{server}\n\n[providers.openai]\nbase_url = "{mock.base}/v1"\napi_key = "env:K"\n'
    return start_gateway(config=config, env={"K": "sk-provider"}, args=["--workers", str(workers)])


def workers_of(pid):
    """The live (not zombie) child processes of ``pid``."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:  # exited meanwhile
            continue
        state, ppid = stat.rpartition(")")[2].split()[:2]  # the name may hold spaces and parentheses
        if int(ppid) == pid and state != "Z":
            children.append(int(entry))
    return sorted(children)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def connections_per_worker(port, pids):
    """How many established connections to ``port`` each worker holds."""
    inodes = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local_port = int(fields[1].rpartition(":")[2], 16)
            if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
                inodes.add(fields[9])
    counts = {}
    for pid in pids:
        count = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                count += 1
        counts[pid] = count
    return counts


def chat_request(text, stream=False):
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], "stream": stream})
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body.encode()
    )


def read_response(sock):
    """One Content-Length response off a keep-alive connection: (head, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        assert piece, f"closed before the head: {data!r}"
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    length = int(lengths[0])
    while len(body) < length:
        piece = sock.recv(65536)
        assert piece, "closed mid-body"
        body += piece
    return head, body


def open_connections(port, count=CONNECTIONS):
    """``count`` keep-alive connections that each got one chat answer and stay open."""
    sockets = []
    for i in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        sock.sendall(chat_request(f"connection {i}"))
        head, body = read_response(sock)
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert json.loads(body)["choices"][0]["message"]["content"] == f"echo: connection {i}"
        sockets.append(sock)
    return sockets


def sdk_chats(gateway, count=40):
    """``count`` chat completions through the openai SDK, 8 at a time; all must succeed."""
    client = openai.OpenAI(base_url=gateway.base + "/v1", api_key="client-key", max_retries=0, timeout=30.0)

    def one(i):
        messages = [{"role": "user", "content": f"hello {i}"}]
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        return reply.choices[0].message.content

    try:
        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(one, range(count))) == [f"echo: hello {i}" for i in range(count)]
    finally:
        client.close()


def assert_both_serve(gateway, pids):
    sockets = open_connections(gateway.port)
    try:
        counts = connections_per_worker(gateway.port, pids)
    finally:
        for sock in sockets:
            sock.close()
    assert sum(counts.values()) == CONNECTIONS, counts
    assert all(counts.values()), f"a worker accepted no connection: {counts}"


@pytest.fixture
def slow_mock(start_mock):
    """A mock whose streams send 20 words a second."""
    return start_mock("--api-key", "sk-provider", "--tokens-per-second", "20")


# --- tests ----------------------------------------------------------------------------------------


def test_two_workers_share_one_port_and_both_serve(start_gateway, mock):
    gateway = start(start_gateway, mock)
    assert gateway.stderr.count("listening on") == 1, gateway.stderr
    assert f"listening on http://127.0.0.1:{gateway.port} (workers: 2, core: " in gateway.stderr
    pids = workers_of(gateway.pid)
    assert len(pids) == 2, pids
    sdk_chats(gateway)
    assert_both_serve(gateway, pids)
    assert workers_of(gateway.pid) == pids


def test_one_worker_is_the_single_process_gateway(start_gateway, mock):
    gateway = start(start_gateway, mock, workers=1)
    assert "workers:" not in gateway.stderr
    assert workers_of(gateway.pid) == []
    sdk_chats(gateway, count=4)


def test_a_killed_worker_is_replaced_and_requests_keep_succeeding(start_gateway, mock):
    gateway = start(start_gateway, mock)
    victim, survivor = workers_of(gateway.pid)
    os.kill(victim, signal.SIGKILL)
    # Once it is dead its listening socket has left the group (connections that were waiting in
    # its accept queue at that instant are reset: SO_REUSEPORT does not hand them over).
    assert wait_until(lambda: not alive(victim), 5)
    sdk_chats(gateway, count=20)  # the survivor serves alone meanwhile
    assert wait_until(lambda: len(workers_of(gateway.pid)) == 2, 10), gateway.stderr
    assert f"worker {victim} was killed by SIGKILL; starting a replacement" in gateway.stderr
    pids = workers_of(gateway.pid)
    assert survivor in pids and victim not in pids, pids
    replacement = next(pid for pid in pids if pid != survivor)
    assert wait_until(lambda: f"worker {replacement} ready" in gateway.stderr, 10), gateway.stderr
    sdk_chats(gateway)
    assert_both_serve(gateway, pids)  # the replacement listens on the same port


def test_sigterm_lets_a_stream_in_flight_finish_then_exits_0_with_the_workers(start_gateway, slow_mock):
    gateway = start(start_gateway, slow_mock)
    pids = workers_of(gateway.pid)
    prompt = " ".join(f"word{i}" for i in range(30))  # ~1.5 s of stream
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=IO_TIMEOUT)
    sock.sendall(chat_request(prompt, stream=True))
    received = sock.recv(65536)
    assert received.startswith(b"HTTP/1.1 200 "), received
    gateway.signal(signal.SIGTERM)
    assert wait_until(lambda: "draining" in gateway.stderr, 5), gateway.stderr
    time.sleep(0.3)
    assert gateway.popen.poll() is None, "the supervisor exited with a stream in flight"
    received += read_until_closed(sock, 15)
    head, _, body = received.partition(b"\r\n\r\n")
    assert body.endswith(b"0\r\n\r\n"), f"the stream was cut: {body[-200:]!r}"
    text, data = stream_text(dechunk(body))
    assert text == "echo: " + prompt
    assert data[-1] == "[DONE]"
    assert exit_code(gateway, 10, "the supervisor") == 0, gateway.stderr
    assert not any(alive(pid) for pid in pids), "a worker outlived its supervisor"


def test_a_second_signal_kills_the_workers_at_once(start_gateway, slow_mock):
    gateway = start(start_gateway, slow_mock)
    pids = workers_of(gateway.pid)
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=IO_TIMEOUT)
    sock.sendall(chat_request(" ".join(f"word{i}" for i in range(400)), stream=True))  # ~20 s of stream
    assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    gateway.signal(signal.SIGINT)
    assert wait_until(lambda: "draining" in gateway.stderr, 5), gateway.stderr
    time.sleep(0.3)
    assert gateway.popen.poll() is None, "the supervisor did not wait for the stream in flight"
    started = time.monotonic()
    gateway.signal(signal.SIGINT)
    assert exit_code(gateway, 5, "the supervisor") == 0, gateway.stderr
    assert time.monotonic() - started < 3, "the second signal did not end the drain at once"
    assert not any(alive(pid) for pid in pids), "a worker outlived its supervisor"
    sock.close()


def test_workers_die_with_a_killed_supervisor(start_gateway, mock):
    gateway = start(start_gateway, mock)
    pids = workers_of(gateway.pid)
    assert len(pids) == 2
    gateway.signal(signal.SIGKILL)
    gateway.wait(5)
    assert wait_until(lambda: not any(alive(pid) for pid in pids), 10), "orphaned workers kept running"
    # The shared directories (metrics, governance counters) it could not remove itself are removed
    # by the next supervisor's start, once older than a start takes (aged here rather than waited
    # for); a running supervisor's, aged the same, are not: their lock is held.
    left = shared_directories(gateway.pid)
    assert len(left) == 2, left
    running = start(start_gateway, mock)
    for name in left + shared_directories(running.pid):
        path = os.path.join(SHARED_PARENT, name)
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    start(start_gateway, mock)
    assert shared_directories(gateway.pid) == []
    assert len(shared_directories(running.pid)) == 2
    assert running_serves(running)


SHARED_PARENT = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


def shared_directories(pid):
    return [n for n in os.listdir(SHARED_PARENT) if n.startswith((f"alloy-metrics-{pid}-", f"alloy-governance-{pid}-"))]


def running_serves(gateway):
    client = openai.OpenAI(base_url=gateway.base + "/v1", api_key="unused", max_retries=0)
    return client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]).choices


@pytest.mark.parametrize("value", ["0", "-1", "65", "two"])
def test_a_bad_workers_value_exits_2_with_a_message(value):
    result = subprocess.run(
        [sys.executable, "-m", "alloy", "--port", "0", "--workers", value],
        cwd=os.path.abspath(os.sep),  # as the harness runs it: never from the source tree
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 2, result.stderr
    assert "--workers" in result.stderr, result.stderr
    assert "listening on" not in result.stderr


def test_a_second_gateway_on_a_port_the_first_one_serves_is_refused(start_gateway, mock):
    # SO_REUSEPORT lets any process of the same user join a port group: a second `alloy --workers`
    # once joined the first one's and took a share of its connections, with another configuration.
    first = start(start_gateway, mock)
    result = subprocess.run(
        [sys.executable, "-m", "alloy", "--host", "127.0.0.1", "--port", str(first.port), "--workers", "2"],
        cwd=os.path.abspath(os.sep),
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 1, result.stderr
    assert str(first.port) in result.stderr and "in use" in result.stderr, result.stderr
    assert "listening on" not in result.stderr
    assert first.popen.poll() is None  # the first one serves on

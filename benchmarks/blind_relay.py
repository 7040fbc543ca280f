#!/usr/bin/env python3
"""A blind byte relay on uvloop: the floor under any Python gateway, measured beside Alloy.

    python benchmarks/blind_relay.py --port 8081 --upstream 127.0.0.1:8080

For each client connection it opens one connection to the upstream, and copies the bytes both
ways as they arrive: no HTTP parsing, no headers, no routing, no pooling. What it costs is what a
Python process on uvloop cannot avoid when it stands between a client and an upstream: two
wake-ups per direction (a read on one socket, a write on the other), the event loop's dispatch, and
the ``data_received`` and ``transport.write`` calls in between. ``latency_bench --floor`` runs it
next to nginx and Alloy on the same upstream, so a table shows Alloy's own cost over this floor
(Alloy / relay) as well as over nginx's.

Back-pressure as a real proxy needs it: when one side's write buffer passes uvloop's high-water
mark, ``pause_writing`` pauses reading on the other side, and ``resume_writing`` resumes it, so a
slow reader never makes the relay buffer without bound. Bytes a client sends before its upstream
connection is up are kept and written once it is. When either side closes, the other is closed
after its buffered bytes are written. One process, one event loop (one worker, like ``alloy`` by
default). It prints ``listening on http://HOST:PORT`` when ready and stops on SIGTERM or SIGINT.

It is a benchmark tool, not a proxy to deploy: it trusts both sides and forwards anything.
"""

import argparse
import asyncio
import signal
import socket
import sys

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is one of Alloy's dependencies
    uvloop = None


class Side(asyncio.Protocol):
    """One end of a relayed connection; ``peer`` is the other end."""

    __slots__ = ("transport", "peer", "pending", "closed")

    def __init__(self, peer=None):
        self.transport = None
        self.peer = peer
        self.pending = []  # bytes received before the peer's transport exists
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data):
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)
        else:
            self.pending.append(data)

    def eof_received(self):
        return False  # close this side; connection_lost closes the other

    def connection_lost(self, exc):
        self.closed = True
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.closed:
            peer.transport.close()  # after what is buffered for it is written

    # back-pressure: our write buffer is full, so stop reading what fills it
    def pause_writing(self):
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self):
        if self.peer is not None and self.peer.transport is not None and not self.peer.closed:
            self.peer.transport.resume_reading()


class ClientSide(Side):
    """The accepted connection: opens its own upstream connection at once."""

    __slots__ = ()
    upstream = ("127.0.0.1", 80)

    def connection_made(self, transport):
        super().connection_made(transport)
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self):
        loop = asyncio.get_running_loop()
        host, port = self.upstream
        try:
            _, upstream = await loop.create_connection(lambda: Side(peer=self), host, port)
        except OSError:
            self.transport.close()
            return
        self.peer = upstream
        if self.closed:  # the client left while we connected
            upstream.transport.close()
            return
        for data in self.pending:
            upstream.transport.write(data)
        self.pending = []


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True, metavar="HOST:PORT")
    p.add_argument("--backlog", type=int, default=4096)
    args = p.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    if not host or not port.isdigit():
        p.error("--upstream must be HOST:PORT")
    args.upstream = (host, int(port))
    return args


async def serve(args):
    ClientSide.upstream = args.upstream
    loop = asyncio.get_running_loop()
    server = await loop.create_server(ClientSide, args.host, args.port, backlog=args.backlog, reuse_address=True)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    print(f"blind relay ({'uvloop' if uvloop else 'asyncio'}) listening on http://{args.host}:{args.port} "
          f"-> {args.upstream[0]}:{args.upstream[1]}", flush=True)
    await stop
    server.close()


def main(argv=None):
    args = parse_args(argv)
    (uvloop.run if uvloop is not None else asyncio.run)(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

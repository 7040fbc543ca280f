"""A transport for in-process tests of a real ``Gateway``: it records each write, and closing it
ends its protocol's connection as asyncio would (when a protocol is set). ``wired`` sets such a
gateway up with one client connection and one idle upstream connection."""

import asyncio


class FakeTransport:
    """Records what the connection wrote; closing it ends the connection as asyncio would."""

    def __init__(self):
        self.protocol = None
        self.writes = []
        self.closed = False
        self.aborted = False

    def write(self, data):
        self.writes.append(bytes(data))

    def writelines(self, pieces):
        self.writes.append(b"".join(bytes(piece) for piece in pieces))

    def close(self):
        if not self.closed:
            self.closed = True
            if self.protocol is not None:
                self.protocol.connection_lost(None)

    def abort(self):
        self.aborted = True
        self.close()

    def is_closing(self):
        return self.closed

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass

    def get_extra_info(self, name, default=None):
        return default


def wired(config, provider, upstream_transport=None):
    """A real ``Gateway`` for ``config`` (loaded), with one client connection and one idle upstream
    connection to ``provider``'s pool, both on ``FakeTransport``s (the upstream's may be given):
    (client, upstream, the client's transport, the loop). A test feeds the client's bytes to
    ``client.data_received`` and the upstream's answer to ``upstream.data_received``; nothing else
    runs (no event loop, no socket)."""
    from alloy.server import Gateway
    from alloy.upstream.connection import UpstreamConnection

    loop = asyncio.new_event_loop()
    gateway = Gateway(config, loop)
    pool = gateway.upstreams[provider]
    upstream = UpstreamConnection(pool, loop)
    upstream.connection_made(upstream_transport if upstream_transport is not None else FakeTransport())
    pool._open += 1
    pool.release(upstream)
    client = gateway.protocol()
    transport = FakeTransport()
    transport.protocol = client
    client.connection_made(transport)
    return client, upstream, transport, loop

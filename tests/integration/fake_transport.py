"""A transport for in-process tests of a real ``Gateway``: it records each write, and closing it
ends its protocol's connection as asyncio would (when a protocol is set)."""


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

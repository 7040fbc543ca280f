"""``DELETE /admin/cache`` on a shared store runs in a thread while the connection waits
(``alloy.cache.response_cache.Clearing``): what its connection is told when the deletion ends, and
when the gateway stops first (its shutdown calls ``stop`` on every connection's current answer)."""

import asyncio
import threading

from alloy.cache.response_cache import Clearing
from alloy.errors import ServiceUnavailable


class Store:
    """A shared store whose deletion waits until the test lets it finish."""

    def __init__(self):
        self.go = threading.Event()
        self.done = threading.Event()

    def clear(self, namespace):
        self.go.wait(5)
        self.done.set()
        return 7


class Connection:
    def __init__(self):
        self.current = None
        self.written, self.errors, self.finished = [], [], []
        self.transport = self

    def write(self, data):
        self.written.append(data)

    def closes_for_drain(self):
        return False

    def send_error(self, error, close=False, request=None):
        self.errors.append((error, close))

    def answer_finished(self, keep_alive):
        self.finished.append(keep_alive)
        self.current = None


class Request:
    keep_alive = True


async def clear(stop_first):
    store, connection = Store(), Connection()
    clearing = Clearing(store, "global/x", Request(), connection)
    assert connection.current is clearing
    stopped = ServiceUnavailable("the gateway shut down before this answer was complete")
    if stop_first:
        clearing.stop(stopped)
    store.go.set()
    for _ in range(500):  # the thread's end, then its callback on the loop
        await asyncio.sleep(0.01)
        if store.done.is_set():
            break
    await asyncio.sleep(0.05)
    return connection, stopped


def test_the_answer_is_written_when_the_deletion_ends():
    connection, _ = asyncio.run(clear(stop_first=False))
    assert len(connection.written) == 1 and b'"deleted":7' in connection.written[0]
    assert connection.finished == [True] and connection.errors == []


def test_a_shutdown_first_answers_its_error_and_nothing_after():
    connection, stopped = asyncio.run(clear(stop_first=True))
    assert connection.errors == [(stopped, True)] and connection.current is None
    assert connection.written == [] and connection.finished == []

"""Requests in flight counted in Redis are leases (``[governance] inflight_lease``): a gateway
killed with calls in flight never releases them, yet the key's ``max_parallel`` frees itself within
the lease for the gateways that share the Redis; and a call that lasts longer than the lease keeps
its slot, because the gateway renews what it holds."""

import signal
import threading
import time

from governance_helpers import MASTER, chat, create_key, keyed_config, post
from harness import wait_until

SLOW = {"x-mock-fault": "slow-first-byte=15000"}  # the mock holds these calls in flight


def lease_config(upstream, db, redis_server, lease):
    extra = f"""
        redis_url = "{redis_server.url}"
        redis_timeout = 0.25
        inflight_lease = {lease}
        """
    return keyed_config(upstream, db, extra)  # ends with [governance]: the lines above land in it


def start(start_gateway, upstream, db, redis_server, lease):
    return start_gateway(config=lease_config(upstream, db, redis_server, lease), env={"ALLOY_MASTER_KEY": MASTER})


def in_background(function):
    thread = threading.Thread(target=function, daemon=True)
    thread.start()
    return thread


def quietly(call):
    """A request whose gateway may be killed under it: its outcome does not matter."""

    def run():
        try:
            call()
        except OSError:
            pass

    return run


def refusal(result):
    status, _, body = result
    return status, (body["error"]["message"] if status == 429 else None)


def test_a_killed_gateways_calls_in_flight_free_themselves(start_gateway, upstream, redis_server, tmp_path):
    lease = 6.0
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "pair", "--max-parallel", "2")
    doomed = start(start_gateway, upstream, db, redis_server, lease)
    survivor = start(start_gateway, upstream, db, redis_server, lease)
    wait_until(lambda: post(survivor.port, secret, chat(), path="/v1/nothing")[0] == 404, timeout=5)
    wait_until(lambda: post(doomed.port, secret, chat(), path="/v1/nothing")[0] == 404, timeout=5)
    upstream.clear()
    for _ in range(2):
        in_background(quietly(lambda: post(doomed.port, secret, chat(), headers=SLOW)))
    assert wait_until(lambda: len(upstream.requests()) == 2, timeout=10)
    status, message = refusal(post(survivor.port, secret, chat()))
    assert status == 429 and "in flight" in message  # the doomed gateway's two calls count here too
    doomed.signal(signal.SIGKILL)  # their releases will never come
    doomed.wait(5)
    killed_at = time.monotonic()
    assert refusal(post(survivor.port, secret, chat()))[0] == 429  # still held: the leases run on
    assert wait_until(lambda: post(survivor.port, secret, chat())[0] == 200, timeout=lease + 3), survivor.stderr
    freed_after = time.monotonic() - killed_at
    assert freed_after <= lease + 3  # within the documented bound (the lease), plus the polling
    # Once free, the limit holds again as before: two slots, both usable, no more.
    upstream.clear()
    for _ in range(2):
        in_background(quietly(lambda: post(survivor.port, secret, chat(), headers=SLOW)))
    assert wait_until(lambda: len(upstream.requests()) == 2, timeout=10)
    assert refusal(post(survivor.port, secret, chat()))[0] == 429
    assert len(upstream.requests()) == 2
    survivor.signal(signal.SIGKILL)  # rather than a drain that waits for the slow calls


def test_a_call_longer_than_its_lease_keeps_its_slot(start_gateway, upstream, redis_server, tmp_path):
    lease = 1.2  # renewed every 0.4 s
    db = tmp_path / "alloy.db"
    _, secret = create_key(db, "single", "--max-parallel", "1")
    gateway = start(start_gateway, upstream, db, redis_server, lease)
    wait_until(lambda: post(gateway.port, secret, chat(), path="/v1/nothing")[0] == 404, timeout=5)
    upstream.clear()
    slow = {"x-mock-fault": "slow-first-byte=4000"}
    outcome = []
    thread = in_background(lambda: outcome.append(post(gateway.port, secret, chat(), headers=slow)[0]))
    assert wait_until(lambda: len(upstream.requests()) == 1, timeout=10)
    time.sleep(2.5 * lease)  # without renewal its lease would have lapsed by now
    status, message = refusal(post(gateway.port, secret, chat()))
    assert status == 429 and "in flight" in message
    thread.join(15)
    assert outcome == [200]
    # Released at its end (the release follows the answer by a moment, one round trip).
    assert wait_until(lambda: post(gateway.port, secret, chat())[0] == 200, timeout=5)
    assert len(upstream.requests()) == 2

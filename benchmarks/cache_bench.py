#!/usr/bin/env python3
"""The response cache's cost and worth, in one run (issue 14's targets).

1. On the wire: one Alloy with ``[cache] enabled = true`` (memory backend) in front of the nginx
   upstream of latency_bench (the mock when nginx is missing); a raw keep-alive socket per side
   (the same minimal reader for all) sends, in alternating rounds: ``GET /health`` (the floor: a
   prebuilt answer), the ~300 B chat request answered from the cache (a hit, stored once before the
   rounds), and the same request proxied (``Cache-Control: no-cache, no-store``: the cache stage
   runs, then the upstream answers). Target: a hit at most 1.5x ``/health``.
2. In process: ``ResponseCache.lookup`` on a miss for a ~300 B body, memory backend, a real core
   ``Request`` (its parsed headers); what a miss adds before the call goes upstream (read the
   controls, normalize and hash the body, ask the store, set up the recording). Target: <= 3 us.
   The hit path's own cost (lookup, framing, the write to a fake transport) beside it.
3. The whole gateway in process (request_path_bench's fake transports): a hit next to /health and
   next to the pipeline's floor for the same request (everything but the cache's own work).
4. Memory per entry: tracemalloc around 10,000 stored answers (the mock's own ~600 B chat
   completion bodies), next to the bytes the store counts for them (``max_bytes`` accounting).

    taskset -c 0 python benchmarks/cache_bench.py [--requests N] [--rounds R] [--pin CPU|none] [--json OUT]
                                                  [--no-observability]
"""

import argparse
import gc
import os
import statistics
import sys
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import benchlib  # noqa: E402
from overhead_header_check import round_trips  # noqa: E402

from alloy.cache.entries import JSON, Entry  # noqa: E402
from alloy.cache.memory import MemoryStore  # noqa: E402
from alloy.cache.prompt_prefix import PrefixAffinity  # noqa: E402
from alloy.cache.response_cache import Policies, ResponseCache, Stats  # noqa: E402
from alloy.config import CacheSettings  # noqa: E402
from alloy.core import IMPLEMENTATION, RequestParser  # noqa: E402


def get_round_trips(port, n):
    """``n`` keep-alive GET /health round trips (µs)."""
    import socket

    request = b"GET /health HTTP/1.1\r\nhost: bench\r\n\r\n"
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    for _ in range(n):
        started = time.perf_counter()
        sock.sendall(request)
        data = sock.recv(65536)
        while not data.endswith(b"}"):
            data += sock.recv(65536)
        times.append((time.perf_counter() - started) * 1e6)
    sock.close()
    return times


def post_round_trips(port, body, n, extra=b""):
    """overhead_header_check.round_trips with ``extra`` request headers: (µs each, the set of
    x-alloy-cache values the answers carried)."""
    times, states = round_trips(port, body, n, "x-alloy-cache", extra, value=bytes)
    return times, set(states)


def on_the_wire(args, pin):
    procs = benchlib.Processes()
    small = benchlib.chat_body(300)
    if benchlib.nginx_binary(install=False):
        requests = {"small": small, "big": benchlib.chat_body(200_000), "stream": benchlib.stream_body(small)}
        upstream_port, _ = benchlib.start_nginx_upstream(procs, requests, cpus=pin)
        upstream = "nginx"
    else:
        upstream_port, upstream = benchlib.start_mock(procs, cpus=pin), "mock"
    config = os.path.join(procs.tmp, "cache.toml")
    with open(config, "w") as f:
        f.write("[cache]\nenabled = true\n")
        if args.no_observability:  # the defaults' wire cost apart (see benchmarks/README.md)
            f.write("[metrics]\nenabled = false\n[log]\naccess = false\n")
    port, _ = benchlib.start_alloy(procs, f"http://127.0.0.1:{upstream_port}/v1", cpus=pin, extra=["--config", config])
    bypass = b"cache-control: no-cache, no-store\r\n"
    post_round_trips(port, small, 1)  # stores the answer
    get_round_trips(port, 500)
    _, hit_states = post_round_trips(port, small, 500)
    _, bypass_states = post_round_trips(port, small, 500, bypass)
    if hit_states != {b"hit"} or bypass_states != {b"bypass"}:
        raise SystemExit(f"unexpected cache states: hits {hit_states}, proxied {bypass_states}")
    per_round = max(1, args.requests // args.rounds)
    health, hits, proxied = [], [], []
    for _ in range(args.rounds):
        health.extend(get_round_trips(port, per_round))
        hits.extend(post_round_trips(port, small, per_round)[0])
        proxied.extend(post_round_trips(port, small, per_round, bypass)[0])
    procs.alive_check()
    procs.stop_all()
    return {"upstream": upstream, "observability": not args.no_observability, "requests_per_side": len(hits), "rounds": args.rounds, "body_bytes": len(small),
            "health": _stats(health), "hit": _stats(hits), "proxied": _stats(proxied)}


def _stats(samples):
    ordered = sorted(samples)
    return {"median_us": statistics.median(ordered), "p90_us": ordered[int(len(ordered) * 0.9)],
            "p99_us": ordered[int(len(ordered) * 0.99)]}


# --- in process ------------------------------------------------------------------------------------


class Transport:
    def write(self, data):
        pass


class Gateway:
    draining = False


class Connection:
    def __init__(self):
        self.transport = Transport()
        self.gateway = Gateway()
        self.current = None

    def answer_finished(self, keep_alive):
        self.current = None

    def closes_for_drain(self):
        return False


class Routes:
    configured = ()


class Pipeline:
    routes = Routes()
    listeners = ()


class Group:
    name = "openai"
    strategy = "weighted"
    single = None
    cache_policy = None


class Call:
    """What the lookup reads and writes of a Call (alloy.call), nothing more."""

    __slots__ = ("request", "path", "endpoint", "group", "key", "model_name", "id_line", "recording", "connection",
                 "pipeline", "status", "error", "ended")

    def __init__(self, request):
        self.request = request
        self.path = b"/v1/chat/completions"
        self.endpoint = "chat/completions"
        self.group = Group()
        self.key = None
        self.model_name = "gpt-4o-mini"
        self.id_line = b""
        self.recording = None
        self.connection = Connection()
        self.pipeline = Pipeline()
        self.status = 0
        self.error = None
        self.ended = False

    def finish(self):
        self.ended = True


def per_call_us(function, n, repeats=25):
    """The best of ``repeats`` runs of ``n`` calls, per call: the least disturbed by whatever else
    the machine runs."""
    gc.disable()
    try:
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(n):
                function()
            best = min(best, (time.perf_counter() - started) / n * 1e6)
    finally:
        gc.enable()
    return best


def in_process(n):
    body = benchlib.chat_body(300)
    import realistic_headers

    # the openai SDK's real request head: the controls the lookup reads are absent, as usual
    lines = b"".join(b"%s: %s\r\n" % (name.encode(), value.encode()) for name, value in realistic_headers.SDK_REQUEST_HEADERS
                     if name.lower() != "content-length")
    head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: bench\r\n" + lines + b"content-length: %d\r\n\r\n" % len(body)
    request = RequestParser(65536, 1 << 20).feed(head + body)[0]
    settings = CacheSettings(enabled=True)
    stats = Stats()
    cache = ResponseCache(settings, Policies(settings, ()), MemoryStore(settings.max_bytes, stats), stats, PrefixAffinity())
    call = Call(request)

    def miss():
        call.id_line = b""
        cache.lookup(call)

    def baseline():
        call.id_line = b""

    miss_us = per_call_us(miss, n) - per_call_us(baseline, n)
    # the same request stored: every lookup is now a hit, answered through the fake transport
    from alloy.mock_replies import chat_completion

    call.id_line = b""
    cache.lookup(call)
    call.recording.append(chat_completion(body, 1))
    call.status = 200
    cache.filled(call)
    hit_us = per_call_us(miss, n) - per_call_us(baseline, n)
    if stats.hits < n:
        raise SystemExit("the hit path did not hit")
    return {"body_bytes": len(body), "miss_lookup_us": miss_us, "hit_lookup_and_write_us": hit_us}


def in_gateway(n):
    """A real ``Gateway`` on fake transports (request_path_bench's), no sockets, no event loop: the
    openai SDK's request head and a ~100 B chat body fed to a client connection, answered from the
    cache; next to ``GET /health`` and to the pipeline's floor for that request (a lookup stage that
    writes prebuilt bytes at once: parsing, routing and the call, without the cache's own work)."""
    import asyncio
    import tempfile

    import request_path_bench as rpb

    from alloy import config as alloy_config
    from alloy.cache.keys import key_of
    from alloy.core import frame_response
    from alloy.mock_replies import chat_completion
    from alloy.server import Gateway

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "alloy.toml")
        with open(path, "w") as f:
            f.write("[cache]\nenabled = true\n")
        config = alloy_config.load(path, env={"OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    gateway = Gateway(config, asyncio.new_event_loop())
    cache = gateway.pipeline.cache
    client = gateway.protocol()
    client.connection_made(rpb.FakeTransport())
    request = rpb.client_request(True)
    parsed = RequestParser(65536, 1 << 20).feed(request)[0]
    probe = Call(parsed)
    key = key_of(probe, "gpt-4o-mini", "global")[0]
    answer = chat_completion(rpb.CHAT_BODY, 1)
    now = time.time()
    cache.store.put(key, Entry(JSON, answer, now, now + 3600, namespace="global"))
    health = b"GET /health HTTP/1.1\r\nhost: gateway\r\n\r\n"
    prebuilt = frame_response(200, b"content-type: application/json\r\n", answer)

    def floor(call):
        call.connection.transport.write(prebuilt)
        call.status = 200
        call.finish()
        call.connection.answer_finished(True)
        return True

    hits_before = cache.stats.hits
    hit_us = per_call_us(lambda: client.data_received(request), n)
    health_us = per_call_us(lambda: client.data_received(health), n)
    if cache.stats.hits - hits_before < n:
        raise SystemExit("the gateway did not answer from the cache")
    real, cache.lookup = cache.lookup, floor
    floor_us = per_call_us(lambda: client.data_received(request), n)
    cache.lookup = real
    return {"health_us": health_us, "hit_us": hit_us, "floor_us": floor_us}


def memory_per_entry(count):
    """tracemalloc around ``count`` stored answers under their real keys (the normalized ~300 B
    requests: short keys are the request's bytes), the answers' bodies made beforehand (they were
    the relay's recording already)."""
    from alloy.cache.keys import key_of
    from alloy.mock_replies import chat_completion

    requests = [benchlib.chat_body(300).replace(b"Summarise", b"Summarize %d" % i) for i in range(count)]
    bodies = [chat_completion(request, i) for i, request in enumerate(requests)]
    keys = []
    for request in requests:
        probe = Call(RequestParser(65536, 1 << 20).feed(b"POST /v1/chat/completions HTTP/1.1\r\nhost: b\r\n"
                                                        b"content-length: %d\r\n\r\n%s" % (len(request), request))[0])
        keys.append(key_of(probe, "gpt-4o-mini", "global")[0])
    stats = Stats()
    store = MemoryStore(1 << 40, stats)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    now = time.time()
    for key, body in zip(keys, bodies):
        store.put(key, Entry(JSON, body, now, now + 3600, namespace="global"))
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    body_bytes = sum(len(b) for b in bodies)
    key_bytes = sum(len(k) for k in keys)
    return {"entries": count, "mean_body_bytes": body_bytes / count, "mean_key_bytes": key_bytes / count,
            "overhead_bytes_per_entry": used / count, "real_bytes_per_entry": (used + body_bytes + key_bytes) / count,
            "accounted_bytes_per_entry": store.bytes / count}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10000, help="per side, all rounds together (10000)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pin", default="0", help="CPU for client, gateway and upstream; 'none' to not pin (0)")
    parser.add_argument("--json", help="save the figures here")
    parser.add_argument("--no-observability", action="store_true", help="the gateway without metrics and access log")
    args = parser.parse_args()
    pin = None if args.pin == "none" else args.pin
    if pin is not None:
        os.sched_setaffinity(0, {int(pin)})
    meta = benchlib.provenance()
    wire = on_the_wire(args, pin)
    process = in_process(4000)
    gateway = in_gateway(3000)
    memory = memory_per_entry(10000)
    print(f"# Response cache\n\n{benchlib.provenance_line(meta)}\n")
    print(f"On the wire: ~{wire['body_bytes']} B chat completion, {wire['upstream']} upstream, memory backend, "
          f"{wire['requests_per_side']} requests per side in {wire['rounds']} alternating rounds, raw keep-alive "
          f"socket, pinned to CPU {pin if pin is not None else 'none'}, metrics and access log "
          f"{'on (the defaults)' if wire['observability'] else 'off'}\n")
    print("| Round trip | Median (µs) | P90 (µs) | P99 (µs) | x /health |")
    print("|---|---:|---:|---:|---:|")
    base = wire["health"]["median_us"]
    for name, label in (("health", "GET /health"), ("hit", "cache hit"), ("proxied", "proxied (Cache-Control: no-cache, no-store)")):
        s = wire[name]
        print(f"| {label} | {s['median_us']:.1f} | {s['p90_us']:.1f} | {s['p99_us']:.1f} | {s['median_us'] / base:.2f} |")
    ratio = wire["hit"]["median_us"] / base
    print(f"\nTarget: a hit <= 1.5x /health: {ratio:.2f}x, {'met' if ratio <= 1.5 else 'NOT met'}.\n")
    print(f"In process ({IMPLEMENTATION} core), ~{process['body_bytes']} B body, best of 25 x 4,000:\n")
    print("| Path | µs per request |")
    print("|---|---:|")
    print(f"| lookup on a miss (controls, key, store, recording set up) | {process['miss_lookup_us']:.2f} |")
    print(f"| lookup on a hit (with framing and the write) | {process['hit_lookup_and_write_us']:.2f} |")
    verdict = process["miss_lookup_us"] <= 3.0
    print(f"\nTarget: a miss's lookup <= 3 µs: {'met' if verdict else 'NOT met'}.\n")
    print("The whole gateway in process (fake transports, the openai SDK's request head, best of 25 x 3,000):\n")
    print("| Request | µs of the gateway's CPU |")
    print("|---|---:|")
    print(f"| GET /health | {gateway['health_us']:.2f} |")
    print(f"| chat completion answered from the cache | {gateway['hit_us']:.2f} |")
    print(f"| the same, with prebuilt bytes at the lookup stage (parse, route, call: the pipeline's floor) | {gateway['floor_us']:.2f} |")
    print(f"\nThe cache's own share of a hit: {gateway['hit_us'] - gateway['floor_us']:.2f} µs; the rest is the "
          f"pipeline every /v1/ request takes before the lookup stage.\n")
    print(f"Memory, {memory['entries']} stored chat completions of {memory['mean_body_bytes']:.0f} B under keys of "
          f"{memory['mean_key_bytes']:.0f} B (their normalized requests), tracemalloc:\n")
    print("| Per entry | Bytes |")
    print("|---|---:|")
    print(f"| the store's own objects (entry, its dict and LRU slots) | {memory['overhead_bytes_per_entry']:.0f} |")
    print(f"| in all, with the answer's body and the key | {memory['real_bytes_per_entry']:.0f} |")
    print(f"| counted against max_bytes (body + key + 256) | {memory['accounted_bytes_per_entry']:.0f} |")
    if args.json:
        benchlib.write_json(args.json, {"meta": meta, "wire": wire, "in_process": process, "gateway": gateway,
                                        "memory": memory})
    return 0


if __name__ == "__main__":
    sys.exit(main())

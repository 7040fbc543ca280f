#!/usr/bin/env python3
"""The whole request path in one process, without sockets: what the gateway's own code costs.

A real ``Gateway`` (the configuration, pipeline, call, relay, upstream pool and client connection a
running ``alloy`` uses) is driven by hand: a client connection gets a fake transport, the upstream
pool gets one idle upstream connection on a fake transport, and each iteration feeds the client's
request bytes to ``ClientConnection.data_received``, then the upstream's answer bytes to
``UpstreamConnection.data_received``, and checks that the client's answer was written whole. No
event loop runs and no system call is made, so the time per request is the gateway's CPU work
alone: parsing, routing, framing, relaying, and every Python frame in between.

    python benchmarks/request_path_bench.py                      # the compiled core, as installed
    ALLOY_PURE=1 python benchmarks/request_path_bench.py         # the pure twin
    python benchmarks/request_path_bench.py --compare            # both, in one run
    python benchmarks/request_path_bench.py --against DIR        # this checkout vs another (before/after)
    python benchmarks/request_path_bench.py --cors               # a browser's requests, cors_origins set
    python benchmarks/request_path_bench.py --stream             # a streamed answer (20 events)
    python benchmarks/request_path_bench.py --large              # a 200 KB request body, one read

``--compare`` runs each variant in its own process, interleaved over rounds, and prints the median
µs per request of each and their ratio (the target: compiled vs pure twin on the whole request path
at least 3x).
"""

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from benchlib import chat_body  # noqa: E402
from realistic_headers import OPENAI_RESPONSE_HEADERS as RESPONSE_HEADERS  # noqa: E402
from realistic_headers import SDK_REQUEST_HEADERS as REQUEST_HEADERS  # noqa: E402

CHAT_BODY = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello in one short sentence, please."}]}
).encode()
LARGE_BODY = chat_body(200000)  # compare.sh's large request, read here with its head at once
ANSWER_BODY = json.dumps(
    {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there!"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    }
).encode()  # fmt: skip


class FakeTransport:
    """Enough of an asyncio transport for the gateway: it counts what is written."""

    def __init__(self):
        self.written = 0

    def write(self, data):
        self.written += len(data)

    def writelines(self, pieces):
        for piece in pieces:
            self.written += len(piece)

    def is_closing(self):
        return False

    def close(self):
        raise AssertionError("the benchmark's connection was closed")

    abort = close

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass

    def get_extra_info(self, name, default=None):
        return default


STREAM_BODY = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello in one short sentence, please."}],
     "stream": True, "stream_options": {"include_usage": True}}
).encode()


def stream_events(words=18):
    """The events of a streamed answer, like OpenAI's (and the mock's): a chunk per word, the finish
    chunk, the usage chunk and ``data: [DONE]``."""
    def chunk(delta, finish=None, usage=None, choices=True):
        body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else []}
        if usage is not None:
            body["usage"] = usage
        return b"data: " + json.dumps(body).encode() + b"\n\n"
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": f" word{n}"}) for n in range(words - 1)]
    events.append(chunk({}, finish="stop"))
    events.append(chunk({}, usage={"prompt_tokens": 12, "completion_tokens": words, "total_tokens": 12 + words}, choices=False))
    return events + [b"data: [DONE]\n\n"]


def client_request(realistic, key=b"client-key", origin=None, stream=False, large=False):
    lines = [b"POST /v1/chat/completions HTTP/1.1", b"host: gateway"]
    if origin is not None:  # a browser's request (alloy.cors)
        lines.append(b"origin: " + origin)
    if realistic:
        lines += [name.encode() + b": " + value.encode() for name, value in REQUEST_HEADERS if name.lower() not in ("host", "content-length", "authorization")]
        lines.append(b"authorization: Bearer " + key)
    else:
        lines += [b"content-type: application/json", b"authorization: Bearer " + key]
    body = STREAM_BODY if stream else LARGE_BODY if large else CHAT_BODY
    lines.append(b"content-length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def upstream_answer(realistic, stream=False):
    if stream:  # one chunk per event, all in one read (events ready at once, as from the mock)
        head = [b"HTTP/1.1 200 OK", b"content-type: text/event-stream; charset=utf-8", b"transfer-encoding: chunked"]
        chunks = [b"%x\r\n%s\r\n" % (len(event), event) for event in stream_events()]
        return b"\r\n".join(head) + b"\r\n\r\n" + b"".join(chunks) + b"0\r\n\r\n"
    lines = [b"HTTP/1.1 200 OK", b"content-type: application/json"]
    if realistic:
        lines += [name.encode() + b": " + value.encode() for name, value in RESPONSE_HEADERS if name.lower() not in ("content-type", "content-length", "transfer-encoding", "connection")]
    lines.append(b"content-length: %d" % len(ANSWER_BODY))
    return b"\r\n".join(lines) + b"\r\n\r\n" + ANSWER_BODY


def keys_database():
    """A fresh keys database with one key limited the way a team would (rpm, tpm, budget): its
    path and the key's secret."""
    import tempfile

    from alloy.governance.store import Store

    path = os.path.join(tempfile.mkdtemp(prefix="alloy-bench-"), "alloy.db")
    store = Store(path)
    _, secret = store.create_key({"name": "bench", "rpm": 10**9, "tpm": 10**12, "budget": 10**6, "budget_period": 86400})
    store.close()
    return path, secret.encode()


def build(realistic, listeners=False, keyed=False, cors=False, stream=False, large=False):
    """A gateway with one client connection and one idle upstream connection, both on fakes.
    ``listeners``: the observability defaults (metrics, the JSON access log, here to /dev/null);
    ``keyed``: a keys database and a key with rpm, tpm and a budget, which every request sends;
    ``cors``: ``[server] cors_origins`` set, and every request from that origin (a browser's);
    ``stream``: a streamed answer of 20 events, one chunk each, that comes in one read;
    ``large``: a 200 KB request body, in the same read as its head."""
    from alloy import config as alloy_config
    from alloy.server import Gateway
    from alloy.upstream.connection import UpstreamConnection

    env = {"OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    key = b"client-key"
    if keyed:
        env["ALLOY_DB"], key = keys_database()
    config = alloy_config.load(None, env=env)
    origin = None
    if cors:
        origin = b"https://app.example"
        config = dataclasses.replace(config, server=dataclasses.replace(config.server, cors_origins=(origin.decode(),)))
    if listeners:
        config = dataclasses.replace(config, log=dataclasses.replace(config.log, path=os.devnull))
    else:
        config = dataclasses.replace(config, log=dataclasses.replace(config.log, access=False), metrics=dataclasses.replace(config.metrics, enabled=False))
    loop = asyncio.new_event_loop()
    gateway = Gateway(config, loop)
    access_log = None
    if listeners:
        from alloy.observability import Observability

        access_log = Observability(gateway).access_log
    pool = gateway.upstreams["openai"]
    upstream = UpstreamConnection(pool, loop)
    upstream.connection_made(FakeTransport())
    pool._open += 1
    pool.release(upstream)
    client = gateway.protocol()
    client_transport = FakeTransport()
    client.connection_made(client_transport)
    request, answer = client_request(realistic, key, origin, stream, large), upstream_answer(realistic, stream)
    least = sum(map(len, stream_events())) if stream else len(ANSWER_BODY)
    governance = gateway.pipeline.governance

    def one():
        before = client_transport.written
        client.data_received(request)
        upstream.data_received(answer)
        if client_transport.written - before < least:
            raise AssertionError("the answer did not reach the client")
        if access_log is not None and len(access_log.entries) >= 256:
            access_log.flush()  # what the loop's call_soon would do: format the lines, hand them off
        if governance is not None and len(governance.ledger.pending) >= 256:
            governance.ledger.flush()

    return one


def measure(iterations, rounds, realistic, listeners=False, keyed=False, cors=False, stream=False, large=False):
    one = build(realistic, listeners, keyed, cors, stream, large)
    for _ in range(2000):
        one()
    gc.collect()
    gc.freeze()
    gc.disable()
    medians = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        for _ in range(iterations):
            one()
        medians.append((time.perf_counter_ns() - started) / iterations / 1000.0)
    return medians


VARIANTS = {
    "compiled": ({}, []),
    "pure twin": ({"ALLOY_PURE": "1"}, []),
}


def compare(args):
    results = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name, (env, extra) in VARIANTS.items():
            command = [sys.executable, __file__, "--iterations", str(args.iterations), "--rounds", "1", "--json"]
            command += extra + (["--realistic"] if args.realistic else [])
            output = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=True)
            results[name].extend(json.loads(output.stdout)["us_per_request"])
    heads = "the openai SDK's 15 request headers, OpenAI's 17 response headers" if args.realistic else "minimal headers"
    print(f"Request path in process ({heads}): µs per request, median of {args.rounds} rounds of {args.iterations}\n")
    print("| Variant | µs per request | rounds (min-max) | vs compiled |")
    print("|---|---:|---|---:|")
    compiled = statistics.median(results["compiled"])
    for name, values in results.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {min(values):.2f}-{max(values):.2f} | {median / compiled:.2f}x |")


MODES = {
    "plain (no listeners, no keys)": [],
    "observability defaults (metrics, access log)": ["--listeners"],
    "a virtual key (rpm, tpm, budget)": ["--keyed"],
    "defaults and a virtual key": ["--listeners", "--keyed"],
    "a streamed answer (20 events in one read)": ["--stream"],
    "a 200 KB request body (one read)": ["--large"],
}


def against(args):
    """This checkout against the ``alloy`` package of another one (``args.against``: a directory
    holding ``alloy/`` with its core built), every mode, the two builds alternating round by round
    (the same bench script drives both, so both run the same requests)."""
    here = os.path.dirname(HERE)
    builds = {"before": os.path.abspath(args.against), "after": here}
    results = {(mode, build): [] for mode in MODES for build in builds}
    for number in range(args.rounds):
        order = list(builds.items()) if number % 2 == 0 else list(builds.items())[::-1]
        for mode, flags in MODES.items():
            for build, root in order:
                command = [sys.executable, __file__, "--iterations", str(args.iterations), "--rounds", "1", "--json", *flags]
                command += ["--realistic"] if args.realistic else []
                env = {**os.environ, "PYTHONPATH": root}
                output = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd=root)
                results[(mode, build)].extend(json.loads(output.stdout)["us_per_request"])
    heads = "the openai SDK's 15 request headers, OpenAI's 17 response headers" if args.realistic else "minimal headers"
    print(f"Request path in process ({heads}), {args.rounds} alternating rounds of {args.iterations} requests: µs per request (median, min-max)\n")
    print("| Mode | before | after | after - before |")
    print("|---|---:|---:|---:|")
    for mode in MODES:
        before, after = results[(mode, "before")], results[(mode, "after")]
        b, a = statistics.median(before), statistics.median(after)
        print(f"| {mode} | {b:.2f} ({min(before):.2f}-{max(before):.2f}) | {a:.2f} ({min(after):.2f}-{max(after):.2f}) | {a - b:+.2f} |")
    if args.json:
        print(json.dumps({f"{mode} / {build}": values for (mode, build), values in results.items()}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--realistic", action="store_true", help="the SDK's request head and OpenAI's response head")
    parser.add_argument("--compare", action="store_true", help="the compiled core and the pure twin in one run")
    parser.add_argument("--json", action="store_true", help="print the per-round figures as JSON")
    parser.add_argument("--listeners", action="store_true", help="with the observability defaults (metrics, access log)")
    parser.add_argument("--keyed", action="store_true", help="every request with a virtual key (rpm, tpm, budget)")
    parser.add_argument("--cors", action="store_true", help="cors_origins set, every request from that origin")
    parser.add_argument("--stream", action="store_true", help="a streamed answer: 20 events, one chunk each, in one read")
    parser.add_argument("--large", action="store_true", help="a 200 KB request body, read with its head at once")
    parser.add_argument("--against", metavar="DIR", help="compare with the alloy package of another checkout (before/after)")
    args = parser.parse_args()
    if args.compare:
        return compare(args)
    if args.against:
        return against(args)
    medians = measure(args.iterations, args.rounds, args.realistic, args.listeners, args.keyed, args.cors, args.stream, args.large)
    if args.json:
        print(json.dumps({"us_per_request": medians}))
    else:
        print(f"{statistics.median(medians):.2f} µs per request (rounds: {', '.join(f'{m:.2f}' for m in medians)})")


if __name__ == "__main__":
    main()

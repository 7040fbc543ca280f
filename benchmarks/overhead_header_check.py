#!/usr/bin/env python3
"""Does ``x-alloy-overhead-us`` tell the truth? The header's values next to the overhead measured from
outside, in one run.

The nginx upstream of latency_bench serves the fixed chat answer; a keep-alive client (a raw socket
with a minimal reader, the same for every side) sends the ~300 B chat request in alternating rounds direct to
the upstream, through the blind relay (blind_relay.py: the same extra socket hop, no work) and
through Alloy, pinned to one CPU like latency_bench. The header's value is what Alloy says it spent
itself; what it can be checked against is Alloy's round trip minus the relay's (the hop, the kernel
and the client's own cost cancel out). The header leaves out the event loop's share between reads,
so it should come close to that difference from below.

    python benchmarks/overhead_header_check.py [--requests N] [--pin CPU|none]
"""

import argparse
import os
import socket
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import benchlib  # noqa: E402


def round_trips(port, body, n, header=None, extra=b"", value=int):
    """``n`` keep-alive round trips (µs), and the values of ``header`` when asked (read by
    ``value``; None in an answer without it). ``extra``: more request header lines. A raw socket
    and a minimal reader: a full HTTP client would spend more on the gateway's extra headers than
    the gateway does (http.client parses each with the email package)."""
    request = b"POST /v1/chat/completions HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n" + extra
    request += b"content-length: %d\r\n\r\n%s" % (len(body), body)
    wanted = b"\r\n" + header.encode() + b": " if header else None
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times, values = [], []
    for _ in range(n):
        started = time.perf_counter()
        sock.sendall(request)
        data = sock.recv(65536)
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
        while len(rest) < length:
            rest += sock.recv(65536)
        times.append((time.perf_counter() - started) * 1e6)
        if not head.startswith(b"HTTP/1.1 200 "):
            raise SystemExit(f"{head[:40]!r} from port {port}")
        if wanted is not None:
            values.append(value(head.split(wanted, 1)[1].split(b"\r\n", 1)[0]) if wanted in head else None)
    sock.close()
    return times, values


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000, help="per side, all rounds together (5000)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pin", default="0", help="CPU for client, gateway and upstream; 'none' to not pin (0)")
    args = parser.parse_args()
    pin = None if args.pin == "none" else args.pin
    if pin is not None:
        os.sched_setaffinity(0, {int(pin)})
    procs = benchlib.Processes()
    small = benchlib.chat_body(300)
    requests = {"small": small, "big": benchlib.chat_body(200_000), "stream": benchlib.stream_body(small)}
    upstream_port, _ = benchlib.start_nginx_upstream(procs, requests, cpus=pin)
    alloy_port, _ = benchlib.start_alloy(procs, f"http://127.0.0.1:{upstream_port}/v1", cpus=pin)
    relay_port, _ = benchlib.start_relay(procs, upstream_port, cpus=pin)
    per_round = max(1, args.requests // args.rounds)
    for port in (upstream_port, relay_port):
        round_trips(port, small, 500)
    round_trips(alloy_port, small, 500, "x-alloy-overhead-us")
    direct, relayed, through, header = [], [], [], []
    for _ in range(args.rounds):
        direct.extend(round_trips(upstream_port, small, per_round)[0])
        relayed.extend(round_trips(relay_port, small, per_round)[0])
        times, values = round_trips(alloy_port, small, per_round, "x-alloy-overhead-us")
        through.extend(times)
        header.extend(values)
    procs.alive_check()
    measured = statistics.median(through) - statistics.median(relayed)
    said = statistics.median(header)
    print(f"# x-alloy-overhead-us against the measured overhead\n\n{benchlib.provenance_line(benchlib.provenance())}")
    print(f"~300 B chat completion on the nginx upstream, {len(through)} requests per side in {args.rounds} "
          f"alternating rounds, raw keep-alive socket, pinned to CPU {pin if pin is not None else 'none'}\n")
    print("| Figure | Median (µs) | P90 (µs) |")
    print("|---|---:|---:|")
    print(f"| direct round trip | {statistics.median(direct):.1f} | {statistics.quantiles(direct, n=10)[-1]:.1f} |")
    print(f"| through the blind relay round trip | {statistics.median(relayed):.1f} | {statistics.quantiles(relayed, n=10)[-1]:.1f} |")
    print(f"| through Alloy round trip | {statistics.median(through):.1f} | {statistics.quantiles(through, n=10)[-1]:.1f} |")
    print(f"| Alloy's own cost (Alloy minus relay, medians) | {measured:.1f} | |")
    print(f"| x-alloy-overhead-us | {said:.1f} | {statistics.quantiles(header, n=10)[-1]:.1f} |")
    share = said / measured if measured > 0 else float("nan")
    print(f"\nThe header accounts for {share:.0%} of Alloy's own cost measured from outside; the rest is "
          f"the event loop's share between reads, which the header cannot see.")
    verdict = 0 < said <= measured * 1.2
    print(f"Check (0 < header median <= 1.2 x Alloy's own cost): {'passed' if verdict else 'FAILED'}")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())

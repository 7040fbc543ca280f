#!/usr/bin/env python3
"""What the observability defaults cost a proxied request on the wire: the same build with its
defaults (metrics and the access log on) against itself with them off, one at a time and together.

The nginx upstream of latency_bench serves the fixed ~300 B chat answer; one gateway process per
variant (each with its own small config file, the provider from the environment) runs pinned to
one CPU with the client and the upstream, and a raw keep-alive socket client (the one of
overhead_header_check.py) sends rounds of requests to each in turn, the order reversed every other
round. A second process of the default build is the A/A control: its difference must be within
noise. Each difference is the mean over rounds of (variant's round median - default's round
median), with a 95% interval.

    python benchmarks/observability_ab.py [--rounds 24] [--requests 1000]
"""

import argparse
import os
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import benchlib  # noqa: E402
from overhead_header_check import round_trips  # noqa: E402

VARIANTS = {
    "defaults": "",
    "defaults, a second process (A/A control)": "",
    "access log off": "[log]\naccess = false\n",
    "access log sampled at 0 (its writer thread still runs)": "[log]\nsample = 0.0\n",
    "metrics off": "[metrics]\nenabled = false\n",
    "both off": "[metrics]\nenabled = false\n[log]\naccess = false\n",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=24)
    parser.add_argument("--requests", type=int, default=1000, help="per variant and round")
    parser.add_argument("--pin", default="0")
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(args.pin)})
    procs = benchlib.Processes()
    small = benchlib.chat_body(300)
    requests = {"small": small, "big": benchlib.chat_body(200_000), "stream": benchlib.stream_body(small)}
    upstream, _ = benchlib.start_nginx_upstream(procs, requests, cpus=args.pin)
    directory = tempfile.mkdtemp(prefix="alloy-observability-ab-")
    ports = {}
    for number, (name, config) in enumerate(VARIANTS.items()):
        path = os.path.join(directory, f"variant-{number}.toml")
        with open(path, "w") as handle:
            handle.write(config)
        ports[name], _ = benchlib.start_alloy(procs, f"http://127.0.0.1:{upstream}/v1", cpus=args.pin, extra=["--config", path])
    for port in ports.values():
        round_trips(port, small, 500)  # warm-up
    medians = {name: [] for name in VARIANTS}
    names = list(VARIANTS)
    for number in range(args.rounds):
        for name in names if number % 2 == 0 else names[::-1]:
            times, _ = round_trips(ports[name], small, args.requests)
            medians[name].append(statistics.median(times))
    procs.alive_check()
    print("# The observability defaults on the wire\n")
    print(benchlib.provenance_line(benchlib.provenance()))
    print(f"~300 B chat completion on the nginx upstream; {args.rounds} rounds of {args.requests} keep-alive requests "
          f"per variant (order reversed every other round); client, gateways and upstream pinned to CPU {args.pin}\n")
    print("| Variant | Median round trip (µs) | Difference to the defaults: mean ± 95% (µs) |")
    print("|---|---:|---:|")
    base = medians["defaults"]
    for name in names:
        values = medians[name]
        differences = [a - b for a, b in zip(values, base)]
        mean = statistics.mean(differences)
        half = 1.96 * statistics.stdev(differences) / len(differences) ** 0.5 if name != "defaults" else 0.0
        print(f"| {name} | {statistics.median(values):.1f} | {mean:+.1f} ± {half:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

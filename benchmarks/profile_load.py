#!/usr/bin/env python3
"""Where a running gateway's CPU goes under load: the kernel, the Python interpreter (the shell),
the compiled core, uvloop, libc.

``request_path_bench.py`` times the gateway's own code without sockets; this asks the other
question: in the real process, serving chat completions from the nginx upstream at 64 connections,
how is the CPU split between what Alloy could still compile and what no Python gateway avoids
(system calls, the TCP stack, waking the peer). It starts the nginx upstream (``nginx_upstream.py``),
Alloy with its defaults (metrics and the access log on, the log to /dev/null), and wrk; samples
Alloy with ``perf record`` while wrk runs; and prints the share of each binary (perf's "dso") and the
top symbols. With ``py-spy`` installed (``pip install py-spy``; not an Alloy dependency) it also
prints the Python lines the main thread spends its samples on; a line that writes to a socket
carries the system call under it.

    python benchmarks/profile_load.py                   # 5 s of load, Alloy on CPU 1, the rest on CPU 0
    python benchmarks/profile_load.py --seconds 10 --py-spy
    python benchmarks/profile_load.py -- --workers 1    # what follows -- goes to alloy

Needs perf (linux-perf), nginx and wrk (``compare.sh`` installs the last two); root or
``perf_event_paranoid`` <= 1 to sample another process.
"""

import argparse
import collections
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import benchlib  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--py-spy", action="store_true", help="also sample the Python stacks (py-spy)")
    parser.add_argument("alloy_args", nargs="*", help="after --: extra arguments for alloy")
    args = parser.parse_args()
    for tool in ("perf", "wrk"):
        if shutil.which(tool) is None:
            raise SystemExit(f"profile_load: {tool} is not installed")
    if args.py_spy and shutil.which("py-spy") is None:
        raise SystemExit("profile_load: py-spy is not installed (pip install py-spy)")

    procs = benchlib.Processes()
    small = benchlib.chat_body(300)
    answers = {"small": small, "big": benchlib.chat_body(200_000), "stream": benchlib.stream_body(small)}
    upstream_port, _ = benchlib.start_nginx_upstream(procs, answers, cpus="0")
    port, alloy = benchlib.start_alloy(procs, f"http://127.0.0.1:{upstream_port}/v1", cpus="1", extra=args.alloy_args)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    script = load_script(procs.tmp, small)
    wrk(url, script, args.connections, 1)  # warm-up: connections open, the pool filled

    perf_data = os.path.join(procs.tmp, "perf.data")
    samplers = [subprocess.Popen(["perf", "record", "-F", "1999", "-p", str(alloy.pid), "-o", perf_data, "--",
                                  "sleep", str(args.seconds)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    spy_out = os.path.join(procs.tmp, "py-spy.txt")
    if args.py_spy:
        samplers.append(subprocess.Popen(["py-spy", "record", "-r", "500", "-d", str(args.seconds), "-f", "raw",
                                          "-o", spy_out, "-p", str(alloy.pid)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    rate = wrk(url, script, args.connections, args.seconds)
    for sampler in samplers:
        sampler.wait()
    procs.alive_check()

    print(f"# Alloy under load: {rate:,.0f} chat req/s at {args.connections} connections "
          f"(Alloy on CPU 1; wrk and the nginx upstream on CPU 0)\n")
    print("## CPU by binary (perf, Alloy's process)\n")
    print(table(perf_report(perf_data, "dso"), 12))
    print("\n## Top symbols\n")
    print(table(perf_report(perf_data, "dso,symbol"), 25))
    if args.py_spy:
        print("\n## Python lines, main thread (py-spy; own samples, socket writes included)\n")
        print(python_lines(spy_out, 25))
    procs.stop_all()


def load_script(directory, body):
    body_path = os.path.join(directory, "body.json")
    with open(body_path, "wb") as f:
        f.write(body)
    path = os.path.join(directory, "load.lua")
    with open(path, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f'wrk.headers["Authorization"] = "Bearer {benchlib.API_KEY}"\n'
                f'local f = io.open("{body_path}", "rb"); wrk.body = f:read("*a"); f:close()\n')
    return path


def wrk(url, script, connections, seconds):
    argv = ["taskset", "-c", "0", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script, url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise SystemExit(f"could not read wrk's output:\n{out}")


def perf_report(perf_data, sort):
    """[(percent, what)] from ``perf report --sort <sort>``, without call graphs."""
    out = subprocess.run(["perf", "report", "-i", perf_data, "--no-children", "-g", "none", "--sort", sort,
                          "--stdio"], capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        if line.strip() and not line.startswith("#") and "%" in line:
            percent, _, what = line.strip().partition("%")
            rows.append((float(percent), " ".join(what.split())))
    return rows


def python_lines(path, limit):
    own = collections.Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            frames = stack.split(";")
            if any("threading.py" in frame for frame in frames):
                continue  # the access log's writer thread, waiting: not the request path
            own[frames[-1]] += int(count)
            total += int(count)
    return table([(100.0 * n / total, frame) for frame, n in own.most_common(limit)], limit)


def table(rows, limit):
    lines = ["| share | what |", "|---:|---|"]
    lines += [f"| {percent:.1f}% | `{what}` |" for percent, what in rows[:limit]]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

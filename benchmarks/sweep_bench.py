"""The once-a-second sweep with N idle keep-alive client connections: O(connections) before, O(due) after.

    taskset -c 0 python benchmarks/sweep_bench.py                       # N = 1,000 and 10,000
    taskset -c 0 python benchmarks/sweep_bench.py --out benchmarks/results/<UTC>-sweep

In process, no sockets: N ``ClientConnection`` objects on fake transports, made by the gateway's
``protocol()`` path (``connection_made``), idle within their keep-alive timeout (the default 75 s).
Timed, one sweep each, median of ``--sweeps`` sweeps (GC off while timing):

- before: the sweep as it was up to commit 31794e7 (``ClientConnection.tick`` called on every
  connection every second), with that commit's ``alloy/client_connection.py`` read from git;
- after, nothing due: ``TimingWheel.advance`` at a sweep no connection's deadline falls in (the
  common case: idle connections are looked at once, when their keep-alive timeout comes);
- after, all due: the worst case, every connection filed for the same sweep and each finding it
  had activity since, so it files itself again (what the wheel costs per connection it looks at);
- after, steady state: connections opened evenly over one keep-alive period (76 sweeps) and every
  one active before every sweep (a busy keep-alive client), the mean sweep over the next period:
  each connection comes due once a period and files itself again.

No number here is asserted anywhere; the results folder keeps the table and the JSON.
"""

import argparse
import gc
import importlib.util
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

from benchlib import provenance, provenance_line, write_json  # noqa: E402

from alloy import core  # noqa: E402
from alloy.client_connection import ClientConnection  # noqa: E402
from alloy.config.server import ServerSettings  # noqa: E402
from alloy.timing_wheel import TimingWheel  # noqa: E402

BEFORE_COMMIT = "31794e7"  # the last commit whose sweep ticked every connection


class FakeTransport:
    """What a client connection calls on its transport, doing nothing."""

    def __init__(self):
        self.closing = False

    def write(self, data):
        pass

    def close(self):
        self.closing = True

    abort = close

    def is_closing(self):
        return self.closing

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass

    def get_extra_info(self, name, default=None):
        return default


class FakeGateway:
    """What a client connection reads of its gateway."""

    def __init__(self, with_wheel):
        self.settings = ServerSettings()
        self.connections = set()
        self.draining = False
        self.over_capacity = b""
        if with_wheel:
            self.wheel = TimingWheel()

    def dispatch(self, request, connection):
        raise AssertionError("no request is sent in this benchmark")


def old_connection_class():
    """``ClientConnection`` as of ``BEFORE_COMMIT`` (None when git cannot show it)."""
    try:
        source = subprocess.run(
            ["git", "show", f"{BEFORE_COMMIT}:alloy/client_connection.py"],
            cwd=REPO, capture_output=True, text=True, check=True, timeout=10,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    spec = importlib.util.spec_from_loader("client_connection_before", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, f"{BEFORE_COMMIT}:alloy/client_connection.py", "exec"), module.__dict__)
    return module.ClientConnection


def open_connections(connection_class, gateway, n):
    for _ in range(n):
        connection_class(gateway).connection_made(FakeTransport())
    assert len(gateway.connections) == n


def timed(sweep, sweeps, prepare=None):
    """Median and minimum of ``sweeps`` calls of ``sweep``, in microseconds."""
    samples = []
    gc.disable()
    try:
        for _ in range(sweeps):
            if prepare is not None:
                prepare()
            started = time.perf_counter_ns()
            sweep()
            samples.append((time.perf_counter_ns() - started) / 1000)
    finally:
        gc.enable()
    return {"median_us": statistics.median(samples), "min_us": min(samples), "total_us": sum(samples), "sweeps": sweeps}


def measure(n, sweeps):
    result = {"connections": n}
    before_class = old_connection_class()
    if before_class is not None:
        gateway = FakeGateway(with_wheel=False)
        open_connections(before_class, gateway, n)

        def sweep_before():  # the old Gateway._sweep's loop over the client connections
            settings, draining = gateway.settings, gateway.draining
            for connection in list(gateway.connections):
                connection.tick(settings, draining)

        def stay_idle():  # keep every connection within its keep-alive timeout
            for connection in gateway.connections:
                connection.idle_seconds = 0

        result["before"] = timed(sweep_before, sweeps, stay_idle)
        assert len(gateway.connections) == n

    gateway = FakeGateway(with_wheel=True)
    open_connections(ClientConnection, gateway, n)
    wheel = gateway.wheel
    result["after_nothing_due"] = timed(wheel.advance, sweeps)
    assert len(gateway.connections) == n and wheel.filed() == n

    connections = list(gateway.connections)

    def all_due_with_activity():
        wheel.file_all_next(connections)
        for connection in connections:
            connection.quiet_since = wheel.now  # activity since it was filed: it files itself again

    result["after_all_due"] = timed(wheel.advance, sweeps, all_due_with_activity)
    assert len(gateway.connections) == n and wheel.filed() == n

    gateway = FakeGateway(with_wheel=True)
    wheel = gateway.wheel
    period = int(gateway.settings.keepalive_timeout) + 1
    for sweep in range(period):
        open_connections_more(gateway, n * (sweep + 1) // period - n * sweep // period)
        wheel.advance()
    connections = list(gateway.connections)

    def everyone_active():
        now = wheel.now
        for connection in connections:
            connection.quiet_since = now

    steady = timed(wheel.advance, period, everyone_active)
    result["after_steady_state"] = dict(steady, mean_us=steady.pop("total_us") / period)
    assert len(gateway.connections) == n
    return result


def open_connections_more(gateway, n):
    for _ in range(n):
        ClientConnection(gateway).connection_made(FakeTransport())


def table(results):
    lines = [
        "| Connections | Before: every connection ticked | After: nothing due | After: all due (worst case) "
        "| After: steady state, all active (mean) | Before / after (nothing due) | Before / after (steady) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        before = r.get("before", {}).get("median_us")
        nothing = r["after_nothing_due"]["median_us"]
        steady = r["after_steady_state"]["mean_us"]
        ratio = f"{before / nothing:,.0f}x" if before else "-"
        steady_ratio = f"{before / steady:,.0f}x" if before else "-"
        before_text = f"{before:,.0f} us" if before else "-"
        lines.append(
            f"| {r['connections']:,} | {before_text} | {nothing:,.2f} us | {r['after_all_due']['median_us']:,.0f} us "
            f"| {steady:,.0f} us | {ratio} | {steady_ratio} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--sweeps", type=int, default=30, help="sweeps timed per variant (median reported)")
    parser.add_argument("--out", metavar="DIR", help="results folder: sweep.md and sweep.json")
    args = parser.parse_args(argv)
    if not all(1 <= n <= 100000 for n in args.connections) or not 1 <= args.sweeps <= 1000:
        parser.error("connections must be 1 to 100,000 and sweeps 1 to 1,000")
    meta = provenance()
    results = [measure(n, args.sweeps) for n in args.connections]
    text = "\n".join([
        "# The once-a-second sweep, idle client connections (benchmarks/sweep_bench.py)",
        "",
        provenance_line(meta) + f" · core: {core.IMPLEMENTATION}  ",
        f"Median of {args.sweeps} sweeps each, in process, fake transports, default timeouts (keep-alive 75 s).",
        "",
        table(results),
        "",
    ])  # fmt: skip
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "sweep.md"), "w") as f:
            f.write(text)
        write_json(os.path.join(args.out, "sweep.json"), {"meta": meta, "core": core.IMPLEMENTATION, "results": results})


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""What keys, limits and budgets cost a request (issue 13), in one run, with reliability_bench's
method (interleaved rounds in random order, sessions of freshly started servers, an A/A control).

One ``alloy mock-upstream`` and, in front of it, these targets of ``POST /v1/chat/completions``
(~300 B body, model ``gpt-4o-mini``):

- ``direct``: straight to the mock, the floor;
- ``unkeyed``: ``alloy`` with a provider and no governance (no database, no ``[governance]``);
- ``unkeyed-twin``: a second process of exactly the same, the A/A control;
- ``keyed``: ``alloy`` with ``[governance]`` (a SQLite file in the run's temporary directory) and a
  virtual key carrying an rpm, a tpm and a budget (all far above what the run spends, so nothing
  is refused, but every limit is checked and counted): authenticate (SHA-256, dict lookup), the
  model rule, the token reservation, the shared-counters decision under its lock, the
  x-ratelimit-* headers, then at the end the reconciliation, the cost and the ledger row;
- ``keyed-redis`` (when ``redis-server`` is installed): the same with ``redis_url``, so every
  decision and release is a Lua script in a real ``redis-server`` on loopback (pinned like the rest).

The verdicts (``keyed - unkeyed``, ``keyed-redis - unkeyed``) are means over sessions with a 95%
confidence interval; ``unkeyed-twin - unkeyed`` must come out within noise, or the run says
nothing. The issue's target: ``keyed - unkeyed`` within 5 µs with local state.

    taskset -c 0 python benchmarks/governance_bench.py [--iterations N] [--rounds R] [--sessions S]
        [--pin CPU|none] [--no-redis] [--json OUT]
"""

import http.client
import importlib.machinery
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402


def _load(name):
    loader = importlib.machinery.SourceFileLoader(name, os.path.join(HERE, name))
    spec = importlib.util.spec_from_loader(name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


reliability = _load("reliability_bench")  # the method: args, rounds, differences, tables
latency_bench = reliability.latency_bench

MODEL = "gpt-4o-mini"
PROVIDER = """\
[providers.openai]
kind = "openai"
base_url = "{upstream}"
api_key = "env:OPENAI_API_KEY"
"""
GOVERNANCE = """
[governance]
path = "{db}"
{redis}
"""
reliability.DIFFERENCES = [
    ("unkeyed-twin", "unkeyed", "A/A control: a second process of the same build, unkeyed"),
    ("keyed", "unkeyed", "a keyed request (rpm, tpm, budget, ledger; local shared counters) vs unkeyed"),
    ("keyed-redis", "unkeyed", "a keyed request with the counters in Redis vs unkeyed"),
    ("keyed-redis", "keyed", "Redis counters vs local counters"),
]


def create_key(db):
    """A key with every limit on, far above what the run spends: its secret."""
    argv = benchlib.alloy_command() + [
        "keys", "create", "--db", db, "--name", "bench", "--rpm", "1000000000", "--tpm", "1000000000",
        "--budget", "1000000", "--budget-period", "30d", "--models", "gpt-4o*",
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, env=benchlib.alloy_env(), cwd=os.sep, timeout=60)
    if done.returncode != 0:
        raise SystemExit(f"alloy keys create failed: {done.stderr}")
    return json.loads(done.stdout)["key"]


def start_redis(procs, pin):
    port = benchlib.free_port()
    argv = benchlib.pin_prefix(pin) + [shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                                       "--save", "", "--appendonly", "no", "--dir", procs.tmp]
    procs.start("redis", argv, ready=b"Ready to accept connections")
    return f"redis://127.0.0.1:{port}/0"


def start_session(procs, pin, db, use_redis, rng):
    mock = benchlib.start_mock(procs, cpus=pin)
    upstream = f"http://127.0.0.1:{mock}/v1"
    redis_url = start_redis(procs, pin) if use_redis else None
    gateways = [("unkeyed", ""), ("unkeyed-twin", ""), ("keyed", GOVERNANCE.format(db=db, redis=""))]
    if use_redis:
        gateways.append(("keyed-redis", GOVERNANCE.format(db=db, redis=f'redis_url = "{redis_url}"')))
    rng.shuffle(gateways)
    ports = {"direct": mock}
    for name, governance in gateways:
        path = os.path.join(procs.tmp, f"{name}.toml")
        with open(path, "w") as f:
            f.write(PROVIDER.format(upstream=upstream) + governance)
        port = benchlib.free_port()
        argv = benchlib.pin_prefix(pin) + benchlib.alloy_command() + [
            "--host", "127.0.0.1", "--port", str(port), "--config", path]  # fmt: skip
        # ALLOY_DB points where nothing exists: the unkeyed gateways have no governance at all.
        env = benchlib.alloy_env({"OPENAI_API_KEY": benchlib.API_KEY, "ALLOY_DB": os.path.join(procs.tmp, "none.db")})
        procs.start(name, argv, env=env)
        ports[name] = port
    return ports


def check(port, body, auth, count=4):
    seen = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for _ in range(count):
            conn.request("POST", "/v1/chat/completions", body=body, headers={"Authorization": auth, "Content-Type": "application/json"})
            response = conn.getresponse()
            text = response.read()
            seen.append({"status": response.status, "limit": response.getheader("x-ratelimit-limit-requests"),
                         "remaining": response.getheader("x-ratelimit-remaining-tokens"),
                         "error": text[:200].decode(errors="replace") if response.status != 200 else None})  # fmt: skip
    finally:
        conn.close()
    return seen


def measure(args, procs, targets, body, client, pin, db, secret, use_redis):
    results = {key: {"label": label, "samples": [], "elapsed": 0.0, "errors": 0, "reconnects": 0,
                     "round_medians": [], "round_sessions": []} for key, label in targets}  # fmt: skip
    checks, failures = {}, []
    samples_path = os.path.join(procs.tmp, "samples.txt")
    per_round = args.iterations // args.rounds
    rng = random.Random(args.seed)
    auth = {key: f"Bearer {secret if key.startswith('keyed') else benchlib.API_KEY}" for key, _ in targets}
    with open(body, "rb") as f:
        payload = f.read()
    for session, rounds in enumerate(reliability.session_rounds(args)):
        ports = start_session(procs, pin, db, use_redis, rng)
        for key, _ in targets:
            seen = check(ports[key], payload, auth[key])
            checks.setdefault(key, seen)
            failures += [f"{key} (session {session + 1}): {s['status']} {s['error']}" for s in seen if s["status"] != 200]
            if key.startswith("keyed") and not all(s["limit"] for s in seen):
                failures.append(f"{key}: no x-ratelimit headers: the key's limits are not applied")
        if failures:
            return results, checks, failures
        for first in range(rounds):
            order = list(targets)
            rng.shuffle(order)
            for key, _ in order:
                url = f"http://127.0.0.1:{ports[key]}/v1/chat/completions"
                warmup = args.session_warmup if first == 0 else args.warmup
                r = latency_bench.run_client(client, url, body, per_round, warmup, args.time_limit, pin, samples_path,
                                             headers=(f"Authorization: {auth[key]}",))  # fmt: skip
                procs.alive_check()
                acc = results[key]
                acc["samples"] += r["samples"]
                acc["elapsed"] += r["elapsed_s"]
                acc["errors"] += r["errors"]
                acc["reconnects"] += r["reconnects"]
                acc["round_medians"].append(r["median_us"])
                acc["round_sessions"].append(session)
        reliability.stop_session(procs)
    for acc in results.values():
        acc.update(benchlib.summarise(acc.pop("samples"), acc.pop("elapsed")))
    return results, checks, failures


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    use_redis = shutil.which("redis-server") is not None and "--no-redis" not in argv
    argv = [a for a in argv if a != "--no-redis"]
    args = reliability.parse_args(argv)
    pin = None if args.pin == "none" else args.pin
    client = benchlib.build_client()
    procs = benchlib.Processes()
    meta = benchlib.provenance()
    db = os.path.join(procs.tmp, "governance.db")
    secret = create_key(db)
    body = benchlib.write_body(procs, "chat.json", benchlib.chat_body(args.small_bytes, model=MODEL))
    targets = [
        ("direct", "direct to mock"),
        ("unkeyed", "unkeyed (no governance)"),
        ("unkeyed-twin", "unkeyed, a second process (A/A control)"),
        ("keyed", "keyed: rpm, tpm, budget, ledger (local counters)"),
    ]
    if use_redis:
        targets.append(("keyed-redis", "keyed, counters in Redis (one Lua round trip to admit, one to release)"))
    results, checks, failures = measure(args, procs, targets, body, client, pin, db, secret, use_redis)
    if failures:
        print("check requests failed:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    rows = reliability.differences(results, args.sessions)
    pin_note = f"client, gateways, mock and redis-server pinned to CPU {pin}" if pin is not None else "not pinned"
    per_round = args.iterations // args.rounds
    print("# Alloy governance: what a keyed request costs\n")
    print(benchlib.provenance_line(meta) + "  ")
    print(f"{pin_note}; POST /v1/chat/completions, {args.small_bytes} B body; {per_round * args.rounds:,} timed "
          f"requests per target in {args.rounds} interleaved rounds (random order, seed {args.seed}) over "
          f"{args.sessions} sessions of freshly started servers; {args.warmup} warm-up requests per round, "
          f"{args.session_warmup} in a session's first\n")  # fmt: skip
    print("Checks (4 requests each before timing): " + "; ".join(
        f"{key}: status {'/'.join(sorted({str(s['status']) for s in seen}))}"
        + (f", x-ratelimit-limit-requests {seen[0]['limit']}" if seen[0]["limit"] else "")
        for key, seen in checks.items() if key != "direct") + "\n")  # fmt: skip
    print("## Latency\n")
    print("\n".join(reliability.latency_table(results)))
    print("\n## Differences\n")
    print("\n".join(reliability.difference_table(rows)))
    print("\nMedian/Mean/P99: of all samples merged. Per round: X's round median minus Y's, measured milliseconds "
          "apart. Per session: the median of a session's per-round differences; the verdict is **measurable** when "
          "the 95% confidence interval of their mean excludes zero. The A/A control must be within noise.\n")
    print("## Summary\n")
    print("\n".join(reliability.summary(rows, results)))
    if args.json:
        out = {"meta": meta, "pin": pin_note, "args": vars(args), "checks": checks, "latency": results, "differences": rows}
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        benchlib.write_json(args.json, out)
    errors = sum(r["errors"] for r in results.values())
    if errors:
        print(f"\n{errors} request(s) failed (non-2xx or connection errors)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Every benchmark script runs a tiny round and prints its table, so the suite cannot rot.

Benchmarks are not tests: nothing here checks a number. Each test runs one script the way the
README tells a user to (small counts), against the ``alloy`` this test run imports (``python -m
alloy``; ``$ALLOY_CMD`` when set), and
checks that it exits 0 and prints its table header. The scripts start and stop their own processes
by PID on loopback; each run is bounded by a timeout.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

import alloy

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(REPO, "benchmarks")
TIMEOUT = 120
# the scripts measure the same alloy this test process imported (installed, or the checkout)
ALLOY_PATH = os.path.dirname(os.path.dirname(os.path.abspath(alloy.__file__)))


def run(argv, timeout=TIMEOUT):
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=ALLOY_PATH + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("ALLOY_CMD", f"{sys.executable} -m alloy")  # set ALLOY_CMD to smoke-test another build
    env.pop("OPENAI_API_KEY", None)  # never call the real API from the test suite
    env.pop("OPENAI_BASE_URL", None)
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{argv[0]} exited {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout


def nginx_available():
    if shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"):
        return True
    # compare.sh installs nginx-light itself when it can
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def test_latency_bench_prints_latency_and_overhead_tables(tmp_path):
    out = run([sys.executable, os.path.join(BENCH, "latency_bench"), "--iterations", "200", "--big-iterations", "20",
               "--warmup", "10", "--rounds", "2", "--json", str(tmp_path / "latency.json")])
    assert "| Target | Min (µs) | Median (µs) | Mean (µs) | P95 (µs) | P99 (µs) | Max (µs) |" in out
    assert "## Overhead (through minus direct)" in out
    result = json.loads((tmp_path / "latency.json").read_text())
    assert result["latency"]["chat-small/alloy"]["requests"] == 200


def test_latency_bench_throughput_mode_prints_its_table():
    out = run([sys.executable, os.path.join(BENCH, "latency_bench"), "--throughput", "-c", "8", "--tool", "client",
               "--requests", "400", "--warmup", "20", "--rounds", "1"])
    assert "| Target (8 connections) | Throughput (req/s) |" in out


def test_reliability_bench_prints_every_target_and_the_differences(tmp_path):
    out = run([sys.executable, os.path.join(BENCH, "reliability_bench"), "--iterations", "200", "--warmup", "20",
               "--rounds", "2", "--json", str(tmp_path / "reliability.json")])
    assert "| Target | Median (µs) | Mean (µs) | P99 (µs) |" in out
    for label in ("direct to mock", "current, plain proxy (", "current, plain proxy, a second process",
                  "current, configured `single`", "current, configured `balanced`"):
        assert f"| {label}" in out
    assert "| Difference | Median (µs) | Mean (µs) | P99 (µs) |" in out
    assert "`plain-twin - plain`" in out and "`balanced - plain`" in out
    result = json.loads((tmp_path / "reliability.json").read_text())
    assert set(result["latency"]) == {"direct", "plain", "plain-twin", "single", "balanced"}
    assert all(r["requests"] == 200 and r["errors"] == 0 for r in result["latency"].values())


@pytest.mark.parametrize("flags", [[], ["--listeners"], ["--keyed"], ["--listeners", "--keyed"], ["--stream"], ["--large"],
                                   ["--realistic"], ["--cors"]], ids=lambda flags: " ".join(flags) or "plain")
def test_request_path_bench_runs_every_mode(flags):
    # Each mode checks that every answer reached the client whole (request_path_bench.build).
    out = run([sys.executable, os.path.join(BENCH, "request_path_bench.py"), "--iterations", "50", "--rounds", "2",
               "--json", *flags])
    assert len(json.loads(out)["us_per_request"]) == 2


def test_e2e_bench_prints_direct_vs_alloy_table():
    out = run(["bash", os.path.join(BENCH, "e2e_bench.sh"), "-n", "2", "--latency-ms", "50"])
    assert "| Measure | Direct (mean) | Through Alloy (mean) | Overhead (µs) |" in out
    assert "Streaming: time to first token" in out


def test_memory_bench_prints_size_and_rss_tables():
    out = run(["bash", os.path.join(BENCH, "memory_bench.sh"), "--requests", "50", "--connections", "20",
               "--streams", "5", "--settle", "0.2"])
    assert "| Artifact | Size |" in out
    assert "| Phase | Run 1 | Run 2 | Run 2 − Run 1 |" in out
    assert "Verdict:" in out


@pytest.mark.skipif(not nginx_available(), reason="nginx is not installed and cannot be installed here "
                    "(compare.sh needs root + apt-get to install nginx-light)")
def test_compare_prints_nginx_next_to_alloy():
    out = run(["bash", os.path.join(BENCH, "compare.sh"), "--quick", "--tool", "client"])
    assert "GET /health — nginx `return 200`" in out
    assert "| Target (64 connections) | Throughput (req/s) |" in out
    assert "## Against the targets" in out


def test_micro_benchmarks_run_correct_and_report_renders(tmp_path):
    saved = tmp_path / "micro.json"
    run([sys.executable, "-P", "-m", "pytest", "benchmarks", "--benchmark-only", "-q", "-p", "no:cacheprovider",
         "--benchmark-min-rounds=1", "--benchmark-max-time=0.002", "--benchmark-warmup=off",
         f"--benchmark-json={saved}"])
    benchmarks = json.loads(saved.read_text())["benchmarks"]
    assert benchmarks
    wrong = [b["name"] for b in benchmarks if not b["extra_info"].get("correct")]
    assert not wrong, f"outputs that did not match the reference: {wrong}"
    out = run([sys.executable, os.path.join(BENCH, "report.py"), str(saved), "--png", str(tmp_path / "micro.png")])
    assert "| Implementation | Median | ops/s | vs slowest | vs pure twin | Correct |" in out
    assert "### Compiled core vs pure-Python twin" in out

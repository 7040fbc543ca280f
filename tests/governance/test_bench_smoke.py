"""benchmarks/governance_bench.py runs a tiny round and prints its tables (so it cannot rot); no
number is checked. Run like tests/test_benchmarks_smoke.py runs the other benchmark scripts."""

import os
import subprocess
import sys

import alloy

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALLOY_PATH = os.path.dirname(os.path.dirname(os.path.abspath(alloy.__file__)))


def test_governance_bench_prints_every_target_and_the_differences(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=ALLOY_PATH + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("ALLOY_CMD", f"{sys.executable} -m alloy")
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    argv = [sys.executable, "benchmarks/governance_bench.py", "--iterations", "40", "--rounds", "2", "--sessions", "2",
            "--warmup", "2", "--session-warmup", "5", "--pin", "none", "--json", str(tmp_path / "out.json")]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "## Differences" in done.stdout and "`keyed - unkeyed`" in done.stdout
    assert "x-ratelimit-limit-requests 1000000000" in done.stdout  # the key's limits were applied
    assert (tmp_path / "out.json").exists()

#!/usr/bin/env bash
# Run every benchmark and archive the results under benchmarks/results/<date>-<commit>/:
#
#   machine.txt        lscpu, kernel, Python, versions of Alloy, nginx, wrk and the compared libraries
#   micro.json         pytest-benchmark run, statistics only  -> micro.md, micro.png (report.py)
#   compare-*.json     latency + throughput: Alloy, nginx and the blind relay on the nginx upstream,
#                      both header variants, and the targets   -> latency.md (tables as printed)
#   e2e.json                                                    -> e2e.md
#   reliability.json   reliability machinery on the success path -> reliability.md
#   memory.md
#   raw/               stdout/stderr of every script, micro run with samples (git-ignored)
#
#   benchmarks/run_all.sh             # the full suite (about 10 minutes)
#   benchmarks/run_all.sh --quick     # small counts: checks the pipeline, numbers not publishable
#   benchmarks/run_all.sh --out DIR   # somewhere else
#
# With ALLOY_BASELINE_CMD set (an alloy from before the reliability work, e.g.
# $BASELINE_VENV/bin/alloy), reliability_bench also measures it: after vs before.
# A failing script is reported and the others still run; the exit status is that of the last failure.
# These VMs are noisy: run the suite twice and compare before publishing anything.
# Saved files name no path of this machine (repository-relative, $BASELINE_VENV...): check_paths.py
# checks them at the end, a hit makes the exit status 1.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
quick=0 out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1; shift ;;
        --out) out="$2"; shift 2 ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run_all.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

commit=$(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
[ -n "$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null)" ] && commit="$commit-dirty"
[ "$quick" = 1 ] && commit="$commit-quick"
out="${out:-$here/results/$(date -u +%Y-%m-%dT%H%M)-$commit}"
mkdir -p "$out/raw"
cd "$repo"
status=0
# Every step measures the same alloy: the installed package when there is one, else this checkout
# (python -P keeps the working directory off sys.path, so the checkout cannot shadow an install).
if ! alloy_site=$(cd / && python3 -c 'import alloy, os; print(os.path.dirname(os.path.dirname(alloy.__file__)))' 2>/dev/null); then
    alloy_site="$repo"
fi
export PYTHONPATH="$alloy_site${PYTHONPATH:+:$PYTHONPATH}"

step() { # step NAME OUTPUT.md COMMAND...: run, keep the log, keep the tables
    local name="$1" md="$2"; shift 2
    echo "== $name: $*" >&2
    if "$@" >"$out/raw/$name.stdout" 2>"$out/raw/$name.stderr"; then
        [ -n "$md" ] && cp "$out/raw/$name.stdout" "$out/$md"
    else
        local rc=$?
        status=$rc
        echo "   $name failed (status $rc); see $out/raw/$name.stderr" >&2
        [ -n "$md" ] && { cp "$out/raw/$name.stdout" "$out/$md"; echo "**$name failed with status $rc**" >>"$out/$md"; }
    fi
}

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit: $commit"
    echo "kernel: $(uname -srvm)"
    echo "python: $(python3 --version 2>&1)"
    echo "alloy: $(${ALLOY_CMD:-python3 -m alloy} --version 2>&1 | head -1)"
    echo "package: $alloy_site/alloy"
    echo "core: $(cd / && python3 -c 'import alloy.core as c; print(c.IMPLEMENTATION)' 2>&1 | tail -1)"
    echo "nginx: $( (nginx -v || /usr/sbin/nginx -v) 2>&1 | head -1)"
    echo "wrk: $(wrk -v 2>&1 | head -1)"
    echo "cc: $(cc --version 2>&1 | head -1)"
    python3 - <<'PY'
from importlib import metadata
for name in ("uvloop", "orjson", "httpx", "httptools", "h11", "pytest-benchmark", "Cython"):
    try:
        print(f"{name}: {metadata.version(name)}")
    except metadata.PackageNotFoundError:
        print(f"{name}: not installed")
PY
    echo
    lscpu
} 2>&1 | python3 "$here/benchlib.py" portable >"$out/machine.txt"  # no path of this machine in it

if [ "$quick" = 1 ]; then
    micro=(--benchmark-min-rounds=3 --benchmark-max-time=0.05)
    compare=(--quick --tool client)
    e2e=(-n 2 --latency-ms 100)
    reliability=(--iterations 400 --warmup 20 --rounds 4)
    memory=(--requests 100 --connections 50 --streams 10 --settle 0.3)
else
    micro=(--benchmark-min-time=0.000005 --benchmark-max-time=1.0 --benchmark-disable-gc)
    compare=()
    e2e=()
    reliability=()
    memory=()
fi
[ -n "${ALLOY_BASELINE_CMD:-}" ] && reliability+=(--baseline-cmd "$ALLOY_BASELINE_CMD")

step micro "" python3 -P -m pytest benchmarks --benchmark-only -q -p no:cacheprovider "${micro[@]}" \
    --benchmark-json="$out/raw/micro-with-samples.json"
if [ -s "$out/raw/micro-with-samples.json" ]; then
    # pytest-benchmark's JSON carries every timing sample; the archived copy keeps the statistics
    python3 - "$here" "$out/raw/micro-with-samples.json" "$out/micro.json" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[1])
import benchlib
run = json.load(open(sys.argv[2]))
for bench in run["benchmarks"]:
    bench["stats"].pop("data", None)
benchlib.write_json(sys.argv[3], run)
PY
    step report micro.md python3 "$here/report.py" "$out/micro.json" --png "$out/micro.png"
fi
step compare latency.md bash "$here/compare.sh" --json-dir "$out" "${compare[@]}"
step e2e e2e.md bash "$here/e2e_bench.sh" --json "$out/e2e.json" "${e2e[@]}"
step reliability reliability.md python3 "$here/reliability_bench" --json "$out/reliability.json" "${reliability[@]}"
step memory memory.md bash "$here/memory_bench.sh" "${memory[@]}"

# the results get committed: nothing in them may name this machine's paths
python3 "$here/check_paths.py" "$out"/*.md "$out"/*.json "$out"/*.txt >&2 || {
    echo "run_all.sh: absolute paths of this machine in the results above (see benchlib.portable)" >&2; status=1; }
echo "results in $out" >&2
exit "$status"

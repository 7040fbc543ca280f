#!/usr/bin/env bash
# Memory benchmark: what Alloy costs on disk and in RAM, and whether RAM returns to a plateau.
#
#   benchmarks/memory_bench.sh                       # 1,000 requests, 1,000 idle connections, 200 streams
#   benchmarks/memory_bench.sh --requests 200 --connections 100 --streams 20   # a small run
#
# - installed size of the compiled extension (alloy/_core*.so) and of the whole installed package
#   (the directory `import alloy` loads from, without __pycache__; plus its dist-info when installed);
# - RSS of `alloy --port P` with no configuration at all (no provider key: it serves the built-in
#   mock), at rest after start;
# - RSS of the alloy process (VmRSS in /proc/PID/status) at rest after start, after N keep-alive chat
#   requests, while N idle client connections are open, after they closed, and after a run of
#   streaming chat requests;
# - the same load is then run a second time: memory a first run allocates for good (caches, pools,
#   freelists) is not a leak, but growth in the second run that the first did not have is. The
#   verdict flags run-2 growth above --leak-kb (default 1024 KB).
#
# The upstream is `alloy mock-upstream` on loopback; every process is started here and stopped by PID.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
requests=1000 connections=1000 streams=200 leak_kb=1024 settle=1

while [ $# -gt 0 ]; do
    case "$1" in
        --requests) requests="$2"; shift 2 ;;
        --connections) connections="$2"; shift 2 ;;
        --streams) streams="$2"; shift 2 ;;
        --leak-kb) leak_kb="$2"; shift 2 ;;
        --settle) settle="$2"; shift 2 ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "memory_bench.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
for v in "$requests" "$connections" "$streams"; do
    if ! [ "$v" -ge 1 ] 2>/dev/null || [ "$v" -gt 100000 ]; then
        echo "memory_bench.sh: counts must be between 1 and 100000" >&2
        exit 2
    fi
done

# --- the alloy command (same rule as benchlib.py: $ALLOY_CMD, alloy on PATH, python -m alloy) ---
if [ -n "${ALLOY_CMD:-}" ]; then
    read -r -a alloy <<<"$ALLOY_CMD"
elif command -v alloy >/dev/null 2>&1; then
    alloy=(alloy)
else
    alloy=(python3 -m alloy)
    export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
fi

# idle connections need file descriptors in the gateway (which inherits this limit) and in the holder
want_fds=$((connections + 512))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want_fds" ]; then
    ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
fi

tmp="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start NAME CMD...: background the command, remember its PID, wait (bounded) for "listening on"
start() {
    local name="$1"; shift
    "$@" >"$tmp/$name.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 300); do
        if grep -q "listening on" "$tmp/$name.log"; then
            echo "$pid" >"$tmp/$name.pid"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "memory_bench.sh: $name did not start:" >&2
    tail -20 "$tmp/$name.log" >&2
    exit 1
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
mb() { awk -v k="$1" 'BEGIN {printf "%.1f MB", k / 1024}'; }
kb_delta() { awk -v k="$1" 'BEGIN {printf "%+d KB", k}'; }

# --- installed size -------------------------------------------------------------------------------
locate_package() {
    python3 -c '
import glob, os
import alloy
d = os.path.dirname(alloy.__file__)
ext = (glob.glob(os.path.join(d, "_core*.so")) + glob.glob(os.path.join(d, "_core*.pyd")) + [""])[0]
print(d, ext or "-")'
}
# the installed package when there is one (run from / so the checkout does not shadow it)
read -r pkg_dir ext_path <<<"$( (cd / && locate_package 2>/dev/null) || (cd "$repo" && locate_package))"
size_kb() { du -sk --exclude=__pycache__ "$@" 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
ext_kb=$([ "$ext_path" != "-" ] && size_kb "$ext_path" || echo 0)
pkg_kb=$(size_kb "$pkg_dir")
dist_info=$(ls -d "$(dirname "$pkg_dir")"/alloy_gateway-*.dist-info 2>/dev/null | head -1 || true)
if [ -n "$dist_info" ] && [ "$(dirname "$pkg_dir")" != "$repo" ]; then
    where="installed in $(dirname "$pkg_dir")"
    pkg_kb=$((pkg_kb + $(size_kb "$dist_info")))
else
    where="checkout at $pkg_dir (not pip-installed: includes sources such as _core.c)"
fi
where=$(printf '%s' "$where" | python3 "$here/benchlib.py" portable)  # no path of this machine in the report

# --- load generators ----------------------------------------------------------------------------
client="$here/latency_client"
if [ ! -x "$client" ] || [ "$client" -ot "$here/latency_client.c" ]; then
    "${CC:-cc}" -O2 -o "$client" "$here/latency_client.c"
fi
python3 - "$tmp" <<'PY'
import json, sys
doc = {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Summarise the attached quarterly report in three bullet points, please. " * 3}]}
open(f"{sys.argv[1]}/chat.json", "w").write(json.dumps(doc))
open(f"{sys.argv[1]}/stream.json", "w").write(json.dumps(dict(doc, stream=True)))
PY

# hold_connections N SECONDS: open N connections to alloy, send nothing, report, hold, close
cat >"$tmp/hold.py" <<'PY'
import socket, sys, time
port, n, ready_file, release_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    socks.append(s)
open(ready_file, "w").write(str(len(socks)))
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        open(release_file).close()
        break
    except OSError:
        time.sleep(0.05)
for s in socks:
    s.close()
PY

cd "$tmp"  # never the source tree: "-m alloy" must load the package being measured
mock_port=$(free_port)
start mock "${alloy[@]}" mock-upstream --host 127.0.0.1 --port "$mock_port"
alloy_port=$(free_port)
OPENAI_API_KEY=sk-alloy-bench OPENAI_BASE_URL="http://127.0.0.1:$mock_port/v1" \
    start alloy "${alloy[@]}" --host 127.0.0.1 --port "$alloy_port"
apid=$(cat "$tmp/alloy.pid")
url="http://127.0.0.1:$alloy_port/v1/chat/completions"
auth="Authorization: Bearer sk-alloy-bench"

alive() {
    if ! kill -0 "$apid" 2>/dev/null; then
        echo "memory_bench.sh: alloy died:" >&2
        tail -20 "$tmp/alloy.log" >&2
        exit 1
    fi
}
settle() { sleep "$settle"; alive; }

errors=0
count_errors() { errors=$(( errors + $(sed -n 's/.*"errors": \([0-9]*\).*/\1/p' "$tmp/out.json") )); }

declare -A rss
settle
rss[start]=$(rss_kb "$apid")

# `alloy --port P` as a first run would start it: no configuration, no provider key in the
# environment (it serves the built-in mock); measured at rest, then stopped.
unset_keys=(-u ALLOY_CONFIG)
for name in $(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*_API_KEY\)=.*/\1/p'); do unset_keys+=(-u "$name"); done
bare_port=$(free_port)
start bare env "${unset_keys[@]}" "${alloy[@]}" --host 127.0.0.1 --port "$bare_port"
bpid=$(cat "$tmp/bare.pid")
settle
rss[bare]=$(rss_kb "$bpid")
kill "$bpid" 2>/dev/null || true

run_load() { # run_load ROUND
    local r="$1" n
    rss[$r.before]=$(rss_kb "$apid")
    "$client" --json -n "$requests" -w 0 -t 120 -H "$auth" -b "$tmp/chat.json" -l requests "$url" >"$tmp/out.json"
    count_errors
    settle
    rss[$r.requests]=$(rss_kb "$apid")
    rm -f "$tmp/ready" "$tmp/release"
    python3 "$tmp/hold.py" "$alloy_port" "$connections" "$tmp/ready" "$tmp/release" &
    local holder=$!
    pids+=("$holder")
    for _ in $(seq 600); do [ -s "$tmp/ready" ] && break; kill -0 "$holder" 2>/dev/null || break; sleep 0.1; done
    if [ ! -s "$tmp/ready" ]; then echo "memory_bench.sh: could not open $connections connections" >&2; exit 1; fi
    settle
    rss[$r.held]=$(rss_kb "$apid")
    touch "$tmp/release"
    wait "$holder" || true
    settle
    rss[$r.closed]=$(rss_kb "$apid")
    n=$(( streams < 8 ? streams : 8 ))
    "$client" --json -c "$n" -n "$streams" -w 0 -t 120 -H "$auth" -b "$tmp/stream.json" -l streams "$url" >"$tmp/out.json"
    count_errors
    settle
    rss[$r.streams]=$(rss_kb "$apid")
}
run_load 1
run_load 2
alive
hwm=$(hwm_kb "$apid")

commit=$(git -C "$repo" rev-parse --short=12 HEAD 2>/dev/null || echo "?")
version=$("${alloy[@]}" --version 2>/dev/null | head -1 || true)
echo "# Alloy memory benchmark"
echo
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) · commit $commit · $(nproc) CPU $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo) · Linux $(uname -r) · ${version:-alloy ?}  "
echo "Package: $where"
echo
echo "## Installed size"
echo
echo "| Artifact | Size |"
echo "|---|---:|"
echo "| Compiled extension ($(basename "${ext_path}")) | ${ext_kb} KB |"
echo "| Whole package (without __pycache__) | ${pkg_kb} KB |"
echo
echo "## Resident memory (VmRSS of the alloy process)"
echo
echo "| Phase | Run 1 | Run 2 | Run 2 − Run 1 |"
echo "|---|---:|---:|---:|"
echo "| At rest after start, no configuration (built-in mock) | $(mb "${rss[bare]}") | | |"
echo "| At rest after start, in front of a provider | $(mb "${rss[start]}") | | |"
row() { echo "| $1 | $(mb "${rss[1.$2]}") | $(mb "${rss[2.$2]}") | $(kb_delta $(( ${rss[2.$2]} - ${rss[1.$2]} ))) |"; }
row "After $requests keep-alive chat requests" requests
row "With $connections idle connections open" held
row "After those connections closed" closed
row "After $streams streaming chat requests" streams
echo
echo "Peak RSS (VmHWM): $(mb "$hwm")  "
echo "Failed requests during the load: $errors  "
run1_growth=$(( ${rss[1.streams]} - ${rss[start]} ))
run2_growth=$(( ${rss[2.streams]} - ${rss[2.before]} ))
per_req=$(( ${rss[2.requests]} - ${rss[2.before]} ))
echo "Growth over run 1 (first use: caches, pools): $(kb_delta "$run1_growth")  "
echo "Growth over run 2 (the same load again): $(kb_delta "$run2_growth")  "
echo "Growth per $requests requests after warm-up (run 2): $(kb_delta "$per_req")  "
if [ "$run2_growth" -gt "$leak_kb" ]; then
    echo "Verdict: **GROWING** -- the second identical run added $(kb_delta "$run2_growth") (threshold ${leak_kb} KB): memory does not plateau"
else
    echo "Verdict: plateau -- the second identical run added $(kb_delta "$run2_growth") (threshold ${leak_kb} KB)"
fi

#!/usr/bin/env bash
# End-to-end comparison: the same chat completion sent direct to the provider and through Alloy,
# interleaved (A B, then B A, ...), reporting the average latency of each side, Alloy's overhead in µs
# and in % of the request, and the same for streaming: time to first token (first content delta).
#
#   benchmarks/e2e_bench.sh                 # 20 requests per side and mode (-n)
#   benchmarks/e2e_bench.sh -n 50 --json e2e.json
#
# With OPENAI_API_KEY set it calls the real API (OPENAI_BASE_URL, default https://api.openai.com/v1;
# model gpt-4o-mini, --model to change). Without it, `alloy mock-upstream --latency-ms 800
# --jitter 0.25` stands in, so the comparison is reproducible offline. With the real API each request
# costs tokens: the count is bounded by -n, and every request asks for at most 16 tokens.
#
# One persistent client connection per side (TLS set up during an untimed warm-up request), so both
# sides pay the same connection costs. The overhead is the mean of paired differences (each Alloy
# request against the direct one next to it) with its 95% confidence interval: at 800 ms ± 25% the
# interval is far wider than the overhead (e2e.md of a saved run), which is the honest answer to
# "what does Alloy add to a real LLM call" -- it is lost in the provider's own variation.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
n=20 model="gpt-4o-mini" latency_ms=800 jitter=0.25 json_out="" stream=1

while [ $# -gt 0 ]; do
    case "$1" in
        -n) n="$2"; shift 2 ;;
        --model) model="$2"; shift 2 ;;
        --latency-ms) latency_ms="$2"; shift 2 ;;
        --jitter) jitter="$2"; shift 2 ;;
        --json) json_out="$2"; shift 2 ;;
        --no-stream) stream=0; shift ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "e2e_bench.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

if ! [ "$n" -ge 1 ] 2>/dev/null || [ "$n" -gt 1000 ]; then
    echo "e2e_bench.sh: -n must be between 1 and 1000" >&2
    exit 2
fi

exec python3 - "$here" "$n" "$model" "$latency_ms" "$jitter" "$json_out" "$stream" <<'PY'
import http.client
import json
import os
import sys
import time
import urllib.parse

here, n, model, latency_ms, jitter, json_out, stream = sys.argv[1:]
n, stream = int(n), stream == "1"
sys.path.insert(0, here)
import benchlib

REQUEST_TIMEOUT = 120


class Side:
    """One persistent HTTP/1.1 connection to a base URL."""

    def __init__(self, name, base_url, key):
        url = urllib.parse.urlsplit(base_url)
        self.name, self.key, self.path = name, key, url.path.rstrip("/") + "/chat/completions"
        cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        self.conn = cls(url.hostname, url.port, timeout=REQUEST_TIMEOUT)

    def _send(self, body):
        self.conn.request("POST", self.path, body=body, headers={
            "Authorization": f"Bearer {self.key}", "Content-Type": "application/json", "Accept": "application/json"})
        return self.conn.getresponse()

    def complete(self, body):
        """Seconds until the whole response was read."""
        start = time.perf_counter()
        try:
            response = self._send(body)
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()  # one retry on a fresh connection: a dropped keep-alive is not a result
            response = self._send(body)
            data = response.read()
        elapsed = time.perf_counter() - start
        if response.status != 200:
            raise SystemExit(f"{self.name}: HTTP {response.status}: {data[:300]!r}")
        return elapsed

    def stream(self, body):
        """(seconds to the first content delta, seconds to the end of the stream)."""
        start = time.perf_counter()
        response = self._send(body)
        if response.status != 200:
            raise SystemExit(f"{self.name}: HTTP {response.status}: {response.read()[:300]!r}")
        first = None
        while True:
            line = response.readline()
            if not line:
                break
            if first is None and line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
                try:
                    choices = json.loads(line[5:]).get("choices") or [{}]
                except ValueError:
                    continue
                if (choices[0].get("delta") or {}).get("content"):
                    first = time.perf_counter() - start
        total = time.perf_counter() - start
        return (first if first is not None else total), total


def chat(stream_):
    return json.dumps({"model": model, "max_tokens": 16, "stream": stream_, "messages": [
        {"role": "user", "content": "Reply with one short sentence about the sea."}]}).encode()


def paired(direct, through):
    diffs = [b - a for a, b in zip(direct, through)]
    mean = sum(diffs) / len(diffs)
    sd = (sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)) ** 0.5 if len(diffs) > 1 else 0.0
    return mean, 1.96 * sd / len(diffs) ** 0.5


def row(label, direct, through):
    a, b = sum(direct) / len(direct), sum(through) / len(through)
    over, ci = paired(direct, through)
    return {"measure": label, "direct_mean_ms": a * 1e3, "alloy_mean_ms": b * 1e3, "overhead_us": over * 1e6,
            "overhead_ci95_us": ci * 1e6, "overhead_pct": over / a * 100 if a else 0.0, "n": len(direct),
            "direct_median_ms": sorted(direct)[len(direct) // 2] * 1e3, "alloy_median_ms": sorted(through)[len(through) // 2] * 1e3}


procs = benchlib.Processes()
real = bool(os.environ.get("OPENAI_API_KEY"))
if real:
    upstream = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1").rstrip("/")
    key = os.environ["OPENAI_API_KEY"]
    where = f"the real API at {upstream} (model {model})"
else:
    mock_port = benchlib.start_mock(procs, latency_ms=latency_ms, jitter=jitter)
    upstream, key = f"http://127.0.0.1:{mock_port}/v1", benchlib.API_KEY
    where = f"alloy mock-upstream with --latency-ms {latency_ms} --jitter {jitter} (no real provider: OPENAI_API_KEY unset)"
alloy_port, _ = benchlib.start_alloy(procs, upstream, api_key=key)
direct = Side("direct", upstream, key)
through = Side("alloy", f"http://127.0.0.1:{alloy_port}/v1", benchlib.API_KEY if not real else "unused-by-alloy")

modes = [("complete", False)] + ([("stream", True)] if stream else [])
samples = {(mode, side): [] for mode, _ in modes for side in ("direct", "alloy")}
ttft = {"direct": [], "alloy": []}
for side in (direct, through):  # untimed: opens the connection (and TLS) on both sides
    side.complete(chat(False))
for i in range(n):
    order = (direct, through) if i % 2 == 0 else (through, direct)
    for mode, is_stream in modes:
        for side in order:
            if is_stream:
                first, total = side.stream(chat(True))
                ttft[side.name].append(first)
                samples[(mode, side.name)].append(total)
            else:
                samples[(mode, side.name)].append(side.complete(chat(False)))
        procs.alive_check()

rows = [row("Chat completion (non-streaming)", samples[("complete", "direct")], samples[("complete", "alloy")])]
if stream:
    rows.append(row("Streaming: time to first token", ttft["direct"], ttft["alloy"]))
    rows.append(row("Streaming: whole stream", samples[("stream", "direct")], samples[("stream", "alloy")]))

meta = benchlib.provenance()
print("# Alloy end-to-end benchmark\n")
print(benchlib.provenance_line(meta) + "  ")
print(f"Upstream: {where}; {n} requests per side and mode, interleaved (A B / B A)\n")
print("| Measure | Direct (mean) | Through Alloy (mean) | Overhead (µs) | ± 95% CI (µs) | Overhead (%) |")
print("|---|---:|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r['measure']} | {r['direct_mean_ms']:.1f} ms | {r['alloy_mean_ms']:.1f} ms | {r['overhead_us']:,.0f} | "
          f"{r['overhead_ci95_us']:,.0f} | {r['overhead_pct']:+.2f}% |")
if json_out:
    benchlib.write_json(json_out, {"meta": meta, "upstream": where, "n": n, "rows": rows})
PY

"""Wire A/B for POST /v1/responses: this build (A) against the build before the Responses work
(B, a `git archive` of 780548b with its core built), both in front of the same mock upstream and
Anthropic emulator, every process and the compiled latency_client pinned to one CPU; targets in
interleaved rounds, a fresh random order each round; the median of each round, then the mean of
the per-round medians. Usage: python wire_ab.py REPO BASE OUT_DIR [rounds] [n]"""
import json, os, random, re, signal, statistics, subprocess, sys, tempfile, time

REPO, BASE, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
ROUNDS = int(sys.argv[4]) if len(sys.argv) > 4 else 8
N = int(sys.argv[5]) if len(sys.argv) > 5 else 2000
PIN = ["taskset", "-c", "0"]
PY = sys.executable
procs = []


def start(argv, cwd, env_extra=None, pattern=rb"listening on http://127\.0\.0\.1:(\d+)"):
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.endswith("_BASE_URL")}
    env.pop("PYTHONPATH", None)
    env.update(env_extra or {})
    p = subprocess.Popen(PIN + argv, cwd=cwd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    procs.append(p)
    buf = b""
    deadline = time.time() + 30
    while time.time() < deadline:
        line = p.stderr.readline()
        buf += line
        m = re.search(pattern, buf)
        if m:
            return int(m.group(1))
    raise SystemExit(f"no start: {argv}: {buf[-2000:]!r}")


try:
    mock = start([PY, "-m", "alloy", "mock-upstream", "--host", "127.0.0.1", "--port", "0"], REPO)
    claude = start([PY, os.path.join(REPO, "tests/emulators/anthropic.py"), "--port", "0"], REPO)
    tmp = tempfile.mkdtemp()
    cfg = os.path.join(tmp, "alloy.toml")
    with open(cfg, "w") as f:
        f.write(f'[providers.openai]\nbase_url = "http://127.0.0.1:{mock}/v1"\napi_key = "sk"\n'
                f'[providers.anthropic]\nbase_url = "http://127.0.0.1:{claude}"\napi_key = "sk"\n'
                f'[wildcards]\n"gpt-*" = "openai"\n')
    gw_pattern = rb"http://127\.0\.0\.1:(\d+)"
    cfg_a = os.path.join(tmp, "alloy-a.toml")
    with open(cfg, "r") as f, open(cfg_a, "w") as g:  # A also has a provider without Responses
        g.write(f.read() + f'[providers.chatonly]\nbase_url = "http://127.0.0.1:{mock}/v1"\napi_key = "sk"\n'
                'responses_api = false\n')
    a = start([PY, "-m", "alloy", "--host", "127.0.0.1", "--port", "0", "--config", cfg_a], REPO, pattern=gw_pattern)
    b = start([PY, "-m", "alloy", "--host", "127.0.0.1", "--port", "0", "--config", cfg], BASE,
              {"PYTHONPATH": BASE}, pattern=gw_pattern)
    bodies = {
        "responses-gpt": {"model": "gpt-4o-mini", "input": "What is the capital of France? Answer in one sentence.",
                          "instructions": "You are a concise assistant.", "max_output_tokens": 64},
        "chat-gpt": {"model": "gpt-4o-mini", "max_tokens": 64, "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "What is the capital of France? Answer in one sentence."}]},
        "responses-claude": {"model": "claude-3-5-haiku-20241022", "input": "What is the capital of France? Answer in one sentence.",
                             "instructions": "You are a concise assistant.", "max_output_tokens": 64},
        "responses-chatonly": {"model": "chatonly/gpt-4o-mini", "input": "What is the capital of France? Answer in one sentence.",
                               "instructions": "You are a concise assistant.", "max_output_tokens": 64},
        "messages-gpt": {"model": "gpt-4o-mini", "max_tokens": 64, "system": "You are a concise assistant.",
                         "messages": [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]},
        "chat-claude": {"model": "claude-3-5-haiku-20241022", "max_tokens": 64, "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "What is the capital of France? Answer in one sentence."}]},
    }
    files = {}
    for name, body in bodies.items():
        files[name] = os.path.join(tmp, name + ".json")
        with open(files[name], "w") as f:
            json.dump(body, f)
    path = {"responses": "/v1/responses", "chat": "/v1/chat/completions", "messages": "/v1/messages"}
    targets = {
        "A responses -> openai (passthrough)": (a, "responses-gpt"),
        "B responses -> openai (passthrough, before)": (b, "responses-gpt"),
        "A chat -> openai (control)": (a, "chat-gpt"),
        "B chat -> openai (control, before)": (b, "chat-gpt"),
        "A responses -> anthropic (translated)": (a, "responses-claude"),
        "A chat -> anthropic (translated)": (a, "chat-claude"),
        "A responses -> openai chat completions (translated)": (a, "responses-chatonly"),
        "A messages -> openai chat completions (translated)": (a, "messages-gpt"),
    }
    client = os.path.join(REPO, "benchmarks/latency_client")
    medians = {t: [] for t in targets}
    rng = random.Random(1)
    for r in range(ROUNDS):
        order = list(targets)
        rng.shuffle(order)
        for t in order:
            port, body = targets[t]
            url = f"http://127.0.0.1:{port}{path[body.split('-')[0]]}"
            out = subprocess.run(PIN + [client, "-n", str(N), "-w", "200", "-b", files[body], "--json", url],
                                 capture_output=True, text=True, timeout=120)
            res = json.loads(out.stdout)
            assert res.get("errors", 0) == 0, (t, out.stdout, out.stderr)
            medians[t].append(res["p50_us"] if "p50_us" in res else res["median_us"])
    rows = []
    for t, ms in medians.items():
        mean = statistics.mean(ms)
        sd = statistics.stdev(ms) if len(ms) > 1 else 0.0
        rows.append((t, mean, sd, ms))
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "wire.json"), "w") as f:
        json.dump({"rounds": ROUNDS, "requests_per_round": N, "median_us_per_round": medians}, f, indent=1)
    lines = ["| target | mean of round medians (us) | sd across rounds |", "|---|---:|---:|"]
    lines += [f"| {t} | {m:.1f} | {s:.1f} |" for t, m, s, _ in rows]
    def diff(x, y):
        d = [p - q for p, q in zip(medians[x], medians[y])]
        return statistics.mean(d), statistics.stdev(d) / len(d) ** 0.5 * 2.36
    for x, y in (("A responses -> openai (passthrough)", "B responses -> openai (passthrough, before)"),
                 ("A chat -> openai (control)", "B chat -> openai (control, before)"),
                 ("A responses -> anthropic (translated)", "A chat -> anthropic (translated)"),
                 ("A responses -> openai (passthrough)", "A chat -> openai (control)"),
                 ("A responses -> openai chat completions (translated)", "A chat -> openai (control)"),
                 ("A messages -> openai chat completions (translated)", "A chat -> openai (control)"),
                 ("A responses -> openai chat completions (translated)", "A messages -> openai chat completions (translated)")):
        m, ci = diff(x, y)
        lines.append(f"\n{x} - {y}: {m:+.1f} +- {ci:.1f} us (paired per round, ~95% CI)")
    text = "\n".join(lines)
    with open(os.path.join(OUT, "wire.md"), "w") as f:
        f.write(text + "\n")
    print(text)
finally:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()

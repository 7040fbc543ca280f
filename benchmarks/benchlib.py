"""Shared plumbing of the macro benchmarks (latency_bench, compare.sh, e2e_bench.sh, memory_bench.sh):
finding the ``alloy`` command, building the C client, starting and stopping processes by PID,
nginx as a reverse proxy, nginx as the fast upstream (``nginx_upstream``), the blind relay
(``blind_relay.py``), the request bodies, the statistics of merged samples, and reports
without this machine's paths (``portable``; ``python3 benchlib.py portable`` as a filter).

Rules kept here so every script keeps them:
- every process is started by us, remembered by PID, and stopped by that PID (SIGTERM, then
  SIGKILL after 5 s), also when the script is interrupted;
- everything listens on 127.0.0.1 only, on ports the kernel handed out;
- every wait is bounded (``READY_TIMEOUT``);
- what is saved (JSON, tables) holds no absolute path of this machine: results are committed
  (``portable``, ``write_json``; ``check_paths.py`` checks the folder).
"""

import atexit
import datetime
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CLIENT_SOURCE = os.path.join(HERE, "latency_client.c")
CLIENT = os.path.join(HERE, "latency_client")
READY_TIMEOUT = 30.0
API_KEY = "sk-alloy-bench"

# --- the alloy command ----------------------------------------------------------------------------


def alloy_command():
    """``$ALLOY_CMD`` (split like a shell would), else ``alloy`` on PATH (the installed package),
    else ``python -m alloy`` from this checkout. Processes run from a temporary directory, so
    ``-m alloy`` never picks up the source tree by accident."""
    if os.environ.get("ALLOY_CMD"):
        return shlex.split(os.environ["ALLOY_CMD"])
    found = shutil.which("alloy")
    if found:
        return [found]
    return [sys.executable, "-m", "alloy"]


def alloy_env(extra=None):
    env = dict(os.environ)
    if not shutil.which("alloy") and not env.get("ALLOY_CMD"):
        env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


# --- the C client -------------------------------------------------------------------------------


def build_client():
    """Compile latency_client.c when the binary is missing or older than its source."""
    if os.path.exists(CLIENT) and os.path.getmtime(CLIENT) >= os.path.getmtime(CLIENT_SOURCE):
        return CLIENT
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise SystemExit("no C compiler (cc) found: apt-get install -y gcc")
    subprocess.run([compiler, "-O2", "-o", CLIENT, CLIENT_SOURCE], check=True)
    return CLIENT


# --- processes ----------------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pin_prefix(cpus):
    """``taskset -c CPUS`` or nothing when ``cpus`` is None/empty."""
    if not cpus:
        return []
    if not shutil.which("taskset"):
        raise SystemExit("taskset not found (util-linux); use --pin none")
    return ["taskset", "-c", str(cpus)]


class Processes:
    """The processes one benchmark started; stopped by PID at exit, on SIGTERM/SIGINT, or on demand."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="alloy-bench-")
        self.started = []  # (name, Popen)
        atexit.register(self.stop_all)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame):
        self.stop_all()
        raise SystemExit(128 + signum)

    def start(self, name, argv, env=None, ready=b"listening on", cwd=None):
        """Start ``argv``, stderr+stdout to ``<tmp>/<name>.log``; wait until the log shows ``ready``
        (or, with ``ready=None``, until the process is merely running)."""
        log_path = os.path.join(self.tmp, f"{name}.log")
        log = open(log_path, "wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=cwd or self.tmp)
        log.close()
        self.started.append((name, proc))
        deadline = time.monotonic() + READY_TIMEOUT
        while ready is not None:
            with open(log_path, "rb") as f:
                if ready in f.read():
                    break
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with status {proc.returncode} before it was ready:\n"
                                 f"  {shlex.join(argv)}\n{self.log_tail(name)}")
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} not ready after {READY_TIMEOUT:.0f} s:\n{self.log_tail(name)}")
            time.sleep(0.05)
        return proc

    def log_tail(self, name, lines=20):
        try:
            with open(os.path.join(self.tmp, f"{name}.log"), "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
        except OSError:
            return ""

    def stop(self, proc):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.started = [(n, p) for n, p in self.started if p is not proc]

    def stop_all(self):
        for _, proc in reversed(list(self.started)):
            self.stop(proc)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def alive_check(self):
        """Raise when one of our servers died during the run (a crash is a result, not noise)."""
        for name, proc in self.started:
            if proc.poll() is not None:
                raise SystemExit(f"{name} died (status {proc.returncode}) during the run:\n{self.log_tail(name)}")


def start_mock(procs, cpus=None, latency_ms=None, jitter=None, extra=()):
    port = free_port()
    argv = pin_prefix(cpus) + alloy_command() + ["mock-upstream", "--host", "127.0.0.1", "--port", str(port)]
    if latency_ms is not None:
        argv += ["--latency-ms", str(latency_ms)]
    if jitter is not None:
        argv += ["--jitter", str(jitter)]
    procs.start("mock-upstream", argv + list(extra), env=alloy_env())
    return port


def start_alloy(procs, upstream_url, cpus=None, api_key=API_KEY, extra=()):
    port = free_port()
    argv = pin_prefix(cpus) + alloy_command() + ["--host", "127.0.0.1", "--port", str(port)] + list(extra)
    env = alloy_env({"OPENAI_API_KEY": api_key, "OPENAI_BASE_URL": upstream_url})
    proc = procs.start("alloy", argv, env=env)
    return port, proc


# --- nginx --------------------------------------------------------------------------------------

NGINX_CONF = """\
# nginx as a plain reverse proxy: the reference any proxy is compared against.
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    client_max_body_size 64m;
    client_body_buffer_size 1m;   # a 200 KB body stays in memory, as it does in Alloy
    tcp_nodelay on;
    upstream backend {{
        server 127.0.0.1:{upstream_port};
        keepalive 128;
        keepalive_requests 10000000;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /health {{
            default_type application/json;
            return 200 '{{"status":"ok"}}';
        }}
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""


def nginx_binary(install=True):
    """The nginx binary; installs nginx-light with apt-get when it is missing and we may."""
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.path.exists(candidate):
            return candidate
    if not install:
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit("nginx is not installed and cannot be installed here (needs root + apt-get): "
                         "apt-get install -y nginx-light")
    print("nginx not found: apt-get install -y nginx-light", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(["apt-get", "install", "-y", "-q", "nginx-light"], env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "nginx-light"], env=env, check=True)
    return nginx_binary(install=False)


def wrk_binary(install=True):
    """wrk, the throughput load generator; installed with apt-get when missing and we may (root),
    else None (latency_bench then uses the C client's epoll mode)."""
    found = shutil.which("wrk")
    if found or not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    print("wrk not found: apt-get install -y wrk", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    if subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], **quiet).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], **quiet)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], **quiet)
    return shutil.which("wrk")


def start_nginx(procs, upstream_port, cpus=None):
    binary = nginx_binary()
    port = free_port()
    conf = os.path.join(procs.tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(tmp=procs.tmp, port=port, upstream_port=upstream_port))
    # nginx has no "listening" line: wait until the port accepts connections
    proc = procs.start("nginx", pin_prefix(cpus) + [binary, "-c", conf, "-p", procs.tmp, "-e", os.path.join(procs.tmp, "nginx-error.log")],
                       ready=None)
    wait_for_port(port, proc, procs, "nginx")
    return port, proc


def start_nginx_upstream(procs, requests, cpus=None, workers=1):
    """nginx serving fixed answers to the three chat requests ({kind: body}; see nginx_upstream.py):
    returns (port, facts about the answers)."""
    import nginx_upstream

    binary = nginx_binary()
    directory = os.path.join(procs.tmp, "upstream-nginx")
    port = free_port()
    conf, facts = nginx_upstream.prepare(directory, port, requests, workers)
    # started as root, nginx's workers run as nobody: they must reach the answer files
    for path in (procs.tmp, directory, os.path.join(directory, "replies")):
        os.chmod(path, 0o711)
    proc = procs.start("upstream-nginx", pin_prefix(cpus) + [binary, "-c", conf, "-p", directory, "-e",
                                                              os.path.join(directory, "nginx-error.log")], ready=None)
    wait_for_port(port, proc, procs, "upstream-nginx")
    return port, facts


# --- the blind relay ----------------------------------------------------------------------------


def relay_python():
    """A Python that has uvloop, for blind_relay.py: this one, else alloy's own interpreter (the
    relay on plain asyncio would be a different, slower floor)."""
    candidates = [sys.executable]
    command = alloy_command()
    if "python" in os.path.basename(command[0]):
        candidates.append(command[0])
    else:
        try:
            with open(shutil.which(command[0]) or command[0], "rb") as f:
                line = f.readline()
            if line.startswith(b"#!"):
                candidates.append(line[2:].decode().split()[0])
        except (OSError, TypeError, UnicodeDecodeError, IndexError):
            pass
    for python in candidates:
        if subprocess.run([python, "-c", "import uvloop"], capture_output=True, env=alloy_env()).returncode == 0:
            return python
    raise SystemExit("blind_relay.py needs uvloop (pip install uvloop), in this Python or alloy's")


def start_relay(procs, upstream_port, cpus=None):
    port = free_port()
    argv = pin_prefix(cpus) + [relay_python(), os.path.join(HERE, "blind_relay.py"), "--host", "127.0.0.1",
                               "--port", str(port), "--upstream", f"127.0.0.1:{upstream_port}"]
    proc = procs.start("blind-relay", argv, env=alloy_env())
    return port, proc


def wait_for_port(port, proc, procs, name):
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with status {proc.returncode}:\n{procs.log_tail(name)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{name} is not accepting connections on {port} after {READY_TIMEOUT:.0f} s")


# --- request bodies -----------------------------------------------------------------------------


def chat_body(size, stream=False, model="gpt-4o-mini"):
    """A chat completion request of about ``size`` bytes (the user message is padded)."""
    doc = {"model": model, "messages": [{"role": "system", "content": "You are a helpful assistant."},
                                        {"role": "user", "content": ""}], "max_tokens": 16, "stream": stream}
    base = len(json.dumps(doc, separators=(",", ":")))
    sentence = "Summarise the attached quarterly report in three bullet points, please. "
    text = (sentence * (max(size - base, 0) // len(sentence) + 1))[: max(size - base, 0)]
    doc["messages"][1]["content"] = text
    return json.dumps(doc, separators=(",", ":")).encode()


def stream_body(small_body):
    """The stream request: the ~300 B request with ``"stream": true`` and
    ``stream_options.include_usage`` (as most SDK-based clients ask for usage); its length differs from
    the small request's, which the nginx upstream's map relies on."""
    doc = json.loads(small_body)
    doc["stream"] = True
    doc["stream_options"] = {"include_usage": True}
    return json.dumps(doc, separators=(",", ":")).encode()


def write_body(procs, name, body):
    path = os.path.join(procs.tmp, name)
    with open(path, "wb") as f:
        f.write(body)
    return path


# --- statistics ---------------------------------------------------------------------------------


def percentile(sorted_values, p):
    """Nearest-rank percentile (the C client's definition)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


def summarise(samples_us, elapsed_s):
    values = sorted(samples_us)
    n = len(values)
    if not n:
        return {"requests": 0}
    mean = sum(values) / n
    return {
        "requests": n,
        "min_us": values[0],
        "median_us": percentile(values, 50),
        "mean_us": mean,
        "p95_us": percentile(values, 95),
        "p99_us": percentile(values, 99),
        "max_us": values[-1],
        "stdev_us": (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5 if n > 1 else 0.0,
        "rps": n / elapsed_s if elapsed_s else 0.0,
    }


# --- provenance ---------------------------------------------------------------------------------


def provenance():
    def run(argv, cwd):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=10, env=alloy_env())
        except (OSError, subprocess.SubprocessError):
            return ""
        text = (done.stdout or done.stderr).strip() if done.returncode == 0 else ""
        return text.splitlines()[0] if text else ""

    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": run(["git", "rev-parse", "--short=12", "HEAD"], REPO),
        "dirty": bool(run(["git", "status", "--porcelain", "--untracked-files=no"], REPO)),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": os.uname().release,
        "python": sys.version.split()[0],
        "alloy": run(alloy_command() + ["--version"], os.sep),
    }


def provenance_line(meta):
    return (f"{meta['date']} · commit {meta['commit']}{' (dirty)' if meta['dirty'] else ''} · "
            f"{meta['cpus']} CPU {meta['cpu_model']} · Linux {meta['kernel']} · Python {meta['python']} · "
            f"{meta['alloy'] or 'alloy ?'}")


# --- portable reports -----------------------------------------------------------------------------

# An absolute path under a root that names this machine's layout (not a URL's path: the character
# before it must not be part of a word, a path or a variable name).
MACHINE_PATH = re.compile(r"(?<![\w.~$/-])/(?:work|root|tmp|home|usr|opt|var|srv|mnt|media|nix|private|Users|scratch)"
                          r"(?![\w.-])(?:/[^\s`'\"<>|,;:()\[\]{}]*)?")
# the same on every Linux machine the scripts run on (a shebang, Debian's nginx): allowed where they appear
SYSTEM_PATHS = ("/usr/bin/env", "/usr/sbin/nginx")


def _short(match):
    """An absolute path that no name covers: from ``site-packages`` on, else its last component
    (a program or file name)."""
    path = match.group(0)
    if path in SYSTEM_PATHS:
        return path
    parts = path.rstrip("/").split("/")
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            return "/".join(parts[parts.index(marker):])
    return parts[-1] or path


def portable(value, names=None):
    """``value`` (a string, or the lists and dicts of one saved as JSON) without this machine's
    absolute paths: each prefix in ``names`` ({"/abs/dir": "$VAR"}) becomes its variable, the
    Python running this becomes ``python3.X``, the repository root becomes ``.``, and any other
    absolute path keeps its program or file name (``site-packages/...`` for an installed package).
    Numbers and other values are returned unchanged."""
    if isinstance(value, dict):
        return {key: portable(item, names) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(item, names) for item in value]
    if not isinstance(value, str):
        return value
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    prefixes = sorted((names or {}).items(), key=lambda item: -len(item[0]))
    for prefix, name in prefixes + [(sys.executable, python), (REPO, ".")]:
        if prefix and prefix != os.sep:
            value = re.sub(re.escape(prefix.rstrip("/")) + r"(?![\w.-])", lambda _: name, value)
    return MACHINE_PATH.sub(_short, value)


def write_json(path, doc, names=None):
    """Save ``doc`` as indented JSON, through ``portable`` (results are committed)."""
    with open(path, "w") as f:
        json.dump(portable(doc, names), f, indent=1)


def venv_names(program, name):
    """``{venv: name}`` when ``program`` is ``<venv>/bin/<program>`` (for ``portable``), else ``{}``:
    ``$BASELINE_VENV/bin/alloy`` says more than ``alloy`` in a report."""
    bin_dir = os.path.dirname(program)
    if os.path.isabs(program) and os.path.basename(bin_dir) == "bin":
        return {os.path.dirname(bin_dir): name}
    return {}


if __name__ == "__main__":
    # python3 benchmarks/benchlib.py portable < text > text: the filter the shell scripts use
    if sys.argv[1:] != ["portable"]:
        raise SystemExit("usage: benchlib.py portable < TEXT")
    sys.stdout.write(portable(sys.stdin.read()))

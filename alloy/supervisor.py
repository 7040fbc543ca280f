"""Several gateway processes on one port: ``alloy --workers N``.

One gateway process is one event loop on one core. With ``--workers N`` this supervisor forks N
copies of the ordinary gateway (``server.run``) after the configuration is loaded; each worker binds
its own SO_REUSEPORT listening socket to the same address, and the kernel spreads new connections
between them. The supervisor itself serves nothing; a single-threaded loop that only watches:

- it announces "alloy listening on http://HOST:PORT (workers: N, ...)" once, when every worker is
  listening (workers report readiness on a pipe instead of printing their own line);
- a worker that dies is replaced, after a backoff that doubles while replacements keep dying young,
  so a crash loop costs a fork every few seconds rather than a spinning core;
- SIGTERM or SIGINT is forwarded to every worker as SIGTERM: each drains what it has in flight for
  up to ``shutdown_timeout``, as a lone gateway does, and the supervisor exits 0 when all are gone;
  a second signal SIGKILLs the workers and exits at once;
- SIGHUP is forwarded to every worker, each of which reloads the configuration (``alloy.reload``);
  the supervisor keeps the new configuration for the workers it starts later;
- if the supervisor itself is killed, the kernel sends each worker SIGTERM (PR_SET_PDEATHSIG), so
  no orphan keeps serving the port.

Linux only: elsewhere SO_REUSEPORT does not balance connections between processes, and the parent
death signal is a Linux ``prctl``.
"""

import os
import signal
import socket
import sys
import time
import traceback
from dataclasses import replace

from alloy import core, server
from alloy.config import ConfigError, load
from alloy.server import say
from alloy.urls import http_url

# ctypes, select, the shared directories and the governance counters are imported where the
# supervisor uses them (~1.5 MB), and a lone gateway (--workers 1, the default) does not import
# this module at all.

FIRST_BACKOFF = 0.5  # seconds before replacing a worker that died young; doubles up to MAX_BACKOFF
MAX_BACKOFF = 10.0
STABLE_AFTER = 10.0  # a worker that lived this long was not crash-looping: its slot's backoff resets
KILL_GRACE = 10.0  # past shutdown_timeout (workers give up 5 s after it themselves), SIGKILL them
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def reserve_port(host, port):
    """A socket bound to ``host:port`` with SO_REUSEPORT, never listening: it fixes the port number
    every worker binds.

    This is what makes ``--port 0`` work: the kernel picks a free port here, once, and each worker
    then binds that number. The socket stays bound for the supervisor's lifetime, so the port stays
    ours while workers come and go (even with every worker down at once, only a process of the same
    user that also sets SO_REUSEPORT could bind it). It must not listen: connections are balanced
    over the listening sockets of the group, and one that nobody accepts from would swallow its
    share of them. A bound socket that never listens receives no connections at all.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if port:
        _check_free(family, host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the same options as each worker's
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise server.ListenError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    return sock


def _check_free(family, host, port):
    """SO_REUSEPORT lets any process of this user join a port group: a second ``alloy --workers``
    on the port of a running one would share its connections (with another configuration). A
    socket without SO_REUSEPORT cannot bind a port a group listens on, so one is tried first."""
    probe = socket.socket(family, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is free
    try:
        probe.bind((host, port))
    except OSError as error:
        raise server.ListenError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    finally:
        probe.close()


def describe(status):
    """A wait status in words: "exited with code 1", "was killed by SIGKILL"."""
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


class Supervisor:
    def __init__(self, config, count):
        self.listener = reserve_port(config.server.host, config.server.port)
        port = self.listener.getsockname()[1]  # the one the kernel picked, for --port 0
        self.config = replace(config, server=replace(config.server, port=port))
        from alloy.shared_dirs import SharedDirectory

        self.metrics_listener = None
        self.shared = []  # the directories the workers share, locked while we run (alloy.shared_dirs)
        metrics = self.config.metrics
        if metrics.enabled:
            # /metrics reports the whole server: each worker leaves its counters in this directory
            # and the one that answers a scrape sums them (alloy.observability.metrics). A separate
            # metrics port is reserved here like the main one, then bound by every worker.
            if metrics.port is not None:
                self.metrics_listener = reserve_port(metrics.host, metrics.port)
                metrics = replace(metrics, port=self.metrics_listener.getsockname()[1])
            self.shared.append(SharedDirectory("metrics"))
            self.config = replace(self.config, metrics=replace(metrics, workers_dir=self.shared[-1].path))
        # Limits and budgets hold for the whole server: every worker maps the same counters file
        # (alloy.governance.counters), created here before the first fork. Also without keys yet:
        # a database created while the server runs is picked up by every worker (a sparse file).
        from alloy.governance.counters import create_shared

        self.shared.append(SharedDirectory("governance"))
        governance = replace(self.config.governance, shared_path=create_shared(self.shared[-1].path))
        self.config = replace(self.config, governance=governance)
        self.count = count
        self.workers = {}  # pid -> (slot, monotonic start time)
        self.ready = set()  # pids that reported they are listening
        self.reloads = 0  # SIGHUPs handled
        self.forked_at = {}  # pid of a worker not ready yet -> reloads when it was forked
        self.backoff = [0.0] * count  # per slot: the delay before its next replacement
        self.restarts = {}  # slot -> monotonic time at which to start its replacement
        self.announced = False
        self.stopping = False
        self.exit_code = 0
        self.deadline = None  # while stopping: when the remaining workers get SIGKILL
        self.signals = 0
        self.previous_handlers = {}  # signal -> the handler before ours; each worker puts them back
        self.pid = os.getpid()
        # Signals arrive as bytes on a pipe (signal.set_wakeup_fd writes each signal's number), so
        # one select() waits for signals, readiness reports and the next timer alike.
        self.wakeup_r, self.wakeup_w = os.pipe()
        os.set_blocking(self.wakeup_r, False)
        os.set_blocking(self.wakeup_w, False)
        self.ready_r, self.ready_w = os.pipe()
        self.ready_buffer = b""

    # --- the loop --------------------------------------------------------------------------------

    def run(self):
        import select

        handled = (*STOP_SIGNALS, signal.SIGCHLD, signal.SIGHUP)
        previous = {signum: signal.signal(signum, lambda *_: None) for signum in handled}
        self.previous_handlers = previous
        signal.set_wakeup_fd(self.wakeup_w)
        try:
            for slot in range(self.count):
                self.start(slot)
            while self.workers or (self.restarts and not self.stopping):
                readable, _, _ = select.select([self.wakeup_r, self.ready_r], [], [], self.timeout())
                if self.wakeup_r in readable:
                    for signum in os.read(self.wakeup_r, 256):
                        if signum in STOP_SIGNALS:
                            self.on_stop_signal()
                        elif signum == signal.SIGHUP:
                            self.on_reload_signal()
                if self.ready_r in readable:
                    self.read_ready()
                self.reap()
                self.tick()
        finally:
            signal.set_wakeup_fd(-1)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.listener.close()
            if self.metrics_listener is not None:
                self.metrics_listener.close()
            for directory in self.shared:
                directory.close()
        if self.announced:
            say("alloy: stopped")
        return self.exit_code

    def timeout(self):
        """Seconds until the next replacement or the kill deadline is due; None: nothing is."""
        due = [*self.restarts.values(), *([self.deadline] if self.deadline is not None else [])]
        return max(0.0, min(due) - time.monotonic()) if due else None

    def tick(self):
        now = time.monotonic()
        for slot, at in list(self.restarts.items()):
            if at <= now and not self.stopping:
                del self.restarts[slot]
                self.start(slot)
        if self.deadline is not None and now >= self.deadline:
            say("alloy: workers still running past shutdown_timeout: killing them")
            self.kill(signal.SIGKILL)
            self.deadline = None

    def on_stop_signal(self):
        self.signals += 1
        if self.signals == 1:
            say(f"alloy: draining ({len(self.workers)} workers finish what is in flight)")
            self.stop(0)
        else:
            say("alloy: second signal: killing the workers")
            self.kill(signal.SIGKILL)

    def on_reload_signal(self):
        """SIGHUP: every worker reloads the configuration itself (alloy.reload: each validates it
        and logs a refusal); the supervisor keeps the new one too, for the workers it starts later
        in place of one that died. Sections that need a restart stay as they were."""
        try:
            new = load(self.config.path, host=self.config.server.host, port=self.config.server.port)
        except ConfigError:
            new = None  # the workers say why; a replacement worker gets the running configuration
        if new is not None and not new.uses_mock:
            kept = {name: getattr(self.config, name) for name in ("metrics", "log", "governance", "cache", "tracing")}
            self.config = replace(new, **kept)
        self.reloads += 1
        self.kill(signal.SIGHUP, self.ready)  # one still starting gets it once ready (read_ready)

    def stop(self, exit_code):
        """Ask every worker to drain and exit; the loop ends when the last one is gone."""
        self.stopping = True
        self.exit_code = exit_code
        self.restarts.clear()
        self.kill(signal.SIGTERM)
        self.deadline = time.monotonic() + self.config.server.shutdown_timeout + KILL_GRACE

    def kill(self, signum, pids=None):
        """Send ``signum`` to ``pids`` (every worker by default)."""
        for pid in self.workers if pids is None else list(pids):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:  # already dead, not reaped yet
                pass

    def read_ready(self):
        """Each worker writes "PID\\n" once it listens (one small write: atomic on a pipe)."""
        self.ready_buffer += os.read(self.ready_r, 4096)
        *lines, self.ready_buffer = self.ready_buffer.split(b"\n")
        for line in lines:
            pid = int(line)
            if pid not in self.workers or self.stopping:
                continue
            self.ready.add(pid)
            if self.forked_at.pop(pid, self.reloads) != self.reloads:
                self.kill(signal.SIGHUP, (pid,))  # reloaded while it started: it takes the new one now
            if self.announced:
                say(f"alloy: worker {pid} ready")
            elif len(self.ready) == self.count:
                self.announced = True
                server.warn_if_open(self.config.server)
                host, port = self.listener.getsockname()[:2]
                workers = " ".join(str(pid) for pid in self.workers)
                say(f"alloy listening on {http_url(host, port)} (workers: {self.count}, core: {core.IMPLEMENTATION})")
                say(f"alloy: worker pids {workers}")
                if self.metrics_listener is not None:
                    metrics = self.config.metrics
                    say(f"alloy: metrics served at {http_url(metrics.host, metrics.port)}/metrics")

    def reap(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid not in self.workers:
                continue
            slot, started = self.workers.pop(pid)
            self.ready.discard(pid)
            self.forked_at.pop(pid, None)
            workers_dir = self.config.metrics.workers_dir
            if workers_dir is not None:  # its counts join the dead workers' sum: one file for them all
                from alloy.observability.metrics import retire_worker

                retire_worker(workers_dir, pid)
            if self.config.governance.shared_path is not None:  # its requests in flight hold no slot
                from alloy.governance.counters import forget_in_flight

                forget_in_flight(self.config.governance.shared_path)
            if self.stopping:
                continue
            if not self.announced:
                # Not every worker came up: fail as a lone gateway fails at startup, not by looping.
                say(f"alloy: worker {pid} {describe(status)} before it was ready; stopping")
                self.stop(1)
                continue
            lived = time.monotonic() - started
            delay = 0.0 if lived >= STABLE_AFTER else min(max(self.backoff[slot] * 2, FIRST_BACKOFF), MAX_BACKOFF)
            self.backoff[slot] = delay
            self.restarts[slot] = time.monotonic() + delay
            say(f"alloy: worker {pid} {describe(status)}; starting a replacement in {delay:.1f} s")

    # --- a worker --------------------------------------------------------------------------------

    def start(self, slot):
        for stream in (sys.stdout, sys.stderr):  # nothing buffered may be written twice
            stream.flush()
        # Signals stay blocked across the fork until the child has put back the default handlers:
        # a SIGTERM meant for the new worker must not run the supervisor's handler in it (which
        # would drop the signal and write it into the supervisor's wakeup pipe).
        signal.pthread_sigmask(signal.SIG_BLOCK, self.previous_handlers)
        try:
            pid = os.fork()
            if pid == 0:
                self.become_worker()  # never returns
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, self.previous_handlers)
        self.workers[pid] = (slot, time.monotonic())
        self.forked_at[pid] = self.reloads  # the configuration it starts with

    def become_worker(self):
        """In the forked child: undo the supervisor's set-up, then run an ordinary gateway."""
        code = 1
        try:
            # Its own process group: a Ctrl-C in the terminal reaches the supervisor alone, which
            # forwards one SIGTERM; were the workers to get the SIGINT too, the forwarded SIGTERM
            # would be their second signal and cut the streams the first one meant to drain.
            os.setpgid(0, 0)
            die_with_parent(self.pid)
            signal.set_wakeup_fd(-1)
            for signum, handler in self.previous_handlers.items():
                signal.signal(signum, handler)
            # Until the gateway's loop handles it, a SIGHUP must not end the worker (its default):
            # one sent while it starts is ignored, and the supervisor sends it again once it is
            # ready if the configuration changed since the fork (read_ready).
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, self.previous_handlers)
            for fd in (self.wakeup_r, self.wakeup_w, self.ready_r):
                os.close(fd)
            self.listener.close()
            if self.metrics_listener is not None:
                self.metrics_listener.close()
            ready_w = self.ready_w

            def ready():
                try:
                    os.write(ready_w, b"%d\n" % os.getpid())
                except OSError:  # the supervisor is gone; the parent death signal is on its way
                    pass

            server.run(self.config, reuse_port=True, ready=ready)
            code = 0
        except server.ListenError as error:
            say(f"alloy: worker {os.getpid()}: {error}")
        except BaseException:  # a crash: say why; the supervisor replaces this worker
            traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os._exit(code)  # never unwind into the supervisor's code (its finally blocks, atexit)


def die_with_parent(parent):
    """Have the kernel send this process SIGTERM when the supervisor dies, even by SIGKILL: the
    worker then drains and exits as on an ordinary shutdown."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the supervisor died before prctl took effect
        os._exit(0)


def run(config, count):
    """Run ``count`` workers until a stop signal; returns the exit code. Raises ``ListenError``
    when the address cannot be bound."""
    return Supervisor(config, count).run()

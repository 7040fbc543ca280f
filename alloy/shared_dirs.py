"""The directories a supervisor's workers share (``--workers N``): metrics files and the governance
counters, in memory (``/dev/shm``) where the machine has it.

A supervisor removes its directories when it exits; one killed with SIGKILL cannot. So each
directory holds a lock file that its supervisor keeps locked (``flock``) for as long as it, or any
worker it forked (they inherit the open file), runs, and a starting supervisor removes the
directories whose lock it can take: their owners are gone. A lock, not a pid: in a container that
shares ``/dev/shm`` but not the PID namespace, another supervisor's pid means nothing here.
Directories younger than ``SETUP_SECONDS`` are left alone (their owner may be between creating one
and locking it), and so is anything without a lock file (not made by this code).
"""

import fcntl
import os
import shutil
import tempfile
import time

LOCK_NAME = ".alloy-lock"
SETUP_SECONDS = 60.0


class SharedDirectory:
    """One directory, created and locked (``path``; ``close`` removes it)."""

    def __init__(self, kind):
        parent = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
        remove_orphans(parent, kind)
        self.path = tempfile.mkdtemp(prefix=f"alloy-{kind}-{os.getpid()}-", dir=parent)
        self.lock = os.open(os.path.join(self.path, LOCK_NAME), os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self.lock, fcntl.LOCK_EX)

    def close(self):
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self.lock)


def remove_orphans(parent, kind):
    """Remove ``parent``'s ``alloy-KIND-*`` directories whose lock nobody holds."""
    prefix = f"alloy-{kind}-"
    try:
        names = [name for name in os.listdir(parent) if name.startswith(prefix)]
    except OSError:
        return
    for name in names:
        path = os.path.join(parent, name)
        try:
            if time.time() - os.lstat(path).st_mtime < SETUP_SECONDS:
                continue
            lock = os.open(os.path.join(path, LOCK_NAME), os.O_RDWR | os.O_NOFOLLOW)
        except OSError:
            continue  # gone meanwhile, no lock file, or not ours to open
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pass  # held: its supervisor, or a worker of it, still runs
        else:
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(lock)

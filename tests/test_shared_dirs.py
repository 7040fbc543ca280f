"""The workers' shared directories (alloy.shared_dirs): a starting supervisor removes those whose
owner is gone, decided by the directory's lock, never by a pid (which means nothing across PID
namespaces sharing /dev/shm), and leaves alone what it did not make or what is being set up."""

import fcntl
import os
import time

from alloy.shared_dirs import LOCK_NAME, SharedDirectory, remove_orphans


def aged(path):
    os.utime(path, (time.time() - 3600, time.time() - 3600))
    return path


def test_only_directories_whose_lock_is_free_are_removed(tmp_path):
    dead_pid = 2**22 + 12345  # beyond pid_max's default: no such process, whatever the namespace
    held = tmp_path / f"alloy-governance-{dead_pid}-a"  # its pid looks dead, its lock is held
    held.mkdir()
    lock = os.open(held / LOCK_NAME, os.O_CREAT | os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)
    aged(held)
    orphan = tmp_path / f"alloy-governance-{os.getpid()}-b"  # its pid is alive, its lock is free
    orphan.mkdir()
    (orphan / LOCK_NAME).touch()
    aged(orphan)
    foreign = tmp_path / "alloy-governance-12-c"  # no lock file: not made by this code
    foreign.mkdir()
    aged(foreign)
    young = tmp_path / "alloy-governance-13-d"  # being set up: not looked at yet
    young.mkdir()
    (young / LOCK_NAME).touch()
    try:
        remove_orphans(str(tmp_path), "governance")
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([held.name, foreign.name, young.name])
    finally:
        os.close(lock)


def test_a_shared_directory_is_locked_while_open_and_gone_when_closed():
    directory = SharedDirectory("test")
    try:
        probe = os.open(os.path.join(directory.path, LOCK_NAME), os.O_RDWR)
        try:
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                raise AssertionError("the directory's lock was free while its owner ran")
            except BlockingIOError:
                pass
        finally:
            os.close(probe)
    finally:
        directory.close()
    assert not os.path.exists(directory.path)

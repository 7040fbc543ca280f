#!/usr/bin/env python3
"""No absolute path of a machine in the benchmarks folder: results and docs are committed.

    python benchmarks/check_paths.py          # silent, exit 0 when clean
    python benchmarks/check_paths.py PATH...  # other folders or files (run_all.sh: what it saved)

Lists ``file:line: path`` for every absolute path under a machine root (``benchlib.MACHINE_PATH``:
home, work, tmp, usr, opt, ...) in the text files of benchmarks/ that git tracks or would track
(ignored files such as ``results/*/raw/`` are skipped), and exits 1 when there is one. Reports
write repository-relative paths, a variable (``$BASELINE_VENV``) or a program name instead
(``benchlib.portable``). A shebang's ``/usr/bin/env`` and Debian's ``/usr/sbin/nginx`` (which the
scripts look up) are allowed.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402


def files_under(folder):
    """The files git tracks or would track under ``folder`` (every file when git cannot say)."""
    if os.path.isfile(folder):
        return [folder]
    try:
        done = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", folder],
                              cwd=benchlib.REPO, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        done = None
    if done is not None and done.returncode == 0:
        names = [os.path.join(benchlib.REPO, name) for name in done.stdout.decode().split("\0") if name]
        return sorted(name for name in names if os.path.isfile(name))
    return sorted(os.path.join(root, name) for root, _, names in os.walk(folder) for name in names)


def machine_paths(path):
    """(line number, path) of each absolute machine path in a text file; nothing for a binary file."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (UnicodeDecodeError, OSError):
        return []
    return [(number, match.group(0))
            for number, line in enumerate(text.splitlines(), 1)
            for match in benchlib.MACHINE_PATH.finditer(line)
            if match.group(0) not in benchlib.SYSTEM_PATHS]


def main(argv=None):
    folders = (argv if argv is not None else sys.argv[1:]) or [benchlib.HERE]
    found = 0
    for folder in folders:
        for path in files_under(os.path.abspath(folder)):
            for number, hit in machine_paths(path):
                print(f"{os.path.relpath(path)}:{number}: {hit}")
                found += 1
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

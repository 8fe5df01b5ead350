"""Processes and external tools, as the CLI and the benchmark see them.

Owns: the one "is this process still alive" check (a zombie counts as gone), reading a daemon's
pid from its pid file, and the one wrapper that runs an external tool (losetup, mkswap, fio...)
and turns its failure into a `UserError` naming the command and its last line of output.
Must not: keep state, or run anything through a shell.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from zramd.core.errors import UserError
from zramd.host.rundir import pidfile_for


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie. A child of ours that has exited is
    reaped here, so a caller that spawned the daemon does not wait forever on its zombie."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def daemon_pid(mountpoint: str) -> int | None:
    """The pid the daemon serving `mountpoint` recorded, or None."""
    try:
        return int(pidfile_for(mountpoint).read_text().strip())
    except (OSError, ValueError):
        return None


def run_tool(*args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run `args` (no shell, C locale) and return the finished process; a missing tool or a
    non-zero exit raises UserError with the command and its last line of output."""
    if shutil.which(args[0]) is None:
        raise UserError(f"{args[0]} is not installed")
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, check=False, env={**os.environ, "LC_ALL": "C"}
    )
    if result.returncode != 0:
        lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
        reason = lines[-1] if lines else f"exit status {result.returncode}"
        raise UserError(f"{' '.join(args)} failed: {reason}")
    return result

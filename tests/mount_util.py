"""Helpers for tests that mount zramd for real: start/stop through the CLI, loop devices and
filesystems on top, and cleanup that runs even when a test fails.

Tests that need FUSE or root skip with the reason when those are missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zramd.host.mounts import is_dead_mount, loop_devices_for, mount_entry
from zramd.host.processes import daemon_pid
from zramd.host.rundir import logfile_for


def fuse_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "mounting zramd needs root"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if shutil.which("fusermount3") is None:
        return "fusermount3 (package fuse3) is not installed"
    return None


def zramd(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "zramd", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"zramd {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


class Mount:
    """A running zramd mount."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.disk = path / "disk"
        self.sys = path / "sys"

    def attr(self, name: str) -> str:
        return (self.sys / name).read_text()

    def set(self, name: str, value: str) -> None:
        (self.sys / name).write_text(value)

    def mm_stat(self) -> list[int]:
        return [int(v) for v in self.attr("mm_stat").split()]

    def io_stat(self) -> list[int]:
        return [int(v) for v in self.attr("io_stat").split()]

    @property
    def pid(self) -> int | None:
        return daemon_pid(str(self.path))


def force_cleanup(path: Path) -> None:
    """Tear down whatever is left on `path`: loop devices over its disk, the mount, the daemon."""
    for loop in loop_devices_for(str(path / "disk")):
        subprocess.run(["swapoff", loop], capture_output=True, check=False)
        for line in Path("/proc/mounts").read_text().splitlines():
            if line.split()[0] == loop:
                subprocess.run(["umount", "-l", line.split()[1]], capture_output=True, check=False)
        subprocess.run(["losetup", "-d", loop], capture_output=True, check=False)
    pid = daemon_pid(str(path))
    if mount_entry(str(path)) is not None:
        if is_dead_mount(str(path)):
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
        else:
            subprocess.run(["umount", str(path)], capture_output=True, check=False)
            if mount_entry(str(path)) is not None:
                subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
    if pid is not None and not exited(pid, timeout=10):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def exited(pid: int, timeout: float) -> bool:
    """Wait up to `timeout` seconds for process `pid` to be gone; whether it is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def zramd_mount(path: Path, *options: str) -> Iterator[Mount]:
    """`zramd start` on `path`; `zramd stop` afterwards, or a forced cleanup if that fails."""
    reason = fuse_unavailable()
    if reason:
        pytest.skip(reason)
    path.mkdir(parents=True, exist_ok=True)
    zramd("start", str(path), *options)
    mount = Mount(path)
    try:
        yield mount
    finally:
        result = zramd("stop", str(path), check=False)
        if result.returncode != 0:
            force_cleanup(path)
        else:
            logfile_for(str(path)).unlink(missing_ok=True)


@contextlib.contextmanager
def loop_device(path: Path, direct_io: bool = True) -> Iterator[str]:
    """`path` attached to a loop device (4 KiB sectors), always detached afterwards."""
    args = ["losetup", "--sector-size", "4096", "--find", "--show"]
    if direct_io:
        args.insert(1, "--direct-io=on")
    loop = subprocess.run([*args, str(path)], capture_output=True, text=True, check=True).stdout.strip()
    try:
        yield loop
    finally:
        for _ in range(50):
            if subprocess.run(["losetup", "-d", loop], capture_output=True, check=False).returncode == 0:
                break
            time.sleep(0.1)


@contextlib.contextmanager
def mounted(device: str, where: Path, *options: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", *options, device, str(where)], check=True, capture_output=True)
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def wait_served(path: Path, proc: subprocess.Popen[Any], timeout: float = 20) -> None:
    """Wait until a daemon started directly (`zramd run`) serves `path`; fail if it dies."""
    deadline = time.monotonic() + timeout
    while not (path / "sys" / "initstate").exists():
        assert proc.poll() is None, f"the daemon exited with status {proc.returncode}"
        assert time.monotonic() < deadline, f"the daemon did not serve {path} within {timeout:g} s"
        time.sleep(0.05)

"""Helpers for tests that mount zramd for real: start/stop through the CLI, loop devices and
filesystems on top, and cleanup that runs even when a test fails.

Tests that need FUSE or root skip with the reason when those are missing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from zramd.host.loop import bound_under, fd_holders
from zramd.host.mounts import is_dead_mount, mount_entry
from zramd.host.processes import daemon_pid, pid_alive
from zramd.host.rundir import BLOCK_LINK_DIR, block_link_dir, device_dir, logfile_for
from zramd.host.sysdir import SysDir


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

    def __init__(self, path: Path, device_id: int = 0) -> None:
        self.path = path
        self.sys = device_dir(path, device_id)  # the device's attribute directory
        self.disk = self.sys / "disk"
        self.control = path / "zram-control"
        self.sysdir = SysDir(self.sys)  # the product's one reader of attribute files

    def device(self, device_id: int) -> Mount:
        """Another device of the same daemon."""
        return Mount(self.path, device_id)

    @property
    def block(self) -> str:
        """The device's block device (its loop device)."""
        return self.attr("block_device").strip()

    def attr(self, name: str) -> str:
        return self.sysdir.read(name)

    def set(self, name: str, value: str) -> None:
        self.sysdir.write(name, value)

    def mm_stat(self) -> list[int]:
        return self.sysdir.mm_stat()

    def io_stat(self) -> list[int]:
        return self.sysdir.io_stat()

    @property
    def pid(self) -> int | None:
        return daemon_pid(str(self.path))


def force_cleanup(path: Path) -> None:
    """Tear down whatever is left on `path`: filesystems and swap on the loop devices over its
    disks, the loop devices, the mount, the daemon, the block-device links."""
    for device in bound_under(str(path)):
        subprocess.run(["swapoff", device.path], capture_output=True, check=False)
        for line in Path("/proc/mounts").read_text().splitlines():
            if line.split()[0] == device.path:
                subprocess.run(["umount", "-l", line.split()[1]], capture_output=True, check=False)
        subprocess.run(["losetup", "-d", device.path], capture_output=True, check=False)
    pid = daemon_pid(str(path))
    if pid is not None and mount_entry(str(path)) is not None and not is_dead_mount(str(path)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)  # detaches what is left and unmounts
        exited(pid, timeout=10)
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
    links = block_link_dir(str(path))
    if links.is_dir() and links != BLOCK_LINK_DIR:
        shutil.rmtree(links, ignore_errors=True)


def exited(pid: int, timeout: float) -> bool:
    """Wait up to `timeout` seconds for process `pid` to be gone (a zombie counts as gone, and a
    child of ours is reaped); whether it is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


LOG_FAILURE = re.compile(r": (ERROR|CRITICAL): |^Traceback |^\S+Error: ")


def daemon_log_problems(text: str, expected: tuple[str, ...] = ()) -> list[str]:
    """The lines of a daemon log that report an error, a crash or a traceback, less those that
    match one of the `expected` regular expressions (a test that provokes an error declares it)."""
    return [
        line
        for line in text.splitlines()
        if LOG_FAILURE.search(line) and not any(re.search(pattern, line) for pattern in expected)
    ]


def check_daemon_log(path: Path, expected: tuple[str, ...] = ()) -> None:
    """Fail if the daemon that served `path` logged an error nobody expected; then remove its log."""
    log = logfile_for(str(path))
    try:
        text = log.read_text(errors="replace")
    except FileNotFoundError:
        return
    problems = daemon_log_problems(text, expected)
    assert not problems, f"the daemon on {path} logged unexpected errors:\n" + "\n".join(problems)
    log.unlink(missing_ok=True)


@contextlib.contextmanager
def zramd_mount(path: Path, *options: str, expect_log: tuple[str, ...] = ()) -> Iterator[Mount]:
    """`zramd start` on `path`; `zramd stop` afterwards unless the test stopped it itself (a failed
    stop fails the test, after a forced cleanup); then the daemon's log must hold no error but
    those in `expect_log`."""
    reason = fuse_unavailable()
    if reason:
        pytest.skip(reason)
    path.mkdir(parents=True, exist_ok=True)
    zramd("start", str(path), *options)
    mount = Mount(path)
    try:
        yield mount
    finally:
        stopped_by_the_test = mount_entry(str(path)) is None and mount.pid is None
        result = None if stopped_by_the_test else zramd("stop", str(path), check=False)
        if result is not None and result.returncode != 0:
            force_cleanup(path)
    if result is not None:
        assert result.returncode == 0, f"zramd stop {path} failed ({result.returncode}): {result.stderr}"
    check_daemon_log(path, expect_log)


@contextlib.contextmanager
def block_device(mount: Mount) -> Iterator[str]:
    """The device's block device (the loop device its daemon attached: direct I/O, 4 KiB
    sectors); afterwards, nothing but the daemon may still hold it."""
    block = mount.block
    assert block.startswith("/dev/loop"), block
    yield block
    holders = [pid for pid in fd_holders({block}) if pid != mount.pid]
    assert not holders, f"{block} is still open in {holders}"


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
    while not (device_dir(path, 0) / "initstate").exists():
        assert proc.poll() is None, f"the daemon exited with status {proc.returncode}"
        assert time.monotonic() < deadline, f"the daemon did not serve {path} within {timeout:g} s"
        time.sleep(0.05)

"""The swap storm harness: a process in a memory cgroup writes 4x its limit, swapping through a
zramd device, then reads everything back and verifies it -- under a watchdog.

Used by tests/t7_swap.py (5 runs in CI) and scripts/swap-storm (20 runs). A run that does not
finish within its bound is a hang: the worker is killed, and if it cannot die (stuck in the
kernel waiting for the daemon) the FUSE connection is aborted so that everything can be cleaned up.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

WORKER = Path(__file__).resolve().parent / "storm_worker.py"
MiB = 1 << 20


class StormHang(AssertionError):
    """The storm did not finish within its bound."""


def cgroup_version() -> int | None:
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return 2
    if Path("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists():
        return 1
    return None


class MemoryCgroup:
    """A memory cgroup (v1 or v2) with a hard limit and swap allowed."""

    def __init__(self, name: str, limit: int) -> None:
        self.version = cgroup_version()
        if self.version == 2:
            self.path = Path("/sys/fs/cgroup") / name
        elif self.version == 1:
            self.path = Path("/sys/fs/cgroup/memory") / name
        else:
            raise RuntimeError("no memory cgroup controller (v1 or v2) is mounted")
        self.path.mkdir()
        if self.version == 2:
            (self.path / "memory.max").write_text(str(limit))
            (self.path / "memory.swap.max").write_text("max")
        else:
            (self.path / "memory.limit_in_bytes").write_text(str(limit))
            with contextlib.suppress(OSError):
                (self.path / "memory.swappiness").write_text("100")

    def enter(self) -> None:
        """Move the calling process into the cgroup (used as a preexec_fn)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def remove(self) -> None:
        for _ in range(100):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)


def vmstat(key: str) -> int:
    for line in Path("/proc/vmstat").read_text().splitlines():
        name, value = line.split()
        if name == key:
            return int(value)
    return 0


@dataclass(frozen=True)
class StormResult:
    seconds: float
    pages: int
    swapped_out: int  # bytes, from /proc/vmstat pswpout
    swapped_in: int
    peak_orig_data_size: int  # the largest orig_data_size seen on the device while it ran

    @property
    def swap_mb_per_s(self) -> float:
        return (self.swapped_out + self.swapped_in) / self.seconds / 1e6


def abort_fuse_connection(mountpoint: Path) -> None:
    """Abort the FUSE connection of `mountpoint`: every request fails, nothing waits any more.
    The connection is found from /proc/self/mountinfo, not by stat() (which would wait on a hung
    daemon too); fusectl is mounted if it is not."""
    minor = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(mountpoint):
            minor = fields[2].split(":")[1]
    if minor is None:
        return
    connections = Path("/sys/fs/fuse/connections")
    if not (connections / minor).exists():
        subprocess.run(["mount", "-t", "fusectl", "none", str(connections)], capture_output=True, check=False)
    with contextlib.suppress(OSError):
        (connections / minor / "abort").write_text("1")


def run_storm(
    mountpoint: Path | None,
    limit: int = 64 * MiB,
    factor: int = 4,
    seed: int = 0,
    bound: float = 120,
    mm_stat: Path | None = None,
) -> StormResult:
    """One storm: `factor` x `limit` bytes through a cgroup limited to `limit`. Raises
    StormHang when it takes longer than `bound` seconds, AssertionError when data is wrong.

    The peak orig_data_size is polled from `mm_stat` (default: the zramd mount's
    ``mountpoint/zram0/mm_stat``; e.g. /sys/block/zram0/mm_stat for the kernel's zram, with
    `mountpoint` None: then a hang has no FUSE connection to abort)."""
    if mm_stat is None:
        assert mountpoint is not None, "run_storm needs a mountpoint or an mm_stat path"
        mm_stat = mountpoint / "zram0" / "mm_stat"
    cgroup = MemoryCgroup(f"zramd-storm-{os.getpid()}-{seed}", limit)
    out0, in0 = vmstat("pswpout"), vmstat("pswpin")
    peak = 0
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(limit * factor // MiB), str(seed)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=cgroup.enter,
        )  # fmt: skip
        try:
            while proc.poll() is None:
                if time.monotonic() - started > bound:
                    raise StormHang(f"swap storm {seed} did not finish within {bound:g} s")
                with contextlib.suppress(OSError, ValueError, IndexError):
                    peak = max(peak, int(mm_stat.read_text().split()[0]))
                time.sleep(0.1)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    if mountpoint is None:
                        raise
                    abort_fuse_connection(mountpoint)
                    proc.wait(timeout=30)
        stdout, stderr = proc.communicate()
        elapsed = time.monotonic() - started
        assert proc.returncode == 0, f"storm worker failed ({proc.returncode}): {stdout} {stderr[-2000:]}"
        figures = json.loads(stdout.strip().splitlines()[-1])
        return StormResult(
            seconds=elapsed,
            pages=figures["pages"],
            swapped_out=(vmstat("pswpout") - out0) * 4096,
            swapped_in=(vmstat("pswpin") - in0) * 4096,
            peak_orig_data_size=peak,
        )
    finally:
        cgroup.remove()


@contextlib.contextmanager
def swap_on_zramd(tmp: Path, size: str = "1G", *options: str) -> Iterator[Path]:
    """A zramd device used as swap (priority 32767, so it is used before any other swap);
    `options` go to `zramd start`."""
    from tests.mount_util import check_daemon_log, force_cleanup, zramd

    mountpoint = tmp / "swapdev"
    mountpoint.mkdir(parents=True, exist_ok=True)
    try:
        zramd("start", str(mountpoint), "--size", size, *options)
        zramd("swapon", str(mountpoint), "--priority", "32767", "--discard")
        yield mountpoint
        zramd("stop", str(mountpoint), "--force", timeout=300)
    finally:
        force_cleanup(mountpoint)
    check_daemon_log(mountpoint)

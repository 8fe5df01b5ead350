"""Controlling daemons from the outside: `zramd start`, `zramd stop` and `zramd status`.

Owns: spawning a background daemon and waiting for it to report readiness (or its start-up
error) on a pipe, after cleaning up what a killed daemon left on the same root; stopping one by
releasing its block devices' users and signalling it (it detaches its block devices and unmounts
itself), then waiting for its process to exit; reading the attribute files of every running
device into zramctl-style rows.
Must not: import pyfuse3 or trio (this runs in the short-lived CLI process).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from zramd.admin import blockdev
from zramd.admin.devices import devices_of
from zramd.core.errors import UserError
from zramd.core.units import format_size
from zramd.host.mounts import (
    FSTYPE,
    is_dead_mount,
    mount_entry,
    recover_dead_root,
    require_zramd_mount,
    unmount,
    zramd_mounts,
)
from zramd.host.processes import daemon_pid, pid_alive
from zramd.host.rundir import CONTROL_NAME, RUN_DIR, block_link_dir, logfile_for, pidfile_for
from zramd.host.settings import ServeConfig
from zramd.host.sysdir import SysDir


def start(config: ServeConfig, log_level: str = "info", timeout: float = 30) -> str:
    """Spawn `zramd run` in a new session and wait until it serves; return a summary.
    Raises UserError with the daemon's own start-up error when it fails."""
    mountpoint = os.path.abspath(config.mountpoint)
    notes = ""
    entry = mount_entry(mountpoint)
    if entry is not None and entry.fstype == FSTYPE and is_dead_mount(mountpoint):
        actions = recover_dead_root(mountpoint, block_link_dir(mountpoint))
        pidfile_for(mountpoint).unlink(missing_ok=True)
        notes = (
            f'zramd: {mountpoint} was a dead zramd mount (its daemon was killed: "Transport endpoint '
            f'is not connected"); cleaned up, and whatever it held is lost\n'
        ) + "".join(f"zramd: {action}\n" for action in actions)
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    log_path = logfile_for(mountpoint)
    read_end, write_end = os.pipe()
    cmd = [
        sys.executable, "-m", "zramd", "run", mountpoint,
        "--size", str(config.disksize), "--algorithm", config.algorithm,
        "--mem-limit", str(config.mem_limit), "--devices", str(config.devices),
        "--log-level", log_level, "--ready-fd", str(write_end),
    ]  # fmt: skip
    if config.allow_other:
        cmd.append("--allow-other")
    if config.noop:
        cmd.append("--noop")
    if config.streams:
        cmd += ["--streams", str(config.streams)]
    if config.backing_dev:
        cmd += ["--backing-dev", config.backing_dev]
    if config.writeback_policy:
        cmd += ["--writeback-policy", config.writeback_policy]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=(write_end,),
            start_new_session=True,
        )
    os.close(write_end)
    try:
        message = _read_ready(read_end, proc, timeout)
    finally:
        os.close(read_end)
    if message == "READY":
        return (
            notes
            + f"zramd: serving {mountpoint}, pid {proc.pid}\n"
            + "".join(f"zramd: {row.name}: {row.describe()}\n" for row in status([mountpoint])).rstrip("\n")
        )
    if message.startswith("ERROR "):
        proc.wait(timeout=10)
        raise UserError(message.removeprefix("ERROR "))
    code = proc.poll()
    tail = _log_tail(log_path)
    if code is None:
        proc.terminate()
        raise UserError(f"the daemon did not become ready within {timeout:g} s (log: {log_path}){tail}")
    raise UserError(f"the daemon exited with status {code} before serving (log: {log_path}){tail}")


def _read_ready(fd: int, proc: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return ""
        ready, _, _ = select.select([fd], [], [], min(remaining, 0.5))
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                break  # the daemon closed the pipe: it exited
            data += chunk
        elif proc.poll() is not None and not data:
            break
    return data.decode(errors="replace").strip()


def _log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return f": {lines[-1]}" if lines else ""


def stop(mountpoint: str, timeout: float = 30, force: bool = False) -> str:
    """Take down what uses the devices' block devices (`blockdev.release`), then signal the
    daemon, which detaches them and unmounts; wait for it to exit and return a summary.
    Refuses while a device is active swap, unless `force`."""
    mountpoint = require_zramd_mount(mountpoint)
    pid = daemon_pid(mountpoint)
    if is_dead_mount(mountpoint):
        actions = recover_dead_root(mountpoint, block_link_dir(mountpoint))
        pidfile_for(mountpoint).unlink(missing_ok=True)
        return "".join(f"zramd: {action}\n" for action in actions) + (
            f"zramd: {mountpoint} was a dead mount (its daemon was killed); cleaned up"
        )
    actions = blockdev.release(devices_of(mountpoint), force=force)
    if pid is None or not pid_alive(pid):
        unmount(mountpoint)
    else:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(pid):
            if time.monotonic() > deadline:
                raise UserError(
                    f"the daemon (pid {pid}) is still running {timeout:g} s after SIGTERM "
                    f"(see {logfile_for(mountpoint)})"
                )
            time.sleep(0.05)
    return "".join(f"zramd: {action}\n" for action in actions) + f"zramd: stopped {mountpoint}"


# ---------------------------------------------------------------------------- status


@dataclass(frozen=True, slots=True)
class StatusRow:
    """One device: zramctl's default columns, plus its directory, block device, the build of the
    per-page path its daemon runs (``compiled (...)`` or ``python (...)``) and its raw mm_stat.

    `name` is the block device's predictable link (zramctl shows /dev/zramN); `mountpoint` is
    where a filesystem on it is mounted, ``[SWAP]``, or empty.
    """

    name: str
    algorithm: str
    disksize: int
    data: int
    compr: int
    total: int
    streams: int
    mountpoint: str
    directory: str
    block_device: str
    core: str
    mm_stat: list[int]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def describe(self) -> str:
        if not self.disksize:
            return f"uninitialised, block device {self.block_device}"
        return f"{format_size(self.disksize)}, {self.algorithm}, block device {self.block_device}"


def _used_by(block: str) -> str:
    """Where the block device is in use, zramctl style: [SWAP], the mount point of a filesystem
    on it, or empty when unused."""
    if not block:
        return ""
    mounted, is_swap = blockdev.users(block)
    if is_swap:
        return "[SWAP]"
    return mounted[0] if mounted else ""


def _daemon_report(root: str) -> dict[str, str]:
    """The key: value lines of ``ROOT/zram-control/daemon``."""
    text = SysDir(Path(root) / CONTROL_NAME).read("daemon")
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


def status(mountpoints: list[str]) -> list[StatusRow]:
    """A row for every device of the given roots (default: every zramd mount)."""
    roots = [os.path.abspath(m) for m in mountpoints] or zramd_mounts()
    rows = []
    for root in roots:
        require_zramd_mount(root)
        if is_dead_mount(root):
            raise UserError(f"{root} is a dead zramd mount (its daemon was killed); run 'zramd stop' on it")
        report = _daemon_report(root)
        core = report.get("core", "")
        streams = int(report.get("streams", "1"))
        for ref in devices_of(root):
            sysdir = ref.sysdir
            mm = sysdir.mm_stat()
            block = ref.block_path()
            rows.append(
                StatusRow(
                    name=str(ref.link),
                    algorithm=sysdir.algorithm(),
                    disksize=sysdir.number("disksize"),
                    data=mm[0],
                    compr=mm[1],
                    total=mm[2],
                    streams=streams,
                    mountpoint=_used_by(block),
                    directory=str(ref.directory),
                    block_device=block,
                    core=core,
                    mm_stat=mm,
                )
            )
    return rows


def format_status(rows: list[StatusRow], raw_bytes: bool = False) -> str:
    size = str if raw_bytes else format_size
    header = ["NAME", "ALGORITHM", "DISKSIZE", "DATA", "COMPR", "TOTAL", "STREAMS", "MOUNTPOINT"]
    table = [header] + [
        [
            r.name,
            r.algorithm,
            size(r.disksize),
            size(r.data),
            size(r.compr),
            size(r.total),
            str(r.streams),
            r.mountpoint,
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    right = {2, 3, 4, 5, 6}
    lines = []
    for row in table:
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append(" ".join(cells).rstrip())
    return "\n".join(lines) + "\n"

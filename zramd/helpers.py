"""Using a zramd disk as swap or as a scratch filesystem: loop devices, mkswap/swapon, mkfs/mount.

Owns: attaching ``MOUNTPOINT/disk`` to a loop device the way zramd wants it (direct I/O, 4 KiB
sectors: no double caching, only whole pages reach the daemon), swapon/swapoff, mkfs + mount,
recording what was set up in /run/zramd so `zramd stop` can take it down in order, and that
teardown itself (unmount the filesystem, swapoff only when forced, detach the loop device).
Must not: run inside the daemon (it uses the mount from outside).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from zramd.control import RUN_DIR, run_name
from zramd.errors import UserError
from zramd.mounts import FSTYPE, loop_devices_for, mount_entry, mount_table, swap_devices

DEFAULT_SWAP_PRIORITY = 100  # zram-generator's default


@dataclass
class Usage:
    """What a device is used for, as recorded in /run/zramd/<name>.use."""

    loop: str
    kind: str  # "swap" or "fs"
    mountpoint: str = ""  # for "fs": where the filesystem is mounted


def _usage_file(mountpoint: str) -> Path:
    return RUN_DIR / f"{run_name(mountpoint)}.use"


def recorded_usage(mountpoint: str) -> Usage | None:
    try:
        return Usage(**json.loads(_usage_file(mountpoint).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _record(mountpoint: str, usage: Usage | None) -> None:
    path = _usage_file(mountpoint)
    if usage is None:
        path.unlink(missing_ok=True)
    else:
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(usage)) + "\n")


def _run(*args: str) -> str:
    tool = args[0]
    if shutil.which(tool) is None:
        raise UserError(f"{tool} is not installed")
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).strip().splitlines()
        raise UserError(f"{' '.join(args)} failed: {reason[-1] if reason else f'exit {result.returncode}'}")
    return result.stdout.strip()


def _served_disk(mountpoint: str) -> str:
    mountpoint = os.path.abspath(mountpoint)
    entry = mount_entry(mountpoint)
    if entry is None or entry.fstype != FSTYPE:
        raise UserError(f"{mountpoint} is not a zramd mount (start one with 'zramd start')")
    disk = os.path.join(mountpoint, "disk")
    if os.stat(disk).st_size == 0:
        raise UserError(f"{mountpoint} is not initialised (write a size to {mountpoint}/sys/disksize)")
    return disk


def attach_loop(disk: str) -> str:
    """Attach `disk` to a free loop device with direct I/O and 4 KiB sectors; return its path."""
    if loop_devices_for(disk):
        raise UserError(f"{disk} is already attached to {', '.join(loop_devices_for(disk))}")
    return _run("losetup", "--direct-io=on", "--sector-size", "4096", "--find", "--show", disk)


def swapon(mountpoint: str, priority: int = DEFAULT_SWAP_PRIORITY, discard: bool = False) -> str:
    """Make the disk a swap area and enable it; returns the loop device used."""
    disk = _served_disk(mountpoint)
    loop = attach_loop(disk)
    try:
        _run("mkswap", loop)
        _run("swapon", "--priority", str(priority), *(["--discard"] if discard else []), loop)
    except UserError:
        subprocess.run(["losetup", "-d", loop], capture_output=True, check=False)
        raise
    _record(os.path.abspath(mountpoint), Usage(loop, "swap"))
    return loop


def swapoff(mountpoint: str) -> list[str]:
    """Disable swap on every loop device over the disk and detach them; returns those devices."""
    mountpoint = os.path.abspath(mountpoint)
    entry = mount_entry(mountpoint)
    if entry is None or entry.fstype != FSTYPE:
        raise UserError(f"{mountpoint} is not a zramd mount (see 'zramd status')")
    disk = os.path.join(mountpoint, "disk")
    active = swap_devices()
    done = []
    for loop in loop_devices_for(disk):
        if loop in active:
            _run("swapoff", loop)
            _run("losetup", "-d", loop)
            done.append(loop)
    if not done:
        raise UserError(f"{mountpoint}/disk is not in use as swap")
    _record(mountpoint, None)
    return done


def mkfs(mountpoint: str, fs_type: str, target: str, options: str = "") -> str:
    """Create a `fs_type` filesystem on the disk and mount it on `target`; returns the loop
    device used."""
    disk = _served_disk(mountpoint)
    target = os.path.abspath(target)
    if not os.path.isdir(target):
        raise UserError(f"mount point {target} does not exist or is not a directory")
    if mount_entry(target) is not None:
        raise UserError(f"{target} is already a mount point")
    maker = f"mkfs.{fs_type}"
    if shutil.which(maker) is None:
        raise UserError(f"{maker} is not installed (unknown filesystem type {fs_type!r}?)")
    loop = attach_loop(disk)
    try:
        quiet = ["-q"] if fs_type.startswith("ext") or fs_type == "xfs" else []
        _run(maker, *quiet, *(["-F"] if fs_type.startswith("ext") else []), loop)
        _run("mount", *(["-o", options] if options else []), loop, target)
    except UserError:
        subprocess.run(["losetup", "-d", loop], capture_output=True, check=False)
        raise
    _record(os.path.abspath(mountpoint), Usage(loop, "fs", target))
    return loop


def release(mountpoint: str, force: bool = False) -> list[str]:
    """Take down what uses the disk before the device stops: unmount filesystems on its loop
    devices, and swapoff (only with `force`), then detach the loop devices. Returns a line per
    action. Refuses, changing nothing, while the disk is an active swap and not `force`."""
    mountpoint = os.path.abspath(mountpoint)
    loops = loop_devices_for(os.path.join(mountpoint, "disk"))
    active_swap = swap_devices() & set(loops)
    if active_swap and not force:
        raise UserError(
            f"{mountpoint}/disk is active swap on {', '.join(sorted(active_swap))}; run 'zramd swapoff "
            f"{mountpoint}' first, or 'zramd stop --force' to swapoff and stop"
        )
    actions = []
    mounted_from: dict[str, list[str]] = {}
    for entry in mount_table():
        if entry.source in loops:
            mounted_from.setdefault(entry.source, []).append(entry.mountpoint)
    for loop in loops:
        for where in reversed(mounted_from.get(loop, [])):
            _run("umount", where)
            actions.append(f"unmounted {where}")
        if loop in active_swap:
            _run("swapoff", loop)
            actions.append(f"swapoff {loop}")
        _run("losetup", "-d", loop)
        actions.append(f"detached {loop}")
    _record(mountpoint, None)
    return actions

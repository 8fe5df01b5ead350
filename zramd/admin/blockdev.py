"""Using a zramd disk as swap or as a scratch filesystem: loop devices, mkswap/swapon, mkfs/mount.

Owns: attaching ``MOUNTPOINT/disk`` to a loop device the way zramd wants it (direct I/O, 4 KiB
sectors: no double caching, only whole pages reach the daemon), swapon/swapoff, mkfs + mount, and
the teardown `zramd stop` and `zramd down` run: unmount filesystems on the disk's loop devices,
swapoff only when forced, detach the loop devices. What is in use is found afresh from /sys and
the mount table every time; nothing is recorded.
Must not: run inside the daemon (it uses the mount from outside).
"""

from __future__ import annotations

import os
import shutil
import subprocess

from zramd.admin.config_file import DEFAULT_SWAP_PRIORITY
from zramd.core.errors import UserError
from zramd.host.mounts import loop_devices_for, mount_entry, mount_table, require_zramd_mount, swap_devices
from zramd.host.processes import run_tool


def _run(*args: str) -> str:
    return run_tool(*args).stdout.strip()


def _served_disk(mountpoint: str) -> str:
    mountpoint = require_zramd_mount(mountpoint, hint="start one with 'zramd start'")
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
    return loop


def swapoff(mountpoint: str) -> list[str]:
    """Disable swap on every loop device over the disk and detach them; returns those devices."""
    mountpoint = require_zramd_mount(mountpoint)
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
    return actions

"""Using a zramd device's block device as swap or as a scratch filesystem.

Owns: mkswap/swapon and swapoff, mkfs + mount, and the teardown `zramd stop` and `zramd down`
run: unmount filesystems on a device's block device, swapoff only when forced. The block device
itself is the daemon's (it attaches one loop device per device and detaches it when the device
goes); this module only uses it. What is in use is found afresh from the mount table and
/proc/swaps every time; nothing is recorded.
Must not: run inside the daemon (it uses the mount from outside), or attach or detach loops.
"""

from __future__ import annotations

import os
import shutil

from zramd.admin.config_file import DEFAULT_SWAP_PRIORITY
from zramd.admin.devices import DeviceRef
from zramd.core.errors import UserError
from zramd.host.mounts import mount_entry, mount_table, swap_devices
from zramd.host.processes import run_tool


def _run(*args: str) -> str:
    return run_tool(*args).stdout.strip()


def _initialised_block_device(ref: DeviceRef) -> str:
    if ref.sysdir.number("disksize") == 0:
        raise UserError(f"{ref.directory} is not initialised (write a size to {ref.directory}/disksize)")
    return ref.block_device()


def swapon(ref: DeviceRef, priority: int = DEFAULT_SWAP_PRIORITY, discard: bool = False) -> str:
    """Make the device a swap area and enable it; returns its block device."""
    block = _initialised_block_device(ref)
    if block in swap_devices():
        raise UserError(f"{ref.directory} is already swap ({block})")
    _run("mkswap", block)
    _run("swapon", "--priority", str(priority), *(["--discard"] if discard else []), block)
    return block


def swapoff(ref: DeviceRef) -> str:
    """Disable swap on the device's block device; returns the block device."""
    block = ref.block_device()
    if block not in swap_devices():
        raise UserError(f"{ref.directory} is not in use as swap")
    _run("swapoff", block)
    return block


def mkfs(ref: DeviceRef, fs_type: str, target: str, options: str = "") -> str:
    """Create a `fs_type` filesystem on the device and mount it on `target`; returns the block
    device."""
    block = _initialised_block_device(ref)
    target = os.path.abspath(target)
    if not os.path.isdir(target):
        raise UserError(f"mount point {target} does not exist or is not a directory")
    if mount_entry(target) is not None:
        raise UserError(f"{target} is already a mount point")
    maker = f"mkfs.{fs_type}"
    if shutil.which(maker) is None:
        raise UserError(f"{maker} is not installed (unknown filesystem type {fs_type!r}?)")
    quiet = ["-q"] if fs_type.startswith("ext") or fs_type == "xfs" else []
    _run(maker, *quiet, *(["-F"] if fs_type.startswith("ext") else []), block)
    _run("mount", *(["-o", options] if options else []), block, target)
    return block


def users(block: str) -> tuple[list[str], bool]:
    """(the mount points of filesystems on `block`, whether it is active swap)."""
    mounted = [entry.mountpoint for entry in mount_table() if entry.source == block]
    return mounted, block in swap_devices()


def release(refs: list[DeviceRef], force: bool = False) -> list[str]:
    """Take down what uses the devices' block devices before they go: unmount filesystems on
    them, and swapoff (only with `force`). Returns a line per action. Refuses, changing nothing,
    while one is active swap and not `force`."""
    blocks = {ref: block for ref in refs if (block := ref.block_path())}
    if not force:
        swapping = [f"{ref.directory} ({block})" for ref, block in blocks.items() if users(block)[1]]
        if swapping:
            raise UserError(
                f"{', '.join(swapping)} is active swap; run 'zramd swapoff' on it first, or "
                f"'zramd stop --force' to swapoff and stop"
            )
    actions = []
    for ref, block in blocks.items():
        mounted, is_swap = users(block)
        for where in reversed(mounted):
            _run("umount", where)
            actions.append(f"unmounted {where}")
        if is_swap:
            _run("swapoff", block)
            actions.append(f"swapoff {block} ({ref.name})")
    return actions

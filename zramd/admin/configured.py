"""The devices of a configuration file, brought up and taken down the way boot does it.

Owns: `up` -- make sure a daemon serves the root (starting one with no devices if none does),
create each configured device through ``zram-control/hot_add`` until its id exists, set it up
through its files in the kernel's order (comp_algorithm, mem_limit, then disksize), then put it to
use (swapon, or mkfs and mount) -- and `down`, which undoes that in reverse: release the device's
users, reset it, hot_remove it, and stop the daemon once a full `down` leaves it no devices
(after removing the uninitialised ones hot_add made on the way to a configured id).
Both are idempotent: a device already set up or in use is left as it is.
Must not: run inside the daemon, or set a device up any other way than through its files.
"""

from __future__ import annotations

import fcntl
import os

from zramd.admin import blockdev, control
from zramd.admin.config_file import DeviceSection, load_config
from zramd.admin.devices import DeviceRef, devices_of
from zramd.core import compress
from zramd.core.errors import UserError
from zramd.host.mounts import FSTYPE, mount_entry
from zramd.host.rundir import DEVICE_PREFIX, RUN_DIR, lockfile_for
from zramd.host.settings import ServeConfig

HOT_ADD_ATTEMPTS = 64  # hot_add returns the lowest free id: reaching id N takes at most N + 1 reads


def _device_id(section: DeviceSection) -> int:
    return int(section.name.removeprefix(DEVICE_PREFIX))


def chosen_sections(config: str, device: str | None) -> list[DeviceSection]:
    """The sections to act on, in id order: all of them, or the one named `device`."""
    sections = load_config(config)
    if device is None:
        return sorted(sections.values(), key=_device_id)
    if device not in sections:
        raise UserError(
            f"{config}: no device {device!r} on this machine "
            f"(configured: {', '.join(sections) or 'none'}; a size of 0 or host-memory-limit removes one)"
        )
    return [sections[device]]


def _serving(root: str) -> bool:
    entry = mount_entry(os.path.abspath(root))
    return entry is not None and entry.fstype == FSTYPE


def ensure_device(root: str, device_id: int) -> DeviceRef:
    """Device `device_id` of `root`, created with hot_add if it does not exist yet. Setup units
    run in parallel at boot; a lock per root keeps one `up` from taking another's id (hot_add
    gives the lowest free one) and leaving an extra device behind."""
    ref = DeviceRef(os.path.abspath(root), device_id)
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    with open(lockfile_for(ref.root), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for _ in range(HOT_ADD_ATTEMPTS):
            if ref.exists():
                return ref
            ref.control.number("hot_add")
    raise UserError(f"{root}: hot_add did not create {ref.name}")


def set_up(ref: DeviceRef, section: DeviceSection) -> bool:
    """Configure an uninitialised device through its files; False if it was already set up."""
    sysdir = ref.sysdir
    if sysdir.number("disksize"):
        return False
    sysdir.write("comp_algorithm", section.compression_algorithm)
    if section.resident_limit:
        sysdir.write("mem_limit", str(section.resident_limit))
    if section.writeback_device:
        sysdir.write("backing_dev", section.writeback_device)
    if section.writeback_policy:
        sysdir.write("writeback_policy", section.writeback_policy)
    sysdir.write("disksize", str(section.zram_size))
    return True


def up(config: str, root: str, device: str | None = None) -> list[str]:
    """Bring the configured devices up on `root`; returns a line per action."""
    sections = chosen_sections(config, device)
    lines = []
    if not _serving(root):
        os.makedirs(root, exist_ok=True)
        lines.append(control.start(ServeConfig(root, 0, compress.DEFAULT_ALGORITHM, devices=0)))
    for section in sections:
        ref = ensure_device(root, _device_id(section))
        if set_up(ref, section):
            lines.append(
                f"zramd: {ref.name}: {section.zram_size} bytes, {section.compression_algorithm}"
                + (f", mem_limit {section.resident_limit}" if section.resident_limit else "")
            )
        block = ref.block_device()
        mounted, is_swap = blockdev.users(block)
        options = [o for o in section.options.split(",") if o]
        if section.fs_type == "swap":
            if not is_swap:
                blockdev.swapon(ref, priority=section.swap_priority, discard="discard" in options)
                lines.append(f"zramd: {ref.name}: swap on {block}, priority {section.swap_priority}")
        else:
            if not section.mount_point:
                raise UserError(
                    f"{config}: [{section.name}] has fs-type {section.fs_type} but no mount-point"
                )
            if section.mount_point not in mounted:
                os.makedirs(section.mount_point, exist_ok=True)
                blockdev.mkfs(ref, section.fs_type, section.mount_point, section.options)
                lines.append(
                    f"zramd: {ref.name}: {section.fs_type} on {block} mounted on {section.mount_point}"
                )
    return lines


def down(config: str, root: str, device: str | None = None) -> list[str]:
    """Take the configured devices down on `root`, in reverse; a full `down` (no `device`) also
    stops the daemon once it serves no devices. Returns a line per action."""
    sections = chosen_sections(config, device)
    if not _serving(root):
        return [f"zramd: {root} is not served; nothing to take down"]
    lines = []
    for section in reversed(sections):
        ref = DeviceRef(os.path.abspath(root), _device_id(section))
        if not ref.exists():
            continue
        lines += [f"zramd: {ref.name}: {action}" for action in blockdev.release([ref], force=True)]
        ref.sysdir.write("reset", "1")
        ref.control.write("hot_remove", str(ref.device_id))
        lines.append(f"zramd: {ref.name}: reset and removed")
    if device is None:
        # The uninitialised devices hot_add made on the way to a configured id go too; a device
        # someone set up by hand keeps the daemon running.
        for ref in devices_of(os.path.abspath(root)):
            if ref.sysdir.number("disksize") == 0:
                ref.control.write("hot_remove", str(ref.device_id))
        if not devices_of(os.path.abspath(root)):
            lines.append(control.stop(root))
    return lines

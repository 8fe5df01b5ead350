"""Naming a device from the command line: a daemon's root, or one device directory under it.

Owns: `DeviceRef` and `resolve`, which turn what the user typed (``/run/zramd/sys``: device 0 of
that root; ``/run/zramd/sys/zram2``: device 2) into the device's paths -- its attribute
directory, its disk file, its block device and that block device's predictable link -- and
`devices_of`, every device a root serves. Must not: run inside the daemon (it reads the mount
from outside), or change anything.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from zramd.core.errors import UserError
from zramd.host.mounts import FSTYPE, mount_entry, require_zramd_mount
from zramd.host.rundir import CONTROL_NAME, DEVICE_PREFIX, block_link_dir, device_dir
from zramd.host.sysdir import SysDir

_DEVICE_NAME = re.compile(rf"{DEVICE_PREFIX}(\d+)")


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """One device of a running daemon.

    Attributes:
        root: the daemon's mount point.  device_id: N of zramN.
    """

    root: str
    device_id: int

    @property
    def name(self) -> str:
        return f"{DEVICE_PREFIX}{self.device_id}"

    @property
    def directory(self) -> Path:
        return device_dir(self.root, self.device_id)

    @property
    def sysdir(self) -> SysDir:
        return SysDir(self.directory)

    @property
    def disk(self) -> str:
        return str(self.directory / "disk")

    @property
    def link(self) -> Path:
        """The predictable path of its block device (``/dev/zramd/zram0``)."""
        return block_link_dir(self.root) / self.name

    @property
    def control(self) -> SysDir:
        """Its daemon's control directory (``ROOT/zram-control``)."""
        return SysDir(Path(self.root) / CONTROL_NAME)

    def block_path(self) -> str:
        """Its loop device (``/dev/loop3``), or "" while it has none."""
        return self.sysdir.read("block_device").strip()

    def block_device(self) -> str:
        """Its loop device, or UserError if it has none."""
        path = self.block_path()
        if not path:
            raise UserError(f"{self.directory} has no block device")
        return path

    def exists(self) -> bool:
        return self.directory.is_dir()


def resolve(target: str) -> DeviceRef:
    """The device `target` names: a zramd root (its device 0) or ``ROOT/zramN``."""
    absolute = os.path.abspath(target)
    entry = mount_entry(absolute)
    if entry is not None and entry.fstype == FSTYPE:
        ref = DeviceRef(absolute, 0)
    else:
        parent, name = os.path.split(absolute)
        match = _DEVICE_NAME.fullmatch(name)
        if match is None:
            require_zramd_mount(absolute, hint="give a zramd root or ROOT/zramN; see 'zramd status'")
            raise AssertionError("unreachable")
        ref = DeviceRef(require_zramd_mount(parent), int(match.group(1)))
    if not ref.exists():
        raise UserError(
            f"{ref.root} has no device {ref.name} (create one: cat {ref.root}/zram-control/hot_add)"
        )
    return ref


def devices_of(root: str) -> list[DeviceRef]:
    """Every device the daemon on `root` serves, in id order."""
    ids = []
    for entry in os.scandir(root):
        match = _DEVICE_NAME.fullmatch(entry.name)
        if match is not None:
            ids.append(int(match.group(1)))
    return [DeviceRef(root, device_id) for device_id in sorted(ids)]

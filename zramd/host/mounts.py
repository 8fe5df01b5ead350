"""Mount points, mount tables and loop devices, as seen from outside the daemon.

Owns: validating a mount point before serving (exists, is a directory, is empty, is not mounted,
or is a dead zramd mount left by a killed daemon, which it cleans up), listing zramd mounts from
/proc/self/mountinfo, unmounting, and finding loop devices whose backing file is a given path.
Must not: be called by the daemon on its own mount after it serves (that could deadlock it).
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from zramd.core.errors import UserError
from zramd.host.loop import backing_files, bound_under

log = logging.getLogger(__name__)

FSTYPE = "fuse.zramd"
FSNAME = "zramd"
DEAD_MOUNT_ERRNOS = (errno.ENOTCONN, errno.ECONNABORTED)


@dataclass(frozen=True, slots=True)
class MountEntry:
    """One line of /proc/self/mountinfo."""

    mountpoint: str
    fstype: str
    source: str


def _unescape(field: str) -> str:
    """Undo the octal escapes of mountinfo (``\\040`` for a space, etc.)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_table() -> list[MountEntry]:
    entries = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            rest = right.split()
            if len(fields) >= 5 and len(rest) >= 2:
                entries.append(MountEntry(_unescape(fields[4]), rest[0], _unescape(rest[1])))
    return entries


def zramd_mounts() -> list[str]:
    """Mount points of every zramd filesystem, in mount order."""
    return [e.mountpoint for e in mount_table() if e.fstype == FSTYPE]


def mount_entry(path: str) -> MountEntry | None:
    """The mount whose mount point is exactly `path` (the last one, if stacked)."""
    found = None
    for entry in mount_table():
        if entry.mountpoint == path:
            found = entry
    return found


def require_zramd_mount(mountpoint: str, hint: str = "see 'zramd status'") -> str:
    """`mountpoint` as an absolute path, or UserError when no zramd filesystem is mounted there."""
    absolute = os.path.abspath(mountpoint)
    entry = mount_entry(absolute)
    if entry is None or entry.fstype != FSTYPE:
        raise UserError(f"{absolute} is not a zramd mount ({hint})")
    return absolute


def is_dead_mount(path: str) -> bool:
    """A FUSE mount whose daemon is gone answers ENOTCONN ("Transport endpoint is not
    connected") or, once the kernel aborted the connection, ECONNABORTED to every request.
    statfs is asked of the daemon every time, whereas a stat may be answered from attributes
    the kernel still caches."""
    try:
        os.statvfs(path)
    except OSError as exc:
        return exc.errno in DEAD_MOUNT_ERRNOS
    return False


def unmount(path: str, lazy: bool = False) -> None:
    """Unmount `path` (MNT_DETACH when `lazy`); raises UserError with the kernel's reason."""
    args = ["umount", *(["-l"] if lazy else []), path]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "umount failed"
        raise UserError(f"cannot unmount {path}: {reason}")


def recover_dead_root(root: str, link_dir: Path) -> list[str]:
    """Clean up what a killed daemon left on `root`: its loop devices that swap or a mount kept
    bound to the dead mount (autoclear detached the others when the daemon's fds closed) --
    filesystems on them are lazily unmounted and swap turned off where the kernel still can --
    its block-device links in `link_dir`, and the dead mount itself. Returns a line per action.
    Pages that lived in the dead daemon are lost; the processes that owned them got EIO."""
    actions = []
    for device in bound_under(root):
        for entry in mount_table():
            if entry.source == device.path:
                try:
                    unmount(entry.mountpoint, lazy=True)
                    actions.append(f"unmounted {entry.mountpoint} (on {device.path}, lazily)")
                except UserError as exc:
                    actions.append(str(exc))
        if device.path in swap_devices():
            result = subprocess.run(["swapoff", device.path], capture_output=True, text=True, check=False)
            actions.append(f"swapoff {device.path}" + ("" if result.returncode == 0 else " failed"))
        try:
            device.detach()
            actions.append(f"detached {device.path}")
        except OSError as exc:
            actions.append(f"could not detach {device.path}: {exc}")
    if link_dir.is_dir():
        for link in link_dir.iterdir():
            if link.is_symlink():
                link.unlink()
    if mount_entry(root) is not None and is_dead_mount(root):
        unmount(root, lazy=True)
        actions.append(f"detached the dead mount {root}")
    return actions


def prepare_mountpoint(path: str, link_dir: Path | None = None) -> str:
    """Check that zramd can mount on `path` and return it as an absolute, real path.

    A dead zramd mount left behind by a killed daemon is cleaned up (`recover_dead_root`) and
    reported; a live mount, a non-empty directory, a missing path or a file are refused with
    one clear line.
    """
    absolute = os.path.abspath(path)
    entry = mount_entry(absolute)
    if entry is not None:
        if is_dead_mount(absolute):
            log.warning(
                '%s: found a dead %s mount (its daemon was killed; "Transport endpoint is not '
                'connected"); cleaning up and starting afresh',
                absolute,
                entry.fstype,
            )
            for action in recover_dead_root(absolute, link_dir or Path("/nonexistent")):
                log.warning("%s: %s", absolute, action)
        elif entry.fstype == FSTYPE:
            raise UserError(f"{absolute} is already served by a zramd daemon (see 'zramd status')")
        else:
            raise UserError(f"{absolute} is already a mount point ({entry.fstype} from {entry.source})")
    if not os.path.exists(absolute):
        raise UserError(f"mount point {absolute} does not exist (create it with mkdir)")
    if not os.path.isdir(absolute):
        raise UserError(f"mount point {absolute} is not a directory")
    if any(os.scandir(absolute)):
        raise UserError(f"mount point {absolute} is not empty")
    return os.path.realpath(absolute)


def loop_devices_for(path: str, resolve: bool = True) -> list[str]:
    """Loop devices (``/dev/loopN``) whose backing file is `path`.

    `resolve=False` compares `path` as given, without touching it: the daemon must use that for
    its own disk, because resolving a path inside its own mount sends it a FUSE request that
    only it could answer, while it waits -- a deadlock."""
    target = os.path.realpath(path) if resolve else path
    return [device for device, backing in backing_files().items() if backing == target]


def swap_devices() -> set[str]:
    """Devices (and files) in use as swap, from /proc/swaps."""
    with open("/proc/swaps", encoding="utf-8") as swaps:
        return {line.split()[0] for line in swaps.readlines()[1:] if line.strip()}

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
import stat
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
    device: int = 0  # st_dev of the files on it (major:minor)


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
                major, _, minor = fields[2].partition(":")
                device = os.makedev(int(major), int(minor)) if major.isdigit() and minor.isdigit() else 0
                entries.append(MountEntry(_unescape(fields[4]), rest[0], _unescape(rest[1]), device))
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


def routes_into(opened: os.stat_result, mountpoint: str, block_paths: list[str]) -> str | None:
    """Why storage whose open fd has stat `opened` would route I/O back into the daemon serving
    `mountpoint` with the block devices `block_paths`, or None if it does not. It does when it
    is a file on that mount (a disk file), one of those block devices, or a file or block device
    stacked on them: a filesystem mounted on one, or a loop device over a file of such a
    filesystem, to any depth. Never stats a path under `mountpoint` (the daemon itself would
    have to answer that)."""
    entry = mount_entry(mountpoint)
    if stat.S_ISREG(opened.st_mode) and entry is not None and opened.st_dev == entry.device:
        return f"it is a file of this daemon's mount {mountpoint}"
    ours: set[int] = set()
    for path in block_paths:
        try:
            ours.add(os.stat(path).st_rdev)
        except OSError:
            continue
    prefix = mountpoint.rstrip("/") + "/"
    stacked = {loop: backing for loop, backing in backing_files().items() if not backing.startswith(prefix)}
    grew = True
    while grew:  # loop devices over files of filesystems on our devices, to any depth
        grew = False
        for loop, backing in list(stacked.items()):
            try:
                on_ours = os.stat(backing).st_dev in ours
                rdev = os.stat(loop).st_rdev
            except OSError:
                on_ours, rdev = False, 0
            if on_ours:
                ours.add(rdev)
                del stacked[loop]
                grew = True
    if stat.S_ISBLK(opened.st_mode) and opened.st_rdev in ours:
        return "it is a block device of this daemon, or one stacked on it"
    if stat.S_ISREG(opened.st_mode) and opened.st_dev in ours:
        return "it is a file of a filesystem on a block device of this daemon"
    return None


def swap_devices() -> set[str]:
    """Devices (and files) in use as swap, from /proc/swaps."""
    with open("/proc/swaps", encoding="utf-8") as swaps:
        return {line.split()[0] for line in swaps.readlines()[1:] if line.strip()}

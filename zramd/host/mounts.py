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

log = logging.getLogger(__name__)

FSTYPE = "fuse.zramd"
FSNAME = "zramd"


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
    connected") to every access."""
    try:
        os.stat(path)
    except OSError as exc:
        return exc.errno == errno.ENOTCONN
    return False


def unmount(path: str, lazy: bool = False) -> None:
    """Unmount `path` (MNT_DETACH when `lazy`); raises UserError with the kernel's reason."""
    args = ["umount", *(["-l"] if lazy else []), path]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "umount failed"
        raise UserError(f"cannot unmount {path}: {reason}")


def prepare_mountpoint(path: str) -> str:
    """Check that zramd can mount on `path` and return it as an absolute, real path.

    A dead zramd mount left behind by a killed daemon is detached and reported; a live mount,
    a non-empty directory, a missing path or a file are refused with one clear line.
    """
    absolute = os.path.abspath(path)
    entry = mount_entry(absolute)
    if entry is not None:
        if is_dead_mount(absolute):
            log.warning(
                '%s: found a dead %s mount (its daemon was killed; "Transport endpoint is not '
                'connected"); detaching it and starting afresh',
                absolute,
                entry.fstype,
            )
            unmount(absolute, lazy=True)
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
    found = []
    for backing in sorted(Path("/sys/block").glob("loop*/loop/backing_file")):
        try:
            name = backing.read_text().strip().removesuffix(" (deleted)")
        except OSError:
            continue
        if name == target:
            found.append("/dev/" + backing.parent.parent.name)
    return found


def swap_devices() -> set[str]:
    """Devices (and files) in use as swap, from /proc/swaps."""
    with open("/proc/swaps", encoding="utf-8") as swaps:
        return {line.split()[0] for line in swaps.readlines()[1:] if line.strip()}


def active_swap_on(disk: str, resolve: bool = True) -> list[str]:
    """Loop devices over `disk` that are active swap (see `loop_devices_for` for `resolve`)."""
    return sorted(swap_devices() & set(loop_devices_for(disk, resolve)))

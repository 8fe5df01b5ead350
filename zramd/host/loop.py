"""Loop devices, driven by their ioctls: the block device each zramd device owns.

Owns: attaching a backing file to a free loop device the way zramd wants it (``LOOP_CONFIGURE``
with direct I/O, 4 KiB logical sectors, no partition scan, and ``LO_FLAGS_AUTOCLEAR`` so the loop
goes away with the last opener), re-reading the backing file's size (``LOOP_SET_CAPACITY``),
detaching, claiming a loop device exclusively (``O_EXCL``: the kernel refuses it while the device
is mounted, used as swap or claimed by anyone else), and finding the processes that hold a loop
device open -- by ``readlink`` of ``/proc/*/fd``, never ``stat``, since a stat of an fd that
points into a zramd mount would make the caller wait for that daemon.
Must not: open a file inside a zramd mount from a daemon's serving thread (`attach` opens the
backing file; a daemon calls it from a helper thread while it keeps serving), or keep state:
what a loop device is bound to is read back from ``/sys/block/loopN`` each time.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from dataclasses import dataclass
from pathlib import Path

LOOP_CONTROL = "/dev/loop-control"
LOOP_CLR_FD = 0x4C01
LOOP_SET_CAPACITY = 0x4C07
LOOP_CONFIGURE = 0x4C0A
LOOP_CTL_GET_FREE = 0x4C82
LO_FLAGS_AUTOCLEAR = 4
LO_FLAGS_DIRECT_IO = 16
LO_NAME_SIZE = 64
SECTOR_SIZE = 4096  # zramd's pages: only whole pages reach the daemon

# struct loop_info64 (linux/loop.h): 5 u64, 4 u32, file name, crypt name, key, 2 u64 = 232 bytes;
# struct loop_config: u32 fd, u32 block_size, loop_info64, 8 reserved u64 = 304 bytes.
_LOOP_INFO64 = struct.Struct(f"=5Q4I{LO_NAME_SIZE}s{LO_NAME_SIZE}s32s2Q")
_LOOP_CONFIG = struct.Struct(f"=2I{_LOOP_INFO64.size}s64x")


class LoopError(OSError):
    """A loop ioctl failed; carries its errno and says which step."""


def _sys(name: str) -> Path:
    return Path("/sys/block") / name


@dataclass(frozen=True, slots=True)
class LoopDevice:
    """One loop device, by its path (``/dev/loop3``)."""

    path: str

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def backing_file(self) -> str | None:
        """The path of the file it is bound to (as the kernel recorded it), or None if unbound."""
        try:
            return (_sys(self.name) / "loop" / "backing_file").read_text().rstrip("\n")
        except OSError:
            return None

    def set_capacity(self) -> None:
        """Re-read the backing file's size (the kernel asks the file's filesystem for it)."""
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _ioctl(fd, LOOP_SET_CAPACITY, 0, "LOOP_SET_CAPACITY", self.path)
        finally:
            os.close(fd)

    def detach(self) -> None:
        """Unbind it (with autoclear set, the kernel finishes when the last opener closes)."""
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _ioctl(fd, LOOP_CLR_FD, 0, "LOOP_CLR_FD", self.path)
        except LoopError as exc:
            if exc.errno != errno.ENXIO:  # not bound (already detached)
                raise
        finally:
            os.close(fd)

    def claim(self) -> int:
        """Open it exclusively; returns the fd (close it to release the claim). Raises
        BlockingIOError-like OSError(EBUSY) while it is mounted, swap, or claimed elsewhere."""
        return os.open(self.path, os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC)


def _ioctl(fd: int, request: int, arg: int | bytes, what: str, path: str) -> None:
    try:
        fcntl.ioctl(fd, request, arg)
    except OSError as exc:
        raise LoopError(exc.errno, f"{what} on {path}: {os.strerror(exc.errno or 0)}") from None


def attach(backing: str) -> tuple[LoopDevice, int]:
    """Bind `backing` to a free loop device: direct I/O, 4 KiB sectors, autoclear, no partition
    scan. Returns the device and an fd on it that keeps it alive (autoclear detaches it when the
    last fd closes: the caller's process holds the last one)."""
    backing_fd = os.open(backing, os.O_RDWR | os.O_CLOEXEC)
    try:
        control = os.open(LOOP_CONTROL, os.O_RDWR | os.O_CLOEXEC)
        try:
            for _ in range(8):  # another process may take the free device between the two calls
                number = fcntl.ioctl(control, LOOP_CTL_GET_FREE)
                path = f"/dev/loop{number}"
                loop_fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
                name = os.fsencode(backing)[-LO_NAME_SIZE + 1 :]
                info = _LOOP_INFO64.pack(0, 0, 0, 0, 0, 0, 0, 0, LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO,
                                         name, b"", b"", 0, 0)  # fmt: skip
                config = _LOOP_CONFIG.pack(backing_fd, SECTOR_SIZE, info)
                try:
                    fcntl.ioctl(loop_fd, LOOP_CONFIGURE, config)
                except OSError as exc:
                    os.close(loop_fd)
                    if exc.errno == errno.EBUSY:
                        continue
                    reason = os.strerror(exc.errno or 0)
                    raise LoopError(exc.errno, f"LOOP_CONFIGURE {path} on {backing}: {reason}") from None
                return LoopDevice(path), loop_fd
            raise LoopError(errno.EBUSY, f"no free loop device for {backing}")
        finally:
            os.close(control)
    finally:
        os.close(backing_fd)


def backing_files() -> dict[str, str]:
    """Every bound loop device and its backing file, as the kernel records them
    (``/dev/loop3`` -> ``/run/zramd/sys/zram0/disk``), in numeric order of the devices."""
    found = {}
    names = [entry.name for entry in Path("/sys/block").glob("loop*")]
    for name in sorted(names, key=lambda n: int(n.removeprefix("loop") or 0)):
        backing = LoopDevice(f"/dev/{name}").backing_file()
        if backing is not None:
            found[f"/dev/{name}"] = backing.removesuffix(" (deleted)")
    return found


def bound_under(directory: str) -> list[LoopDevice]:
    """The loop devices whose backing file lies under `directory` (a daemon's mount point)."""
    prefix = directory.rstrip("/") + "/"
    return [LoopDevice(path) for path, backing in backing_files().items() if backing.startswith(prefix)]


def fd_holders(targets: set[str]) -> list[int]:
    """The pids with an open fd whose link (readlink of /proc/PID/fd/N) is one of `targets`.
    Never stats anything: readlink of a magic link does not reach the file's filesystem."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fds = os.listdir(proc / "fd")
        except OSError:
            continue  # gone, or not ours to see
        for fd in fds:
            try:
                link = os.readlink(proc / "fd" / fd)
            except OSError:
                continue
            if link.removesuffix(" (deleted)") in targets:
                pids.append(int(proc.name))
                break
    return pids

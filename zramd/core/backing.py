"""The backing store of a device: where writeback puts pages, one 4 KiB block each.

Owns: the open backing file or block device (``backing_dev``), its block map (which blocks hold
a written-back page), reserving and releasing blocks, and the direct I/O of whole blocks. This is
the kernel's ``zram->bdev`` with its bitmap (``zram_reserve_bdev_block`` /
``zram_release_bdev_block``). The kernel takes block devices only; a daemon can also use a regular
file, preallocated or sparse: a released block of a file is punched out again
(``FALLOC_FL_PUNCH_HOLE``), so a sparse backing file holds only what is written back.
Must not: know what a page holds, compress, count device statistics, or go through the page
cache: every read and write is ``O_DIRECT`` from page-aligned buffers, so backing I/O never asks
the kernel for page-cache memory, which it might have to reclaim through zramd itself.

The map has one byte per block (1/4096 of the backing size), so finding a free block is one C
search (`bytearray.find`) from a moving hint, and blocks written back together tend to be
adjacent on the backing store, which lets one ``pwritev`` write a run of them. Block numbers
start at 0, as in the kernel's current code (where ``INVALID_BDEV_BLOCK`` means none).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import stat

from zramd.core.errors import InvalidArgument, NotBlockDevice, ZramError
from zramd.core.units import PAGE_SHIFT, PAGE_SIZE

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
PUNCH = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
NO_BLOCK = -1

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_fallocate = _libc.fallocate
_fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_fallocate.restype = ctypes.c_int


class BackingError(ZramError):
    """An open or I/O error of the backing store, with the errno the system gave.

    Attributes:
        pages_done: for a failed `BackingStore.write_run`, the pages written before the error.
    """

    def __init__(self, err: int, message: str, pages_done: int = 0) -> None:
        super().__init__(message)
        self.errno = err
        self.pages_done = pages_done


def _io_error(exc: OSError, what: str) -> BackingError:
    return BackingError(exc.errno or errno.EIO, f"{what}: {exc.strerror}")


class BackingStore:
    """An open backing file or block device of `nr_blocks` 4 KiB blocks.

    Attributes:
        path: the path it was opened by (what ``backing_dev`` shows).
        nr_blocks: blocks it holds.  blocks_used: blocks holding a page (``bd_count``).
        is_file: a regular file (released blocks are punched out) rather than a block device.
        punch_holes: whether releasing a block punches it out (a file whose filesystem can).
    """

    def __init__(self, path: str, fd: int, nr_blocks: int, is_file: bool) -> None:
        self.path = path
        self.fd = fd
        self.nr_blocks = nr_blocks
        self.is_file = is_file
        self.punch_holes = is_file
        self.blocks_used = 0
        self._used = bytearray(nr_blocks)
        self._hint = 0

    @classmethod
    def open(cls, path: str) -> BackingStore:
        """Open `path` as ``backing_dev_store`` does, in its order: the open (read-write,
        O_EXCL, so a block device that is mounted or in use gives EBUSY) and its errors passed
        through (EISDIR for a directory, ENOENT, ...); then ENOTBLK for anything but a block
        device or a regular file; EINVAL for one smaller than a block; then direct I/O is
        switched on (EINVAL where the filesystem cannot do it). `path` becomes the opened
        file's own path, as ``file_path`` shows it (symbolic links and ``..`` resolved)."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_EXCL | os.O_CLOEXEC)
        except OSError as exc:
            raise BackingError(exc.errno or errno.EIO, f"backing_dev {path}: {exc.strerror}") from None
        try:
            opened = os.fstat(fd)
            if stat.S_ISBLK(opened.st_mode):
                size = os.lseek(fd, 0, os.SEEK_END)
            elif stat.S_ISREG(opened.st_mode):
                size = opened.st_size
            else:
                raise NotBlockDevice(f"backing_dev {path}: neither a block device nor a regular file")
            nr_blocks = size >> PAGE_SHIFT
            if nr_blocks == 0:
                raise InvalidArgument(f"backing_dev {path}: smaller than one {PAGE_SIZE}-byte block")
            try:
                fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_DIRECT)
            except OSError as exc:
                raise InvalidArgument(f"backing_dev {path}: no direct I/O there ({exc.strerror})") from None
            # The magic link names the open file without a lookup (never through a FUSE mount).
            real = os.readlink(f"/proc/self/fd/{fd}")
        except BaseException:
            os.close(fd)
            raise
        return cls(real, fd, nr_blocks, stat.S_ISREG(opened.st_mode))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # ------------------------------------------------------------------ the block map

    def reserve(self) -> int:
        """A free block, now marked used, or NO_BLOCK when every block is used."""
        used = self._used
        block = used.find(0, self._hint)
        if block < 0:
            block = used.find(0, 0, self._hint)
            if block < 0:
                return NO_BLOCK
        used[block] = 1
        self._hint = block + 1
        self.blocks_used += 1
        return block

    def release(self, block: int) -> None:
        """Mark `block` free and, in a file, punch it out. A punch that fails (a filesystem
        without hole punching) turns punching off; the block is free either way."""
        if not self._used[block]:
            raise AssertionError(f"backing block {block} released twice")
        self._used[block] = 0
        self.blocks_used -= 1
        if block < self._hint:
            self._hint = block
        if self.punch_holes and _fallocate(self.fd, PUNCH, block << PAGE_SHIFT, PAGE_SIZE):
            self.punch_holes = False

    def is_used(self, block: int) -> bool:
        return bool(self._used[block])

    def release_all(self) -> None:
        """Forget every block (reset): a whole-file punch for a file, nothing for a device."""
        self._used = bytearray(self.nr_blocks)
        self.blocks_used = 0
        self._hint = 0
        if self.punch_holes:
            _fallocate(self.fd, PUNCH, 0, self.nr_blocks << PAGE_SHIFT)

    # ------------------------------------------------------------------ direct I/O

    def write_run(self, first_block: int, buffer: memoryview, count: int) -> None:
        """Write `count` pages from the page-aligned `buffer` to blocks first_block, first_block+1,
        ... in one call. An I/O error raises BackingError with the system's errno and the whole
        pages written before it (a filesystem that fills up part way writes some, then says
        ENOSPC: a short write is continued until it says why it stopped)."""
        nbytes = count << PAGE_SHIFT
        done = 0
        while done < nbytes:
            try:
                wrote = os.pwritev(self.fd, [buffer[done:nbytes]], (first_block << PAGE_SHIFT) + done)
            except OSError as exc:
                error = _io_error(exc, f"backing write at block {first_block + (done >> PAGE_SHIFT)}")
                error.pages_done = done >> PAGE_SHIFT
                raise error from None
            if wrote <= 0:
                raise BackingError(errno.EIO, "backing write wrote nothing", done >> PAGE_SHIFT)
            done += wrote

    def read_block(self, block: int, buffer: memoryview) -> None:
        """Read block `block` into the page-aligned one-page `buffer`; errors raise BackingError."""
        try:
            done = os.preadv(self.fd, [buffer[:PAGE_SIZE]], block << PAGE_SHIFT)
        except OSError as exc:
            raise _io_error(exc, f"backing read of block {block}") from None
        if done != PAGE_SIZE:
            raise BackingError(errno.EIO, f"backing read of block {block}: {done} of {PAGE_SIZE} bytes")

"""Giving pages of a private anonymous mapping back to the OS, locked or not.

Owns: ``madvise(MADV_DONTNEED)`` on a range of a mapping, and the dance it needs when the range is
locked: the daemon runs under ``mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)``, and the kernel
refuses MADV_DONTNEED on a locked range (EINVAL). So the range is unlocked, dropped, and at once
locked again with ``mlock2(MLOCK_ONFAULT)``: MCL_FUTURE does not re-lock a range that was
unlocked, and ONFAULT locks its pages only as they are touched again, so nothing is faulted in.
Re-locking gives the range the flags of its neighbours again, so the kernel merges the mapping
back into one area instead of leaving it split toward ``vm.max_map_count``.
Must not: know what the pages hold, or keep state.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import mmap

MLOCK_ONFAULT = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
for _name in ("munlock", "mlock2"):
    getattr(_libc, _name).restype = ctypes.c_int
_libc.munlock.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mlock2.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint]


def mapping_address(mapping: mmap.mmap) -> int:
    """The address of `mapping`'s first byte (no reference to it is kept)."""
    anchor = ctypes.c_char.from_buffer(mapping)
    try:
        return ctypes.addressof(anchor)
    finally:
        del anchor


def discard(mapping: mmap.mmap, address: int, start: int, length: int) -> None:
    """Drop bytes [start, start + length) of `mapping` (page-aligned; `address` is
    `mapping_address(mapping)`): their memory goes back to the OS and they read as zeros after."""
    try:
        mapping.madvise(mmap.MADV_DONTNEED, start, length)
        return
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
    if _libc.munlock(address + start, length):
        raise OSError(ctypes.get_errno(), "munlock")
    try:
        mapping.madvise(mmap.MADV_DONTNEED, start, length)
    finally:
        if _libc.mlock2(address + start, length, MLOCK_ONFAULT):
            err = ctypes.get_errno()
            raise OSError(err, f"mlock2(MLOCK_ONFAULT): {errno.errorcode.get(err, err)}")

"""The attribute files of ``MOUNTPOINT/sys/``: zram's sysfs attributes, text in and text out.

Owns: the attribute table (name, mode, show, store), the exact text formats of the kernel, and the
exact parsing and errno of every store, including sysfs's own rules: a zero-length write does
nothing and returns 0, a write is cut to one page and at the first NUL, and the whole write is
reported as consumed when the store succeeds. Reading a write-only attribute and opening a
read-only one for writing are refused with EACCES, as kernfs does for root.
Must not: touch the device's internals (only its public methods), or know about FUSE.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from zramd import compress
from zramd.device import ZramDevice
from zramd.errors import ArgumentTooLong, DeviceBusy, InvalidArgument, NoMemory
from zramd.kparse import U64_MASK, kstrtou16, kstrtoull, memparse, store_buffer
from zramd.units import PAGE_SIZE

ALGO_NAME_MAX = 128  # ZRAM_MAX_ALGO_NAME_SZ: names this long or longer get E2BIG
SYSFS_FILE_SIZE = PAGE_SIZE  # what stat() reports for every sysfs attribute


@dataclass(frozen=True, slots=True)
class Attribute:
    """One attribute file.

    Attributes:
        name: the file name, as in /sys/block/zram0/.
        mode: permission bits (0444 read-only, 0200 write-only, 0644 read-write).
        show: renders the file's text, or None for write-only attributes.
        store: parses a write and applies it, or None for read-only attributes; raises a
            `zramd.errors.ZramError` carrying the kernel's errno.
    """

    name: str
    mode: int
    show: Callable[[ZramDevice], str] | None
    store: Callable[[ZramDevice, str], None] | None

    @property
    def readable(self) -> bool:
        return self.show is not None

    @property
    def writable(self) -> bool:
        return self.store is not None

    def write(self, device: ZramDevice, data: bytes) -> int:
        """Apply a write of `data` as sysfs would; returns the byte count to report."""
        if not data:
            return 0
        assert self.store is not None
        self.store(device, store_buffer(data))
        return min(len(data), PAGE_SIZE)


# ------------------------------------------------------------------ stores


def _store_disksize(device: ZramDevice, text: str) -> None:
    value, _ = memparse(text)
    if value == 0:
        raise InvalidArgument(f"disksize: {text!r} is not a size")
    aligned = (value + PAGE_SIZE - 1) & U64_MASK & ~(PAGE_SIZE - 1)
    if aligned == 0:  # PAGE_ALIGN wrapped around: the kernel's allocation of 0 pages fails
        if device.initialized:
            raise DeviceBusy("the device is already initialised; write 1 to reset first")
        raise NoMemory(f"disksize {value} is too large")
    device.set_disksize(aligned)


def _store_reset(device: ZramDevice, text: str) -> None:
    if kstrtou16(text, 10) == 0:
        raise InvalidArgument("reset takes a positive number")
    device.reset()


def _store_compact(device: ZramDevice, text: str) -> None:
    device.compact()


def _store_mem_limit(device: ZramDevice, text: str) -> None:
    value, used = memparse(text)
    if used == 0:
        raise InvalidArgument(f"mem_limit: {text!r} is not a size")
    device.set_mem_limit((value + PAGE_SIZE - 1) & U64_MASK & ~(PAGE_SIZE - 1))


def _store_mem_used_max(device: ZramDevice, text: str) -> None:
    if kstrtoull(text, 10) != 0:
        raise InvalidArgument("mem_used_max only accepts 0")
    device.reset_mem_used_max()


def _store_comp_algorithm(device: ZramDevice, text: str) -> None:
    if len(text) >= ALGO_NAME_MAX:
        raise ArgumentTooLong(f"algorithm name of {len(text)} characters")
    name = text[:-1] if text.endswith("\n") else text
    device.set_comp_algorithm(name)


# ------------------------------------------------------------------ shows


def _show_comp_algorithm(device: ZramDevice) -> str:
    return compress.format_comp_algorithm(device.comp_algorithm)


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("disksize", 0o644, lambda d: f"{d.disksize}\n", _store_disksize),
    Attribute("initstate", 0o444, lambda d: f"{int(d.initialized)}\n", None),
    Attribute("reset", 0o200, None, _store_reset),
    Attribute("compact", 0o200, None, _store_compact),
    Attribute("mem_limit", 0o200, None, _store_mem_limit),
    Attribute("mem_used_max", 0o200, None, _store_mem_used_max),
    Attribute("comp_algorithm", 0o644, _show_comp_algorithm, _store_comp_algorithm),
    Attribute("io_stat", 0o444, lambda d: d.io_stat().format(), None),
    Attribute("mm_stat", 0o444, lambda d: d.mm_stat().format(), None),
    Attribute("debug_stat", 0o444, lambda d: d.format_debug_stat(), None),
    Attribute("stat", 0o444, lambda d: d.format_block_stat(), None),
)
BY_NAME = {attr.name: attr for attr in ATTRIBUTES}


# ------------------------------------------------------------------ zramd's own additions


def _store_fault_inject(device: ZramDevice, text: str) -> None:
    """``compress N`` / ``decompress N``: the next N (de)compressions fail; ``corrupt PAGE``:
    garble the stored object of page PAGE."""
    words = text.split()
    if len(words) != 2 or not words[1].isdigit():
        raise InvalidArgument("expected 'compress N', 'decompress N' or 'corrupt PAGE'")
    what, number = words[0], int(words[1])
    if what == "compress":
        device.inject_faults(compress_failures=number)
    elif what == "decompress":
        device.inject_faults(decompress_failures=number)
    elif what == "corrupt":
        device.corrupt_page(number)
    else:
        raise InvalidArgument(f"unknown fault {what!r}")


# A recount of the slot table and the pool against the counters: "ok: ..." or "MISMATCH: ...".
CONSISTENCY = Attribute("consistency", 0o444, lambda d: d.format_consistency(), None)
# Test-only fault injection; present only when the daemon runs with ZRAMD_FAULT_INJECTION=1.
FAULT_INJECT = Attribute("fault_inject", 0o200, None, _store_fault_inject)

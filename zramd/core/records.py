"""The records and exceptions the per-page path hands out: statistics snapshots, class rows,
the fault hook's type, pool exhaustion.

Owns: these plain types, defined once and shared by the Python source of the pool and the device
and by their compiled builds, so that both builds return and raise the very same classes (a
snapshot from either compares equal, an `except PoolExhausted` catches either).
Must not: hold logic, or import anything of zramd but the units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


class PoolExhausted(MemoryError):
    """The pool has no free frames left for a new zspage (its preset maximum is reached)."""


@dataclass(frozen=True, slots=True)
class ClassStats:
    """One row of the ``classes`` table (zsmalloc's debugfs ``zs_stats_size_show``).

    Attributes:
        index: the kernel's class index.  size: object size in bytes.
        zspages_by_group: zspages in fullness groups 10%..99% and 100% (11 numbers).
        objs_allocated: object slots in this class's zspages.  objs_used: live objects.
        pages_used: frames held by the class.  pages_per_zspage: chain length.
        freeable: pages compaction could free now (``zs_can_compact``).
    """

    index: int
    size: int
    zspages_by_group: tuple[int, ...]
    objs_allocated: int
    objs_used: int
    pages_used: int
    pages_per_zspage: int
    objs_per_zspage: int
    freeable: int


# A test's fault hook: called as hook(stage, index) right after a page's codec ran ("compress" or
# "decompress"); whatever it raises is handled exactly like a failure of the codec itself.
FaultHook = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class MmStat:
    """The nine columns of ``mm_stat``, in the kernel's order (bytes unless noted)."""

    orig_data_size: int
    compr_data_size: int
    mem_used_total: int
    mem_limit: int
    mem_used_max: int
    same_pages: int  # count
    pages_compacted: int  # count
    huge_pages: int  # count
    huge_pages_since: int  # count


@dataclass(frozen=True, slots=True)
class IoStat:
    """The live columns of ``io_stat`` (the retired invalid_io column is not kept)."""

    failed_reads: int
    failed_writes: int
    notify_free: int


@dataclass(frozen=True, slots=True)
class WritebackPolicy:
    """zramd's writeback trigger for one device (the kernel has none): what the daemon does
    every `interval` seconds while the device has a backing store.

    Attributes:
        interval: seconds between cycles; 0 turns the policy off.
        idle_age: each cycle marks pages not accessed for this many seconds idle and writes
            them back (0: no age rule).
        high_watermark: a fraction of mem_limit; while mem_used_total is above it, a cycle
            writes back idle pages, then huge ones (0: no watermark rule).
        max_pages: pages one cycle may write back, so that a cycle stays short.
        max_seconds: how long one cycle may keep writing back (checked between chunks of
            pages), however many pages are left.
        release: give the frames compaction empties back to the OS (zramd's release policy):
            the daemon's RSS then falls with mem_used_total.
        recompress: "" or a ``recompress`` type (idle, huge, huge_idle): each cycle first
            recompresses those pages with the device's recompression algorithms, then writes
            back the ones none could shrink (INCOMPRESSIBLE).
    """

    interval: float = 0.0
    idle_age: int = 0
    high_watermark: float = 0.0
    max_pages: int = 65536
    max_seconds: float = 2.0
    release: bool = False
    recompress: str = ""


@dataclass(frozen=True, slots=True)
class BdStat:
    """``bd_stat``: backing blocks in use, pages read from and written to the backing store."""

    bd_count: int = 0
    bd_reads: int = 0
    bd_writes: int = 0


@dataclass(frozen=True, slots=True)
class RequestStat:
    """Block-layer accounting of one kind of request: count, 512-byte sectors, service time."""

    ios: int = 0
    sectors: int = 0
    nanos: int = 0


@dataclass(frozen=True, slots=True)
class BlockStat:
    """What ``/sys/block/<dev>/stat`` is made of, per kind of request."""

    read: RequestStat
    write: RequestStat
    discard: RequestStat
    flush: RequestStat


@dataclass(frozen=True, slots=True)
class DeviceStatistics:
    """Every counter of a device, read at one instant under the device lock.

    Attributes:
        mm: ``mm_stat``.  io: ``io_stat``.  block: the block-layer ``stat``.
        pages_stored: slots holding data (same-filled and written-back ones included).
        pool_pages: frames the pool holds now (mem_used_total / 4096).
        bd: ``bd_stat``.
        frames_resident: frames of the pool's arena in memory: the ones in use plus the free
            ones kept for reuse (all of them unless frames are released to the OS).
    """

    mm: MmStat
    io: IoStat
    block: BlockStat
    pages_stored: int
    pool_pages: int
    bd: BdStat = BdStat()
    frames_resident: int = 0

"""One zram device: the slot table, the write and read paths, the counters, and the setup state.

Owns: what ``drivers/block/zram/zram_drv.c`` owns, minus the block layer: the init state machine
(disksize / comp_algorithm / mem_limit / reset, EBUSY after init), one slot per 4 KiB page, the
same-filled / compress / huge / mem_limit write path, reads, discards, compaction requests, the
counters behind ``mm_stat``/``io_stat`` and the block-layer ``stat`` accounting, handed out as
numbers in one frozen `DeviceStatistics` snapshot.
Must not: parse or render attribute text (`zramd.core.attrs` does both), speak to the kernel, or
import trio or pyfuse3. Public methods are synchronous and take the device lock; today one
pyfuse3 task calls them, one request at a time, and the lock makes the device safe for the tests'
and the future compression streams' threads.

The slot table is three arrays in a reserved anonymous mapping (never-written pages cost nothing):
``_handle[i]`` holds the pool location of page i's object, the fill word of a same-filled page, or
the backing block of a written-back page; ``_flags[i]`` packs the stored size in the low 13 bits
and the SAME/HUGE/WB/IDLE/... flags above them, like the kernel's ``zram_table_entry``; and
``_actime[i]`` is the page's last access in CLOCK_BOOTTIME seconds (the kernel's ``ac_time`` with
``CONFIG_ZRAM_TRACK_ENTRY_ACTIME``), 4 bytes per page. A slot with flags 0 is empty and reads as
zeros. `_free_slot` is the one place that undoes a slot and its counters (``slot_free``).

Writeback (``CONFIG_ZRAM_WRITEBACK``): with a backing store (`zramd.core.backing`) set before
initialisation, `mark_idle` and `writeback` move pages out of the pool to backing blocks. The
slot then holds the block number and the WB flag; a read fetches it with direct I/O, an overwrite
or discard releases the block. `writeback` works in batches and drops the lock while it writes,
so the device keeps serving meanwhile; the PP_SLOT mark (the kernel's) tells it which slots were
touched in between and must stay where they are.
"""

from __future__ import annotations

import mmap
import threading
import time
from array import array
from collections.abc import Callable, Sequence

from zramd.core import compress
from zramd.core.backing import NO_BLOCK, BackingError, BackingStore
from zramd.core.codec import COMPRESS_STRIDE, FAILED, FILLED, PageCodec
from zramd.core.errors import (
    DeviceBusy,
    InvalidArgument,
    IOFailure,
    NoDevice,
    NoMemory,
    NoSpace,
    TryAgain,
    ZramError,
)
from zramd.core.pool import ReservedArrays, ZsPool, empty_class_stats
from zramd.core.records import (
    BdStat,
    BlockStat,
    ClassStats,
    DeviceStatistics,
    FaultHook,
    IoStat,
    MmStat,
    PoolExhausted,
    RequestStat,
    WritebackPolicy,
)
from zramd.core.size_classes import DEFAULT_CHAIN_SIZE, SizeClassTable
from zramd.core.streams import MIN_JOBS_PER_STREAM, CompressionStreams
from zramd.core.units import PAGE_SHIFT, PAGE_SIZE, SECTOR_SHIFT, round_up_to_page

# Slot flags, above the 13-bit size field (the kernel's ZRAM_FLAG_SHIFT = PAGE_SHIFT + 1).
SIZE_BITS = PAGE_SHIFT + 1
SIZE_MASK = (1 << SIZE_BITS) - 1
SAME = 1 << SIZE_BITS  # the page is one 8-byte word repeated; _handle holds the word
HUGE = 1 << (SIZE_BITS + 1)  # stored uncompressed in the 4096-byte class
WB = 1 << (SIZE_BITS + 2)  # written back: _handle holds the backing block, the size is 0
IDLE = 1 << (SIZE_BITS + 3)  # marked idle by `mark_idle`; any access clears it
INCOMPRESSIBLE = 1 << (SIZE_BITS + 4)  # set by recompression when no algorithm shrank the page
PP_SLOT = 1 << (SIZE_BITS + 5)  # chosen by a running writeback; any access or free clears it
ACCESS_CLEARS = IDLE | PP_SLOT  # the kernel's mark_slot_accessed
PRIO_SHIFT = SIZE_BITS + 6  # the 2-bit priority of the algorithm that compressed the page
PRIO_MASK = 3 << PRIO_SHIFT
MAX_COMPS = 4  # ZRAM_MAX_COMPS: the primary and three recompression algorithms
RECOMPRESS_IDLE, RECOMPRESS_HUGE = 1, 2

# Writeback selection modes (the kernel's *_WRITEBACK bits); 0 selects any stored page.
HUGE_WRITEBACK, IDLE_WRITEBACK, INCOMPRESSIBLE_WRITEBACK = 1, 2, 4
PP_BUCKET_SIZE = 64  # writeback takes the largest objects first, in 64-byte buckets
WRITEBACK_BATCH_SIZE = 32  # writeback_batch_size's default (6.19)

# Pages handled per batch: a FUSE request is at most 1 MiB (max_write); longer writes and reads
# (the tests' and tools') go in batches of this many pages.
BATCH_PAGES = 256
# A batch is split between the compression streams only when its codec work is estimated at
# this much or more: waking another CPU costs tens of microseconds on a virtual machine, more
# than 32 pages of fio's half-compressible data take to compress (see docs/performance.md).
SPLIT_MIN_NS = 150_000
_clock_ns = time.monotonic_ns  # bound once: the per-request path calls it without a lookup
CLOCK_REUSE_NS = 50_000_000  # access times are whole seconds: one clock read per 50 ms will do
COMPRESSING, DECOMPRESSING = 0, 1  # the two estimates in ZramDevice._codec_ns


# The block-layer request counters (``stat``): three numbers (ios, sectors, nanoseconds) for
# each of these, at this offset in `ZramDevice._requests`.
READS, WRITES, DISCARDS, FLUSHES = 0, 3, 6, 9


def boottime_seconds() -> int:
    """CLOCK_BOOTTIME in whole seconds, modulo 2**32: the kernel's ``ac_time`` clock."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME)) & 0xFFFFFFFF


def is_huge(compressed_size: int, huge_class_size: int) -> bool:
    """zram's huge rule: a page that compresses to `huge_class_size` bytes or more is stored raw
    in the 4096-byte class (``zram_write_page``'s ``comp_len >= huge_class_size``)."""
    return compressed_size >= huge_class_size


def pool_pages_for(disksize: int) -> int:
    """The pool's preset maximum for a device of `disksize` bytes.

    Live data never needs more than one frame per page plus one partly used zspage per class
    (< 1000 frames); a quarter more leaves room for fragmentation between compactions, and the
    write path compacts before it gives up. Only address space is reserved for it.
    """
    pages = disksize >> PAGE_SHIFT
    return pages + pages // 4 + 1024


class ZramDevice:
    """A zram device. Uninitialised (disksize 0) until `set_disksize`; `reset` returns it there.

    Attributes:
        comp_algorithm: the selected algorithm name (settable only while uninitialised).
        disksize: the size in bytes (0 = uninitialised).
        mem_limit_pages: pool pages allowed (0 = no limit).
        chain_size: the zsmalloc chain size used for new pools.
        fault_hook: None, except in fault-injection tests (see `FaultHook`).
        backing_guard: None, or a check the front end runs on an opened backing store before
            it is accepted (it refuses one that routes back into this daemon).
        writeback_limit: pages writeback may still write while `writeback_limit_enable`.
        writeback_limit_enable: whether `writeback_limit` applies.
        writeback_batch_size: pages written back per batch (the lock is dropped between them).
        release_frames: give frames emptied by compaction back to the OS (zramd's own policy).
        writeback_policy: zramd's writeback trigger (`WritebackPolicy`); the daemon runs it.
        algorithm_params: the primary algorithm's ``algorithm_params`` (`compress.Params`), or
            None; applied at the next `set_disksize`, cleared by `reset`.
    """

    def __init__(
        self,
        chain_size: int = DEFAULT_CHAIN_SIZE,
        pool_pages: Callable[[int], int] = pool_pages_for,
        streams: CompressionStreams | None = None,
        clock: Callable[[], int] = boottime_seconds,
    ):
        self.lock = threading.RLock()
        self.chain_size = chain_size
        self._pool_pages = pool_pages
        self._streams = streams if streams is not None else CompressionStreams(1)
        self._clock = clock
        self._now = 0
        self._fast_clock = clock is boottime_seconds  # then read at most every CLOCK_REUSE_NS
        self._clock_until = 0
        self.comp_algorithm = compress.DEFAULT_ALGORITHM
        self.disksize = 0
        self.mem_limit_pages = 0
        self.fault_hook: FaultHook | None = None
        self.backing_guard: Callable[[BackingStore], None] | None = None
        self._backing: BackingStore | None = None
        self._writeback_active = False
        self.writeback_limit = 0
        self.writeback_limit_enable = False
        self.writeback_batch_size = WRITEBACK_BATCH_SIZE
        self.release_frames = False
        self.writeback_policy = WritebackPolicy()
        self.algorithm_params: compress.Params | None = None
        # Recompression (CONFIG_ZRAM_MULTI_COMP): the algorithm and params of priorities 1..3.
        self.recomp_algorithms: list[str | None] = [None] * MAX_COMPS
        self.recomp_params: list[compress.Params | None] = [None] * MAX_COMPS
        self._codecs: list[PageCodec | None] = [None] * MAX_COMPS
        self._num_active_comps = 0
        self._recompress_active = False
        self._pool: ZsPool | None = None
        self._codec: PageCodec | None = None
        self._table: ReservedArrays | None = None
        self._nr_pages = 0
        self._huge_class_size = 0
        self._batch_done = 0
        self._progress = 0
        self._codec_ns = array("q", [4000, 4000])  # running estimate of ns per page, per direction
        self._release_buffers()
        self._zero_stats()

    def _release_buffers(self) -> None:
        """Drop the slot table views and the batch buffers (uninitialised: all empty)."""
        self._handle: memoryview[int] = memoryview(bytearray()).cast("Q")
        self._flags: memoryview[int] = memoryview(bytearray()).cast("I")
        self._actime: memoryview[int] = memoryview(bytearray()).cast("I")
        self._out = self._staging = self._page = self._single = bytearray()
        self._one_src, self._one_dst, self._one_res = array("q"), array("q"), array("q")
        self._one_fill = array("Q")
        self._bounce: mmap.mmap | bytearray = bytearray()
        self._bounce_view = memoryview(self._bounce)
        self._wb_buffer = memoryview(bytearray())
        self._wb_slots, self._wb_blocks = array("q"), array("q")
        self._state_cursor = (0, 0)  # (line, slot) where the last block_state read stopped
        self._job_src, self._job_dst, self._job_res = array("q"), array("q"), array("q")
        self._fills = array("Q")
        self._reply_owner: bytearray | None = None  # the last reply buffer of read_view, and views of it
        self._reply: bytearray | memoryview = bytearray()
        self._reply_view = memoryview(self._reply)

    def _make_buffers(self) -> None:
        """The batch buffers, made once per initialisation so that the write and read paths
        allocate nothing: compressed pages of a write batch (`_out`), compressed objects gathered
        for a read batch (`_staging`), one page for partial writes (`_page`) and the job arrays."""
        self._out = bytearray(BATCH_PAGES * COMPRESS_STRIDE)
        self._staging = bytearray(BATCH_PAGES * PAGE_SIZE)
        self._page = bytearray(PAGE_SIZE)
        self._job_src, self._job_dst, self._job_res = (array("q", bytes(8 * BATCH_PAGES)) for _ in range(3))
        self._fills = array("Q", bytes(8 * BATCH_PAGES))
        self._single = bytearray(PAGE_SIZE)  # one object restored on its own (`_restore_slot`)
        self._one_src, self._one_dst, self._one_res = array("q", [0]), array("q", [0]), array("q", [0])
        self._one_fill = array("Q", [0])
        self._bounce = mmap.mmap(-1, PAGE_SIZE)  # page-aligned, for direct reads of the backing store
        self._bounce_view = memoryview(self._bounce)
        # Writeback's batch, page-aligned for direct writes: only with a backing store, and
        # touched now, so that a writeback under memory pressure needs no new memory for it.
        if self._backing is not None:
            self._wb_buffer = memoryview(mmap.mmap(-1, BATCH_PAGES * PAGE_SIZE))
            self._wb_buffer[:] = bytes(BATCH_PAGES * PAGE_SIZE)
        self._wb_slots = array("q", bytes(8 * BATCH_PAGES))
        self._wb_blocks = array("q", bytes(8 * BATCH_PAGES))

    def _zero_stats(self) -> None:
        self._pages_stored = 0  # slots holding data, same-filled ones included
        self._compr_data_size = 0  # bytes: compressed lengths, 4096 per huge page
        self._same_pages = 0
        self._huge_pages = 0
        self._huge_pages_since = 0
        self._max_used_pages = 0
        self._failed_reads = 0
        self._failed_writes = 0
        self._notify_free = 0
        self._bd_reads = 0
        self._bd_writes = 0
        self._requests = array("q", bytes(8 * 12))  # READS, WRITES, DISCARDS, FLUSHES

    # ------------------------------------------------------------------ setup state machine

    @property
    def initialized(self) -> bool:
        return self.disksize != 0

    def set_comp_algorithm(self, name: str) -> None:
        """Select the algorithm for the next initialisation (EINVAL unknown, EBUSY once init).

        The attribute layer has already dropped the one trailing newline sysfs_streq ignores;
        the name is kept as given and must be exactly one of `compress.algorithm_names()`.
        """
        with self.lock:
            try:
                compress.lookup(name)
            except KeyError as exc:
                raise InvalidArgument(str(exc)) from None
            if self.initialized:
                raise DeviceBusy("comp_algorithm can only be changed before disksize is set")
            self.comp_algorithm = name

    def set_disksize(self, nbytes: int) -> None:
        """Initialise the device with `nbytes` (rounded up to a page): build the slot table and
        the pool. EINVAL for 0, EBUSY when already initialised, ENOMEM when it cannot be mapped."""
        with self.lock:
            if nbytes <= 0:  # checked first, as the kernel does
                raise InvalidArgument("disksize must be greater than zero")
            if self.initialized:
                raise DeviceBusy("the device is already initialised; write 1 to reset first")
            disksize = round_up_to_page(nbytes)
            nr_pages = disksize >> PAGE_SHIFT
            try:  # the compressors first (the kernel makes them after the table: that order
                # shows only when both fail)
                codec = PageCodec(self.comp_algorithm, self._streams.count, self.algorithm_params)
                codecs: list[PageCodec | None] = [codec]
                for prio in range(1, MAX_COMPS):
                    name = self.recomp_algorithms[prio]
                    codecs.append(PageCodec(name, 1, self.recomp_params[prio]) if name is not None else None)
            except ValueError as exc:  # the backend refuses the parameters: no device
                raise InvalidArgument(f"{self.comp_algorithm}: {exc}") from None
            table = None
            try:
                table = ReservedArrays(nr_pages)
                handle = table.carve("Q", 1)
                flags = table.carve("I", 1)
                actime = table.carve("I", 1)
                pool = ZsPool(self._pool_pages(disksize), self.chain_size, relocate=self._relocate)
            except (OSError, ValueError, OverflowError) as exc:
                if table is not None:
                    table.close()
                raise NoMemory(f"cannot reserve memory for a {disksize}-byte device: {exc}") from None
            self._codec = codec
            self._codecs = codecs
            self._num_active_comps = sum(c is not None for c in codecs)  # a count, as the kernel's
            self._table, self._handle, self._flags, self._actime = table, handle, flags, actime
            self._pool = pool
            self._nr_pages = nr_pages
            self._huge_class_size = pool.table.huge_class_size
            self._make_buffers()
            self.disksize = disksize

    def set_mem_limit(self, nbytes: int) -> None:
        """Limit the pool to `nbytes` rounded up to whole pages; 0 removes the limit."""
        with self.lock:
            self.mem_limit_pages = round_up_to_page(nbytes) >> PAGE_SHIFT

    def reset_mem_used_max(self) -> None:
        """Set the peak to the current pool size (a no-op while uninitialised)."""
        with self.lock:
            if self._pool is not None:
                self._max_used_pages = self._pool.pages_allocated

    def compact(self) -> int:
        """Compact the pool; returns the pages freed. EINVAL while uninitialised."""
        with self.lock:
            if self._pool is None:
                raise InvalidArgument("compact needs an initialised device")
            freed = self._pool.compact()
            if self.release_frames:
                self._pool.release_free_frames()
            return freed

    def reset(self) -> None:
        """Free every page and the pool, zero every counter, and return to the uninitialised
        state with the default algorithm and no limit. Whether the disk may be reset (the
        kernel's EBUSY while the block device is open) is the front end's to decide: it knows
        the block device. The backing store is released too: its blocks are forgotten (and
        punched out of a file) and it is closed, so nothing written back survives a reset."""
        with self.lock:
            if self._writeback_active:
                raise DeviceBusy("a writeback is running")
            if self._backing is not None:
                self._backing.release_all()
                self._backing.close()
                self._backing = None
            if self._pool is not None:
                self._pool.close()
            self._pool = None
            self._codec = None
            self._release_buffers()
            if self._table is not None:
                self._table.close()
            self._table = None
            self._nr_pages = 0
            self.disksize = 0
            self.mem_limit_pages = 0
            self.comp_algorithm = compress.DEFAULT_ALGORITHM
            self.algorithm_params = None
            self.recomp_algorithms = [None] * MAX_COMPS
            self.recomp_params = [None] * MAX_COMPS
            self._codecs = [None] * MAX_COMPS
            self._num_active_comps = 0
            self._zero_stats()

    # ------------------------------------------------------------------ idle pages and writeback

    @property
    def backing_dev(self) -> str | None:
        """The backing store's path, or None."""
        backing = self._backing
        return backing.path if backing is not None else None

    def set_backing_dev(self, path: str) -> None:
        """Open `path` as the backing store (``backing_dev_store``): EBUSY once initialised, the
        open's own errno, ENOTBLK for what is neither a block device nor a regular file, EINVAL
        for one smaller than a block, and whatever `backing_guard` refuses. A store set before
        replaces the old one only once the new one is accepted."""
        with self.lock:
            if self.initialized:
                raise DeviceBusy("backing_dev can only be set before disksize")
            backing = BackingStore.open(path)
            try:
                if self.backing_guard is not None:
                    self.backing_guard(backing)
            except BaseException:
                backing.close()
                raise
            if self._backing is not None:
                self._backing.close()
            self._backing = backing

    def mark_idle(self, cutoff: int | None) -> None:
        """``mark_idle``: mark stored pages idle, except same-filled and written-back ones. With
        `cutoff` None every one; otherwise those last accessed before `cutoff` (boot-time
        seconds), and the others lose their mark. EINVAL while uninitialised."""
        with self.lock:
            if not self.initialized:
                raise InvalidArgument("idle needs an initialised device")
            everything = cutoff is None
            limit = 0 if cutoff is None else cutoff
            for index in range(self._nr_pages):
                f = self._flags[index]
                if not f or f & (SAME | WB):
                    continue
                if everything or limit > self._actime[index]:
                    self._flags[index] = f | IDLE
                else:
                    self._flags[index] = f & ~IDLE

    def idle_cutoff(self, age: int) -> int | None:
        """The cutoff `idle` uses for pages idle `age` seconds: now - age, computed as the kernel
        does (a cutoff of exactly 0 means every page, one below 0 no page)."""
        cutoff = self._clock() - age
        return None if cutoff == 0 else cutoff

    def writeback(self, scans: Sequence[tuple[int, int, int]], max_pages: int = 0) -> int:
        """``writeback_store``: write the pages the scans select to the backing store and free
        their memory; returns the pages written back. Each scan is (mode, first, end): the
        stored pages in [first, end) that are neither same-filled nor written back and match
        `mode` (IDLE_WRITEBACK, HUGE_WRITEBACK, both, INCOMPRESSIBLE_WRITEBACK, or 0 for any).
        Pages go largest first, as the kernel's post-processing buckets order them; with
        `max_pages` (zramd's policy) at most that many are written, the largest.

        Errors, as the kernel's: EINVAL uninitialised, ENODEV without a backing store, ENOSPC
        when the backing store is full and EIO when writeback_limit is used up (both stop the
        writeback; pages written before stay written), and an I/O error of the backing store,
        which does not stop it: the failed pages stay in memory and the last error is raised
        when the rest is done. bd_stat is final when this returns."""
        with self.lock:
            if not self.initialized:
                raise InvalidArgument("writeback needs an initialised device")
            if self._backing is None:
                raise NoDevice("writeback needs a backing_dev")
            if self._writeback_active:
                raise DeviceBusy("a writeback is already running")
            if self._recompress_active:
                raise TryAgain("a recompression is running")
            order = self._select_for_writeback(scans)
            if 0 < max_pages < len(order):
                for k in range(max_pages, len(order)):
                    self._flags[order[k]] &= ~PP_SLOT
                order = order[:max_pages]
            self._writeback_active = True
        written = 0
        error: ZramError | None = None
        pos = 0
        try:
            while pos < len(order):
                with self.lock:
                    pos, staged, stop = self._stage_writeback(order, pos)
                failures = self._write_staged(staged)
                with self.lock:
                    done, failure = self._complete_writeback(staged, failures)
                written += done
                if stop is not None:
                    error = stop
                if failure is not None:  # as in the kernel, a later I/O error is the one reported
                    error = failure
                if stop is not None:
                    break
        finally:
            with self.lock:
                flags = self._flags
                for k in range(pos, len(order)):
                    flags[order[k]] &= ~PP_SLOT
                self._writeback_active = False
        if error is not None:
            raise error
        return written

    def _select_for_writeback(self, scans: Sequence[tuple[int, int, int]]) -> array[int]:
        """The slots to write back in the kernel's order, each marked PP_SLOT: by 64-byte size
        bucket from the largest, and in a bucket the last selected first (``place_pp_slot``
        adds at the head of its bucket's list, ``select_pp_slot`` takes the head)."""
        picked = array("q")
        for mode, first, end in scans:
            for index in range(first, end):
                f = self._flags[index]
                if not f or f & (WB | SAME | PP_SLOT):
                    continue
                if mode & IDLE_WRITEBACK and not f & IDLE:
                    continue
                if mode & HUGE_WRITEBACK and not f & HUGE:
                    continue
                if mode & INCOMPRESSIBLE_WRITEBACK and not f & INCOMPRESSIBLE:
                    continue
                self._flags[index] = f | PP_SLOT
                picked.append(index)
        return self._largest_first(picked)

    def _largest_first(self, picked: array[int]) -> array[int]:
        """`picked` in the post-processing order: by 64-byte size bucket from the largest, and
        in a bucket the last picked first."""
        buckets = PAGE_SIZE // PP_BUCKET_SIZE + 1
        starts = array("q", bytes(8 * (buckets + 1)))
        for index in picked:
            starts[(self._flags[index] & SIZE_MASK) // PP_BUCKET_SIZE] += 1
        total = 0
        for b in range(buckets - 1, -1, -1):  # bucket b's slots go at starts[b], largest first
            count = starts[b]
            starts[b] = total
            total += count
        order = array("q", bytes(8 * len(picked)))
        for k in range(len(picked) - 1, -1, -1):
            b = (self._flags[picked[k]] & SIZE_MASK) // PP_BUCKET_SIZE
            order[starts[b]] = picked[k]
            starts[b] += 1
        return order

    def _stage_writeback(self, order: array[int], pos: int) -> tuple[int, int, ZramError | None]:
        """Under the lock: take the next up to writeback_batch_size slots of `order` from `pos`,
        reserve a backing block for each and restore its page into the writeback buffer. Returns
        the new position, the pages staged (in `_wb_slots`/`_wb_blocks`), and the error that
        ends the writeback (limit used up, backing store full), if any."""
        backing = self._backing
        assert backing is not None
        flags = self._flags
        batch = min(self.writeback_batch_size, BATCH_PAGES)
        staged = 0
        block = NO_BLOCK
        stop: ZramError | None = None
        while pos < len(order) and staged < batch:
            if self.writeback_limit_enable and self.writeback_limit == 0:
                stop = IOFailure("writeback_limit is used up")
                break
            if block == NO_BLOCK:
                block = backing.reserve()
                if block == NO_BLOCK:
                    stop = NoSpace(f"the backing device is full ({backing.nr_blocks} blocks)")
                    break
            index = order[pos]
            pos += 1
            if not flags[index] & PP_SLOT:
                continue  # accessed or freed since it was chosen
            if not self._restore_for_writeback(index, staged):
                flags[index] &= ~PP_SLOT
                continue
            if self.writeback_limit_enable and self.writeback_limit > 0:
                self.writeback_limit -= 1
            self._wb_slots[staged] = index
            self._wb_blocks[staged] = block
            block = NO_BLOCK
            staged += 1
        if block != NO_BLOCK:
            backing.release(block)
        return pos, staged, stop

    def _restore_for_writeback(self, index: int, k: int) -> bool:
        """Restore page `index` into page `k` of the writeback buffer, without counting it as
        an access; False if it cannot be decompressed (the kernel skips such a page)."""
        return self._restore_slot(index, self._wb_buffer, k * PAGE_SIZE)

    def _restore_slot(self, index: int, dst: bytearray | memoryview, at: int) -> bool:
        """Restore stored page `index` (raw, or compressed by the algorithm of its priority)
        into ``dst[at:]``, through its own buffers; False if it does not decompress."""
        pool = self._pool
        assert pool is not None
        f = self._flags[index]
        if f & HUGE:
            pool.read_into(self._handle[index], PAGE_SIZE, dst, at)
            return True
        codec = self._codecs[(f & PRIO_MASK) >> PRIO_SHIFT]
        assert codec is not None
        size = f & SIZE_MASK
        pool.read_into(self._handle[index], size, self._single, 0)
        src_off, dst_off, result = self._one_src, self._one_dst, self._one_res
        src_off[0], dst_off[0], result[0] = 0, at, size
        codec.decompress_jobs(0, self._single, dst, src_off, dst_off, result, self._one_fill, 0, 1)
        return result[0] != FAILED

    # ------------------------------------------------------------------ recompression

    def recompress(self, mode: int, threshold: int, max_pages: int, prio: int, prio_max: int) -> int:
        """``recompress_store`` once its text is parsed: recompress the stored pages `mode`
        selects (RECOMPRESS_IDLE, RECOMPRESS_HUGE, both, or 0 for any) with the algorithms of
        priorities prio .. prio_max - 1, largest objects first; returns the pages recompressed.
        `recompress_slot`'s rules: a page below `threshold` bytes is left alone (and not
        counted); a new object is kept only if it lands in a smaller size class than the old
        one (and under a non-zero `threshold`); every page tried counts against `max_pages`
        (0 = no limit); a page no algorithm up to the last active one could shrink becomes
        INCOMPRESSIBLE (then `writeback incompressible` takes it). EINVAL uninitialised or for
        priorities no algorithm has; EAGAIN while a writeback runs."""
        with self.lock:
            if not self.initialized:
                raise InvalidArgument("recompress needs an initialised device")
            prio_max = min(prio_max, self._num_active_comps)
            if prio >= prio_max:
                raise InvalidArgument(f"no recompression algorithm at priority {prio} .. {prio_max - 1}")
            if self._writeback_active:
                raise TryAgain("a writeback is running")
            order = self._select_for_recompress(mode, prio_max)
            self._recompress_active = True
        left = max_pages
        done = pos = 0
        try:
            while pos < len(order) and (max_pages == 0 or left > 0):
                with self.lock:  # a batch at a time, so that the device serves in between
                    end = min(len(order), pos + WRITEBACK_BATCH_SIZE)
                    while pos < end and (max_pages == 0 or left > 0):
                        index = order[pos]
                        pos += 1
                        if not self._flags[index] & PP_SLOT:
                            continue
                        self._flags[index] &= ~PP_SLOT
                        outcome = self._recompress_slot(index, threshold, prio, prio_max)
                        if outcome >= 0:
                            if max_pages:
                                left -= 1
                            done += outcome
        finally:
            with self.lock:
                for k in range(pos, len(order)):
                    self._flags[order[k]] &= ~PP_SLOT
                self._recompress_active = False
        return done

    def _select_for_recompress(self, mode: int, prio_max: int) -> array[int]:
        """``scan_slots_for_recompress``: stored pages that are not same-filled, written back
        or INCOMPRESSIBLE, match `mode`, and were not compressed at priority prio_max - 1 or
        above; marked PP_SLOT, in writeback's largest-first order."""
        picked = array("q")
        for index in range(self._nr_pages):
            f = self._flags[index]
            if not f or f & (WB | SAME | INCOMPRESSIBLE | PP_SLOT):
                continue
            if mode & RECOMPRESS_IDLE and not f & IDLE:
                continue
            if mode & RECOMPRESS_HUGE and not f & HUGE:
                continue
            if ((f & PRIO_MASK) >> PRIO_SHIFT) + 1 >= prio_max:
                continue
            self._flags[index] = f | PP_SLOT
            picked.append(index)
        return self._largest_first(picked)

    def _recompress_slot(self, index: int, threshold: int, prio: int, prio_max: int) -> int:
        """``recompress_slot`` for one page, under the lock: 1 recompressed, 0 tried and kept
        as it was (counted against max_pages), -1 left alone (below the threshold)."""
        pool = self._pool
        assert pool is not None
        f = self._flags[index]
        old_size = f & SIZE_MASK
        if old_size < threshold:
            return -1
        if not self._restore_slot(index, self._page, 0):
            return 0
        self._flags[index] = f & ~IDLE  # touched: not idle for a later writeback
        class_old = pool.table.class_for_size[old_size]
        prio = max(prio, ((f & PRIO_MASK) >> PRIO_SHIFT) + 1)
        found = -1
        while prio < prio_max:
            codec = self._codecs[prio]
            if codec is not None:
                src_off, dst_off, result = self._one_src, self._one_dst, self._one_res
                src_off[0], dst_off[0] = 0, 0
                codec.compress_jobs(0, self._page, self._out, src_off, dst_off, result, self._one_fill, 0, 1)
                size = result[0]
                if size == FAILED:
                    return 0
                # zs_lookup_class_index caps a size past a page at the huge class.
                smaller = size > 0 and pool.table.class_for_size[min(size, PAGE_SIZE)] < class_old
                if smaller and not (threshold and size >= threshold):
                    found = size
                    break
            prio += 1
        if found < 0:
            if prio >= self._num_active_comps:
                self._flags[index] |= INCOMPRESSIBLE
            return 0
        try:
            location = pool.store_from(self._out, 0, found, index)
        except PoolExhausted:
            return 0  # not fatal: the old object stays
        self._free_slot(index)
        self._handle[index] = location
        self._flags[index] = found | prio << PRIO_SHIFT
        self._actime[index] = self._now
        self._compr_data_size += found
        self._pages_stored += 1
        return 1

    def _write_staged(self, staged: int) -> list[tuple[int, ZramError]]:
        """Without the lock: write the staged pages to their blocks, a run of consecutive blocks
        in one call. Each page fails alone, as each is its own bio in the kernel: a run that
        fails part way goes on after the page that failed. Returns the failed pages, with their
        error."""
        backing = self._backing
        assert backing is not None
        blocks = self._wb_blocks
        view = self._wb_buffer
        failures: list[tuple[int, ZramError]] = []
        hooked: set[int] = set()
        if self.fault_hook is not None:
            for j in range(staged):
                try:
                    self.fault_hook("backing_write", self._wb_slots[j])
                except OSError as exc:
                    failures.append((j, IOFailure(str(exc))))
                    hooked.add(j)
        k = 0
        while k < staged:
            if k in hooked:
                k += 1
                continue
            end = k + 1
            while end < staged and blocks[end] == blocks[end - 1] + 1 and end not in hooked:
                end += 1
            try:
                backing.write_run(blocks[k], view[k * PAGE_SIZE :], end - k)
            except BackingError as exc:
                failed = k + exc.pages_done
                failures.append((failed, exc))
                k = failed + 1
                continue
            k = end
        return failures

    def _complete_writeback(
        self, staged: int, failures: list[tuple[int, ZramError]]
    ) -> tuple[int, ZramError | None]:
        """Under the lock: ``zram_writeback_complete`` for each staged page. A page written and
        still PP_SLOT has its memory freed and becomes WB; one touched meanwhile keeps its new
        contents and its block is released; a failed one gets its block and limit back."""
        backing = self._backing
        assert backing is not None
        failed = dict(failures)
        flags, handle = self._flags, self._handle
        done = 0
        last: ZramError | None = None
        for k in range(staged):
            index, block = self._wb_slots[k], self._wb_blocks[k]
            if k in failed:
                last = failed[k]
                if self.writeback_limit_enable:
                    self.writeback_limit += 1
                backing.release(block)
                flags[index] &= ~PP_SLOT  # the kernel's release_pp_slot: a later writeback may try again
                continue
            self._bd_writes += 1
            if not flags[index] & PP_SLOT:
                backing.release(block)
                continue
            self._free_slot(index)  # counts the page out; it is counted in again as WB
            handle[index] = block
            flags[index] = WB
            self._pages_stored += 1
            done += 1
        return done, last

    def block_state(self, first_line: int, max_lines: int) -> bytes:
        """Lines `first_line` on of the kernel's debugfs ``block_state`` (one per stored page:
        index, access time, and the flags s w h i r n), at most `max_lines` of them. Every line
        is `BLOCK_STATE_LINE` bytes, so a reader's offset is a line number. EINVAL uninitialised."""
        with self.lock:
            if not self.initialized:
                raise InvalidArgument("block_state needs an initialised device")
            flags, actime = self._flags, self._actime
            line = 0
            index = 0
            cursor = self._state_cursor
            if first_line > 0 and cursor[0] == first_line:
                line, index = cursor  # a reader going on from where it stopped
            out: list[str] = []
            while index < self._nr_pages and len(out) < max_lines:
                f = flags[index]
                if f:
                    if line >= first_line:
                        out.append(
                            f"{index:12d} {actime[index]:12d}.000000 "
                            f"{'s' if f & SAME else '.'}{'w' if f & WB else '.'}{'h' if f & HUGE else '.'}"
                            f"{'i' if f & IDLE else '.'}{'r' if f & PRIO_MASK else '.'}"
                            f"{'n' if f & INCOMPRESSIBLE else '.'}\n"
                        )
                    line += 1
                index += 1
            self._state_cursor = (line, index)
            return "".join(out).encode()

    # ------------------------------------------------------------------ the slot table

    def _relocate(self, index: int, location: int) -> None:
        """Compaction moved the object of slot `index`."""
        self._handle[index] = location

    def _free_slot(self, index: int) -> None:
        """Undo slot `index` and its counters (``zram_free_page``); an empty slot is untouched."""
        flags = self._flags[index]
        if not flags:
            return
        self._actime[index] = 0
        if flags & SAME:
            self._same_pages -= 1
        elif flags & WB:
            assert self._backing is not None
            self._backing.release(self._handle[index])
        else:
            assert self._pool is not None
            self._pool.free(self._handle[index])
            self._compr_data_size -= flags & SIZE_MASK
            if flags & HUGE:
                self._huge_pages -= 1
        self._pages_stored -= 1
        self._handle[index] = 0
        self._flags[index] = 0

    def _store_pages(self, index: int, src: bytes | bytearray, base: int, count: int) -> None:
        """``zram_write_page`` for the `count` (<= BATCH_PAGES) whole pages at ``src[base:]``,
        into slots index, index + 1, ... This is the per-page hot path.

        First every page is tested for a fill word and the others compressed into `_out`, by
        the compression streams (in parallel for a large batch); then the pages are installed in
        page order. The first page that cannot be stored (its compression failed, the pool is
        full, mem_limit is reached) stops the batch: IOFailure is raised, that page and the ones
        after it keep their old contents, and `_batch_done` says how many were stored."""
        src_off, dst_off = self._job_src, self._job_dst
        for k in range(count):
            src_off[k] = base + k * PAGE_SIZE
            dst_off[k] = k * COMPRESS_STRIDE
        self._batch_done = 0
        self._run_jobs(COMPRESSING, count, src, self._out)
        for k in range(count):
            self._install(index + k, k, src, base + k * PAGE_SIZE)
            self._batch_done = k + 1

    def _install(self, index: int, job: int, src: bytes | bytearray, start: int) -> None:
        """Install the result of compression job `job` (the page at ``src[start:]``) in slot
        `index`; on failure raise IOFailure and leave the slot as it was. The slot's old contents
        are freed inline (`_free_slot` has the same logic) once the new object exists."""
        result = self._job_res[job]
        if result == FILLED:
            self._free_slot(index)
            self._handle[index] = self._fills[job]
            self._flags[index] = SAME
            self._actime[index] = self._now
            self._same_pages += 1
            self._pages_stored += 1
            return
        if self.fault_hook is not None:
            try:
                self.fault_hook("compress", index)
            except Exception as exc:
                raise IOFailure(f"compression failed: {exc}") from exc
        if result == FAILED:
            raise IOFailure(f"page {index}: {self.comp_algorithm} compression failed")
        # Too big to be worth it: store the page raw in the huge class. Allocate and copy in
        # (compacting once if the pool is full), then the limit check.
        huge = is_huge(result, self._huge_class_size)
        size = PAGE_SIZE if huge else result
        pool = self._pool
        assert pool is not None
        try:
            location = self._allocate(index, job, src, start, huge, size)
        except PoolExhausted:
            pool.compact()
            try:
                location = self._allocate(index, job, src, start, huge, size)
            except PoolExhausted as exc:
                raise IOFailure(str(exc)) from None
        pages = pool.pages_allocated
        if pages > self._max_used_pages:
            self._max_used_pages = pages
        if self.mem_limit_pages and pages > self.mem_limit_pages:
            pool.free(location)
            raise IOFailure(f"mem_limit reached ({self.mem_limit_pages} pages)")
        # Free the old contents and install the new object.
        old = self._flags[index]
        if old & SAME:
            self._same_pages -= 1
        elif old & WB:
            assert self._backing is not None
            self._backing.release(self._handle[index])
        elif old:
            pool.free(self._handle[index])
            self._compr_data_size -= old & SIZE_MASK
            if old & HUGE:
                self._huge_pages -= 1
        else:
            self._pages_stored += 1
        self._handle[index] = location
        self._actime[index] = self._now
        self._compr_data_size += size
        if huge:
            self._flags[index] = PAGE_SIZE | HUGE
            self._huge_pages += 1
            self._huge_pages_since += 1
        else:
            self._flags[index] = size

    def _allocate(
        self, index: int, job: int, src: bytes | bytearray, start: int, huge: bool, size: int
    ) -> int:
        """A pool object holding the page (raw when `huge`) or its compressed form."""
        assert self._pool is not None
        if huge:
            return self._pool.store_from(src, start, PAGE_SIZE, index)
        return self._pool.store_from(self._out, job * COMPRESS_STRIDE, size, index)

    def _load_pages(self, index: int, count: int, dst: bytearray | memoryview, base: int) -> None:
        """``zram_read_page`` for the `count` (<= BATCH_PAGES) pages from slot `index` on, into
        ``dst[base:]``. Raw (huge) pages are copied straight in, written-back ones read from the
        backing store; compressed objects are gathered into `_staging` and decompressed, with fill
        words and empty slots, by the streams. Every page read counts as an access (its idle mark
        goes, its access time is now). A page that cannot be restored raises IOFailure
        (`_batch_done`: the pages before it)."""
        src_off, dst_off, result, fills = self._job_src, self._job_dst, self._job_res, self._fills
        handle, flags, actime, pool, codec = self._handle, self._flags, self._actime, self._pool, self._codec
        assert pool is not None and codec is not None
        now = self._now
        jobs = staged = 0
        failed_at = -1
        failure: ZramError | None = None
        for k in range(count):
            slot = index + k
            f = flags[slot]
            at = base + k * PAGE_SIZE
            actime[slot] = now
            if f & ACCESS_CLEARS:
                f &= ~ACCESS_CLEARS
                flags[slot] = f
            if f & (HUGE | WB | PRIO_MASK):
                if f & HUGE:
                    pool.read_into(handle[slot], PAGE_SIZE, dst, at)
                elif failure is not None:
                    pass
                elif f & WB:
                    try:
                        self._read_backing(slot, dst, at)
                    except IOFailure as exc:
                        failed_at, failure = k, exc
                elif not self._restore_slot(slot, dst, at):  # recompressed: its own algorithm
                    failed_at = k
                    failure = IOFailure(f"page {slot}: not the compressed form of one page")
                continue
            dst_off[jobs] = at
            if not f or f & SAME:
                src_off[jobs] = -1
                result[jobs] = FILLED
                fills[jobs] = handle[slot]  # 0 for an empty slot
            else:
                size = f & SIZE_MASK
                pool.read_into(handle[slot], size, self._staging, staged)
                src_off[jobs] = staged
                result[jobs] = size
                staged += size
            jobs += 1
        self._batch_done = 0
        self._run_jobs(DECOMPRESSING, jobs, self._staging, dst)
        for j in range(jobs):
            if src_off[j] < 0:
                continue
            slot = index + (dst_off[j] - base) // PAGE_SIZE
            if failure is not None and slot - index > failed_at:
                break
            if result[j] == FAILED:
                self._batch_done = slot - index
                raise IOFailure(f"page {slot}: {codec.name}: not the compressed form of one page")
            if self.fault_hook is not None:
                try:
                    self.fault_hook("decompress", slot)
                except Exception as exc:
                    self._batch_done = slot - index
                    raise IOFailure(f"page {slot}: {exc}") from exc
        if failure is not None:
            self._batch_done = failed_at
            raise failure
        self._batch_done = count

    def _read_backing(self, index: int, dst: bytearray | memoryview, at: int) -> None:
        """Read written-back page `index` from the backing store into ``dst[at:]`` (through the
        page-aligned bounce page: direct I/O needs aligned memory). Counts in bd_reads; an I/O
        error raises IOFailure."""
        backing = self._backing
        assert backing is not None
        self._bd_reads += 1
        try:
            if self.fault_hook is not None:
                self.fault_hook("backing_read", index)
            backing.read_block(self._handle[index], self._bounce_view)
        except (BackingError, OSError) as exc:
            raise IOFailure(f"page {index}: {exc}") from exc
        dst[at : at + PAGE_SIZE] = self._bounce

    def _run_jobs(
        self, direction: int, jobs: int, src: bytes | bytearray | memoryview, dst: bytearray | memoryview
    ) -> None:
        """Run the codec over the batch's jobs (the `_job_*` arrays) from `src` to `dst`:
        compression or decompression by `direction`. On the calling thread alone unless the
        batch's estimated codec work (`_codec_ns`) reaches SPLIT_MIN_NS; then split between the
        streams. Every batch that could be split refines the estimate with its time per page
        (multiplied by the parts it ran in)."""
        codec = self._codec
        assert codec is not None
        timed = jobs >= 2 * MIN_JOBS_PER_STREAM
        started = _clock_ns() if timed else 0
        parts = 1
        if timed and self._streams.count > 1 and jobs * self._codec_ns[direction] >= SPLIT_MIN_NS:
            # getattr: the bound method as a Python callable (the compiled build would otherwise
            # take the typed codec's C method).
            job = getattr(codec, "compress_jobs" if direction == COMPRESSING else "decompress_jobs")
            parts = self._streams.run(
                job, jobs, src, dst, self._job_src, self._job_dst, self._job_res, self._fills
            )
        elif direction == COMPRESSING:
            codec.compress_jobs(
                0, src, dst, self._job_src, self._job_dst, self._job_res, self._fills, 0, jobs
            )
        else:
            codec.decompress_jobs(
                0, src, dst, self._job_src, self._job_dst, self._job_res, self._fills, 0, jobs
            )
        if timed:
            estimate = self._codec_ns
            estimate[direction] = (3 * estimate[direction] + (_clock_ns() - started) * parts // jobs) // 4

    def _page_bytes(self, index: int) -> bytes:
        """The contents of slot `index` as one page, for the read-modify-write of partial pages."""
        self._load_pages(index, 1, self._page, 0)
        return bytes(self._page)

    def stored_object(self, index: int) -> tuple[int, int] | None:
        """(pool location, compressed length) of page `index`, or None unless it holds a
        compressed object (empty, same-filled and huge pages have nothing to decompress). For
        tests and debugging: the location is valid only until the next write or compaction."""
        with self.lock:
            if not 0 <= index < self._nr_pages:
                raise InvalidArgument(f"page {index} outside the disk")
            flags = self._flags[index]
            if not flags or flags & (SAME | HUGE):
                return None
            return self._handle[index], flags & SIZE_MASK

    # ------------------------------------------------------------------ byte-range I/O

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> int:
        """Write `data` at byte `offset`; returns the bytes written.

        Whole pages are stored directly; partial pages are read, patched and stored again. A
        write that starts at or past the end raises NoSpace; one that runs past the end is cut
        short there (like a full filesystem). A page that cannot be stored stops the request:
        failed_writes counts it, IOFailure is raised, and that page keeps its old contents.
        """
        with self.lock:
            started = _clock_ns()
            self._tick(started)
            if not isinstance(data, bytes):
                data = bytes(data)
            length = len(data)
            if length == 0:
                return 0
            if offset < 0:
                raise InvalidArgument("negative offset")
            if offset >= self.disksize:
                raise NoSpace(f"write at {offset} is past the end of the disk ({self.disksize} bytes)")
            if length > self.disksize - offset:
                length = self.disksize - offset
                data = data[:length]
            self._progress = 0
            try:
                self._write_range(offset, data, length)
            except IOFailure:
                self._failed_writes += 1
                raise
            finally:
                self._account(WRITES, self._progress, started)
            return length

    def _write_range(self, offset: int, data: bytes, length: int) -> None:
        """The pages of `write`, checked to lie on the disk: whole pages in batches, partial ones
        read, patched and stored again. `_progress`: the bytes stored so far."""
        pos = 0
        while pos < length:
            index = (offset + pos) >> PAGE_SHIFT
            in_page = (offset + pos) & (PAGE_SIZE - 1)
            if in_page == 0 and length - pos >= PAGE_SIZE:  # whole pages: the common case
                count = min((length - pos) >> PAGE_SHIFT, BATCH_PAGES)
                try:
                    self._store_pages(index, data, pos, count)
                except IOFailure:
                    self._progress = pos + self._batch_done * PAGE_SIZE
                    raise
                pos += count * PAGE_SIZE
            else:
                chunk = min(PAGE_SIZE - in_page, length - pos)
                old = self._page_bytes(index)
                page = old[:in_page] + bytes(data[pos : pos + chunk]) + old[in_page + chunk :]
                self._store_pages(index, page, 0, 1)
                pos += chunk
            self._progress = pos

    def read(self, offset: int, size: int) -> bytes:
        """Read up to `size` bytes at `offset`; a read past the end returns what lies before it.
        A page that cannot be restored raises IOFailure and counts in failed_reads."""
        return bytes(self.read_view(offset, size, None))

    def read_view(self, offset: int, size: int, buffer: bytearray | None) -> memoryview:
        """`read`, for the FUSE front end, without a request-sized allocation: the pages are
        restored into `buffer` (one the caller reuses; a new one is made if it is None or smaller
        than the pages the read touches) and a view of the bytes asked for is returned, valid
        until the next call with the same `buffer`."""
        with self.lock:
            started = _clock_ns()
            self._tick(started)
            if offset < 0:
                raise InvalidArgument("negative offset")
            size = max(0, min(size, self.disksize - offset))
            in_page = offset & (PAGE_SIZE - 1)
            first = offset >> PAGE_SHIFT
            count = (in_page + size + PAGE_SIZE - 1) >> PAGE_SHIFT if size else 0
            if buffer is None or len(buffer) < count * PAGE_SIZE:
                buffer = bytearray(count * PAGE_SIZE)
            if buffer is not self._reply_owner:  # the front end passes the same buffer every time
                self._reply_owner, self._reply, self._reply_view = buffer, buffer, memoryview(buffer)
            self._progress = 0
            try:
                if count:
                    self._read_pages(first, count, self._reply)
            except IOFailure:
                self._failed_reads += 1
                raise
            finally:
                self._account(READS, min(size, max(0, self._progress * PAGE_SIZE - in_page)), started)
            return self._reply_view[in_page : in_page + size]

    def _read_pages(self, first: int, count: int, buffer: bytearray | memoryview) -> None:
        """The pages of `read_view`, checked to lie on the disk, in batches into `buffer`.
        `_progress`: the pages restored so far."""
        done = 0
        while done < count:
            n = min(count - done, BATCH_PAGES)
            try:
                self._load_pages(first + done, n, buffer, done * PAGE_SIZE)
            except IOFailure:
                self._progress = done + self._batch_done
                raise
            done += n
            self._progress = done

    def discard(self, offset: int, length: int, write_zeroes: bool = False) -> None:
        """Free the pages in [offset, offset+length): a DISCARD, or a WRITE_ZEROES when
        `write_zeroes` (zram treats both alike; they differ only in the block statistics).

        Every whole page covered is freed and counted in notify_free, written or not. Partial
        pages at the edges are zeroed in place, so the whole range reads back as zeros, as a
        punched hole in a file must. A range starting at or past the end raises InvalidArgument
        (the block layer's answer); one running past the end is cut at the end.
        """
        with self.lock:
            started = _clock_ns()
            self._tick(started)
            if offset < 0 or length <= 0 or offset >= self.disksize:
                raise InvalidArgument(f"discard of {length} bytes at {offset}: outside the disk")
            end = min(offset + length, self.disksize)
            first = -(-offset // PAGE_SIZE)  # first whole page
            last = end // PAGE_SIZE  # one past the last whole page
            try:
                if first > last:  # the range lies inside one page
                    self._zero_partial(offset, end)
                else:
                    self._zero_partial(offset, first * PAGE_SIZE)
                    self._zero_partial(last * PAGE_SIZE, end)
            except IOFailure:
                self._failed_writes += 1
                raise
            for index in range(first, last):
                self._free_slot(index)
            self._notify_free += max(0, last - first)
            self._account(WRITES if write_zeroes else DISCARDS, end - offset, started)

    def _zero_partial(self, start: int, end: int) -> None:
        """Zero bytes [start, end) that lie within one page, keeping the rest of the page."""
        if start >= end:
            return
        index = start >> PAGE_SHIFT
        if not self._flags[index]:
            return  # already reads as zeros
        in_page = start & (PAGE_SIZE - 1)
        old = self._page_bytes(index)
        self._store_pages(index, old[:in_page] + bytes(end - start) + old[in_page + end - start :], 0, 1)

    def flush(self) -> None:
        """A flush (fsync): nothing to write back, but it is counted like the block layer does."""
        with self.lock:
            self._requests[FLUSHES] += 1

    def _tick(self, started: int) -> None:
        """Set `_now`, the access time this request gives its pages. The boot-time clock costs
        a Python call, so the default one is read again only CLOCK_REUSE_NS after the last read
        (`started` is the request's monotonic start); an injected clock is read every time."""
        if not self._fast_clock:
            self._now = self._clock()
        elif started >= self._clock_until:
            self._now = self._clock()
            self._clock_until = started + CLOCK_REUSE_NS

    def _account(self, stat: int, nbytes: int, started: int) -> None:
        """Count one request of kind `stat` (READS, ...) of `nbytes` that began at `started`."""
        requests = self._requests
        requests[stat] += 1
        requests[stat + 1] += nbytes >> SECTOR_SHIFT
        requests[stat + 2] += _clock_ns() - started

    # ------------------------------------------------------------------ statistics

    def statistics(self) -> DeviceStatistics:
        """Every counter at one instant, taken under one acquisition of the lock."""
        with self.lock:
            pool = self._pool
            pool_pages = pool.pages_allocated if pool else 0
            mm = MmStat(
                orig_data_size=self._pages_stored << PAGE_SHIFT,
                compr_data_size=self._compr_data_size,
                mem_used_total=pool_pages << PAGE_SHIFT,
                mem_limit=int(self.mem_limit_pages) << PAGE_SHIFT,  # int(): up to 2**64, past a C integer
                mem_used_max=self._max_used_pages << PAGE_SHIFT,
                same_pages=self._same_pages,
                pages_compacted=pool.pages_compacted if pool else 0,
                huge_pages=self._huge_pages,
                huge_pages_since=self._huge_pages_since,
            )
            io = IoStat(self._failed_reads, self._failed_writes, self._notify_free)
            block = BlockStat(
                read=self._request_stat(READS),
                write=self._request_stat(WRITES),
                discard=self._request_stat(DISCARDS),
                flush=self._request_stat(FLUSHES),
            )
            backing = self._backing
            bd = BdStat(backing.blocks_used if backing else 0, self._bd_reads, self._bd_writes)
            frames = pool.frames_resident if pool else 0
            return DeviceStatistics(mm, io, block, self._pages_stored, pool_pages, bd, frames)

    def _request_stat(self, stat: int) -> RequestStat:
        requests = self._requests
        return RequestStat(requests[stat], requests[stat + 1], requests[stat + 2])

    def class_stats(self) -> list[ClassStats]:
        """The pool's size classes, one row each (all zeros while uninitialised)."""
        with self.lock:
            if self._pool is None:
                return empty_class_stats(SizeClassTable(self.chain_size))
            return self._pool.class_stats()

    @property
    def pool(self) -> ZsPool | None:
        """The pool while initialised (for tests and benchmarks: callers take `lock`)."""
        return self._pool

    # ------------------------------------------------------------------ invariants

    def check_invariants(self) -> None:
        """Recount the slot table and the pool and raise AssertionError where a counter, a slot
        or a pool object disagrees. Slow (walks every slot); for tests and debugging."""
        with self.lock:
            if self._pool is None:
                assert self._pages_stored == self._compr_data_size == self._same_pages == 0
                assert self._huge_pages == 0
                return
            live = self._pool.check_consistency()
            stored = same = huge = compr = written_back = 0
            owners: dict[int, int] = {}
            blocks: set[int] = set()
            handle, flags = self._handle, self._flags
            for index in range(self._nr_pages):
                f = flags[index]
                if not f:
                    assert handle[index] == 0, f"empty slot {index} has a handle"
                    continue
                stored += 1
                assert not f & PP_SLOT or self._writeback_active, f"slot {index} chosen by no writeback"
                if f & SAME:
                    same += 1
                    assert f & SIZE_MASK == 0
                    continue
                if f & WB:
                    written_back += 1
                    assert f & ~(IDLE | INCOMPRESSIBLE) == WB, f"written-back slot {index} has flags {f:#x}"
                    assert self._backing is not None and self._backing.is_used(handle[index])
                    assert handle[index] not in blocks, f"backing block {handle[index]} held twice"
                    blocks.add(handle[index])
                    continue
                size = f & SIZE_MASK
                compr += size
                if f & HUGE:
                    huge += 1
                    assert size == PAGE_SIZE
                else:
                    assert 0 < size < self._huge_class_size, f"slot {index} size {size}"
                owners[handle[index]] = index
            assert stored == self._pages_stored, f"pages_stored {self._pages_stored} != {stored}"
            assert same == self._same_pages, f"same_pages {self._same_pages} != {same}"
            assert huge == self._huge_pages, f"huge_pages {self._huge_pages} != {huge}"
            assert compr == self._compr_data_size, f"compr_data_size {self._compr_data_size} != {compr}"
            assert owners == live, "slot table and pool disagree on which objects are live"
            if not self._writeback_active:
                used = self._backing.blocks_used if self._backing is not None else 0
                assert written_back == used, f"{written_back} written-back slots, {used} blocks in use"
            assert self._max_used_pages >= self._pool.pages_allocated, "mem_used_max below mem_used_total"

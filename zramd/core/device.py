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

The slot table is two arrays in a reserved anonymous mapping (never-written pages cost nothing):
``_handle[i]`` holds the pool location of page i's object, or the fill word of a same-filled page;
``_flags[i]`` packs the stored size in the low 13 bits and the SAME/HUGE flags above them, like the
kernel's ``zram_table_entry``. A slot with flags 0 is empty and reads as zeros. `_free_slot` is the
one place that undoes a slot and its counters (the kernel's ``zram_free_page``).
"""

from __future__ import annotations

import threading
import time
from array import array
from collections.abc import Callable

from zramd.core import compress
from zramd.core.codec import COMPRESS_STRIDE, FAILED, FILLED, PageCodec
from zramd.core.errors import DeviceBusy, InvalidArgument, IOFailure, NoMemory, NoSpace
from zramd.core.pool import ReservedArrays, ZsPool, empty_class_stats
from zramd.core.records import (
    BlockStat,
    ClassStats,
    DeviceStatistics,
    FaultHook,
    IoStat,
    MmStat,
    PoolExhausted,
    RequestStat,
)
from zramd.core.size_classes import DEFAULT_CHAIN_SIZE, SizeClassTable
from zramd.core.streams import MIN_JOBS_PER_STREAM, CompressionStreams
from zramd.core.units import PAGE_SHIFT, PAGE_SIZE, SECTOR_SHIFT, round_up_to_page

# Slot flags, above the 13-bit size field (the kernel's ZRAM_FLAG_SHIFT = PAGE_SHIFT + 1).
SIZE_BITS = PAGE_SHIFT + 1
SIZE_MASK = (1 << SIZE_BITS) - 1
SAME = 1 << SIZE_BITS  # the page is one 8-byte word repeated; _handle holds the word
HUGE = 1 << (SIZE_BITS + 1)  # stored uncompressed in the 4096-byte class

# Pages handled per batch: a FUSE request is at most 1 MiB (max_write); longer writes and reads
# (the tests' and tools') go in batches of this many pages.
BATCH_PAGES = 256
# A batch is split between the compression streams only when its codec work is estimated at
# this much or more: waking another CPU costs tens of microseconds on a virtual machine, more
# than 32 pages of fio's half-compressible data take to compress (see docs/performance.md).
SPLIT_MIN_NS = 150_000
_clock_ns = time.monotonic_ns  # bound once: the per-request path calls it without a lookup
COMPRESSING, DECOMPRESSING = 0, 1  # the two estimates in ZramDevice._codec_ns


# The block-layer request counters (``stat``): three numbers (ios, sectors, nanoseconds) for
# each of these, at this offset in `ZramDevice._requests`.
READS, WRITES, DISCARDS, FLUSHES = 0, 3, 6, 9


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
    """

    def __init__(
        self,
        chain_size: int = DEFAULT_CHAIN_SIZE,
        pool_pages: Callable[[int], int] = pool_pages_for,
        streams: CompressionStreams | None = None,
    ):
        self.lock = threading.RLock()
        self.chain_size = chain_size
        self._pool_pages = pool_pages
        self._streams = streams if streams is not None else CompressionStreams(1)
        self.comp_algorithm = compress.DEFAULT_ALGORITHM
        self.disksize = 0
        self.mem_limit_pages = 0
        self.fault_hook: FaultHook | None = None
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
        self._out = self._staging = self._page = bytearray()
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
            table = None
            try:
                table = ReservedArrays(nr_pages)
                handle = table.carve("Q", 1)
                flags = table.carve("I", 1)
                pool = ZsPool(self._pool_pages(disksize), self.chain_size, relocate=self._relocate)
            except (OSError, ValueError, OverflowError) as exc:
                if table is not None:
                    table.close()
                raise NoMemory(f"cannot reserve memory for a {disksize}-byte device: {exc}") from None
            self._codec = PageCodec(self.comp_algorithm, self._streams.count)
            self._table, self._handle, self._flags, self._pool = table, handle, flags, pool
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
            return self._pool.compact()

    def reset(self) -> None:
        """Free every page and the pool, zero every counter, and return to the uninitialised
        state with the default algorithm and no limit. Whether the disk may be reset (the
        kernel's EBUSY while the block device is open) is the front end's to decide: it knows
        the block device."""
        with self.lock:
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
            self._zero_stats()

    # ------------------------------------------------------------------ the slot table

    def _relocate(self, index: int, location: int) -> None:
        """Compaction moved the object of slot `index`."""
        self._handle[index] = location

    def _free_slot(self, index: int) -> None:
        """Undo slot `index` and its counters (``zram_free_page``); an empty slot is untouched."""
        flags = self._flags[index]
        if not flags:
            return
        if flags & SAME:
            self._same_pages -= 1
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
        elif old:
            pool.free(self._handle[index])
            self._compr_data_size -= old & SIZE_MASK
            if old & HUGE:
                self._huge_pages -= 1
        else:
            self._pages_stored += 1
        self._handle[index] = location
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
        ``dst[base:]``. Raw (huge) pages are copied straight in; compressed objects are gathered
        into `_staging` and decompressed, with fill words and empty slots, by the streams. A page
        that cannot be restored raises IOFailure (`_batch_done`: the pages before it)."""
        src_off, dst_off, result, fills = self._job_src, self._job_dst, self._job_res, self._fills
        handle, flags, pool, codec = self._handle, self._flags, self._pool, self._codec
        assert pool is not None and codec is not None
        jobs = staged = 0
        for k in range(count):
            slot = index + k
            f = flags[slot]
            at = base + k * PAGE_SIZE
            if f & HUGE:
                pool.read_into(handle[slot], PAGE_SIZE, dst, at)
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
            if result[j] == FAILED:
                self._batch_done = slot - index
                raise IOFailure(f"page {slot}: {codec.name}: not the compressed form of one page")
            if self.fault_hook is not None:
                try:
                    self.fault_hook("decompress", slot)
                except Exception as exc:
                    self._batch_done = slot - index
                    raise IOFailure(f"page {slot}: {exc}") from exc
        self._batch_done = count

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
            return DeviceStatistics(mm, io, block, self._pages_stored, pool_pages)

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
            stored = same = huge = compr = 0
            owners: dict[int, int] = {}
            handle, flags = self._handle, self._flags
            for index in range(self._nr_pages):
                f = flags[index]
                if not f:
                    assert handle[index] == 0, f"empty slot {index} has a handle"
                    continue
                stored += 1
                if f & SAME:
                    same += 1
                    assert f & SIZE_MASK == 0
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
            assert self._max_used_pages >= self._pool.pages_allocated, "mem_used_max below mem_used_total"

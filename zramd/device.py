"""One zram device: the slot table, the write and read paths, the counters, and the setup state.

Owns: what ``drivers/block/zram/zram_drv.c`` owns, minus the block layer: the init state machine
(disksize / comp_algorithm / mem_limit / reset, EBUSY after init), one slot per 4 KiB page, the
same-filled / compress / huge / mem_limit write path, reads, discards, compaction requests, the
``mm_stat``/``io_stat``/``debug_stat`` counters and block-layer ``stat`` accounting.
Must not: parse attribute text (`zramd.attrs` does), speak to the kernel or import trio or
pyfuse3. Every public method is synchronous and takes the device lock, so the FUSE layer may call
it from any thread.

The slot table is two arrays in a reserved anonymous mapping (never-written pages cost nothing):
``_handle[i]`` holds the pool location of page i's object, or the fill word of a same-filled page;
``_flags[i]`` packs the stored size in the low 13 bits and the SAME/HUGE flags above them, like the
kernel's ``zram_table_entry``. A slot with flags 0 is empty and reads as zeros. `_free_slot` is the
one place that undoes a slot and its counters (the kernel's ``zram_free_page``).
"""

from __future__ import annotations

import mmap
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields

from zramd import compress
from zramd.errors import DeviceBusy, InvalidArgument, IOFailure, NoMemory, NoSpace
from zramd.pool import IntFormat, PoolExhausted, ZsPool
from zramd.size_classes import DEFAULT_CHAIN_SIZE
from zramd.units import PAGE_SHIFT, PAGE_SIZE, SECTOR_SHIFT, round_up_to_page

# Slot flags, above the 13-bit size field (the kernel's ZRAM_FLAG_SHIFT = PAGE_SHIFT + 1).
SIZE_BITS = PAGE_SHIFT + 1
SIZE_MASK = (1 << SIZE_BITS) - 1
SAME = 1 << SIZE_BITS  # the page is one 8-byte word repeated; _handle holds the word
HUGE = 1 << (SIZE_BITS + 1)  # stored uncompressed in the 4096-byte class

ZERO_PAGE = bytes(PAGE_SIZE)
_WORDS_PER_PAGE = PAGE_SIZE // 8
_MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)


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

    def format(self) -> str:
        """``%8llu %8llu %8llu %8lu %8ld %8llu %8lu %8llu %8llu\\n``."""
        return " ".join(f"{getattr(self, f.name):8d}" for f in fields(self)) + "\n"


@dataclass(frozen=True, slots=True)
class IoStat:
    """``io_stat``: failed_reads, failed_writes, the retired invalid_io column (always 0), and
    notify_free."""

    failed_reads: int
    failed_writes: int
    notify_free: int

    def format(self) -> str:
        return f"{self.failed_reads:8d} {self.failed_writes:8d} 0 {self.notify_free:8d}\n"


class _OpStat:
    """Block-layer accounting of one kind of request (read, write, discard or flush)."""

    __slots__ = ("ios", "nanos", "sectors")

    def __init__(self) -> None:
        self.ios = 0
        self.sectors = 0
        self.nanos = 0


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
        openers: how many times the disk is open; `reset` refuses while it is not 0.
        chain_size: the zsmalloc chain size used for new pools.
    """

    def __init__(
        self, chain_size: int = DEFAULT_CHAIN_SIZE, pool_pages: Callable[[int], int] = pool_pages_for
    ):
        self.lock = threading.RLock()
        self.chain_size = chain_size
        self._pool_pages = pool_pages
        self.comp_algorithm = compress.DEFAULT_ALGORITHM
        self.disksize = 0
        self.mem_limit_pages = 0
        self.openers = 0
        self._pool: ZsPool | None = None
        self._maps: list[mmap.mmap] = []
        self._views: list[memoryview[int]] = []
        self._handle: memoryview[int] = memoryview(b"")
        self._flags: memoryview[int] = memoryview(b"")
        self._nr_pages = 0
        self._compress: Callable[[bytes], bytes] = compress.lookup(self.comp_algorithm).compress
        self._decompress: Callable[[bytes], bytes] = compress.lookup(self.comp_algorithm).decompress
        self._huge_class_size = 0
        self._zero_stats()

    def _zero_stats(self) -> None:
        self.pages_stored = 0  # slots holding data, same-filled ones included
        self.compr_data_size = 0  # bytes: compressed lengths, 4096 per huge page
        self.same_pages = 0
        self.huge_pages = 0
        self.huge_pages_since = 0
        self.max_used_pages = 0
        self.failed_reads = 0
        self.failed_writes = 0
        self.notify_free = 0
        self.miss_free = 0
        self.stat_read = _OpStat()
        self.stat_write = _OpStat()
        self.stat_discard = _OpStat()
        self.stat_flush = _OpStat()

    # ------------------------------------------------------------------ setup state machine

    @property
    def initialized(self) -> bool:
        return self.disksize != 0

    def set_comp_algorithm(self, name: str) -> None:
        """Select the algorithm for the next initialisation (EINVAL unknown, EBUSY once init).

        Names match as the kernel's ``sysfs_streq`` does (one trailing newline ignored), and the
        name is kept as given: like zram, ``lzo\\n`` selects lzo but is then shown unbracketed.
        """
        with self.lock:
            try:
                compress.lookup(name.removesuffix("\n"))
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
            try:
                handle = self._reserve(nr_pages, "Q")
                flags = self._reserve(nr_pages, "I")
                pool = ZsPool(self._pool_pages(disksize), self.chain_size, relocate=self._relocate)
            except (OSError, ValueError, OverflowError) as exc:
                self._release_table()
                raise NoMemory(f"cannot reserve memory for a {disksize}-byte device: {exc}") from None
            backend = compress.lookup(self.comp_algorithm.removesuffix("\n"))
            self._handle, self._flags, self._pool = handle, flags, pool
            self._nr_pages = nr_pages
            self._compress, self._decompress = backend.compress, backend.decompress
            self._huge_class_size = pool.table.huge_class_size
            self.disksize = disksize

    def _reserve(self, entries: int, fmt: IntFormat) -> memoryview[int]:
        size = entries * struct.calcsize(fmt)
        region = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE)
        raw = memoryview(region)
        self._maps.append(region)
        self._views.append(raw)
        view = raw.cast(fmt)
        self._views.append(view)
        return view

    def _release_table(self) -> None:
        for view in reversed(self._views):
            view.release()
        for region in self._maps:
            region.close()
        self._views, self._maps = [], []
        self._handle = self._flags = memoryview(b"")

    def open_disk(self) -> None:
        """Count an opener of the disk (reset is refused while there is one)."""
        with self.lock:
            self.openers += 1

    def close_disk(self) -> None:
        with self.lock:
            self.openers = max(0, self.openers - 1)

    def set_mem_limit(self, nbytes: int) -> None:
        """Limit the pool to `nbytes` rounded up to whole pages; 0 removes the limit."""
        with self.lock:
            self.mem_limit_pages = round_up_to_page(nbytes) >> PAGE_SHIFT

    def reset_mem_used_max(self) -> None:
        """Set the peak to the current pool size (a no-op while uninitialised)."""
        with self.lock:
            if self._pool is not None:
                self.max_used_pages = self._pool.pages_allocated

    def compact(self) -> int:
        """Compact the pool; returns the pages freed. EINVAL while uninitialised."""
        with self.lock:
            if self._pool is None:
                raise InvalidArgument("compact needs an initialised device")
            return self._pool.compact()

    def reset(self) -> None:
        """Free every page and the pool, zero every counter, and return to the uninitialised
        state with the default algorithm and no limit. EBUSY while the disk is open."""
        with self.lock:
            if self.openers:
                raise DeviceBusy("the disk is open; close it (losetup -d, swapoff, umount) first")
            if self._pool is not None:
                self._pool.close()
            self._pool = None
            self._release_table()
            self._nr_pages = 0
            self.disksize = 0
            self.mem_limit_pages = 0
            self.comp_algorithm = compress.DEFAULT_ALGORITHM
            self._zero_stats()

    def reset_for_exit(self) -> None:
        """Release everything when the daemon exits, whoever still has the disk open."""
        with self.lock:
            self.openers = 0
            self.reset()

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
            self.same_pages -= 1
        else:
            assert self._pool is not None
            self._pool.free(self._handle[index])
            self.compr_data_size -= flags & SIZE_MASK
            if flags & HUGE:
                self.huge_pages -= 1
        self.pages_stored -= 1
        self._handle[index] = 0
        self._flags[index] = 0

    def _store_page(self, index: int, page: bytes) -> None:
        """Store one whole page into slot `index` (``zram_write_page``). On failure raise
        IOFailure and leave the old contents of the slot in place. This is the per-page hot
        path: the slot's old contents are freed inline (see `_free_slot` for the same logic)."""
        # 1. Same-filled: zero pages by one compare, others by the first/last word, then a count
        #    of the first word (512 non-overlapping matches tile the page exactly).
        if page == ZERO_PAGE:
            word = 0
        else:
            first = page[:8]
            word = -1
            if first == page[-8:] and page.count(first) == _WORDS_PER_PAGE:
                word = int.from_bytes(first, "little")
        if word >= 0:
            self._free_slot(index)
            self._handle[index] = word
            self._flags[index] = SAME
            self.same_pages += 1
            self.pages_stored += 1
            return
        # 2. Compress; 3. too big to be worth it: store the page raw in the huge class.
        try:
            data = self._compress(page)
        except Exception as exc:
            raise IOFailure(f"compression failed: {exc}") from exc
        size = len(data)
        flags = size
        if size >= self._huge_class_size:
            data, size, flags = page, PAGE_SIZE, PAGE_SIZE | HUGE
        # 4. Allocate and copy in (compacting once if the pool is full); 5. the limit check.
        pool = self._pool
        assert pool is not None
        try:
            location = pool.store(data, index)
        except PoolExhausted:
            pool.compact()
            try:
                location = pool.store(data, index)
            except PoolExhausted as exc:
                raise IOFailure(str(exc)) from None
        pages = pool.pages_allocated
        if pages > self.max_used_pages:
            self.max_used_pages = pages
        if self.mem_limit_pages and pages > self.mem_limit_pages:
            pool.free(location)
            raise IOFailure(f"mem_limit reached ({self.mem_limit_pages} pages)")
        # 6. Free the old contents and install the new object.
        old = self._flags[index]
        if old & SAME:
            self.same_pages -= 1
        elif old:
            pool.free(self._handle[index])
            self.compr_data_size -= old & SIZE_MASK
            if old & HUGE:
                self.huge_pages -= 1
        else:
            self.pages_stored += 1
        self._handle[index] = location
        self._flags[index] = flags
        self.compr_data_size += size
        if flags & HUGE:
            self.huge_pages += 1
            self.huge_pages_since += 1

    def _load_page(self, index: int) -> bytes:
        """The contents of slot `index` as one page (``zram_read_page``)."""
        flags = self._flags[index]
        if not flags:
            return ZERO_PAGE
        if flags & SAME:
            word = self._handle[index]
            return ZERO_PAGE if word == 0 else word.to_bytes(8, "little") * _WORDS_PER_PAGE
        assert self._pool is not None
        data = self._pool.read(self._handle[index], flags & SIZE_MASK)
        if flags & HUGE:
            return data
        try:
            return self._decompress(data)
        except Exception as exc:
            raise IOFailure(f"page {index}: {exc}") from exc

    # ------------------------------------------------------------------ byte-range I/O

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> int:
        """Write `data` at byte `offset`; returns the bytes written.

        Whole pages are stored directly; partial pages are read, patched and stored again. A
        write that starts at or past the end raises NoSpace; one that runs past the end is cut
        short there (like a full filesystem). A page that cannot be stored stops the request:
        failed_writes counts it, IOFailure is raised, and that page keeps its old contents.
        """
        with self.lock:
            started = time.monotonic_ns()
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
            pos = 0
            try:
                if not (offset | length) & (PAGE_SIZE - 1):  # whole pages: the common case
                    index = offset >> PAGE_SHIFT
                    if length == PAGE_SIZE:
                        self._store_page(index, data)
                    else:
                        store = self._store_page
                        for pos in range(0, length, PAGE_SIZE):
                            store(index, data[pos : pos + PAGE_SIZE])
                            index += 1
                    pos = length
                while pos < length:
                    index = (offset + pos) >> PAGE_SHIFT
                    in_page = (offset + pos) & (PAGE_SIZE - 1)
                    chunk = min(PAGE_SIZE - in_page, length - pos)
                    if chunk == PAGE_SIZE:
                        page = data[pos : pos + PAGE_SIZE]
                    else:
                        old = self._load_page(index)
                        page = old[:in_page] + data[pos : pos + chunk] + old[in_page + chunk :]
                    self._store_page(index, page)
                    pos += chunk
            except IOFailure:
                self.failed_writes += 1
                raise
            finally:
                self._account(self.stat_write, pos, started)
            return length

    def read(self, offset: int, size: int) -> bytes:
        """Read up to `size` bytes at `offset`; a read past the end returns what lies before it.
        A page that cannot be restored raises IOFailure and counts in failed_reads."""
        return bytes(self.read_into(offset, size, None))

    def read_into(self, offset: int, size: int, out: bytearray | None) -> bytes | memoryview:
        """`read`, for the FUSE front end: a read of several pages is assembled in `out` (a
        buffer the caller reuses; one is made if it is None or too small) and a view of it is
        returned, so serving reads allocates no request buffer; a single whole page is returned
        as it is, with no copy at all."""
        with self.lock:
            started = time.monotonic_ns()
            if offset < 0:
                raise InvalidArgument("negative offset")
            size = max(0, min(size, self.disksize - offset))
            if out is None or len(out) < size:
                out = bytearray(size)
            pos = 0
            try:
                if size == PAGE_SIZE and not offset & (PAGE_SIZE - 1):
                    page = self._load_page(offset >> PAGE_SHIFT)
                    pos = size
                    return page
                view = memoryview(out)
                while pos < size:
                    index = (offset + pos) >> PAGE_SHIFT
                    in_page = (offset + pos) & (PAGE_SIZE - 1)
                    chunk = min(PAGE_SIZE - in_page, size - pos)
                    page = self._load_page(index)
                    view[pos : pos + chunk] = page if chunk == PAGE_SIZE else page[in_page : in_page + chunk]
                    pos += chunk
                return view[:size]
            except IOFailure:
                self.failed_reads += 1
                raise
            finally:
                self._account(self.stat_read, pos, started)

    def discard(self, offset: int, length: int, write_zeroes: bool = False) -> None:
        """Free the pages in [offset, offset+length): a DISCARD, or a WRITE_ZEROES when
        `write_zeroes` (zram treats both alike; they differ only in the block statistics).

        Every whole page covered is freed and counted in notify_free, written or not. Partial
        pages at the edges are zeroed in place, so the whole range reads back as zeros, as a
        punched hole in a file must. A range starting at or past the end raises InvalidArgument
        (the block layer's answer); one running past the end is cut at the end.
        """
        with self.lock:
            started = time.monotonic_ns()
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
                self.failed_writes += 1
                raise
            for index in range(first, last):
                self._free_slot(index)
            self.notify_free += max(0, last - first)
            self._account(self.stat_write if write_zeroes else self.stat_discard, end - offset, started)

    def _zero_partial(self, start: int, end: int) -> None:
        """Zero bytes [start, end) that lie within one page, keeping the rest of the page."""
        if start >= end:
            return
        index = start >> PAGE_SHIFT
        if not self._flags[index]:
            return  # already reads as zeros
        in_page = start & (PAGE_SIZE - 1)
        old = self._load_page(index)
        self._store_page(index, old[:in_page] + bytes(end - start) + old[in_page + end - start :])

    def flush(self) -> None:
        """A flush (fsync): nothing to write back, but it is counted like the block layer does."""
        with self.lock:
            self.stat_flush.ios += 1

    def _account(self, stat: _OpStat, nbytes: int, started: int) -> None:
        stat.ios += 1
        stat.sectors += nbytes >> SECTOR_SHIFT
        stat.nanos += time.monotonic_ns() - started

    # ------------------------------------------------------------------ statistics

    def mm_stat(self) -> MmStat:
        with self.lock:
            pool = self._pool
            return MmStat(
                orig_data_size=self.pages_stored << PAGE_SHIFT,
                compr_data_size=self.compr_data_size,
                mem_used_total=(pool.pages_allocated << PAGE_SHIFT) if pool else 0,
                mem_limit=self.mem_limit_pages << PAGE_SHIFT,
                mem_used_max=self.max_used_pages << PAGE_SHIFT,
                same_pages=self.same_pages,
                pages_compacted=pool.pages_compacted if pool else 0,
                huge_pages=self.huge_pages,
                huge_pages_since=self.huge_pages_since,
            )

    def io_stat(self) -> IoStat:
        with self.lock:
            return IoStat(self.failed_reads, self.failed_writes, self.notify_free)

    def format_debug_stat(self) -> str:
        """``version: 1\\n`` then the retired writestall column (0) and miss_free."""
        return f"version: {1}\n0 {self.miss_free:8d}\n"

    def format_block_stat(self) -> str:
        """The 17 columns of /sys/block/<dev>/stat: read, write, in-flight, discard and flush
        accounting (requests, merges, sectors, milliseconds). Requests are served one at a time,
        so nothing is in flight when this is read, and busy time is the sum of service times."""
        with self.lock:
            r, w, d, f = self.stat_read, self.stat_write, self.stat_discard, self.stat_flush
            busy_ms = (r.nanos + w.nanos + d.nanos + f.nanos) // 1_000_000
            columns = (
                r.ios, 0, r.sectors, r.nanos // 1_000_000,
                w.ios, 0, w.sectors, w.nanos // 1_000_000,
                0, busy_ms, busy_ms,
                d.ios, 0, d.sectors, d.nanos // 1_000_000,
                f.ios, f.nanos // 1_000_000,
            )  # fmt: skip
            return " ".join(f"{c:8d}" for c in columns) + "\n"

    def format_classes(self) -> str:
        """The pool's zsmalloc ``classes`` table (empty header only while uninitialised)."""
        with self.lock:
            if self._pool is None:
                return ZsPool(1, self.chain_size).format_classes()
            return self._pool.format_classes()

    @property
    def pool(self) -> ZsPool | None:
        return self._pool

    # ------------------------------------------------------------------ fault injection (tests only)

    def inject_faults(self, compress_failures: int = 0, decompress_failures: int = 0) -> None:
        """Make the next `compress_failures` compressions and `decompress_failures`
        decompressions raise, as a broken codec would. For tests: the daemon exposes this only
        when started with ZRAMD_FAULT_INJECTION=1. Costs nothing when not armed: the codec
        functions are swapped for failing wrappers and swapped back once they have fired."""
        with self.lock:
            backend = compress.lookup(self.comp_algorithm.removesuffix("\n"))
            if compress_failures > 0:
                self._compress = _failing(compress_failures, backend.compress, self, "_compress")
            if decompress_failures > 0:
                self._decompress = _failing(decompress_failures, backend.decompress, self, "_decompress")

    def corrupt_page(self, index: int) -> None:
        """Overwrite the stored object of page `index` with garbage of the same length, as a
        memory error would (tests only, like `inject_faults`). InvalidArgument unless the page
        holds a compressed object (same-filled and huge pages have nothing to decompress)."""
        with self.lock:
            if not 0 <= index < self._nr_pages:
                raise InvalidArgument(f"page {index} outside the disk")
            flags = self._flags[index]
            if not flags or flags & (SAME | HUGE):
                raise InvalidArgument(f"page {index} holds no compressed object")
            assert self._pool is not None
            size = flags & SIZE_MASK
            self._pool.write(self._handle[index], bytes((i * 7 + 1) & 0xFF for i in range(size)))

    # ------------------------------------------------------------------ invariants

    def format_consistency(self) -> str:
        """Run `check_invariants` and report it as text: ``ok`` and the recounted totals, or
        ``MISMATCH`` and what disagrees (the ``sys/consistency`` file)."""
        try:
            self.check_invariants()
        except AssertionError as exc:
            return f"MISMATCH: {exc}\n"
        stat = self.mm_stat()
        return (
            f"ok: {self.pages_stored} pages stored, {stat.same_pages} same, {stat.huge_pages} huge, "
            f"{stat.compr_data_size} bytes compressed in {stat.mem_used_total // PAGE_SIZE} pool pages\n"
        )

    def check_invariants(self) -> None:
        """Recount the slot table and the pool and raise AssertionError where a counter, a slot
        or a pool object disagrees. Slow (walks every slot); for tests and debugging."""
        with self.lock:
            if self._pool is None:
                assert self.pages_stored == self.compr_data_size == self.same_pages == 0
                assert self.huge_pages == 0
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
            assert stored == self.pages_stored, f"pages_stored {self.pages_stored} != {stored}"
            assert same == self.same_pages, f"same_pages {self.same_pages} != {same}"
            assert huge == self.huge_pages, f"huge_pages {self.huge_pages} != {huge}"
            assert compr == self.compr_data_size, f"compr_data_size {self.compr_data_size} != {compr}"
            assert owners == live, "slot table and pool disagree on which objects are live"
            assert self.max_used_pages >= self._pool.pages_allocated, "mem_used_max below mem_used_total"


def _failing(
    count: int, real: Callable[[bytes], bytes], device: ZramDevice, name: str
) -> Callable[[bytes], bytes]:
    """A codec function that raises `count` times, then puts `real` back on `device`."""
    remaining = [count]

    def fail(data: bytes) -> bytes:
        remaining[0] -= 1
        if remaining[0] <= 0:
            setattr(device, name, real)
        raise RuntimeError(f"injected {name.lstrip('_')} failure")

    return fail


class NoopDevice(ZramDevice):
    """The benchmark's ceiling: a device whose reads return zeros and whose writes are dropped,
    served through the same FUSE front end. Setup, attributes and counters behave as usual."""

    def __init__(self) -> None:
        super().__init__()
        self._zeros = bytes(1 << 20)

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> int:
        if offset >= self.disksize:
            raise NoSpace(f"write at {offset} is past the end of the disk ({self.disksize} bytes)")
        return min(len(data), self.disksize - offset)

    def read_into(self, offset: int, size: int, out: bytearray | None) -> bytes | memoryview:
        size = max(0, min(size, self.disksize - offset))
        return memoryview(self._zeros)[:size] if size <= len(self._zeros) else bytes(size)

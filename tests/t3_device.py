"""Tier 3: the device core (`zramd.core.device.ZramDevice`) without FUSE.

The oracle is the kernel's drivers/block/zram/zram_drv.c (the setup state machine of
``disksize_store``/``reset_store``, the write path of ``zram_write_page``, the counters, discard
and ``mem_limit`` semantics; docs/design.md, "One page, written", follows the same steps) and,
for contents, a plain bytearray: the device must read back exactly what was written, page by
page and byte by byte, and its counters must equal what the kernel's rules give for that content
(same-filled pages, compressed lengths from the selected backend, 4096 per huge page).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterable, Iterator

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from zramd.core import attrs, compress
from zramd.core.engine import ZramDevice
from zramd.core.errors import DeviceBusy, InvalidArgument, IOFailure, NoMemory, NoSpace
from zramd.core.records import MmStat
from zramd.core.size_classes import SizeClassTable
from zramd.core.units import PAGE_SIZE

PAGE = PAGE_SIZE
HUGE_CLASS_SIZE = 3625  # mm/zsmalloc.c's zs_huge_class_size() at chain 8: comp_len >= this is stored raw
CLASSES = SizeClassTable(8)

# ---------------------------------------------------------------------------- page makers

_WORDS = [
    "zram", "swap", "page", "slot", "pool", "class", "zspage", "object", "handle", "compress",
    "huge", "same", "limit", "discard", "kernel", "memory", "device", "write", "read", "block",
    "sector", "counter", "stat", "the", "a", "of", "to", "and", "in", "is", "for",
]  # fmt: skip


def _build_text(nbytes: int = 64 << 10) -> bytes:
    rnd = random.Random(0)
    parts: list[str] = []
    total = 0
    while total < nbytes:
        line = " ".join(rnd.choice(_WORDS) for _ in range(rnd.randint(3, 14)))
        line += f" {rnd.randint(0, 99999)}\n"
        parts.append(line)
        total += len(line)
    return "".join(parts).encode()[:nbytes]


TEXT = _build_text()


def text_slice(start: int, n: int) -> bytes:
    """`n` bytes of compressible text starting at `start` (wrapping around the text)."""
    start %= len(TEXT)
    out = TEXT[start : start + n]
    while len(out) < n:
        out += TEXT[: n - len(out)]
    return out


def text_page(k: int) -> bytes:
    return text_slice(k * PAGE, PAGE)


def random_bytes(seed: int, n: int = PAGE) -> bytes:
    return random.Random(seed).randbytes(n)


def complen(page: bytes, algo: str = "lzo") -> int:
    return len(compress.lookup(algo.removesuffix("\n")).compress(page))


def is_same_filled(page: bytes) -> bool:
    """The kernel's test: all 512 aligned 64-bit words equal word 0."""
    return page == page[:8] * (PAGE // 8)


def stored_size(page: bytes, algo: str = "lzo") -> int:
    """What the page adds to compr_data_size: 0 same-filled, 4096 huge, else comp_len."""
    if is_same_filled(page):
        return 0
    n = complen(page, algo)
    return PAGE if n >= HUGE_CLASS_SIZE else n


def is_huge(page: bytes, algo: str = "lzo") -> bool:
    return not is_same_filled(page) and complen(page, algo) >= HUGE_CLASS_SIZE


def page_with_complen(lo: int, hi: int, seed: int = 0, algo: str = "lzo") -> bytes:
    """A page (zeros, then a random tail) whose compressed length lies in [lo, hi]."""
    comp = compress.lookup(algo).compress
    for s in range(seed * 1000, seed * 1000 + 50):
        tail = random_bytes(s)
        for k in range(max(1, lo - 80), min(PAGE, hi + 80)):
            page = bytes(PAGE - k) + tail[:k]
            if lo <= len(comp(page)) <= hi:
                return page
    raise AssertionError(f"no page with comp_len in [{lo}, {hi}]")


@functools.cache
def class_range(class_size: int) -> tuple[int, int]:
    """The comp_len values zs_malloc serves from the class of `class_size` bytes."""
    lens = [n for n in range(1, PAGE + 1) if CLASSES.lookup(n).size == class_size]
    assert lens, class_size
    return lens[0], lens[-1]


def page_in_class(class_size: int, seed: int = 0, algo: str = "lzo") -> bytes:
    lo, hi = class_range(class_size)
    return page_with_complen(lo, hi, seed, algo)


# ---------------------------------------------------------------------------- helpers


def make_device(pages: int = 64, algo: str | None = None) -> ZramDevice:
    dev = ZramDevice()
    if algo is not None:
        dev.set_comp_algorithm(algo)
    dev.set_disksize(pages * PAGE)
    return dev


@pytest.fixture
def dev() -> Iterator[ZramDevice]:
    device = make_device(64)
    yield device
    device.reset()


def pages_of(dev: ZramDevice, first: int, count: int = 1) -> bytes:
    return dev.read(first * PAGE, count * PAGE)


def expected_counters(
    model: bytes | bytearray, stored: Iterable[int], algo: str = "lzo"
) -> tuple[int, int, int, int]:
    """(orig_data_size, compr_data_size, same_pages, huge_pages) for `stored` pages of `model`."""
    orig = compr = same = huge = 0
    for index in stored:
        page = bytes(model[index * PAGE : (index + 1) * PAGE])
        orig += PAGE
        if is_same_filled(page):
            same += 1
            continue
        size = stored_size(page, algo)
        compr += size
        huge += size == PAGE
    return orig, compr, same, huge


def counters(mm: MmStat) -> tuple[int, int, int, int]:
    return mm.orig_data_size, mm.compr_data_size, mm.same_pages, mm.huge_pages


ZERO_MM = MmStat(0, 0, 0, 0, 0, 0, 0, 0, 0)

# ============================================================================ 1. init state machine


def test_uninitialised_device() -> None:
    dev = ZramDevice()
    assert dev.disksize == 0
    assert not dev.initialized
    assert dev.comp_algorithm == "lzo"
    assert dev.statistics().mm == ZERO_MM
    assert dev.read(0, 4096) == b""
    with pytest.raises(NoSpace):
        dev.write(0, b"x")
    with pytest.raises(InvalidArgument):
        dev.discard(0, PAGE)
    with pytest.raises(InvalidArgument):
        dev.compact()
    dev.reset_mem_used_max()  # a no-op, not an error
    assert dev.statistics().mm == ZERO_MM
    dev.reset()  # a no-op on an uninitialised device
    dev.check_invariants()


@pytest.mark.parametrize(
    ("requested", "disksize"), [(1, 4096), (4095, 4096), (4096, 4096), (4097, 8192), (10**6, 1003520)]
)
def test_disksize_rounds_up_to_a_page(requested: int, disksize: int) -> None:
    dev = ZramDevice()
    dev.set_disksize(requested)
    assert dev.disksize == disksize
    assert dev.initialized
    assert dev.read(0, 2 * disksize) == bytes(disksize)
    dev.check_invariants()
    dev.reset()


@pytest.mark.parametrize("nbytes", [0, -1, -4096])
def test_disksize_zero_or_negative_is_einval(nbytes: int) -> None:
    dev = ZramDevice()
    with pytest.raises(InvalidArgument):
        dev.set_disksize(nbytes)
    assert not dev.initialized


def test_setup_attributes_are_busy_once_initialised(dev: ZramDevice) -> None:
    dev.write(0, text_page(0))
    with pytest.raises(DeviceBusy):
        dev.set_disksize(8 * PAGE)
    with pytest.raises(DeviceBusy):
        dev.set_comp_algorithm("lz4")
    assert dev.disksize == 64 * PAGE
    assert dev.comp_algorithm == "lzo"
    assert pages_of(dev, 0) == text_page(0)
    assert dev.statistics().mm.compr_data_size == complen(text_page(0), "lzo")


@pytest.mark.parametrize("name", ["842", "lzo-rle", "", "LZO", "lz4 ", "lzo\n\n"])
def test_unknown_algorithm_is_einval(name: str) -> None:
    dev = ZramDevice()
    with pytest.raises(InvalidArgument):
        dev.set_comp_algorithm(name)
    assert dev.comp_algorithm == "lzo"


@pytest.mark.parametrize("name", ["lz4", "lz4\n"])
def test_selected_algorithm_is_used(name: str) -> None:
    page = text_page(3)
    assert complen(page, "lz4") != complen(page, "lzo")
    dev = ZramDevice()
    dev.set_comp_algorithm(name)
    assert dev.comp_algorithm == name  # kept as given, like the kernel
    dev.set_disksize(8 * PAGE)
    dev.write(PAGE, page)
    assert dev.statistics().mm.compr_data_size == complen(page, "lz4")
    assert pages_of(dev, 1) == page
    dev.reset()


def test_reset_returns_to_uninitialised_defaults() -> None:
    dev = make_device(32, algo="lz4")
    dev.set_mem_limit(16 * PAGE)
    for i in range(4):
        dev.write(i * PAGE, text_page(i))
    dev.write(4 * PAGE, random_bytes(4))
    dev.write(5 * PAGE, bytes(PAGE))
    dev.read(0, 6 * PAGE)
    dev.discard(6 * PAGE, 2 * PAGE)
    dev.flush()
    dev.set_mem_limit(1)  # everything non-same now fails
    with pytest.raises(IOFailure):
        dev.write(7 * PAGE, random_bytes(7))
    mm = dev.statistics().mm
    assert mm.orig_data_size and mm.compr_data_size and mm.mem_used_total and mm.mem_used_max
    assert mm.same_pages == mm.huge_pages == mm.huge_pages_since == 1
    assert dev.statistics().io.failed_writes == 1
    assert dev.statistics().io.notify_free == 2

    dev.reset()
    assert dev.disksize == 0
    assert not dev.initialized
    assert dev.comp_algorithm == "lzo"
    assert dev.mem_limit_pages == 0
    assert dev.statistics().mm == ZERO_MM
    io = dev.statistics().io
    assert (io.failed_reads, io.failed_writes, io.notify_free) == (0, 0, 0)
    assert attrs.format_debug_stat() == "version: 1\n0        0\n"
    assert [int(c) for c in attrs.format_block_stat(dev.statistics().block).split()] == [0] * 17
    assert dev.read(0, PAGE) == b""
    dev.check_invariants()

    # Initialising again gives a clean device with the default algorithm.
    dev.set_disksize(8 * PAGE)
    assert dev.read(0, 8 * PAGE) == bytes(8 * PAGE)
    dev.write(0, text_page(0))
    assert dev.statistics().mm.compr_data_size == complen(text_page(0), "lzo")
    assert dev.statistics().mm.mem_limit == 0
    dev.check_invariants()
    dev.reset()


def test_reset_frees_everything_and_returns_to_the_defaults(dev: ZramDevice) -> None:
    """The device's half of the kernel's reset; whether the block device is in use (EBUSY) is
    the front end's to decide, so the device itself never refuses."""
    dev.write(0, text_page(0))
    dev.write(PAGE, random_bytes(1))
    dev.set_mem_limit(40 * PAGE)
    dev.reset()
    assert not dev.initialized
    assert dev.statistics().mm == ZERO_MM
    assert dev.comp_algorithm == "lzo" and dev.mem_limit_pages == 0
    assert dev.pool is None


def test_reset_of_uninitialised_device_clears_mem_limit() -> None:
    dev = ZramDevice()
    dev.set_mem_limit(PAGE)
    dev.reset()
    assert dev.statistics().mm == ZERO_MM


def test_compact_needs_initialised_device() -> None:
    dev = ZramDevice()
    with pytest.raises(InvalidArgument):
        dev.compact()
    dev.set_disksize(PAGE)
    assert dev.compact() == 0
    dev.reset()
    with pytest.raises(InvalidArgument):
        dev.compact()


def test_reset_mem_used_max_sets_peak_to_current(dev: ZramDevice) -> None:
    for i in range(6):
        dev.write(i * PAGE, random_bytes(i))  # six huge pages: one pool page each
    dev.discard(0, 4 * PAGE)
    mm = dev.statistics().mm
    assert mm.mem_used_total == 2 * PAGE
    assert mm.mem_used_max == 6 * PAGE
    dev.reset_mem_used_max()
    assert dev.statistics().mm.mem_used_max == 2 * PAGE
    dev.write(10 * PAGE, bytes(PAGE))  # same-filled: no allocation, peak untouched
    assert dev.statistics().mm.mem_used_max == 2 * PAGE
    dev.write(11 * PAGE, random_bytes(11))
    assert dev.statistics().mm.mem_used_max == 3 * PAGE
    dev.discard(0, 64 * PAGE)
    dev.reset_mem_used_max()
    assert dev.statistics().mm.mem_used_max == 0
    dev.check_invariants()


def test_mem_limit_rounds_up_to_pages() -> None:
    dev = ZramDevice()
    dev.set_mem_limit(1)  # settable while uninitialised too
    assert dev.statistics().mm.mem_limit == PAGE
    dev.set_mem_limit(64 * 1024 + 1)
    assert dev.statistics().mm.mem_limit == 17 * PAGE
    dev.set_mem_limit(0)
    assert dev.statistics().mm.mem_limit == 0


def test_set_disksize_out_of_memory_leaves_device_uninitialised() -> None:
    dev = ZramDevice()
    with pytest.raises(NoMemory):
        dev.set_disksize(1 << 60)
    assert not dev.initialized
    dev.check_invariants()
    dev.set_disksize(4 * PAGE)  # and a sane size still works afterwards
    dev.write(0, text_page(0))
    assert pages_of(dev, 0) == text_page(0)
    dev.reset()

    tiny = ZramDevice(pool_pages=lambda _disksize: 0)  # the pool cannot be made
    with pytest.raises(NoMemory):
        tiny.set_disksize(4 * PAGE)
    assert not tiny.initialized
    assert tiny.read(0, PAGE) == b""


# ============================================================================ 2. write path


def test_zero_page_is_same_filled_without_allocation(dev: ZramDevice) -> None:
    assert dev.write(3 * PAGE, bytes(PAGE)) == PAGE
    mm = dev.statistics().mm
    assert mm.same_pages == 1
    assert mm.orig_data_size == PAGE
    assert mm.compr_data_size == 0
    assert mm.mem_used_total == mm.mem_used_max == 0
    assert mm.huge_pages == 0
    assert pages_of(dev, 3) == bytes(PAGE)
    dev.check_invariants()


@pytest.mark.parametrize(
    "page",
    [
        b"ABCDEFGH" * 512,
        b"ABCD" * 1024,
        b"\xff" * PAGE,
        (0x0123456789ABCDEF).to_bytes(8, "little") * 512,
        (bytes(7) + b"\x01") * 512,
        (b"\x80" + bytes(7)) * 512,
    ],
    ids=["ABCDEFGH", "ABCD", "ff", "word", "0001", "80"],
)
def test_repeated_word_pages_are_same_filled(dev: ZramDevice, page: bytes) -> None:
    assert len(page) == PAGE
    dev.write(5 * PAGE, page)
    mm = dev.statistics().mm
    assert (mm.same_pages, mm.orig_data_size, mm.compr_data_size, mm.mem_used_total) == (1, PAGE, 0, 0)
    assert mm.mem_used_max == 0
    assert pages_of(dev, 5) == page
    # Overwriting one same page with another keeps one same page.
    dev.write(5 * PAGE, b"ABCDEFGH" * 512)
    assert dev.statistics().mm.same_pages == 1
    assert pages_of(dev, 5) == b"ABCDEFGH" * 512
    dev.check_invariants()


@pytest.mark.parametrize(
    "page",
    [
        b"0123456789abcdef" * 256,  # a 16-byte period
        bytes(PAGE - 1) + b"\x01",  # zeros plus one nonzero byte, last
        b"\x01" + bytes(PAGE - 1),  # ... first
        bytes(2048) + b"\x01" + bytes(2047),  # ... in the middle
        b"ABCDEFGH" * 511 + b"ABCDEFGX",
        b"ABCDEFGH" * 256 + b"ABCDEFGX" + b"ABCDEFGH" * 255,  # first and last words agree
        b"ABCD" * 1023 + b"ABC",  # shifted by one: 4095 bytes of period 4 + 1 byte
    ],
    ids=["period16", "last", "first", "middle", "lastword", "midword", "shifted"],
)
def test_not_same_filled_pages_are_compressed(dev: ZramDevice, page: bytes) -> None:
    if len(page) < PAGE:
        page += b"Z"
    assert len(page) == PAGE
    assert not is_same_filled(page)
    dev.write(0, page)
    mm = dev.statistics().mm
    assert mm.same_pages == 0
    assert mm.orig_data_size == PAGE
    assert mm.compr_data_size == stored_size(page) > 0
    assert mm.mem_used_total > 0
    assert pages_of(dev, 0) == page
    dev.check_invariants()


def test_random_pages_are_huge(dev: ZramDevice) -> None:
    for i in range(3):
        dev.write(i * PAGE, random_bytes(i))
    mm = dev.statistics().mm
    assert mm.huge_pages == mm.huge_pages_since == 3
    assert mm.compr_data_size == 3 * PAGE
    assert mm.orig_data_size == 3 * PAGE
    assert mm.mem_used_total == 3 * PAGE  # the 4096 class: one object per page
    for i in range(3):
        assert pages_of(dev, i) == random_bytes(i)
    dev.check_invariants()


def test_huge_pages_since_never_decreases(dev: ZramDevice) -> None:
    seen = []
    dev.write(0, random_bytes(0))
    seen.append(dev.statistics().mm)
    dev.write(0, text_page(0))  # overwrite huge with compressed
    seen.append(dev.statistics().mm)
    dev.write(0, random_bytes(1))  # huge again
    seen.append(dev.statistics().mm)
    dev.write(0, bytes(PAGE))  # same-filled
    seen.append(dev.statistics().mm)
    dev.write(PAGE, random_bytes(2))
    dev.discard(0, 2 * PAGE)
    seen.append(dev.statistics().mm)
    assert [m.huge_pages for m in seen] == [1, 0, 1, 0, 0]
    assert [m.huge_pages_since for m in seen] == [1, 1, 2, 2, 3]
    dev.check_invariants()


def test_compressed_sizes_are_the_backends_lengths(dev: ZramDevice) -> None:
    pages = [text_page(i) for i in range(10)]
    for i, page in enumerate(pages):
        assert dev.write(i * PAGE, page) == PAGE
    lens = [complen(p) for p in pages]
    assert all(n < HUGE_CLASS_SIZE for n in lens)
    mm = dev.statistics().mm
    assert mm.compr_data_size == sum(lens)
    assert mm.huge_pages == mm.same_pages == 0
    assert mm.orig_data_size == 10 * PAGE
    assert mm.mem_used_total < 10 * PAGE
    assert pages_of(dev, 0, 10) == b"".join(pages)
    dev.check_invariants()


@pytest.mark.parametrize("algo", ["lzo", "lz4"])
@pytest.mark.parametrize(("comp_len", "huge"), [(3600, False), (3624, False), (3625, True), (3700, True)])
def test_huge_threshold_is_3625(algo: str, comp_len: int, huge: bool) -> None:
    page = page_with_complen(comp_len, comp_len, algo=algo)
    dev = make_device(4, algo=algo)
    dev.write(PAGE, page)
    mm = dev.statistics().mm
    assert mm.huge_pages == int(huge)
    assert mm.compr_data_size == (PAGE if huge else comp_len)
    assert mm.mem_used_total == (PAGE if huge else 8 * PAGE)  # 3632 class: 8-page zspage
    assert pages_of(dev, 1) == page
    dev.check_invariants()
    dev.reset()


def test_huge_threshold_follows_the_chain_size() -> None:
    dev = ZramDevice(chain_size=4)  # mm/zsmalloc.c, CONFIG_ZSMALLOC_CHAIN_SIZE=4: huge_class_size 3257
    dev.set_disksize(4 * PAGE)
    below, at = page_with_complen(3256, 3256), page_with_complen(3257, 3257)
    dev.write(0, below)
    assert (dev.statistics().mm.huge_pages, dev.statistics().mm.compr_data_size) == (0, 3256)
    dev.write(PAGE, at)
    assert (dev.statistics().mm.huge_pages, dev.statistics().mm.compr_data_size) == (1, 3256 + PAGE)
    assert pages_of(dev, 0, 2) == below + at
    dev.check_invariants()
    dev.reset()


def test_orig_data_size_counts_same_pages(dev: ZramDevice) -> None:
    dev.write(0, bytes(PAGE))
    dev.write(PAGE, b"ABCD" * 1024)
    dev.write(2 * PAGE, text_page(0))
    dev.write(3 * PAGE, random_bytes(3))
    mm = dev.statistics().mm
    assert mm.orig_data_size == 4 * PAGE
    assert mm.same_pages == 2
    assert mm.compr_data_size == complen(text_page(0)) + PAGE
    # An untouched page is not stored; writing the same page twice stores it once.
    dev.write(0, bytes(PAGE))
    assert dev.statistics().mm.orig_data_size == 4 * PAGE


def test_overwrite_frees_the_old_object(dev: ZramDevice) -> None:
    dev.write(0, text_page(0))
    assert counters(dev.statistics().mm) == (PAGE, complen(text_page(0)), 0, 0)
    dev.write(0, random_bytes(0))
    mm = dev.statistics().mm
    assert counters(mm) == (PAGE, PAGE, 0, 1)
    assert mm.mem_used_total == PAGE  # the text page's zspage was released
    dev.write(0, text_page(1))
    assert counters(dev.statistics().mm) == (PAGE, complen(text_page(1)), 0, 0)
    dev.write(0, b"ABCDEFGH" * 512)
    mm = dev.statistics().mm
    assert counters(mm) == (PAGE, 0, 1, 0)
    assert mm.mem_used_total == 0
    dev.write(0, random_bytes(9))
    assert counters(dev.statistics().mm) == (PAGE, PAGE, 0, 1)
    assert pages_of(dev, 0) == random_bytes(9)
    dev.check_invariants()


def test_overwrite_peak_3_plus_5_pages(dev: ZramDevice) -> None:
    """zram_write_page (drivers/block/zram/zram_drv.c) allocates the new object before it frees
    the old one (docs/design.md, "One page, written", step 6)."""
    small = page_in_class(1536)  # 3-page zspages
    big = page_in_class(2560)  # 5-page zspages
    dev.write(0, small)
    mm = dev.statistics().mm
    assert (mm.mem_used_total, mm.mem_used_max) == (3 * PAGE, 3 * PAGE)
    dev.write(0, big)
    mm = dev.statistics().mm
    assert mm.mem_used_max == 8 * PAGE  # both zspages existed for a moment
    assert mm.mem_used_total == 5 * PAGE  # then the 3-page one emptied and was released
    assert mm.compr_data_size == complen(big)
    assert pages_of(dev, 0) == big
    dev.check_invariants()


def test_overwrite_in_a_full_class_needs_a_new_zspage(dev: ZramDevice) -> None:
    # 2048 class: one page holds two objects. Fill it, then overwrite one of them.
    a, b, c = (page_in_class(2048, seed) for seed in range(3))
    dev.write(0, a)
    dev.write(PAGE, b)
    assert dev.statistics().mm.mem_used_total == PAGE
    dev.write(0, c)
    mm = dev.statistics().mm
    assert mm.mem_used_max == 2 * PAGE
    assert mm.mem_used_total == 2 * PAGE  # the old page still holds b
    assert pages_of(dev, 0, 2) == c + b
    dev.check_invariants()


def test_input_buffer_types(dev: ZramDevice) -> None:
    page = text_page(2)
    assert dev.write(0, bytearray(page)) == PAGE
    assert dev.write(PAGE, memoryview(page)) == PAGE
    assert pages_of(dev, 0, 2) == page * 2


# ============================================================================ 3. mem_limit


def test_mem_limit_stops_allocation_beyond_the_limit(dev: ZramDevice) -> None:
    dev.set_mem_limit(64 * 1024)  # 16 pages
    assert dev.statistics().mm.mem_limit == 16 * PAGE
    for i in range(16):  # reaching exactly the limit is allowed
        assert dev.write(i * PAGE, random_bytes(i)) == PAGE
    mm = dev.statistics().mm
    assert mm.mem_used_total == mm.mem_used_max == 16 * PAGE

    # Page 17 needs a 17th pool page: EIO, counted once, recorded in the peak.
    with pytest.raises(IOFailure):
        dev.write(16 * PAGE, random_bytes(16))
    mm = dev.statistics().mm
    assert dev.statistics().io.failed_writes == 1
    assert mm.mem_used_total == 16 * PAGE
    assert mm.mem_used_max == 17 * PAGE  # > mem_limit by the failed allocation
    assert mm.orig_data_size == 16 * PAGE
    assert mm.huge_pages == mm.huge_pages_since == 16
    assert pages_of(dev, 16) == bytes(PAGE)

    # Overwriting a stored page also fails: the new object comes before the old one is freed.
    with pytest.raises(IOFailure):
        dev.write(0, random_bytes(100))
    assert dev.statistics().io.failed_writes == 2
    assert pages_of(dev, 0) == random_bytes(0)
    with pytest.raises(IOFailure):  # a partial (read-modify-write) overwrite too
        dev.write(3 * PAGE + 10, b"xyz")
    assert dev.statistics().io.failed_writes == 3
    assert pages_of(dev, 3) == random_bytes(3)

    # Same-filled pages need no allocation: they still succeed, in one multi-page request.
    assert dev.write(20 * PAGE, bytes(8 * PAGE)) == 8 * PAGE
    assert dev.write(28 * PAGE, b"ABCDEFGH" * 512) == PAGE
    mm = dev.statistics().mm
    assert mm.same_pages == 9
    assert mm.mem_used_total == 16 * PAGE
    assert dev.statistics().io.failed_writes == 3

    # Turning a stored page into a same page frees room for exactly one more.
    dev.write(0, bytes(PAGE))
    assert dev.statistics().mm.mem_used_total == 15 * PAGE
    dev.write(16 * PAGE, random_bytes(16))
    with pytest.raises(IOFailure):
        dev.write(17 * PAGE, random_bytes(17))
    assert dev.statistics().io.failed_writes == 4

    # set_mem_limit(0) removes the limit at once.
    dev.set_mem_limit(0)
    for i in range(17, 20):
        dev.write(i * PAGE, random_bytes(i))
    mm = dev.statistics().mm
    assert mm.mem_limit == 0
    assert mm.mem_used_total == 19 * PAGE
    assert dev.statistics().io.failed_writes == 4
    expect = bytes(PAGE) + b"".join(random_bytes(i) for i in range(1, 20))
    assert pages_of(dev, 0, 20) == expect
    dev.check_invariants()


def test_mem_limit_failure_stops_a_request_at_the_failing_page(dev: ZramDevice) -> None:
    old = [bytes([65 + i]) * 8 * 512 for i in range(4)]  # same-filled: no pool pages
    for i, page in enumerate(old):
        dev.write((40 + i) * PAGE, page)
    for i in range(15):
        dev.write(i * PAGE, random_bytes(i))
    dev.set_mem_limit(16 * PAGE)
    new = b"".join(random_bytes(100 + i) for i in range(4))
    with pytest.raises(IOFailure):
        dev.write(40 * PAGE, new)
    assert dev.statistics().io.failed_writes == 1  # one per failed request, not per page
    # Page 40 was written (16 pool pages), page 41 failed, 42 and 43 were never tried.
    assert pages_of(dev, 40) == new[:PAGE]
    assert pages_of(dev, 41, 3) == b"".join(old[1:])
    mm = dev.statistics().mm
    assert mm.same_pages == 3
    assert mm.mem_used_total == 16 * PAGE
    assert mm.mem_used_max == 17 * PAGE
    dev.check_invariants()


def test_mem_limit_below_current_use(dev: ZramDevice) -> None:
    for i in range(8):
        dev.write(i * PAGE, random_bytes(i))
    dev.set_mem_limit(4 * PAGE)  # lower than what is in use: nothing is freed
    assert dev.statistics().mm.mem_used_total == 8 * PAGE
    with pytest.raises(IOFailure):
        dev.write(10 * PAGE, text_page(0))
    dev.discard(0, 5 * PAGE)
    assert dev.statistics().mm.mem_used_total == 3 * PAGE
    dev.write(10 * PAGE, random_bytes(10))  # 4 pages: at the limit, allowed
    with pytest.raises(IOFailure):
        dev.write(11 * PAGE, random_bytes(11))
    assert dev.statistics().io.failed_writes == 2
    dev.check_invariants()


def test_full_pool_compacts_before_failing() -> None:
    dev = ZramDevice(pool_pages=lambda _disksize: 4)
    dev.set_disksize(32 * PAGE)
    pages = [page_in_class(2048, seed) for seed in range(8)]
    for i, page in enumerate(pages):  # 2048 class: 4 pages, 2 objects each
        dev.write(i * PAGE, page)
    assert dev.statistics().mm.mem_used_total == 4 * PAGE
    for i in range(0, 8, 2):
        dev.discard(i * PAGE, PAGE)  # each page now half empty, none released
    assert dev.statistics().mm.mem_used_total == 4 * PAGE
    # No free frame for a huge page: the write path compacts (freeing 2 pages) and retries.
    dev.write(10 * PAGE, random_bytes(10))
    mm = dev.statistics().mm
    assert mm.pages_compacted == 2
    assert mm.mem_used_total == 3 * PAGE
    dev.write(11 * PAGE, random_bytes(11))
    with pytest.raises(IOFailure):  # truly full now
        dev.write(12 * PAGE, random_bytes(12))
    assert dev.statistics().io.failed_writes == 1
    for i in range(1, 8, 2):
        assert pages_of(dev, i) == pages[i]
    assert pages_of(dev, 10, 3) == random_bytes(10) + random_bytes(11) + bytes(PAGE)
    dev.check_invariants()
    dev.reset()


# ============================================================================ 4. byte-range I/O


class Checked:
    """A device together with its expected contents and stored pages."""

    def __init__(self, pages: int = 16, algo: str = "lzo") -> None:
        self.dev = make_device(pages, algo)
        self.algo = algo
        self.model = bytearray(pages * PAGE)
        self.stored: set[int] = set()

    def write(self, offset: int, data: bytes) -> int:
        n = self.dev.write(offset, data)
        expect = min(len(data), len(self.model) - offset)
        assert n == expect
        self.model[offset : offset + n] = data[:n]
        if n:
            self.stored.update(range(offset // PAGE, (offset + n - 1) // PAGE + 1))
        return n

    def discard(self, offset: int, length: int) -> None:
        self.dev.discard(offset, length)
        end = min(offset + length, len(self.model))
        self.model[offset:end] = bytes(end - offset)
        self.stored -= set(range(-(-offset // PAGE), end // PAGE))

    def verify(self) -> None:
        assert self.dev.read(0, len(self.model)) == self.model
        assert counters(self.dev.statistics().mm) == expected_counters(self.model, self.stored, self.algo)
        self.dev.check_invariants()


@pytest.fixture
def checked() -> Iterator[Checked]:
    c = Checked(16)
    # Pages 0-3 text, 4-5 random (huge), 6 same-filled, 7 zero, 8-15 empty.
    for i in range(4):
        c.write(i * PAGE, text_page(i))
    c.write(4 * PAGE, random_bytes(4, 2 * PAGE))
    c.write(6 * PAGE, b"ABCDEFGH" * 512)
    c.write(7 * PAGE, bytes(PAGE))
    c.verify()
    yield c
    c.dev.reset()


@pytest.mark.parametrize(
    ("offset", "length"),
    [
        (1, 10),  # inside a compressed page
        (PAGE - 3, 7),  # across the boundary of two compressed pages
        (4 * PAGE + 777, 1),  # one byte of a huge page
        (5 * PAGE - 5, 10),  # compressed -> huge
        (6 * PAGE + 4, 8),  # a same-filled page stops being same
        (7 * PAGE + 100, 50),  # a zero (same) page
        (9 * PAGE + 4095, 1),  # last byte of an empty page
        (3, 5 * PAGE + 7),  # many pages, both edges partial
        (2 * PAGE + 1, 13 * PAGE),  # ... up to the last page
        (8 * PAGE, 3 * PAGE + 1),  # whole pages then one byte
    ],
)
@pytest.mark.parametrize("kind", ["random", "text", "zeros", "same"])
def test_partial_and_spanning_writes(checked: Checked, offset: int, length: int, kind: str) -> None:
    data = {
        "random": random_bytes(offset, length),
        "text": text_slice(offset * 7, length),
        "zeros": bytes(length),
        "same": (b"ABCDEFGH" * (length // 8 + 2))[offset % 8 : offset % 8 + length],
    }[kind]
    assert checked.write(offset, data) == length
    checked.verify()


def test_partial_write_that_makes_a_page_same_filled(checked: Checked) -> None:
    # Patch the one differing byte of a nearly-same page: it becomes a same page.
    checked.write(9 * PAGE, b"ABCDEFGH" * 511 + b"ABCDEFGX")
    checked.verify()
    assert checked.dev.statistics().mm.same_pages == 2
    checked.write(10 * PAGE - 1, b"H")
    checked.verify()
    assert checked.dev.statistics().mm.same_pages == 3


def test_partial_write_to_an_empty_page_stores_it(checked: Checked) -> None:
    before = checked.dev.statistics().mm
    checked.write(12 * PAGE + 5, b"\0\0\0")  # zeros into an empty page: a zero page now
    mm = checked.dev.statistics().mm
    assert mm.orig_data_size == before.orig_data_size + PAGE
    assert mm.same_pages == before.same_pages + 1
    checked.write(13 * PAGE + 5, b"hello")
    checked.verify()


def test_write_past_the_end(checked: Checked) -> None:
    dev = checked.dev
    size = dev.disksize
    before = (dev.statistics().mm, dev.statistics().io)
    for offset in (size, size + 1, size + PAGE, 10**12):
        with pytest.raises(NoSpace):
            dev.write(offset, b"data")
    assert (dev.statistics().mm, dev.statistics().io) == before
    # A write running past the end is cut short there.
    assert checked.write(size - 5, b"0123456789") == 5
    assert dev.read(size - 10, 100) == bytes(5) + b"01234"
    assert checked.write(size - PAGE - 1, random_bytes(1, 3 * PAGE)) == PAGE + 1
    # Page-aligned requests running past the end (the whole-page fast path).
    assert checked.write(size - PAGE, random_bytes(2, 2 * PAGE)) == PAGE
    assert checked.write(size - 2 * PAGE, random_bytes(3, 4 * PAGE)) == 2 * PAGE
    checked.verify()


def test_read_past_the_end(checked: Checked) -> None:
    dev = checked.dev
    size = dev.disksize
    checked.write(size - 6, b"tail!!")
    assert dev.read(size - 6, 100) == b"tail!!"
    assert dev.read(size - 1, 1) == b"!"
    assert dev.read(size, 10) == b""
    assert dev.read(size + 1, 10) == b""
    assert dev.read(10**12, PAGE) == b""
    assert dev.read(0, 10 * size) == checked.model
    assert dev.read(5, 0) == b""


@pytest.mark.parametrize(("offset", "size"), [(0, 1), (1, 4095), (4095, 2), (3, 3 * PAGE), (PAGE, PAGE)])
def test_reads_at_odd_offsets(checked: Checked, offset: int, size: int) -> None:
    assert checked.dev.read(offset, size) == checked.model[offset : offset + size]


def test_negative_offsets_are_einval(checked: Checked) -> None:
    with pytest.raises(InvalidArgument):
        checked.dev.write(-1, b"x")
    with pytest.raises(InvalidArgument):
        checked.dev.write(-PAGE, bytes(PAGE))
    with pytest.raises(InvalidArgument):
        checked.dev.read(-1, 10)
    with pytest.raises(InvalidArgument):
        checked.dev.discard(-1, PAGE)
    checked.verify()


def test_zero_length_write_changes_nothing(checked: Checked) -> None:
    before = checked.dev.statistics().mm
    assert checked.dev.write(5, b"") == 0
    assert checked.dev.write(checked.dev.disksize, b"") == 0
    assert checked.dev.statistics().mm == before
    checked.verify()


def test_block_stat_accounting(dev: ZramDevice) -> None:
    def cols() -> list[int]:
        return [int(c) for c in attrs.format_block_stat(dev.statistics().block).split()]

    dev.write(0, bytes(3 * PAGE))
    dev.read(0, 2 * PAGE)
    dev.discard(0, PAGE)
    dev.discard(PAGE, 2 * PAGE, write_zeroes=True)
    dev.flush()
    c = cols()
    assert len(c) == 17
    assert (c[0], c[2]) == (1, 16)  # reads: 1 request, 16 sectors
    assert (c[4], c[6]) == (2, 24 + 16)  # writes + write-zeroes
    assert c[8] == 0  # nothing in flight
    assert (c[11], c[13]) == (1, 8)  # discards
    assert c[15] == 1  # flushes


# ============================================================================ 5. discard


def test_discard_frees_whole_pages_and_counts_them(checked: Checked) -> None:
    dev = checked.dev
    checked.discard(2 * PAGE, 3 * PAGE)  # text 2, text 3, huge 4
    assert dev.statistics().io.notify_free == 3
    checked.verify()
    mm = dev.statistics().mm
    assert mm.huge_pages == 1
    assert mm.huge_pages_since == 2  # never decreases
    checked.discard(10 * PAGE, 3 * PAGE)  # never written: still counted
    assert dev.statistics().io.notify_free == 6
    checked.discard(6 * PAGE, 2 * PAGE)  # the same and the zero page
    assert dev.statistics().io.notify_free == 8
    mm = dev.statistics().mm
    assert mm.same_pages == 0
    checked.verify()
    assert pages_of(dev, 2, 3) == bytes(3 * PAGE)


def test_discard_partial_edges_are_zeroed_in_place(checked: Checked) -> None:
    dev = checked.dev
    checked.discard(PAGE + 100, 2 * PAGE)  # [tail of 1][whole 2][head of 3]
    assert dev.statistics().io.notify_free == 1
    checked.verify()
    assert dev.read(PAGE, 100) == text_page(1)[:100]
    assert dev.read(3 * PAGE + 100, PAGE - 100) == text_page(3)[100:]
    checked.discard(4 * PAGE + 10, 20)  # inside one (huge) page
    assert dev.statistics().io.notify_free == 1
    checked.verify()
    checked.discard(6 * PAGE + 8, 16)  # inside a same page: no longer same
    checked.verify()
    checked.discard(9 * PAGE + 5, 5)  # inside an empty page: stays empty
    assert 9 not in checked.stored
    checked.verify()
    checked.discard(0, 10)  # leading bytes of page 0
    checked.verify()
    assert dev.statistics().io.notify_free == 1


def test_discard_zeroing_a_whole_page_via_edges(checked: Checked) -> None:
    checked.discard(0, 10)
    checked.discard(10, PAGE - 10)  # page 0 is now a zero page: same-filled, still stored
    checked.verify()
    assert 0 in checked.stored
    assert checked.dev.statistics().mm.same_pages == 3
    assert checked.dev.statistics().io.notify_free == 0


def test_discard_past_the_end(checked: Checked) -> None:
    dev = checked.dev
    size = dev.disksize
    before = (dev.statistics().mm, dev.statistics().io)
    for offset in (size, size + 1, size + 10 * PAGE):
        with pytest.raises(InvalidArgument):
            dev.discard(offset, PAGE)
    assert (dev.statistics().mm, dev.statistics().io) == before
    checked.write(size - 2 * PAGE, random_bytes(77, 2 * PAGE))
    checked.discard(size - PAGE - 100, 100 * PAGE)  # clipped at the end
    assert dev.statistics().io.notify_free == 1
    checked.verify()
    checked.discard(3 * PAGE, 1 << 40)
    assert dev.statistics().io.notify_free == 1 + 13
    checked.verify()
    assert dev.statistics().mm.orig_data_size == 3 * PAGE


def test_discard_everything_empties_the_pool(checked: Checked) -> None:
    checked.discard(0, checked.dev.disksize)
    mm = checked.dev.statistics().mm
    assert counters(mm) == (0, 0, 0, 0)
    assert mm.mem_used_total == 0
    assert mm.mem_used_max > 0
    assert checked.dev.statistics().io.notify_free == 16
    checked.verify()


# ============================================================================ 6. compaction


def test_compaction_through_the_device() -> None:
    dev = make_device(512)
    contents: dict[int, bytes] = {}
    for i in range(200):  # 2048 class: 1 page, 2 objects -> 100 pages
        contents[i] = page_in_class(2048, i)
    for i in range(200, 280):  # 1536 class: 3 pages, 8 objects -> 10 zspages, 30 pages
        contents[i] = page_in_class(1536, i)
    for i in range(280, 300):  # huge: 20 pages
        contents[i] = random_bytes(i)
    for i in range(300, 320):  # same-filled: none
        contents[i] = i.to_bytes(8, "little") * 512
    for i, page in contents.items():
        dev.write(i * PAGE, page)
    assert dev.statistics().mm.mem_used_total == 150 * PAGE
    for i in range(0, 320, 2):
        dev.discard(i * PAGE, PAGE)
        del contents[i]
    mm = dev.statistics().mm
    assert mm.mem_used_total == (100 + 30 + 10) * PAGE  # half-empty zspages stay
    assert dev.statistics().io.notify_free == 160

    freed = dev.compact()
    assert freed == 50 + 15  # 2048: 100 half pages -> 50; 1536: 10 half zspages -> 5 (15 pages)
    mm = dev.statistics().mm
    assert mm.pages_compacted == 65
    assert mm.mem_used_total == (50 + 15 + 10) * PAGE
    assert mm.mem_used_max == 150 * PAGE
    for i, page in contents.items():
        assert pages_of(dev, i) == page
    assert counters(mm) == (160 * PAGE, sum(stored_size(p) for p in contents.values()), 10, 10)
    dev.check_invariants()
    assert dev.compact() == 0
    assert dev.statistics().mm.pages_compacted == 65

    # The moved objects are still the slots' own: overwrite and discard them normally.
    for i in list(contents)[:50]:
        dev.write(i * PAGE, text_page(i))
        contents[i] = text_page(i)
    dev.discard(201 * PAGE, 40 * PAGE)
    for i in range(201, 241):
        contents.pop(i, None)
    for i, page in contents.items():
        assert pages_of(dev, i) == page
    dev.check_invariants()
    dev.reset()


# ============================================================================ 7. failures


def failing(stage: str) -> Callable[[str, int], None]:
    """A fault hook that makes every `stage` ("compress" or "decompress") of a page fail."""

    def hook(what: str, _index: int) -> None:
        if what == stage:
            raise RuntimeError(f"injected {stage} failure")

    return hook


def test_decompression_failure_is_a_failed_read(dev: ZramDevice, monkeypatch: pytest.MonkeyPatch) -> None:
    dev.write(0, text_page(0))
    dev.write(PAGE, random_bytes(1))  # huge: not decompressed
    dev.write(2 * PAGE, b"ABCD" * 1024)  # same: not decompressed
    dev.write(3 * PAGE, text_page(3))
    monkeypatch.setattr(dev, "fault_hook", failing("decompress"))
    with pytest.raises(IOFailure):
        dev.read(0, PAGE)
    assert dev.statistics().io.failed_reads == 1
    with pytest.raises(IOFailure):
        dev.read(PAGE, 3 * PAGE)  # reaches page 3
    assert dev.statistics().io.failed_reads == 2
    assert dev.read(PAGE, 2 * PAGE) == random_bytes(1) + b"ABCD" * 1024
    assert pages_of(dev, 4, 10) == bytes(10 * PAGE)
    # A partial write must read the page first: that fails as a write.
    with pytest.raises(IOFailure):
        dev.write(3 * PAGE + 1, b"x")
    io = dev.statistics().io
    assert (io.failed_reads, io.failed_writes) == (2, 1)
    monkeypatch.undo()
    assert pages_of(dev, 0, 4) == text_page(0) + random_bytes(1) + b"ABCD" * 1024 + text_page(3)
    assert dev.statistics().io.failed_reads == 2
    dev.check_invariants()


def test_compression_failure_is_a_failed_write(dev: ZramDevice, monkeypatch: pytest.MonkeyPatch) -> None:
    dev.write(0, text_page(0))
    dev.write(PAGE, random_bytes(1))
    before = dev.statistics().mm
    monkeypatch.setattr(dev, "fault_hook", failing("compress"))
    with pytest.raises(IOFailure):
        dev.write(0, text_page(5))
    assert dev.statistics().io.failed_writes == 1
    with pytest.raises(IOFailure):
        dev.write(PAGE, random_bytes(9))
    with pytest.raises(IOFailure):
        dev.write(10, b"patch")
    assert dev.statistics().io.failed_writes == 3
    assert dev.statistics().mm == before
    assert pages_of(dev, 0, 2) == text_page(0) + random_bytes(1)
    # Same-filled pages are never compressed, so they still store.
    assert dev.write(5 * PAGE, bytes(2 * PAGE)) == 2 * PAGE
    assert dev.statistics().io.failed_writes == 3
    dev.check_invariants()
    monkeypatch.undo()
    dev.write(0, text_page(5))
    assert pages_of(dev, 0) == text_page(5)


def test_discard_edge_failure_is_a_failed_write(dev: ZramDevice, monkeypatch: pytest.MonkeyPatch) -> None:
    dev.write(0, text_page(0))
    dev.write(PAGE, text_page(1))
    monkeypatch.setattr(dev, "fault_hook", failing("compress"))
    with pytest.raises(IOFailure):
        dev.discard(100, PAGE)  # the partial head of page 0 must be recompressed
    io = dev.statistics().io
    assert io.failed_writes == 1
    assert io.notify_free == 0
    monkeypatch.undo()
    assert pages_of(dev, 0, 2) == text_page(0) + text_page(1)
    dev.check_invariants()


# ============================================================================ 8. model-based


WORDS8 = [b"ABCDEFGH", b"ABCDABCD", b"\xff" * 8, bytes(7) + b"\x01", b"\0" * 8]
# Pages of a few small classes (lzo lengths), so that discards leave zspages half used and
# compaction has something to do.
CLASS_PAGES = {
    algo: [page_in_class(size, seed, algo) for size in (1024, 2048) for seed in range(8)]
    for algo in ("lzo", "lz4")
}


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    n = draw(st.one_of(st.integers(1, 3 * PAGE + 100), st.integers(1, 3).map(lambda k: k * PAGE)))
    kind = draw(st.sampled_from(["zeros", "word", "random", "text", "class"]))
    if kind == "zeros":
        return bytes(n)
    if kind == "word":
        word = draw(st.sampled_from(WORDS8))
        phase = draw(st.integers(0, 7))
        return (word * (n // 8 + 2))[phase : phase + n]
    if kind == "random":
        return random_bytes(draw(st.integers(0, 2**32 - 1)), n)
    if kind == "class":
        pages = CLASS_PAGES[draw(st.sampled_from(["lzo", "lz4"]))]
        picks = draw(st.lists(st.sampled_from(pages), min_size=n // PAGE + 1, max_size=n // PAGE + 1))
        return b"".join(picks)[:n]
    return text_slice(draw(st.integers(0, len(TEXT) - 1)), n)


PAGE_INDEX = st.integers(0, 34)
IN_PAGE = st.one_of(st.just(0), st.integers(0, PAGE - 1))
LENGTHS = st.one_of(st.integers(1, 3 * PAGE + 100), st.integers(1, 8).map(lambda k: k * PAGE))
ALGOS = st.sampled_from(["lzo", "lz4", "lz4\n"])


class DeviceMachine(RuleBasedStateMachine):
    """Random writes, reads, discards, compactions, resets and limits against a bytearray.

    With a mem_limit set, requests are issued one page-chunk at a time so that each call is
    all-or-nothing and the model can follow a failure exactly.
    """

    dev: ZramDevice
    algo: str
    model: bytearray
    stored: set[int]

    @initialize(algo=ALGOS, pages=st.integers(8, 32), limit=st.one_of(st.just(0), st.integers(2, 24)))
    def setup(self, algo: str, pages: int, limit: int) -> None:
        self.dev = ZramDevice()
        self.failed_writes = 0
        self.notify_free = 0
        self.huge_since = 0
        self.compacted = 0
        self._init(algo, pages, limit)

    def _init(self, algo: str, pages: int, limit: int) -> None:
        self.dev.set_comp_algorithm(algo)
        self.dev.set_disksize(pages * PAGE - 1)
        assert self.dev.disksize == pages * PAGE
        self.algo = algo
        self.model = bytearray(pages * PAGE)
        self.stored = set()
        self.limit = limit
        self.dev.set_mem_limit(limit * PAGE)

    # -- model helpers

    def _stored_again(self, index: int) -> None:
        """Page `index` went through the store path with its model contents."""
        self.stored.add(index)
        page = bytes(self.model[index * PAGE : (index + 1) * PAGE])
        if is_huge(page, self.algo):
            self.huge_since += 1
        if self.limit and not is_same_filled(page):
            # A successful allocation is at most the limit, and the old object is freed after.
            assert self.dev.statistics().mm.mem_used_total <= self.limit * PAGE

    def _failed(self) -> None:
        event("a write failed at the mem_limit")
        self.failed_writes += 1
        mm = self.dev.statistics().mm
        assert self.limit, "a write failed without a mem_limit"
        assert mm.mem_used_max > mm.mem_limit  # the failed allocation is in the peak

    def _write_call(self, offset: int, data: bytes) -> None:
        try:
            n = self.dev.write(offset, data)
        except IOFailure:
            assert len(data) <= PAGE - offset % PAGE  # only single-chunk calls may fail
            self._failed()
            return
        assert n == len(data)
        self.model[offset : offset + n] = data
        for index in range(offset // PAGE, (offset + n - 1) // PAGE + 1):
            self._stored_again(index)

    def _zero_partial(self, start: int, end: int) -> None:
        index = start // PAGE
        self.model[start:end] = bytes(end - start)
        if index in self.stored:
            self._stored_again(index)

    # -- rules

    @rule(page=PAGE_INDEX, in_page=IN_PAGE, data=payloads())
    def write(self, page: int, in_page: int, data: bytes) -> None:
        offset = page * PAGE + in_page
        size = len(self.model)
        if offset >= size:
            with pytest.raises(NoSpace):
                self.dev.write(offset, data)
            return
        data = data[: size - offset]
        if not self.limit:
            self._write_call(offset, data)
            return
        pos = 0
        while pos < len(data):
            chunk = min(PAGE - (offset + pos) % PAGE, len(data) - pos)
            self._write_call(offset + pos, data[pos : pos + chunk])
            pos += chunk

    @rule(page=PAGE_INDEX, in_page=IN_PAGE, size=LENGTHS)
    def read(self, page: int, in_page: int, size: int) -> None:
        offset = page * PAGE + in_page
        assert self.dev.read(offset, size) == self.model[offset : offset + size]

    @rule(page=PAGE_INDEX, in_page=IN_PAGE, length=LENGTHS, write_zeroes=st.booleans())
    def discard(self, page: int, in_page: int, length: int, write_zeroes: bool) -> None:
        offset = page * PAGE + in_page
        size = len(self.model)
        if offset >= size:
            before = (self.dev.statistics().mm, self.dev.statistics().io)
            with pytest.raises(InvalidArgument):
                self.dev.discard(offset, length, write_zeroes)
            assert (self.dev.statistics().mm, self.dev.statistics().io) == before
            return
        end = min(offset + length, size)
        first, last = -(-offset // PAGE), end // PAGE
        if first > last:
            segments = [(offset, end, False)]
        else:
            segments = [(offset, first * PAGE, False), (first * PAGE, last * PAGE, True)]
            segments.append((last * PAGE, end, False))
        segments = [s for s in segments if s[0] < s[1]]
        if not self.limit:
            self.dev.discard(offset, length, write_zeroes)
            calls = [segments]
        else:
            calls = [[s] for s in segments]
        for call in calls:
            if self.limit:
                start, stop, _ = call[0]
                try:
                    self.dev.discard(start, stop - start, write_zeroes)
                except IOFailure:
                    assert not call[0][2]  # only a partial edge page can fail
                    event("a discard edge failed at the mem_limit")
                    self._failed()
                    continue
            for start, stop, whole in call:
                if whole:
                    self.model[start:stop] = bytes(stop - start)
                    self.stored -= set(range(start // PAGE, stop // PAGE))
                    self.notify_free += (stop - start) // PAGE
                else:
                    self._zero_partial(start, stop)

    @rule(page=PAGE_INDEX, picks=st.lists(st.integers(0, 15), min_size=1, max_size=8))
    def write_class_pages(self, page: int, picks: list[int]) -> None:
        """Whole pages of one or two small classes of the current algorithm."""
        pages = CLASS_PAGES[self.algo.removesuffix("\n")]
        self.write(page, 0, b"".join(pages[k] for k in picks))

    @rule(page=PAGE_INDEX, count=st.integers(1, 8))
    def discard_every_other_page(self, page: int, count: int) -> None:
        for k in range(count):
            self.discard(page + 2 * k, 0, PAGE, write_zeroes=False)

    @rule()
    def compact(self) -> None:
        before = self.dev.statistics().mm.mem_used_total
        freed = self.dev.compact()
        event(f"compact freed {'some' if freed else 'no'} pages")
        assert self.dev.statistics().mm.mem_used_total == before - freed * PAGE
        self.compacted += freed

    @rule(algo=ALGOS, pages=st.integers(8, 32))
    def reset_and_reinit(self, algo: str, pages: int) -> None:
        self.dev.reset()
        assert self.dev.statistics().mm == ZERO_MM
        assert self.dev.comp_algorithm == "lzo"
        self.failed_writes = self.notify_free = self.huge_since = self.compacted = 0
        self._init(algo, pages, 0)

    @rule(pages=st.integers(1, 24), slack=st.integers(0, PAGE - 1))
    def set_mem_limit(self, pages: int, slack: int) -> None:
        self.dev.set_mem_limit(pages * PAGE - slack)
        self.limit = pages
        assert self.dev.statistics().mm.mem_limit == pages * PAGE

    @rule()
    def clear_mem_limit(self) -> None:
        self.dev.set_mem_limit(0)
        self.limit = 0

    @rule()
    def reset_mem_used_max(self) -> None:
        self.dev.reset_mem_used_max()
        mm = self.dev.statistics().mm
        assert mm.mem_used_max == mm.mem_used_total

    @invariant()
    def matches_model(self) -> None:
        dev = self.dev
        dev.check_invariants()
        assert dev.read(0, len(self.model) + PAGE) == self.model
        mm = dev.statistics().mm
        assert counters(mm) == expected_counters(self.model, self.stored, self.algo)
        assert mm.huge_pages_since == self.huge_since
        assert mm.pages_compacted == self.compacted
        assert mm.mem_limit == self.limit * PAGE
        assert mm.mem_used_total <= mm.mem_used_max
        io = dev.statistics().io
        assert (io.failed_reads, io.failed_writes, io.notify_free) == (
            0,
            self.failed_writes,
            self.notify_free,
        )

    def teardown(self) -> None:
        if hasattr(self, "dev"):
            self.dev.reset()


TestDeviceMachine = DeviceMachine.TestCase
TestDeviceMachine.settings = settings(
    max_examples=100, stateful_step_count=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# ============================================================================ 9. compression streams


def _mixed_request(pages: int, seed: int) -> bytes:
    kinds: list[Callable[[int], bytes]] = [
        text_page,
        random_bytes,
        lambda _k: bytes(PAGE),
        lambda k: b"WORD%04d" % k * 512,
    ]
    return b"".join(kinds[(k * 7 + seed) % len(kinds)](k + seed) for k in range(pages))


@pytest.mark.parametrize("streams", [2, 3])
def test_streams_store_what_one_stream_stores(streams: int) -> None:
    """Large requests split between streams give the same contents, counters and pool layout as
    the serving thread alone, and so do the failures that stop a request part way."""
    from zramd.core.streams import CompressionStreams

    pools = [CompressionStreams(1), CompressionStreams(streams)]
    devices = [ZramDevice(streams=pool) for pool in pools]
    try:
        for dev in devices:
            dev.set_disksize(512 * PAGE)
        for seed, (offset, pages) in enumerate(
            [(0, 256), (64 * PAGE, 100), (300 * PAGE, 17), (5 * PAGE, 256)]
        ):
            data = _mixed_request(pages, seed)
            for dev in devices:
                assert dev.write(offset, data) == len(data)
        for dev in devices:
            dev.set_mem_limit(dev.statistics().mm.mem_used_total + 8 * PAGE)  # room for a few more
        outcomes = []
        for dev in devices:
            before = dev.statistics().block.write.sectors
            with pytest.raises(IOFailure, match="mem_limit"):
                dev.write(256 * PAGE, b"".join(random_bytes(900 + k) for k in range(200)))
            outcomes.append(dev.statistics().block.write.sectors - before)
        assert outcomes[0] == outcomes[1] and 0 < outcomes[0] < 200 * 8  # stopped part way, alike
        first, second = (dev.read(0, 512 * PAGE) for dev in devices)
        assert first == second
        assert devices[0].statistics().mm == devices[1].statistics().mm
        assert devices[0].class_stats() == devices[1].class_stats()
        for dev in devices:
            dev.check_invariants()
    finally:
        for pool in pools:
            pool.close()

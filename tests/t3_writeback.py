"""Tier 3: writeback to a backing store, without FUSE: ``backing_dev``, ``idle``, ``writeback``,
``writeback_limit``/``_enable``/``_batch_size``, ``bd_stat`` and ``block_state``.

The oracle is the kernel's drivers/block/zram/zram_drv.c (6.16-6.19): ``backing_dev_store``,
``idle_store``/``mark_idle``, ``writeback_store`` and its parsers (``parse_mode``,
``parse_page_index(es)``), ``scan_slots_for_writeback``/``place_pp_slot``/``select_pp_slot``
(largest object first, in 64-byte buckets), ``zram_writeback_slots``/``_complete`` (EIO once the
limit is used up, ENOSPC when the backing store is full, I/O errors not fatal), ``read_from_bdev``
and ``read_block_state``; for contents, a dict of page index -> bytes: whatever moves between RAM
and the backing store must read back byte for byte, and the counters must follow exactly.
The backing store here is a sparse file in pytest's tmp_path (zramd accepts regular files, the
kernel only block devices); whether a freed block was punched out is checked with SEEK_DATA.
"""

from __future__ import annotations

import errno
import os
import random
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from zramd.core import attrs, compress
from zramd.core.engine import ZramDevice
from zramd.core.errors import InvalidArgument, IOFailure, NoDevice, NoSpace, ZramError
from zramd.core.records import BdStat
from zramd.core.units import PAGE_SIZE

PAGE = PAGE_SIZE
HUGE_CLASS_SIZE = 3625  # zs_huge_class_size() at the default chain size 8: comp_len >= this is stored raw
BUCKET = 64  # PP_BUCKET_SIZE_RANGE
START = 1000  # the fake clock's boot-time seconds when a test begins
LINE = 40  # one block_state line: "%12zd %12u.%06d %c%c%c%c%c%c\n"
_LZO = compress.lookup("lzo").compress

# ---------------------------------------------------------------------------- pages


def random_page(seed: int) -> bytes:
    """Incompressible: stored raw (huge)."""
    return random.Random(seed).randbytes(PAGE)


def text_page(seed: int) -> bytes:
    rng = random.Random(seed)
    words = ["zram", "idle", "huge", "block", "writeback", "backing", "slot", "page", "limit", "bd"]
    text = " ".join(f"{rng.choice(words)}{rng.randint(0, 9999)}" for _ in range(700)).encode()
    return text[:PAGE].ljust(PAGE, b"~")


def same_page(seed: int) -> bytes:
    word = random.Random(seed).randbytes(8)
    return word * (PAGE // 8)


def small_page(seed: int) -> bytes:
    """Mostly zeros: compresses to a few dozen bytes."""
    return bytes(PAGE - 24) + random.Random(seed).randbytes(24)


def page_with_complen(lo: int, hi: int, seed: int = 0) -> bytes:
    """A page (zeros, then a random tail) that lzo compresses to between lo and hi bytes."""
    for s in range(seed * 100, seed * 100 + 20):
        tail = random.Random(s).randbytes(PAGE)
        for k in range(max(1, lo - 60), min(PAGE, hi + 60)):
            page = bytes(PAGE - k) + tail[:k]
            if lo <= len(_LZO(page)) <= hi:
                return page
    raise AssertionError(f"no page with comp_len in [{lo}, {hi}]")


def is_same(page: bytes) -> bool:
    return page == page[:8] * (PAGE // 8)


def stored_size(page: bytes) -> int:
    """What the page adds to compr_data_size: 0 same-filled, 4096 huge, else lzo's length."""
    if is_same(page):
        return 0
    n = len(_LZO(page))
    return PAGE if n >= HUGE_CLASS_SIZE else n


# ---------------------------------------------------------------------------- the rig


class Clock:
    """A fake CLOCK_BOOTTIME in seconds: tests move it to age pages."""

    def __init__(self, now: int = START) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def make_backing(path: Path, blocks: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(blocks * PAGE)
    return path


def data_blocks(path: Path) -> set[int]:
    """The file's 4 KiB blocks that hold data (not holes), by SEEK_DATA/SEEK_HOLE."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        blocks: set[int] = set()
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                assert exc.errno == errno.ENXIO
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            blocks.update(range(start // PAGE, (end + PAGE - 1) // PAGE))
            pos = end
        return blocks
    finally:
        os.close(fd)


def fds_open_on(path: Path) -> int:
    """How many of this process's descriptors are open on `path`."""
    target = os.path.realpath(path)
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == target:
                count += 1
        except OSError:
            continue
    return count


def attr_write(dev: ZramDevice, name: str, text: str) -> int:
    return attrs.BY_NAME[name].write(dev, text.encode())


def attr_errno(dev: ZramDevice, name: str, text: str) -> int | str:
    """The byte count a write reports, or the errno name it fails with."""
    try:
        return attr_write(dev, name, text)
    except ZramError as exc:
        return errno.errorcode[exc.errno]


def attr_show(dev: ZramDevice, name: str) -> str:
    show = attrs.BY_NAME[name].show
    assert show is not None
    return show(dev)


def block_state(dev: ZramDevice) -> str:
    return attrs.read_block_state(dev, 0, LINE * (dev.disksize // PAGE + 1)).decode()


def state_line(index: int, actime: int, flags: str) -> str:
    return f"{index:12d} {actime:12d}.000000 {flags}\n"


def flags_of(dev: ZramDevice) -> dict[int, str]:
    """Page index -> its six block_state flag characters."""
    return {int(line[:12]): line[33:39] for line in block_state(dev).splitlines(keepends=True)}


def actimes_of(dev: ZramDevice) -> dict[int, int]:
    return {int(line[:12]): int(line[13:25]) for line in block_state(dev).splitlines(keepends=True)}


@dataclass
class Rig:
    """A device with a backing file, a fake clock and a model of its contents."""

    dev: ZramDevice
    clock: Clock
    path: Path
    model: dict[int, bytes] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return self.dev.disksize // PAGE

    def put(self, index: int, page: bytes) -> None:
        assert self.dev.write(index * PAGE, page) == PAGE
        self.model[index] = page

    def page(self, index: int) -> bytes:
        return self.dev.read(index * PAGE, PAGE)

    def expected(self, index: int) -> bytes:
        return self.model.get(index, bytes(PAGE))

    def check(self) -> None:
        """Every page reads back as the model says (zeros where nothing was written), then
        the device's recount agrees with its counters."""
        whole = self.dev.read(0, self.dev.disksize)
        for index in range(self.pages):
            assert whole[index * PAGE : (index + 1) * PAGE] == self.expected(index), f"page {index}"
        self.dev.check_invariants()

    def written_back(self) -> set[int]:
        return {i for i, f in flags_of(self.dev).items() if f[1] == "w"}

    def idle(self) -> set[int]:
        return {i for i, f in flags_of(self.dev).items() if f[3] == "i"}

    def writeback(self, text: str) -> int:
        return attr_write(self.dev, "writeback", text)

    def bd(self) -> BdStat:
        return self.dev.statistics().bd

    def block_holding(self, index: int) -> int:
        """The backing block whose bytes are page `index`'s (read from the file itself)."""
        data = self.path.read_bytes()
        page = self.model[index]
        found = [b for b in range(len(data) // PAGE) if data[b * PAGE : (b + 1) * PAGE] == page]
        assert len(found) == 1, f"page {index} found in blocks {found}"
        return found[0]


def make_rig(directory: Path, pages: int = 64, blocks: int = 64, name: str = "backing.img") -> Rig:
    clock = Clock()
    dev = ZramDevice(clock=clock)
    path = make_backing(directory / name, blocks)
    dev.set_backing_dev(str(path))
    dev.set_disksize(pages * PAGE)
    return Rig(dev, clock, path)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = make_rig(tmp_path)
    yield r
    r.dev.reset()


def mixed_pages(n: int, seed: int = 0) -> dict[int, bytes]:
    makers: list[Callable[[int], bytes]] = [
        random_page,
        text_page,
        lambda _s: bytes(PAGE),
        same_page,
        small_page,
    ]
    return {i: makers[(i + seed) % len(makers)](i * 31 + seed) for i in range(n)}


# ============================================================================ 1. backing_dev


def test_a_new_device_shows_the_writeback_defaults() -> None:
    dev = ZramDevice()
    names = ("backing_dev", "writeback_limit", "writeback_limit_enable", "writeback_batch_size", "bd_stat")
    shown = {name: attr_show(dev, name) for name in names}
    assert shown == {
        "backing_dev": "none\n",
        "writeback_limit": "0\n",
        "writeback_limit_enable": "0\n",
        "writeback_batch_size": "32\n",
        "bd_stat": "       0        0        0\n",
    }
    assert attr_errno(dev, "writeback_batch_size", "0") == "EINVAL"
    assert attr_show(dev, "writeback_batch_size") == "32\n"


def test_backing_dev_is_set_only_before_initialisation(tmp_path: Path) -> None:
    dev = ZramDevice()
    assert dev.backing_dev is None
    assert attr_show(dev, "backing_dev") == "none\n"
    path = make_backing(tmp_path / "b.img", 8)
    assert attr_write(dev, "backing_dev", f"{path}\n") == len(str(path)) + 1  # one newline dropped
    assert dev.backing_dev == str(path)
    assert attr_show(dev, "backing_dev") == f"{path}\n"
    dev.set_disksize(16 * PAGE)
    other = make_backing(tmp_path / "other.img", 8)
    for candidate in (str(other), str(tmp_path / "missing"), str(tmp_path)):
        assert attr_errno(dev, "backing_dev", candidate) == "EBUSY"  # before the path is looked at
    assert dev.backing_dev == str(path)
    dev.check_invariants()
    dev.reset()


def test_backing_dev_passes_open_errors_through_and_wants_a_block_device_or_file(tmp_path: Path) -> None:
    dev = ZramDevice()
    assert attr_errno(dev, "backing_dev", str(tmp_path / "missing")) == "ENOENT"
    assert attr_errno(dev, "backing_dev", str(tmp_path / "missing" / "deeper")) == "ENOENT"
    assert attr_errno(dev, "backing_dev", "/dev/null") == "ENOTBLK"  # a character device opens fine
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert attr_errno(dev, "backing_dev", str(fifo)) == "ENOTBLK"
    assert dev.backing_dev is None
    assert fds_open_on(fifo) == 0  # a refused store closes what it opened


@pytest.mark.parametrize("size", [0, 1, PAGE - 1])
def test_backing_dev_smaller_than_a_block_is_einval(tmp_path: Path, size: int) -> None:
    path = tmp_path / "small.img"
    path.write_bytes(b"x" * size)
    dev = ZramDevice()
    assert attr_errno(dev, "backing_dev", str(path)) == "EINVAL"
    assert dev.backing_dev is None
    assert fds_open_on(path) == 0


def test_backing_dev_of_exactly_one_block_holds_one_page(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, pages=8, blocks=1)
    rig.put(0, random_page(0))
    rig.put(1, random_page(1))
    with pytest.raises(NoSpace):
        rig.writeback("huge")
    assert rig.bd() == BdStat(1, 0, 1)
    rig.check()
    rig.dev.reset()


def test_backing_dev_replaced_before_init_and_kept_when_a_new_one_is_refused(tmp_path: Path) -> None:
    first = make_backing(tmp_path / "first.img", 4)
    second = make_backing(tmp_path / "second.img", 4)
    dev = ZramDevice()
    dev.set_backing_dev(str(first))
    assert fds_open_on(first) == 1
    dev.set_backing_dev(str(second))
    assert dev.backing_dev == str(second)
    assert (fds_open_on(first), fds_open_on(second)) == (0, 1)  # the old one is closed
    assert attr_errno(dev, "backing_dev", str(tmp_path / "nope")) == "ENOENT"
    assert attr_errno(dev, "backing_dev", str(tmp_path / "x")) == "ENOENT"
    assert dev.backing_dev == str(second)  # a refused store keeps the one set before
    assert fds_open_on(second) == 1
    dev.reset()
    assert dev.backing_dev is None and fds_open_on(second) == 0


def test_backing_dev_directory_is_eisdir_as_in_the_kernel(tmp_path: Path) -> None:
    assert attr_errno(ZramDevice(), "backing_dev", str(tmp_path)) == "EISDIR"


def test_backing_dev_shows_the_opened_files_real_path(tmp_path: Path) -> None:
    target = make_backing(tmp_path / "real.img", 4)
    link = tmp_path / "link.img"
    link.symlink_to(target)
    dev = ZramDevice()
    dev.set_backing_dev(str(link))
    try:
        assert attr_show(dev, "backing_dev") == f"{target}\n"
    finally:
        dev.reset()


def test_reset_releases_the_backing_store(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, pages=16, blocks=16)
    for i in range(6):
        rig.put(i, random_page(i))
    attr_write(rig.dev, "writeback_limit", "100")
    attr_write(rig.dev, "writeback_limit_enable", "1")
    attr_write(rig.dev, "writeback_batch_size", "5")
    assert rig.writeback("huge") == 4
    assert rig.bd() == BdStat(6, 0, 6)
    assert len(data_blocks(rig.path)) == 6
    assert fds_open_on(rig.path) == 1
    rig.dev.reset()
    assert rig.dev.backing_dev is None
    assert attr_show(rig.dev, "backing_dev") == "none\n"
    assert attr_show(rig.dev, "bd_stat") == "       0        0        0\n"
    assert fds_open_on(rig.path) == 0
    assert data_blocks(rig.path) == set()  # nothing written back survives a reset
    assert os.stat(rig.path).st_size == 16 * PAGE  # the file itself is left alone
    # The writeback settings are the kernel's zram fields, not its stats: a reset keeps them.
    assert attr_show(rig.dev, "writeback_limit") == "94\n"
    assert attr_show(rig.dev, "writeback_limit_enable") == "1\n"
    assert attr_show(rig.dev, "writeback_batch_size") == "5\n"
    # Re-initialised without a backing store, writeback is ENODEV; with it again, it works.
    rig.dev.set_disksize(16 * PAGE)
    assert attr_errno(rig.dev, "writeback", "huge") == "ENODEV"
    with pytest.raises(NoDevice):
        rig.dev.writeback([(0, 0, 16)])
    rig.dev.reset()
    rig.dev.set_backing_dev(str(rig.path))
    rig.dev.set_disksize(16 * PAGE)
    rig.model = {}
    rig.put(3, random_page(3))
    assert rig.writeback("huge") == 4
    assert rig.bd() == BdStat(1, 0, 1)
    rig.check()
    rig.dev.reset()


# ============================================================================ 2. idle


def test_mark_idle_all_skips_same_filled_and_written_back_pages(rig: Rig) -> None:
    rig.put(0, random_page(0))  # huge
    rig.put(1, text_page(1))  # compressed
    rig.put(2, bytes(PAGE))  # same-filled (zeros)
    rig.put(3, same_page(3))  # same-filled
    rig.put(4, random_page(4))
    rig.writeback("page_index=4")
    assert rig.written_back() == {4}
    assert attr_write(rig.dev, "idle", "all") == 3
    assert flags_of(rig.dev) == {0: "..hi..", 1: "...i..", 2: "s.....", 3: "s.....", 4: ".w...."}
    rig.dev.mark_idle(None)  # again: nothing changes
    assert rig.idle() == {0, 1}
    rig.check()  # reading every page is an access: the marks go
    assert rig.idle() == set()


def test_idle_needs_an_initialised_device_and_a_word_or_number() -> None:
    dev = ZramDevice()
    with pytest.raises(InvalidArgument):
        dev.mark_idle(None)
    for text in ("all", "all\n", "10", "bogus"):
        assert attr_errno(dev, "idle", text) == "EINVAL", text
    assert attr_write(dev, "idle", "") == 0
    dev.set_disksize(4 * PAGE)
    dev.write(0, text_page(0))
    for text in ("all\n\n", " all", "all ", "ALL", "al", "bogus", "-1", "4294967296", "1 ", "0x", "1e3"):
        assert attr_errno(dev, "idle", text) == "EINVAL", text
    assert flags_of(dev) == {0: "......"}  # a refused write marks nothing
    dev.check_invariants()
    dev.reset()


def test_idle_by_age_follows_the_fake_clock(rig: Rig) -> None:
    clock = rig.clock
    for k, t in enumerate((100, 110, 120)):
        clock.now = START + t
        rig.put(k, text_page(k))
    clock.now = START + 130
    rig.put(3, same_page(3))  # never idle
    assert actimes_of(rig.dev) == {0: START + 100, 1: START + 110, 2: START + 120, 3: START + 130}
    assert attr_write(rig.dev, "idle", "15") == 2  # cutoff 1115: accessed before it
    assert rig.idle() == {0, 1}
    attr_write(rig.dev, "idle", "25\n")  # cutoff 1105: page 1 loses its mark
    assert rig.idle() == {0}
    attr_write(rig.dev, "idle", "20")  # cutoff 1110: page 1 was accessed exactly then, not before
    assert rig.idle() == {0}
    attr_write(rig.dev, "idle", "0x13")  # 19, base detected: cutoff 1111
    assert rig.idle() == {0, 1}
    attr_write(rig.dev, "idle", "012")  # octal 10: cutoff 1120, page 2 exactly at it
    assert rig.idle() == {0, 1}
    attr_write(rig.dev, "idle", "+9")
    assert rig.idle() == {0, 1, 2}
    attr_write(rig.dev, "idle", "1000")  # cutoff 130
    assert rig.idle() == set()
    rig.put(4, text_page(4))  # accessed now (1130)
    attr_write(rig.dev, "idle", "0")  # cutoff now: everything accessed before this second
    assert rig.idle() == {0, 1, 2}
    attr_write(rig.dev, "idle", str(clock.now))  # a cutoff of exactly 0 means all, as in the kernel
    assert rig.idle() == {0, 1, 2, 4}
    attr_write(rig.dev, "idle", "all")
    assert rig.idle() == {0, 1, 2, 4}
    rig.dev.check_invariants()


def test_any_access_clears_idle_and_sets_the_access_time(rig: Rig) -> None:
    clock = rig.clock
    for k in range(5):
        rig.put(k, text_page(k) if k % 2 else random_page(k))
    rig.put(5, random_page(5))
    rig.writeback("page_index=5")
    rig.dev.mark_idle(None)
    assert rig.idle() == {0, 1, 2, 3, 4}
    clock.now = START + 50
    rig.dev.read(0, 10)  # a partial read
    clock.now = START + 60
    rig.dev.write(PAGE + 7, b"patch")  # a partial write
    rig.model[1] = rig.model[1][:7] + b"patch" + rig.model[1][12:]
    clock.now = START + 70
    rig.put(2, text_page(22))  # a whole-page write
    clock.now = START + 80
    rig.dev.read(3 * PAGE - 1, 2)  # a read spanning the end of page 2 and the start of page 3
    clock.now = START + 90
    assert rig.page(5) == rig.model[5]  # a written-back page: read from the backing store
    assert rig.idle() == {4}
    assert actimes_of(rig.dev) == {0: START + 50, 1: START + 60, 2: START + 80, 3: START + 80,
                                   4: START, 5: START + 90}  # fmt: skip
    assert rig.written_back() == {5}  # a read leaves it where it is
    rig.check()


# ======================================================================= 3. which pages writeback selects


SELECTION_PAGES = {  # index: (page, idle?)
    0: (random_page(100), True),  # huge, idle
    1: (random_page(101), False),  # huge, recently used
    2: (text_page(102), True),  # compressed, idle
    3: (text_page(103), False),  # compressed, recently used
    4: (same_page(104), True),  # same-filled: never written back
    5: (bytes(PAGE), True),  # zeros: same-filled too
    # 6: never written
    7: (small_page(107), True),  # compressed, idle
}


def selection_rig(directory: Path) -> Rig:
    rig = make_rig(directory, pages=16, blocks=16)
    for index, (page, idle) in SELECTION_PAGES.items():
        rig.clock.now = START if idle else START + 100
        rig.put(index, page)
    rig.clock.now = START + 100
    attr_write(rig.dev, "idle", "50")  # cutoff START + 50
    assert rig.idle() == {0, 2, 7}
    return rig


ALL_STORED = {0, 1, 2, 3, 7}


@pytest.mark.parametrize(
    ("text", "selected"),
    [
        ("idle", {0, 2, 7}),
        ("idle\n", {0, 2, 7}),
        ("huge", {0, 1}),
        ("huge_idle", {0}),
        ("incompressible", set()),  # nothing is marked incompressible without recompression
        ("type=idle", {0, 2, 7}),
        ("type=huge\n", {0, 1}),
        ("type=huge_idle", {0}),
        ("type=incompressible", set()),
        ('"type=huge"', {0, 1}),  # next_arg drops the quotes
        ('type="idle"', {0, 2, 7}),
        ("page_index=1", {1}),
        ("page_index=+3", {3}),
        ("page_index=4", set()),  # same-filled
        ("page_index=6", set()),  # never written
        ("page_index=15", set()),  # the last page
        ("page_index=1 page_index=3 page_index=7", {1, 3, 7}),
        ("page_index=3 page_index=3", {3}),
        ("page_indexes=1-3", {1, 2, 3}),
        ("page_indexes=2-2", {2}),
        ("page_indexes=0-15", ALL_STORED),
        ("page_indexes=0-1 page_indexes=7-9", {0, 1, 7}),
        ("page_index=0 page_indexes=3-7", {0, 3, 7}),
        # type= and the legacy words scan the range set so far, then end the parse
        ("type=idle page_index=3", {0, 2, 7}),
        ("idle page_index=3", {0, 2, 7}),
        ("huge type=idle", {0, 1}),
        # page_index(es) scan at once with the mode so far (none: any page), then a type= rescans
        ("page_indexes=0-3 type=huge", {0, 1, 2, 3}),
        ("page_indexes=2-7 type=idle", {2, 3, 7}),
        # other key=value words are ignored
        ("foo=bar type=huge", {0, 1}),
        ("foo=bar", set()),
        ("\n", set()),
        ("   ", set()),
    ],
)
def test_writeback_selects(tmp_path: Path, text: str, selected: set[int]) -> None:
    rig = selection_rig(tmp_path)
    before = flags_of(rig.dev)
    assert rig.writeback(text) == len(text.encode())
    assert rig.written_back() == selected
    assert rig.bd() == BdStat(len(selected), 0, len(selected))
    after = flags_of(rig.dev)
    for index in ALL_STORED | {4, 5}:
        assert after[index] == (".w...." if index in selected else before[index]), index
    actimes = actimes_of(rig.dev)
    assert all(actimes[index] == 0 for index in selected)  # slot_free clears the access time
    rig.check()
    assert rig.bd().bd_reads == len(selected)
    rig.dev.reset()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("bogus", "EINVAL"),
        ("IDLE", "EINVAL"),
        ("type=", "EINVAL"),  # an empty value is the legacy form: "type" is no mode
        ("type=bogus", "EINVAL"),
        ("type=idle,huge", "EINVAL"),
        ("page_index=", "EINVAL"),
        ("page_index=x", "EINVAL"),
        ("page_index=-1", "EINVAL"),
        ("page_index=0x1", "EINVAL"),  # base 10
        ("page_index=1x", "EINVAL"),
        ("page_index=16", "ERANGE"),  # past the 16-page disk
        ("page_index=18446744073709551616", "ERANGE"),  # overflow
        ("page_indexes=5", "EINVAL"),
        ("page_indexes=a-5", "EINVAL"),
        ("page_indexes=1-b", "EINVAL"),
        ("page_indexes=-5", "EINVAL"),
        ("page_indexes=16-17", "ERANGE"),
        ("page_indexes=0-16", "ERANGE"),
        ("page_indexes=5-4", "ERANGE"),
        # an error after a scan has chosen pages: those are let go, nothing is written
        ("page_index=1 page_index=99", "ERANGE"),
        ("page_indexes=0-15 type=nope", "EINVAL"),
        ("page_index=0 bogus", "EINVAL"),
    ],
)
def test_writeback_parse_errors_write_nothing(tmp_path: Path, text: str, error: str) -> None:
    rig = selection_rig(tmp_path)
    before = block_state(rig.dev)
    assert attr_errno(rig.dev, "writeback", text) == error
    assert block_state(rig.dev) == before
    assert rig.bd() == BdStat(0, 0, 0)
    rig.dev.check_invariants()  # no slot is left marked as chosen
    assert rig.writeback("huge") == 4  # and a later writeback works as usual
    assert rig.written_back() == {0, 1}
    rig.check()
    rig.dev.reset()


def test_writeback_needs_an_initialised_device_with_a_backing_store(tmp_path: Path) -> None:
    dev = ZramDevice()
    assert attr_errno(dev, "writeback", "idle") == "EINVAL"
    with pytest.raises(InvalidArgument):
        dev.writeback([(0, 0, 1)])
    dev.set_backing_dev(str(make_backing(tmp_path / "b.img", 4)))
    assert attr_errno(dev, "writeback", "idle") == "EINVAL"  # backing but uninitialised
    dev.reset()
    dev.set_disksize(4 * PAGE)
    dev.write(0, random_page(0))
    for text in ("idle", "huge", "bogus", "page_index=99"):  # ENODEV comes before the parse
        assert attr_errno(dev, "writeback", text) == "ENODEV"
    with pytest.raises(NoDevice):
        dev.writeback([(0, 0, 4)])
    assert dev.statistics().bd == BdStat(0, 0, 0)
    dev.check_invariants()
    dev.reset()


# ============================================================================ 4. contents and counters


@pytest.mark.parametrize("batch", [1, 7, 32, 1000])
def test_written_back_pages_read_back_identical_and_counters_follow(tmp_path: Path, batch: int) -> None:
    rig = make_rig(tmp_path, pages=64, blocks=64)
    pages = mixed_pages(60, seed=batch)
    for index, page in pages.items():
        rig.put(index, page)
    assert attr_write(rig.dev, "writeback_batch_size", str(batch)) == len(str(batch))
    before = rig.dev.statistics()
    mm = before.mm
    huge = [i for i, p in pages.items() if stored_size(p) == PAGE]
    movable = [i for i, p in pages.items() if not is_same(p)]
    assert (mm.orig_data_size, mm.compr_data_size) == (60 * PAGE, sum(stored_size(p) for p in pages.values()))
    assert mm.huge_pages == len(huge) == 12

    # First only the huge pages: each held one 4096-byte zspage of its own.
    assert rig.writeback("huge") == 4
    after = rig.dev.statistics()
    assert after.mm.orig_data_size == mm.orig_data_size
    assert after.mm.compr_data_size == mm.compr_data_size - len(huge) * PAGE
    assert after.mm.mem_used_total == mm.mem_used_total - len(huge) * PAGE
    assert (after.mm.huge_pages, after.mm.huge_pages_since) == (0, mm.huge_pages_since)
    assert (after.mm.same_pages, after.mm.mem_used_max) == (mm.same_pages, mm.mem_used_max)
    assert after.pages_stored == before.pages_stored == 60
    assert after.bd == BdStat(len(huge), 0, len(huge))
    assert attr_show(rig.dev, "bd_stat") == f"{len(huge):8d} {0:8d} {len(huge):8d}\n"
    assert rig.written_back() == set(huge)

    # Then everything else that is not same-filled: the pool empties.
    assert rig.writeback("page_indexes=0-63") == len("page_indexes=0-63")
    rig.dev.compact()
    after = rig.dev.statistics()
    assert (after.mm.orig_data_size, after.mm.compr_data_size, after.mm.mem_used_total) == (60 * PAGE, 0, 0)
    assert after.mm.same_pages == mm.same_pages == 24
    assert after.bd == BdStat(len(movable), 0, len(movable))
    assert rig.written_back() == set(movable)
    assert len(data_blocks(rig.path)) == len(movable)
    # writeback is not I/O on the disk: the block-layer stat and io_stat do not move
    assert after.block == before.block and after.io == before.io

    # Reading back: every written-back page read costs one backing read.
    whole = rig.dev.read(0, 64 * PAGE)
    for index in range(64):
        assert whole[index * PAGE : (index + 1) * PAGE] == rig.expected(index), index
    assert rig.bd() == BdStat(len(movable), len(movable), len(movable))
    assert rig.dev.read(PAGE + 100, 50) == pages[1][100:150]  # a partial read of one page
    assert rig.dev.read(2 * PAGE - 10, 20) == pages[1][-10:] + pages[2][:10]  # across two pages
    assert rig.bd().bd_reads == len(movable) + sum(i in movable for i in (1, 1, 2))
    assert rig.dev.statistics().io.failed_reads == 0
    rig.dev.check_invariants()
    rig.dev.reset()


def test_writeback_of_a_page_rewritten_with_the_same_bytes(rig: Rig) -> None:
    page = text_page(5)
    rig.put(5, page)
    rig.writeback("page_index=5")
    assert rig.written_back() == {5}
    rig.put(5, page)  # back in RAM, its block freed
    assert rig.written_back() == set()
    assert rig.bd() == BdStat(0, 0, 1)
    assert rig.dev.statistics().mm.compr_data_size == stored_size(page)
    rig.writeback("page_index=5")
    assert rig.bd() == BdStat(1, 0, 2)
    rig.check()


# ======================================================================= 5. order, ENOSPC, writeback_limit


def order_rig(directory: Path, blocks: int) -> tuple[Rig, list[int]]:
    """Pages of known sizes and the order writeback must take them in: by 64-byte bucket of
    the stored size, largest first; within a bucket the last chosen (highest index) first."""
    rig = make_rig(directory, pages=16, blocks=blocks)
    sizes = {0: (70, 120), 1: (1990, 2000), 3: (970, 1010), 4: (2010, 2040), 6: (300, 310), 8: (305, 318)}
    for index, (lo, hi) in sizes.items():
        rig.put(index, page_with_complen(lo, hi, seed=index))
    rig.put(2, random_page(2))  # huge: bucket 64
    rig.put(5, random_page(5))  # huge
    rig.put(7, same_page(7))  # never
    stored = {i: stored_size(p) for i, p in rig.model.items() if not is_same(p)}
    assert stored[1] // BUCKET == stored[4] // BUCKET == 31 and stored[6] // BUCKET == stored[8] // BUCKET
    order = sorted(stored, key=lambda i: (-(stored[i] // BUCKET), -i))
    assert order == [5, 2, 4, 1, 3, 8, 6, 0]
    return rig, order


def test_writeback_takes_the_largest_objects_first(tmp_path: Path) -> None:
    rig, order = order_rig(tmp_path, blocks=16)
    assert rig.writeback("page_indexes=0-15") == len("page_indexes=0-15")
    assert [rig.block_holding(i) for i in order] == list(range(len(order)))  # a fresh store fills up in order
    rig.check()
    rig.dev.reset()


def test_enospc_with_a_tiny_backing_file(tmp_path: Path) -> None:
    rig, order = order_rig(tmp_path, blocks=3)
    with pytest.raises(NoSpace) as full:
        rig.writeback("page_indexes=0-15")
    assert full.value.errno == errno.ENOSPC
    assert rig.written_back() == set(order[:3])  # the three largest went before the store was full
    assert rig.bd() == BdStat(3, 0, 3)
    assert rig.dev.statistics().mm.compr_data_size == sum(stored_size(rig.model[i]) for i in order[3:])
    rig.dev.check_invariants()  # no slot is left chosen
    assert attr_errno(rig.dev, "writeback", "page_indexes=0-15") == "ENOSPC"  # nothing more fits
    assert rig.bd() == BdStat(3, 0, 3)
    assert rig.writeback("huge") == 4  # nothing left to choose: no block needed, no error
    rig.dev.discard(order[0] * PAGE, PAGE)  # frees one block
    del rig.model[order[0]]
    assert rig.bd() == BdStat(2, 0, 3)
    assert attr_errno(rig.dev, "writeback", "page_indexes=0-15") == "ENOSPC"
    assert rig.written_back() == set(order[1:4])
    rig.dev.discard(order[1] * PAGE, PAGE)
    del rig.model[order[1]]
    assert rig.writeback(f"page_index={order[4]}") == len(f"page_index={order[4]}")  # exactly fits
    assert rig.written_back() == {order[2], order[3], order[4]}
    assert rig.bd() == BdStat(3, 0, 5)
    rig.check()  # every page readable, in RAM or not
    assert rig.bd().bd_reads == 3
    rig.dev.reset()


def test_writeback_limit_counts_down_and_ends_with_eio(tmp_path: Path) -> None:
    rig, order = order_rig(tmp_path, blocks=16)
    assert attr_show(rig.dev, "writeback_limit") == "0\n"
    assert attr_show(rig.dev, "writeback_limit_enable") == "0\n"
    attr_write(rig.dev, "writeback_limit_enable", "1")
    assert attr_errno(rig.dev, "writeback", "page_indexes=0-15") == "EIO"  # 0 left: nothing at all
    assert rig.bd() == BdStat(0, 0, 0)
    attr_write(rig.dev, "writeback_limit", "3")
    with pytest.raises(IOFailure) as used_up:
        rig.writeback("page_indexes=0-15")
    assert used_up.value.errno == errno.EIO
    assert rig.written_back() == set(order[:3])
    assert rig.bd() == BdStat(3, 0, 3)
    assert attr_show(rig.dev, "writeback_limit") == "0\n"
    rig.dev.check_invariants()
    assert attr_errno(rig.dev, "writeback", "page_indexes=0-15") == "EIO"
    assert rig.writeback("huge") == 4  # nothing to choose: the limit is never consulted
    attr_write(rig.dev, "writeback_limit", "10")
    assert rig.writeback("page_index=0") == len("page_index=0")
    assert attr_show(rig.dev, "writeback_limit") == "9\n"
    assert rig.writeback("page_index=0") == len("page_index=0")  # already written back: free
    assert attr_show(rig.dev, "writeback_limit") == "9\n"
    # While disabled the limit is neither enforced nor counted down.
    attr_write(rig.dev, "writeback_limit", "1")
    attr_write(rig.dev, "writeback_limit_enable", "0")
    assert rig.writeback("page_indexes=0-15") == len("page_indexes=0-15")
    assert attr_show(rig.dev, "writeback_limit") == "1\n"
    assert rig.written_back() == set(order)
    assert rig.bd() == BdStat(8, 0, 8)
    rig.check()
    rig.dev.reset()


def test_writeback_limit_stops_between_batches_too(tmp_path: Path) -> None:
    rig, order = order_rig(tmp_path, blocks=16)
    attr_write(rig.dev, "writeback_batch_size", "2")
    attr_write(rig.dev, "writeback_limit", "5")
    attr_write(rig.dev, "writeback_limit_enable", "1")
    assert attr_errno(rig.dev, "writeback", "page_indexes=0-15") == "EIO"
    assert rig.written_back() == set(order[:5])
    assert rig.bd() == BdStat(5, 0, 5)
    rig.check()
    rig.dev.reset()


# ============================================================================ 6. backing I/O errors


def failing(stage: str, indexes: set[int]) -> Callable[[str, int], None]:
    def hook(what: str, index: int) -> None:
        if what == stage and index in indexes:
            raise OSError(errno.EIO, f"injected {stage} error on page {index}")

    return hook


def test_backing_write_error_keeps_the_page_in_ram(tmp_path: Path) -> None:
    """Each page its own batch (and so its own write): the failed one stays in memory, the rest
    are written, EIO is reported at the end; bd_writes counts only the writes that worked and a
    failed write gives its writeback_limit unit back."""
    rig, order = order_rig(tmp_path, blocks=16)
    attr_write(rig.dev, "writeback_batch_size", "1")
    attr_write(rig.dev, "writeback_limit", "100")
    attr_write(rig.dev, "writeback_limit_enable", "1")
    bad = {order[1], order[4]}
    rig.dev.fault_hook = failing("backing_write", bad)
    before = rig.dev.statistics()
    with pytest.raises(ZramError) as failed:
        rig.writeback("page_indexes=0-15")
    assert failed.value.errno == errno.EIO
    assert rig.written_back() == set(order) - bad
    assert rig.bd() == BdStat(6, 0, 6)
    assert attr_show(rig.dev, "writeback_limit") == "94\n"
    after = rig.dev.statistics()
    assert after.mm.compr_data_size == sum(stored_size(rig.model[i]) for i in bad)
    assert after.io == before.io  # writeback errors are not failed_writes of the disk
    rig.dev.fault_hook = None
    for index in rig.model:
        assert rig.page(index) == rig.model[index], index
    rig.dev.reset()


def test_a_page_whose_write_failed_is_written_back_later(tmp_path: Path) -> None:
    rig, order = order_rig(tmp_path, blocks=16)
    attr_write(rig.dev, "writeback_batch_size", "1")
    rig.dev.fault_hook = failing("backing_write", {order[2]})
    assert attr_errno(rig.dev, "writeback", "page_indexes=0-15") == "EIO"
    rig.dev.fault_hook = None
    try:
        rig.dev.check_invariants()
        assert rig.writeback("page_indexes=0-15") == len("page_indexes=0-15")
        assert rig.written_back() == set(order)
        assert rig.bd() == BdStat(8, 0, 8)
    finally:
        rig.dev.reset()


def test_a_write_error_fails_only_its_own_page_in_a_batch(tmp_path: Path) -> None:
    rig, order = order_rig(tmp_path, blocks=16)
    rig.dev.fault_hook = failing("backing_write", {order[3]})
    try:
        assert attr_errno(rig.dev, "writeback", "page_indexes=0-15") == "EIO"
        assert rig.written_back() == set(order) - {order[3]}
    finally:
        rig.dev.fault_hook = None
        rig.dev.reset()


def test_backing_read_error_is_a_failed_read(rig: Rig) -> None:
    for index in range(6):
        rig.put(index, random_page(index) if index % 2 else text_page(index))
    rig.writeback("page_indexes=0-3")
    assert rig.written_back() == {0, 1, 2, 3}
    rig.dev.fault_hook = failing("backing_read", {2})
    with pytest.raises(IOFailure) as failed:
        rig.page(2)
    assert failed.value.errno == errno.EIO
    assert rig.dev.statistics().io.failed_reads == 1
    assert rig.bd().bd_reads == 1  # counted when the read is issued, as the kernel does
    with pytest.raises(IOFailure):
        rig.dev.read(0, 6 * PAGE)  # a read spanning the bad page fails as a whole
    assert rig.dev.statistics().io.failed_reads == 2
    for index in (0, 1, 3, 4, 5):  # the others are intact
        assert rig.page(index) == rig.model[index], index
    with pytest.raises(IOFailure):  # a partial write must read the page first: a failed write
        rig.dev.write(2 * PAGE + 5, b"x")
    io = rig.dev.statistics().io
    assert (io.failed_reads, io.failed_writes) == (2, 1)
    rig.dev.fault_hook = None
    assert rig.written_back() == {0, 1, 2, 3}  # the page is still written back, unchanged
    assert rig.bd().bd_count == 4
    rig.check()


def test_short_read_of_a_truncated_backing_file_is_eio(rig: Rig) -> None:
    """A real error, no hook: the backing file cut short under the device."""
    for index in range(4):
        rig.put(index, random_page(index))
    rig.writeback("huge")
    blocks = {i: rig.block_holding(i) for i in range(4)}
    os.truncate(rig.path, (max(blocks.values())) * PAGE)  # the last block is gone
    lost = max(blocks, key=lambda i: blocks[i])
    with pytest.raises(IOFailure):
        rig.page(lost)
    assert rig.dev.statistics().io.failed_reads == 1
    for index in set(range(4)) - {lost}:
        assert rig.page(index) == rig.model[index]
    rig.dev.discard(lost * PAGE, PAGE)  # freeing it needs no read (and the punch past EOF is fine)
    del rig.model[lost]
    rig.check()


# ============================================================================ 7. freeing written-back pages


def test_overwrite_and_discard_free_blocks_and_punch_holes(rig: Rig) -> None:
    for index in range(8):
        rig.put(index, random_page(index) if index < 4 else text_page(index))
    rig.writeback("page_indexes=0-7")
    blocks = {i: rig.block_holding(i) for i in range(8)}
    assert data_blocks(rig.path) == set(blocks.values())
    notify_free = rig.dev.statistics().io.notify_free

    rig.put(0, text_page(50))  # overwritten with a compressible page
    rig.put(1, bytes(PAGE))  # ... with zeros (same-filled)
    rig.dev.write(2 * PAGE + 100, b"partial")  # partially: read from the store, patched, in RAM
    rig.model[2] = rig.model[2][:100] + b"partial" + rig.model[2][107:]
    rig.dev.discard(3 * PAGE, PAGE)  # a whole-page discard
    del rig.model[3]
    rig.dev.discard(4 * PAGE + 10, 20)  # a discard inside the page: zeroed in place, in RAM
    rig.model[4] = rig.model[4][:10] + bytes(20) + rig.model[4][30:]
    rig.dev.discard(5 * PAGE, PAGE, write_zeroes=True)
    del rig.model[5]

    assert rig.written_back() == {6, 7}
    assert data_blocks(rig.path) == {blocks[6], blocks[7]}
    assert rig.bd() == BdStat(2, 2, 8)  # pages 2 and 4 were read for the partial updates
    assert rig.dev.statistics().io.notify_free == notify_free + 2
    rig.check()
    # The freed blocks are used again.
    assert rig.writeback("page_indexes=0-7") > 0
    assert rig.written_back() == {0, 2, 4, 6, 7}
    assert data_blocks(rig.path) <= set(range(8)) and len(data_blocks(rig.path)) == 5
    rig.dev.discard(0, 64 * PAGE)
    rig.model = {}
    assert rig.bd().bd_count == 0 and data_blocks(rig.path) == set()
    rig.check()


# ============================================================================ 8. block_state


_LINE_RE = re.compile(r"[ \d]{11}\d [ \d]{11}\d\.000000 [s.][w.][h.][i.][r.][n.]\n")


def test_block_state_format(rig: Rig) -> None:
    rig.put(0, random_page(0))
    rig.put(2, text_page(2))
    rig.put(3, bytes(PAGE))
    rig.clock.now = START + 5
    rig.put(10, random_page(10))
    rig.put(63, same_page(63))
    rig.writeback("page_index=10")
    rig.dev.mark_idle(None)
    text = block_state(rig.dev)
    assert text == (
        state_line(0, START, "..hi..")
        + state_line(2, START, "...i..")
        + state_line(3, START, "s.....")
        + state_line(10, 0, ".w....")
        + state_line(63, START + 5, "s.....")
    )
    lines = text.splitlines(keepends=True)
    assert all(len(line) == LINE and _LINE_RE.fullmatch(line) for line in lines)
    assert attrs.BLOCK_STATE.mode == 0o444 and attrs.BLOCK_STATE.readable
    assert not attrs.BLOCK_STATE.writable
    rig.check()


def test_block_state_reads_at_any_offset_are_slices_of_the_whole(rig: Rig) -> None:
    for index in range(0, 64, 3):
        rig.put(index, [random_page, text_page, same_page][index // 3 % 3](index))
    rig.writeback("huge")
    whole = block_state(rig.dev).encode()
    assert len(whole) == 22 * LINE
    for offset in [*range(0, len(whole) + 50, 7), LINE - 1, LINE, LINE + 1, len(whole) - 1, len(whole)]:
        for size in (1, 13, LINE - 1, LINE, LINE + 1, 100, 4096):
            got = attrs.read_block_state(rig.dev, offset, size)
            assert got == whole[offset : offset + size], (offset, size)
    for chunk in (1, 17, LINE, 123):  # a reader going on where it stopped
        pieces = []
        offset = 0
        while True:
            piece = attrs.read_block_state(rig.dev, offset, chunk)
            if not piece:
                break
            pieces.append(piece)
            offset += len(piece)
        assert b"".join(pieces) == whole, chunk


def test_block_state_needs_an_initialised_device() -> None:
    dev = ZramDevice()
    with pytest.raises(InvalidArgument):
        attrs.read_block_state(dev, 0, 4096)
    dev.set_disksize(4 * PAGE)
    assert attrs.read_block_state(dev, 0, 4096) == b""  # nothing stored: empty
    dev.reset()


# ======================================================================= 9. random sequences against a model


PROP_PAGES = 12
PROP_BLOCKS = 4
KINDS = {"zero": lambda _s: bytes(PAGE), "same": same_page, "text": text_page, "small": small_page,
         "random": random_page}  # fmt: skip
MODES = {"idle": 2, "huge": 1, "huge_idle": 3, "incompressible": 4}

write_op = st.tuples(st.just("write"), st.integers(0, PROP_PAGES - 1), st.sampled_from(sorted(KINDS)),
                     st.integers(0, 40))  # fmt: skip
partial_op = st.tuples(st.just("partial"), st.integers(0, PROP_PAGES * PAGE - 1), st.integers(1, 6000),
                       st.integers(0, 99))  # fmt: skip
discard_op = st.tuples(st.just("discard"), st.integers(0, PROP_PAGES - 1), st.integers(1, 3))
read_op = st.tuples(st.just("read"), st.integers(0, PROP_PAGES - 1), st.integers(1, 4))
tick_op = st.tuples(st.just("tick"), st.integers(1, 30))
idle_op = st.tuples(st.just("idle"), st.one_of(st.just("all"), st.integers(0, 60).map(str)))
mode_op = st.tuples(st.just("writeback"), st.sampled_from(sorted(MODES)), st.booleans())
range_op = st.tuples(st.just("writeback_range"), st.integers(0, PROP_PAGES - 1), st.integers(0, 4))
limit_op = st.tuples(st.just("limit"), st.sampled_from([False, False, True]), st.integers(0, 4))
batch_op = st.tuples(st.just("batch"), st.integers(1, 4))
fill_op = st.tuples(st.just("fill"), st.integers(0, PROP_PAGES - 1), st.integers(2, 8), st.integers(0, 40))
operation = st.one_of(write_op, fill_op, partial_op, discard_op, read_op, tick_op, idle_op, mode_op,
                      mode_op, range_op, range_op, limit_op, batch_op)  # fmt: skip


@dataclass
class Slot:
    """The model's view of one stored page."""

    size: int  # stored size: 0 same-filled, 4096 huge, else the compressed length
    actime: int
    idle: bool = False
    wb: bool = False

    def flags(self) -> str:
        same = self.size == 0 and not self.wb
        huge = self.size == PAGE and not self.wb
        return (
            f"{'s' if same else '.'}{'w' if self.wb else '.'}{'h' if huge else '.'}"
            f"{'i' if self.idle else '.'}.."
        )


class Model:
    """Contents, slots and counters as the kernel's rules give them."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.contents: dict[int, bytes] = {}
        self.slots: dict[int, Slot] = {}
        self.bd_reads = self.bd_writes = 0
        self.limit = 0
        self.limit_enable = False

    def page(self, index: int) -> bytes:
        return self.contents.get(index, bytes(PAGE))

    def access(self, index: int) -> None:
        slot = self.slots.get(index)
        if slot is not None:
            if slot.wb:
                self.bd_reads += 1
            slot.actime = self.clock.now
            slot.idle = False

    def store(self, index: int, page: bytes) -> None:
        self.contents[index] = page
        self.slots[index] = Slot(stored_size(page), self.clock.now)

    def free(self, index: int) -> None:
        self.contents.pop(index, None)
        self.slots.pop(index, None)

    def mark_idle(self, cutoff: int | None) -> None:
        for slot in self.slots.values():
            if slot.size == 0 or slot.wb:
                continue
            slot.idle = cutoff is None or cutoff > slot.actime

    def writeback(self, mode: int, first: int, end: int) -> str | None:
        """Apply a writeback of one scan; returns the errno name it must fail with, or None."""
        chosen = []
        for index in range(first, end):
            slot = self.slots.get(index)
            if slot is None or slot.wb or slot.size == 0:
                continue
            if (mode & 2 and not slot.idle) or (mode & 1 and slot.size != PAGE) or mode & 4:
                continue
            chosen.append(index)
        chosen.sort(key=lambda i: (-(self.slots[i].size // BUCKET), -i))
        free = PROP_BLOCKS - sum(s.wb for s in self.slots.values())
        allowed = self.limit if self.limit_enable else len(chosen)
        done = min(len(chosen), free, allowed)
        for index in chosen[:done]:
            slot = self.slots[index]
            slot.wb, slot.idle, slot.actime = True, False, 0
        self.bd_writes += done
        if self.limit_enable:
            self.limit -= done
        if done == len(chosen):
            return None
        return "EIO" if allowed <= free else "ENOSPC"  # the limit is checked first

    def block_state(self) -> str:
        return "".join(state_line(i, s.actime, s.flags()) for i, s in sorted(self.slots.items()))


def _apply(dev: ZramDevice, model: Model, op: tuple[object, ...]) -> None:
    name = op[0]
    disksize = PROP_PAGES * PAGE
    if name == "write":
        _, index, kind, seed = op
        assert isinstance(index, int) and isinstance(kind, str) and isinstance(seed, int)
        page = KINDS[kind](seed)
        dev.write(index * PAGE, page)
        model.store(index, page)
    elif name == "fill":  # one request of several whole pages of mixed kinds
        _, first, count, seed = op
        assert isinstance(first, int) and isinstance(count, int) and isinstance(seed, int)
        count = min(count, PROP_PAGES - first)
        kinds = sorted(KINDS)
        pages = [KINDS[kinds[(seed + k) % len(kinds)]](seed + k) for k in range(count)]
        assert dev.write(first * PAGE, b"".join(pages)) == count * PAGE
        for k, page in enumerate(pages):
            model.store(first + k, page)
    elif name == "partial":
        _, offset, length, seed = op
        assert isinstance(offset, int) and isinstance(length, int) and isinstance(seed, int)
        data = random.Random(seed).randbytes(length) if seed % 2 else bytes([seed]) * length
        end = min(offset + length, disksize)
        first, last = offset // PAGE, (end - 1) // PAGE
        for index in range(first, last + 1):  # pages only partly covered are read first
            start, stop = max(offset, index * PAGE), min(end, (index + 1) * PAGE)
            if stop - start < PAGE:
                model.access(index)
        assert dev.write(offset, data) == end - offset
        for index in range(first, last + 1):
            start, stop = max(offset, index * PAGE), min(end, (index + 1) * PAGE)
            old = model.page(index)
            lo = start - index * PAGE
            model.store(index, old[:lo] + data[start - offset : stop - offset] + old[lo + stop - start :])
    elif name == "discard":
        _, index, count = op
        assert isinstance(index, int) and isinstance(count, int)
        dev.discard(index * PAGE, count * PAGE)
        for k in range(index, min(index + count, PROP_PAGES)):
            model.free(k)
    elif name == "read":
        _, index, count = op
        assert isinstance(index, int) and isinstance(count, int)
        got = dev.read(index * PAGE, count * PAGE)
        span = range(index, min(index + count, PROP_PAGES))
        assert got == b"".join(model.page(k) for k in span)
        for k in span:
            model.access(k)
    elif name == "tick":
        _, seconds = op
        assert isinstance(seconds, int)
        model.clock.now += seconds
    elif name == "idle":
        _, arg = op
        assert isinstance(arg, str)
        attr_write(dev, "idle", arg)
        model.mark_idle(None if arg == "all" or int(arg) == model.clock.now else model.clock.now - int(arg))
    elif name in ("writeback", "writeback_range"):
        if name == "writeback":
            _, word, typed = op
            assert isinstance(word, str)
            text, scan = (f"type={word}" if typed else word), (MODES[word], 0, PROP_PAGES)
        else:
            _, first, extra = op
            assert isinstance(first, int) and isinstance(extra, int)
            last = min(first + extra, PROP_PAGES - 1)
            text = f"page_index={first}" if last == first else f"page_indexes={first}-{last}"
            scan = (0, first, last + 1)
        written = model.bd_writes
        expected = model.writeback(*scan)
        event(f"writeback: {expected or 'ok'}, {'some' if model.bd_writes > written else 'no'} pages")
        assert attr_errno(dev, "writeback", text) == (expected or len(text)), text
    elif name == "limit":
        _, enable, limit = op
        assert isinstance(enable, bool) and isinstance(limit, int)
        attr_write(dev, "writeback_limit_enable", str(int(enable)))
        attr_write(dev, "writeback_limit", str(limit))
        model.limit_enable, model.limit = enable, limit
    elif name == "batch":
        _, size = op
        assert isinstance(size, int)
        attr_write(dev, "writeback_batch_size", str(size))


def _check_against(dev: ZramDevice, model: Model) -> None:
    """Everything observable without touching a page: block_state, mm_stat, bd_stat, the limit."""
    dev.check_invariants()
    assert block_state(dev) == model.block_state()
    stat = dev.statistics()
    slots = model.slots.values()
    in_ram = [s for s in slots if not s.wb]
    assert stat.mm.orig_data_size == len(model.slots) * PAGE
    assert stat.mm.compr_data_size == sum(s.size for s in in_ram)
    assert stat.mm.same_pages == sum(s.size == 0 for s in in_ram)
    assert stat.mm.huge_pages == sum(s.size == PAGE for s in in_ram)
    assert stat.bd == BdStat(sum(s.wb for s in slots), model.bd_reads, model.bd_writes)
    assert attr_show(dev, "writeback_limit") == f"{model.limit}\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.lists(operation, min_size=1, max_size=4), min_size=1, max_size=15))
def test_random_sequences_match_a_model(tmp_path_factory: pytest.TempPathFactory,
                                        steps: list[list[tuple[object, ...]]]) -> None:  # fmt: skip
    """Random writes, partial writes, discards, reads, clock ticks, idle marks, writebacks of
    every form, limits and batch sizes on a 12-page device with a 4-block backing file. After
    every operation the slot table, counters and bd_stat match the model; after every step
    (a few operations, so that idle marks can meet a writeback) every page reads back as the
    model says and the device's recount agrees."""
    directory = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    clock = Clock()
    dev = ZramDevice(clock=clock)
    dev.set_backing_dev(str(make_backing(directory / "b.img", PROP_BLOCKS)))
    dev.set_disksize(PROP_PAGES * PAGE)
    model = Model(clock)
    try:
        for step in steps:
            for op in step:
                _apply(dev, model, op)
                _check_against(dev, model)
            whole = dev.read(0, PROP_PAGES * PAGE)
            for index in range(PROP_PAGES):
                assert whole[index * PAGE : (index + 1) * PAGE] == model.page(index), index
                model.access(index)
            _check_against(dev, model)
    finally:
        dev.reset()
        (directory / "b.img").unlink()
        directory.rmdir()

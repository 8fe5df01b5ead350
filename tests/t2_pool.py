"""Tier 2: the zsmalloc-style pool -- class table, allocation policy, compaction, accounting.

The kernel is the oracle where we have its figures: the size-class table that mm/zsmalloc.c
computes (``zs_create_pool``, ``calculate_zspage_chain_size``) for 4 KiB pages, and the replay of
the per-page sizes the kernel's zram stored for the 64 MiB corpus (tests/data/README.md).
"""

from __future__ import annotations

import bisect
import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from zramd.core import attrs
from zramd.core.engine import ZsPool
from zramd.core.pool import OBJ_INDEX_BITS
from zramd.core.records import PoolExhausted
from zramd.core.size_classes import HANDLE_SIZE, SizeClassTable, chain_length, class_index
from zramd.core.units import PAGE_SIZE

VECTORS = Path(__file__).resolve().parent / "data" / "complen_corpus64_lzo.txt"
OBJ_INDEX_MASK = (1 << OBJ_INDEX_BITS) - 1


class Owners:
    """The caller's side of the owner protocol: owner -> location, kept up to date by relocate."""

    def __init__(self) -> None:
        self.location: dict[int, int] = {}
        self.moves = 0

    def relocate(self, owner: int, location: int) -> None:
        assert owner in self.location, f"relocate for unknown owner {owner}"
        self.location[owner] = location
        self.moves += 1


def make_pool(max_pages: int = 4096, chain: int = 8) -> tuple[ZsPool, Owners]:
    owners = Owners()
    return ZsPool(max_pages, chain, relocate=owners.relocate), owners


# ---------------------------------------------------------------------------- size classes


def test_class_table_matches_kernel_counts() -> None:
    table = SizeClassTable(8)
    assert len(table) == 119
    assert table.huge_class_size == 3625
    table4 = SizeClassTable(4)
    assert len(table4) == 69
    assert table4.huge_class_size == 3257


@pytest.mark.parametrize(
    ("size", "pages", "objs"),
    [
        (32, 1, 128), (48, 3, 256), (144, 7, 199), (240, 1, 17), (688, 8, 47), (1024, 1, 4),
        (1360, 1, 3), (1536, 3, 8), (2048, 1, 2), (2176, 8, 15), (2720, 2, 3), (3072, 3, 4),
        (3264, 4, 5), (3632, 8, 9), (4096, 1, 1),
    ],
)  # fmt: skip
def test_selected_classes_match_zsmalloc(size: int, pages: int, objs: int) -> None:
    by_size = {c.size: c for c in SizeClassTable(8).classes}
    assert (by_size[size].pages_per_zspage, by_size[size].objs_per_zspage) == (pages, objs)


@pytest.mark.parametrize(
    ("comp_len", "class_size"),
    [(1, 32), (24, 32), (25, 48), (2040, 2048), (2041, 2176), (3624, 3632), (3625, 4096), (4096, 4096)],
)
def test_lookup_adds_header_first(comp_len: int, class_size: int) -> None:
    assert SizeClassTable(8).lookup(comp_len).size == class_size


def test_every_size_fits_its_class_and_merges_agree() -> None:
    table = SizeClassTable(8)
    for n in range(1, PAGE_SIZE + 1):
        cls = table.lookup(n)
        need = min(n + 8, PAGE_SIZE)
        assert cls.size >= need
        # The class serving index i has the (pages, objs) shape that index i computes itself.
        size_i = min(32 + class_index(n) * 16, PAGE_SIZE)
        pages_i = chain_length(size_i)
        assert (cls.pages_per_zspage, cls.objs_per_zspage) == (pages_i, pages_i * PAGE_SIZE // size_i)


def test_chain_length_least_waste() -> None:
    for size in range(32, PAGE_SIZE + 1, 16):
        pages = chain_length(size)
        wastes = [(i * PAGE_SIZE) % size for i in range(1, 9)]
        if size & (size - 1) == 0:
            assert pages == 1
        else:
            assert wastes[pages - 1] == min(wastes)
            assert wastes.index(min(wastes)) == pages - 1  # the first i wins ties


# ---------------------------------------------------------------------------- the kernel's figures


def test_replay_of_kernel_sizes_gives_kernel_figures() -> None:
    """Allocate what the kernel's zram allocated for the corpus (S: same-filled, no object; H:
    huge, a raw 4096-byte object; else the compressed length) and compare the pool's accounting
    with the kernel's mm_stat for the same pages, and with what the class table implies."""
    pool, owners = make_pool(max_pages=16384)
    stored: list[int] = []
    for index, line in enumerate(VECTORS.read_text().split()):
        if line == "S":
            continue
        size = PAGE_SIZE if line == "H" else int(line)
        owners.location[index] = pool.malloc(size, index)
        stored.append(size)
    # The kernel's figures: mem_used_total 38801408 = 9473 pages, huge_pages 2240, and
    # 16384 - 143 same-filled pages stored as objects.
    assert pool.pages_allocated * PAGE_SIZE == 38801408
    rows = pool.class_stats()
    by_size = {row.size: row for row in rows}
    assert by_size[PAGE_SIZE].objs_used == 2240
    assert pool.objects_used == 16384 - 143 == len(stored)
    # Objects per class: each size goes to the smallest class holding it plus its 8-byte header
    # (merged classes map to the larger class, so no distinct class lies in between).
    sizes = [row.size for row in rows]
    expected = Counter(sizes[bisect.bisect_left(sizes, min(n + HANDLE_SIZE, PAGE_SIZE))] for n in stored)
    assert {row.size: row.objs_used for row in rows if row.objs_used} == dict(expected)
    assert sum(row.objs_used * row.size for row in rows) == sum(size * k for size, k in expected.items())
    # Append-only, so every class is dense: all of its zspages full but the last, and the pages
    # it holds are the zspages those objects need times the class's chain length.
    for row in rows:
        zspages = -(-row.objs_used // row.objs_per_zspage)
        assert row.objs_allocated == zspages * row.objs_per_zspage, row
        assert row.pages_used == zspages * row.pages_per_zspage, row
        assert row.zspages_by_group[-1] == row.objs_used // row.objs_per_zspage, row
        assert sum(row.zspages_by_group) == zspages, row
        assert row.freeable == 0, row
    assert sum(row.pages_used for row in rows) == pool.pages_allocated
    assert pool.compact() == 0  # already dense, as on the kernel
    pool.check_consistency()


# ---------------------------------------------------------------------------- allocation policy


def payload_pieces(pool: ZsPool, location: int, n: int) -> list[tuple[int, int, int]]:
    """Where the first `n` payload bytes of the object at `location` lie, as zsmalloc lays them
    out: object i of a class of s bytes starts s * i bytes into its zspage's chain of frames,
    its payload 8 bytes later (at once for the header-less 4096-byte class), continuing at the
    start of the chain's next frame. Returns (frame, offset in frame, bytes) per piece."""
    zspage, index = location >> OBJ_INDEX_BITS, location & OBJ_INDEX_MASK
    size = pool.object_class_size(location)
    start = index * size + (0 if size == PAGE_SIZE else HANDLE_SIZE)
    pieces = []
    while n:
        k, offset = divmod(start, PAGE_SIZE)
        take = min(n, PAGE_SIZE - offset)
        pieces.append((pool._zs_frames[zspage * pool.chain + k], offset, take))
        start += take
        n -= take
    return pieces


def test_write_read_round_trip_including_straddling_objects() -> None:
    pool, owners = make_pool()
    # Scatter the free frames first: 64 one-frame zspages, every other one freed, so the chains
    # built next take frames 62, 60, ... from the free stack and their frames are not adjacent
    # in the arena (a copy that ignored the frame boundary would land in the wrong frame).
    huge = [pool.malloc(PAGE_SIZE, 10_000 + n) for n in range(64)]
    for loc in huge[::2]:
        pool.free(loc)
    rnd = random.Random(2)
    blobs = {}
    for owner, size in enumerate([1, 24, 100, 1500, 2041, 2700, 3000, 3624, 4096] * 20):
        data = rnd.randbytes(size)
        loc = pool.malloc(size, owner)
        pool.write(loc, data)
        owners.location[owner] = loc
        blobs[owner] = data
    straddling: dict[int, list[int]] = {}  # class size -> owners whose payload spans two frames
    apart = 0
    for owner, data in blobs.items():
        loc = owners.location[owner]
        assert pool.read(loc, len(data)) == data
        assert pool.owner(loc) == owner
        pieces = payload_pieces(pool, loc, len(data))
        got = b"".join(pool._arena[f * PAGE_SIZE + o : f * PAGE_SIZE + o + k] for f, o, k in pieces)
        assert got == data, f"owner {owner}: bytes not where zsmalloc's layout puts them"
        if len(pieces) > 1:
            assert len(pieces) == 2
            straddling.setdefault(pool.object_class_size(loc), []).append(owner)
            apart += pieces[1][0] != pieces[0][0] + 1
    # Every class here whose size does not divide the page has objects across a frame boundary
    # within its first 20 objects; the 32-, 112- and 4096-byte classes never straddle.
    assert set(straddling) == {pool.table.lookup(n).size for n in (1500, 2041, 2700, 3000, 3624)}
    assert all(len(owners_of) >= 2 for owners_of in straddling.values()), straddling
    assert apart > 0, "no straddling object had its two frames apart in the arena"
    assert set(pool.check_consistency().values()) == set(blobs) | {10_000 + n for n in range(1, 64, 2)}


def test_freed_objects_are_reused_last_in_first_out() -> None:
    pool, _ = make_pool()
    locs = [pool.malloc(100, n) for n in range(10)]
    pool.free(locs[3])
    pool.free(locs[7])
    assert pool.malloc(100, 20) == locs[7]
    assert pool.malloc(100, 21) == locs[3]
    assert pool.malloc(100, 22) == locs[9] + 1  # then the never-used tail, in order


def test_allocation_prefers_the_fullest_zspage() -> None:
    pool, _ = make_pool()
    # 2048-byte class: 1 page, 2 objects. Fill three zspages, then half-empty two of them.
    locs = [pool.malloc(2000, n) for n in range(6)]
    zspage_of = [loc >> OBJ_INDEX_BITS for loc in locs]
    pool.free(locs[0])
    pool.free(locs[2])
    assert pool.pages_allocated == 3
    new = pool.malloc(2000, 99)
    # Both candidate zspages are 50% full; the most recently moved (list head) wins.
    assert new >> OBJ_INDEX_BITS == zspage_of[2]
    assert pool.pages_allocated == 3


def test_empty_zspage_is_released_at_once_and_frames_reused() -> None:
    pool, _ = make_pool()
    locs = [pool.malloc(3000, n) for n in range(4)]  # 3072 class: 3 pages, 4 objects
    assert pool.pages_allocated == 3
    touched = pool.frames_touched
    for loc in locs:
        pool.free(loc)
    assert pool.pages_allocated == 0
    assert pool.frames_touched == touched  # memory is kept for reuse, not returned
    for n in range(4):
        pool.malloc(3000, n)
    assert pool.frames_touched == touched
    pool.check_consistency()


def test_exhaustion_fails_cleanly_and_changes_nothing() -> None:
    pool, owners = make_pool(max_pages=10)
    for n in range(8):
        owners.location[n] = pool.malloc(3624, n)  # 3632 class: 8 pages for 9 objects
    owners.location[8] = pool.malloc(3624, 8)
    with pytest.raises(PoolExhausted):
        pool.malloc(3624, 9)  # would need another 8 pages
    assert pool.pages_allocated == 8
    owners.location[9] = pool.malloc(2000, 9)  # a 1-page zspage (2048 class, 2 objects) fits
    owners.location[10] = pool.malloc(2000, 10)  # ... and shares that page
    owners.location[11] = pool.malloc(4096, 11)  # the last free page
    assert pool.pages_allocated == 10
    with pytest.raises(PoolExhausted):
        pool.malloc(4096, 12)
    assert pool.pages_allocated == 10
    assert set(pool.check_consistency().values()) == set(range(12))


@pytest.mark.parametrize("size", [0, -1, PAGE_SIZE + 1])
def test_bad_sizes_are_refused(size: int) -> None:
    pool, _ = make_pool()
    with pytest.raises(ValueError, match="outside"):
        pool.malloc(size, 1)
    assert pool.pages_allocated == 0


# ---------------------------------------------------------------------------- compaction


def test_compaction_frees_pages_and_keeps_every_object_readable() -> None:
    pool, owners = make_pool(max_pages=8192)
    data = {}
    rnd = random.Random(3)
    for owner in range(2000):
        size = 200 + owner % 1800
        blob = rnd.randbytes(size)
        loc = pool.malloc(size, owner)
        pool.write(loc, blob)
        owners.location[owner] = loc
        data[owner] = blob
    before = pool.pages_allocated
    for owner in range(0, 2000, 2):  # free every other object: scattered holes
        pool.free(owners.location.pop(owner))
        del data[owner]
    fragmented = pool.pages_allocated
    assert fragmented > before * 0.7  # freeing half the objects returned little memory
    freeable = sum(row.freeable for row in pool.class_stats())
    freed = pool.compact()
    assert freed > 0
    assert freed == freeable  # the classes table predicted exactly what compaction frees
    assert pool.pages_compacted == freed
    assert pool.pages_allocated == fragmented - freed
    assert owners.moves > 0
    for owner, blob in data.items():
        assert pool.read(owners.location[owner], len(blob)) == blob
    assert pool.check_consistency() == {loc: owner for owner, loc in owners.location.items()}
    assert pool.compact() == 0  # a second pass finds nothing


def test_compaction_without_relocate_callback_is_an_error() -> None:
    pool = ZsPool(64)
    locs = [pool.malloc(2000, n) for n in range(6)]
    pool.free(locs[0])
    pool.free(locs[2])
    with pytest.raises(RuntimeError, match="relocate"):
        pool.compact()


def test_classes_table_format() -> None:
    pool, _ = make_pool()
    for n in range(5):
        pool.malloc(2041, n)
    lines = attrs.format_classes(pool.class_stats()).splitlines()
    assert lines[0].split() == [
        "class", "size", "10%", "20%", "30%", "40%", "50%", "60%", "70%", "80%", "90%", "99%", "100%",
        "obj_allocated", "obj_used", "pages_used", "pages_per_zspage", "freeable",
    ]  # fmt: skip
    assert lines[0].startswith(" class  size       10%")
    row = next(line for line in lines[1:] if line.split()[:2] == ["134", "2176"])
    # 5 of 15 objects used: 33% -> the 40% group (ratio 30..39 -> group 4).
    assert row.split()[2:] == [
        "0",
        "0",
        "0",
        "1",
        "0",
        "0",
        "0",
        "0",
        "0",
        "0",
        "0",
        "15",
        "5",
        "8",
        "8",
        "0",
    ]
    assert len(lines) == 1 + 119 + 2
    assert lines[-1].split()[:1] == ["Total"]


def test_metadata_is_small_per_object() -> None:
    pool, _ = make_pool(max_pages=65536)
    for n in range(10000):
        pool.malloc(1000 + n % 2000, n)
    per_object = pool.metadata_bytes() / 10000
    assert per_object < 24, per_object


# ---------------------------------------------------------------------------- property-based


class PoolMachine(RuleBasedStateMachine):
    """Random malloc / free / compact sequences against a dict of the expected contents."""

    @initialize(chain=st.sampled_from([4, 8, 16]), max_pages=st.sampled_from([24, 64, 600]))
    def setup(self, chain: int, max_pages: int) -> None:
        self.owners = Owners()
        self.pool = ZsPool(max_pages, chain, relocate=self.owners.relocate)
        self.contents: dict[int, bytes] = {}
        self.next_owner = 0

    @rule(
        size=st.one_of(st.integers(1, 200), st.integers(1, PAGE_SIZE)), fill=st.binary(min_size=1, max_size=8)
    )
    def malloc(self, size: int, fill: bytes) -> None:
        owner = self.next_owner
        self.next_owner += 1
        data = (fill * (size // len(fill) + 1))[:size]
        pages_before, objects_before = self.pool.pages_allocated, self.pool.objects_used
        try:
            loc = self.pool.malloc(size, owner)
        except PoolExhausted:
            # Only a new zspage can exhaust the pool: the class has no free object, and the
            # zspage's frames do not fit beside the ones in use. Nothing may have changed.
            event("malloc: pool exhausted")
            cls = self.pool.table.lookup(size)
            row = next(row for row in self.pool.class_stats() if row.size == cls.size)
            assert row.objs_used == row.objs_allocated, f"exhausted with free objects: {row}"
            assert self.pool.pages_allocated + cls.pages_per_zspage > self.pool.max_pages, (
                f"PoolExhausted with {self.pool.pages_allocated} of {self.pool.max_pages} pages in use "
                f"and {cls.pages_per_zspage} needed"
            )
            assert (self.pool.pages_allocated, self.pool.objects_used) == (pages_before, objects_before)
            return
        self.pool.write(loc, data)
        self.owners.location[owner] = loc
        self.contents[owner] = data

    @precondition(lambda self: self.contents)
    @rule(pick=st.integers(0, 10**6))
    def free(self, pick: int) -> None:
        owner = sorted(self.contents)[pick % len(self.contents)]
        self.pool.free(self.owners.location.pop(owner))
        del self.contents[owner]

    @rule()
    def compact(self) -> None:
        before = self.pool.pages_allocated
        freed = self.pool.compact()
        assert self.pool.pages_allocated == before - freed

    @invariant()
    def everything_reads_back_and_counters_agree(self) -> None:
        for owner, data in self.contents.items():
            assert self.pool.read(self.owners.location[owner], len(data)) == data
        live = self.pool.check_consistency()
        assert live == {loc: owner for owner, loc in self.owners.location.items()}
        assert self.pool.objects_used == len(self.contents)

    def teardown(self) -> None:
        self.pool.close()


TestPoolMachine = PoolMachine.TestCase
TestPoolMachine.settings = settings(
    max_examples=60, stateful_step_count=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

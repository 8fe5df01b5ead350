"""zsmalloc's size-class table for 4 KiB pages: pure arithmetic, no state.

Owns: the class sizes (16-byte steps from 32 to 4096), the chain length of each class (pages per
zspage, chosen for least tail waste), objects per zspage, the merging of neighbouring classes that
have the same (pages, objects) shape, the lookup from an allocation size to its class, and
``huge_class_size`` (the compressed length at which zram stores a page raw).

Must not: allocate memory for objects or know about zspages; `zramd.core.pool` builds on this table.

Everything here follows mm/zsmalloc.c (``zs_create_pool``, ``calculate_zspage_chain_size``,
``get_size_class_index``) with PAGE_SIZE 4096 and the default CONFIG_ZSMALLOC_CHAIN_SIZE of 8,
which gives 255 class indices, 119 distinct classes and a huge_class_size of 3625.
"""

from __future__ import annotations

from dataclasses import dataclass

from zramd.core.units import PAGE_SIZE

HANDLE_SIZE = 8  # ZS_HANDLE_SIZE: the header in front of every non-huge object
MIN_ALLOC_SIZE = 32  # ZS_MIN_ALLOC_SIZE
MAX_ALLOC_SIZE = PAGE_SIZE  # ZS_MAX_ALLOC_SIZE
CLASS_DELTA = PAGE_SIZE >> 8  # ZS_SIZE_CLASS_DELTA = 16 (CLASS_BITS = 8)
NUM_INDICES = -(-(MAX_ALLOC_SIZE - MIN_ALLOC_SIZE) // CLASS_DELTA) + 1  # ZS_SIZE_CLASSES = 255
DEFAULT_CHAIN_SIZE = 8  # CONFIG_ZSMALLOC_CHAIN_SIZE default (allowed 4..16)


@dataclass(frozen=True, slots=True)
class SizeClass:
    """One distinct zsmalloc size class.

    Attributes:
        cid: dense id 0..n-1 (smallest class first), used to index the pool's arrays.
        index: the kernel's class index (the largest index that maps to this class), as printed
            in the first column of zsmalloc's debugfs ``classes`` file.
        size: object size in bytes, header included.
        pages_per_zspage: chain length, 1..chain_size.
        objs_per_zspage: how many objects one zspage holds.
        huge: the one-object-per-page class that stores pages raw, without a header.
    """

    cid: int
    index: int
    size: int
    pages_per_zspage: int
    objs_per_zspage: int
    huge: bool


def chain_length(class_size: int, chain_size: int = DEFAULT_CHAIN_SIZE) -> int:
    """Pages per zspage for `class_size`: the i in 1..chain_size with the least (i*4096) % size;
    the first i wins ties, and powers of two always use one page."""
    if class_size & (class_size - 1) == 0:
        return 1
    best, min_waste = 1, PAGE_SIZE
    for pages in range(1, chain_size + 1):
        waste = (pages * PAGE_SIZE) % class_size
        if waste < min_waste:
            best, min_waste = pages, waste
    return best


class SizeClassTable:
    """The merged class table of one pool configuration.

    Attributes:
        chain_size: the longest zspage chain allowed (CONFIG_ZSMALLOC_CHAIN_SIZE).
        classes: the distinct classes, smallest first (`SizeClass.cid` is the position here).
        huge_class_size: the smallest compressed length that zram stores raw (3625 at chain 8).
        class_for_size: a list of 4097 class ids: ``class_for_size[n]`` is the class serving
            ``zs_malloc(n)`` (the header is added inside the lookup, as in zsmalloc).
    """

    def __init__(self, chain_size: int = DEFAULT_CHAIN_SIZE) -> None:
        if not 1 <= chain_size <= 16:
            raise ValueError(f"chain size {chain_size} outside 1..16")
        self.chain_size = chain_size
        by_index: list[tuple[int, int, int, int] | None] = [None] * NUM_INDICES
        huge_class_size = 0
        prev: tuple[int, int, int, int] | None = None  # (index, size, pages, objs)
        for index in range(NUM_INDICES - 1, -1, -1):
            size = min(MIN_ALLOC_SIZE + index * CLASS_DELTA, MAX_ALLOC_SIZE)
            pages = chain_length(size, chain_size)
            objs = pages * PAGE_SIZE // size
            if pages != 1 and objs != 1 and not huge_class_size:
                # The first class (from the top) that is not one-object-per-page: anything whose
                # size plus the 8-byte header exceeds it lands in the huge class.
                huge_class_size = size - (HANDLE_SIZE - 1)
            if prev is not None and prev[2] == pages and prev[3] == objs:
                by_index[index] = prev  # merged into the next larger class
                continue
            prev = (index, size, pages, objs)
            by_index[index] = prev
        entries = [entry for entry in by_index if entry is not None]
        assert len(entries) == NUM_INDICES, "every index was given a class above"
        distinct = sorted(set(entries), key=lambda e: e[1])
        cid_of = {entry: cid for cid, entry in enumerate(distinct)}
        self.classes: tuple[SizeClass, ...] = tuple(
            SizeClass(cid, index, size, pages, objs, huge=(pages == 1 and objs == 1))
            for cid, (index, size, pages, objs) in enumerate(distinct)
        )
        self.huge_class_size = huge_class_size
        self._cid_by_index = [cid_of[entry] for entry in entries]
        self.class_for_size = [self._cid_by_index[0]] + [
            self._cid_by_index[class_index(n)] for n in range(1, MAX_ALLOC_SIZE + 1)
        ]

    def __len__(self) -> int:
        return len(self.classes)

    def lookup(self, alloc_size: int) -> SizeClass:
        """The class that ``zs_malloc(alloc_size)`` uses (1 <= alloc_size <= 4096)."""
        return self.classes[self.class_for_size[alloc_size]]


def class_index(alloc_size: int) -> int:
    """The kernel's class index for ``zs_malloc(alloc_size)``: the 8-byte header is added first,
    then ``ceil((n - 32) / 16)``, capped at the last index (254)."""
    n = alloc_size + HANDLE_SIZE
    if n <= MIN_ALLOC_SIZE:
        return 0
    return min(NUM_INDICES - 1, -(-(n - MIN_ALLOC_SIZE) // CLASS_DELTA))

"""The compressed page pool: zsmalloc, rebuilt in Python over one memory arena.

Owns: the arena of 4 KiB page frames, zspages and their fullness lists, object allocation and
freeing, object reads and writes, compaction, and the pool's accounting (pages in use, peak,
objects per class, the debugfs-style ``classes`` table).
Must not: compress, know what an object means, speak errno, or import trio or pyfuse3. It is plain
synchronous code; callers serialise access (the device holds one lock around every call).

Design
======

Why zsmalloc. zram stores each 4 KiB page compressed, so objects range from a few bytes to a full
page and are freed in any order. A general-purpose allocator would either waste the tail of every
page (one object per page, like zbud's two) or need large contiguous blocks. zsmalloc instead sorts
objects into *size classes* 16 bytes apart, and packs each class into *zspages*: chains of 1 to 8
separate page frames chosen so the class tiles them with the least waste (a 1536-byte class uses 3
frames and holds exactly 8 objects). Objects may straddle two frames of the chain. The waste inside
a zspage is at most ~1.6%; the real overhead is rounding up to the class and the last, partly
filled zspage of each class. Memory comes back only when a zspage empties or by compaction.

The arena. All frames live in one anonymous mapping reserved for the pool's maximum up front
(``MAP_NORESERVE``: address space only) and committed by the kernel as frames are first touched.
Frames are handed out from a LIFO stack of released frames first, then from the untouched tail, so
the committed memory is the pool's high-water mark and is reused rather than returned: the pool
grows up to its maximum and never gives memory back to the OS, so a running daemon does not ask the
kernel for pages it may have to reclaim through the very device it serves. Growing past the
maximum raises `PoolExhausted` and changes nothing.

Locations. ``zs_malloc`` returns a location, ``zspage << 11 | object index``. The kernel hands out
a *handle* (a pointer to a slab slot holding the location) so that compaction can move objects;
here the pool keeps no handle table at all. Every non-huge object starts with an 8-byte header
holding ``owner << 1 | 1``, where the owner is an integer chosen by the caller (zram uses the slot
index). Compaction reads the owner from the header of each object it moves and calls
``relocate(owner, new_location)``, so the owner's own table is updated in place. That saves the
kernel's 8-byte handle slot per object and one indirection per access. A huge object (the
4096-byte class, one object per frame) has no header, exactly as in zsmalloc, and its owner is kept
in a per-zspage array (zsmalloc keeps it in the page descriptor).

Free objects. A free object's header holds ``next_free << 1`` (tag bit clear): the zspage's free
list lives in the arena and is last-in first-out, as in zsmalloc. A new zspage is not initialised
object by object; its free list is "the freed objects, then the never-used tail in index order",
which is exactly the order zsmalloc's fully linked initial list yields, tracked by a bump index.

Fullness groups. Each class keeps 12 doubly linked lists of zspages by in-use ratio: 0 (empty,
never populated: an empty zspage is released at once), 1..10 for (0%,10%) ... [90%,100%), and 11
for full. A zspage moves to the *head* of its new list whenever its group changes. Allocation takes
the head of the fullest non-full group (a per-class bitmask finds it in O(1)); if there is none a
new zspage is built. Compaction walks the classes from largest to smallest and, while at least one
zspage's worth of objects is free in a class, moves the objects of the emptiest zspage into the
fullest one, releasing every source it empties and counting the pages in `pages_compacted`.

Layout of the bookkeeping. Everything is in compact arrays indexed by zspage id or class id; there
is no Python object per zspage or per object. Metadata per stored object: the 8-byte header (part
of the class size, as in the kernel) plus the caller's own slot; per zspage 65 bytes of arrays.
The per-zspage arrays are reserved for the maximum in anonymous mappings and committed only as
zspage ids come into use, so a pool costs memory for what it holds, not for what it could hold.
"""

from __future__ import annotations

import mmap
import struct
from array import array
from collections.abc import Callable
from typing import Literal

from zramd.core import memory
from zramd.core.records import ClassStats, PoolExhausted
from zramd.core.size_classes import DEFAULT_CHAIN_SIZE, HANDLE_SIZE, SizeClassTable
from zramd.core.units import PAGE_SHIFT, PAGE_SIZE

OBJ_INDEX_BITS = 11  # a zspage holds at most 16 * 4096 / 32 = 2048 objects
OBJ_INDEX_MASK = (1 << OBJ_INDEX_BITS) - 1
FREE_END = -1  # end of a zspage's in-arena free list

# Fullness groups, as zsmalloc's enum fullness_group.
RATIO_0 = 0  # empty: released at once, so never listed for long
RATIO_99 = 10  # 90% .. <100%
RATIO_100 = 11  # full
NR_GROUPS = 12

_MAP_NORESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000)  # Linux value; Python 3.11 lacks the name
IntFormat = Literal["B", "H", "h", "i", "I", "q", "Q"]


def _fullness_group(inuse: int, objs: int) -> int:
    """zsmalloc's ``get_fullness_group``: 0 empty, 11 full, else ratio // 10 + 1 (so a zspage
    with 1 of 127 objects in use is in the 10% group, not the empty one)."""
    if inuse == 0:
        return RATIO_0
    if inuse == objs:
        return RATIO_100
    return 100 * inuse // objs // 10 + 1


def _no_relocate(owner: int, location: int) -> None:
    raise RuntimeError("compaction moved an object but the pool has no relocate callback")


class ZsPool:
    """A zsmalloc-style pool of compressed objects in one arena of at most `max_pages` frames.

    Attributes:
        table: the size-class table (`SizeClassTable`).
        max_pages: the most frames the pool may ever hold.
        pages_allocated: frames currently held by zspages (zram's mem_used_total / 4096).
        pages_compacted: frames released by `compact` since the pool was made.
        frames_touched: frames ever handed out, i.e. committed memory (the high-water mark).
    """

    def __init__(
        self,
        max_pages: int,
        chain_size: int = DEFAULT_CHAIN_SIZE,
        relocate: Callable[[int, int], None] = _no_relocate,
    ) -> None:
        if max_pages < 1:
            raise ValueError("a pool needs room for at least one page")
        self.table = SizeClassTable(chain_size)
        self.max_pages = max_pages
        self.relocate = relocate
        self.chain = chain_size
        self.pages_allocated = 0
        self.pages_compacted = 0
        self.frames_touched = 0
        self._arena = mmap.mmap(
            -1, max_pages << PAGE_SHIFT, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE
        )
        self._mem = memoryview(self._arena)
        self._bytes = self._mem  # the same bytes; typed unsigned char[::1] in the compiled build
        self._words = memoryview(self._arena).cast("q")  # the arena as 8-byte words: object headers
        classes = self.table.classes
        nclasses = len(classes)
        # Per class (indexed by cid).
        self._class_for_size = array("H", self.table.class_for_size)
        self._size = array("H", [c.size for c in classes])
        self._pages = array("B", [c.pages_per_zspage for c in classes])
        self._objs = array("H", [c.objs_per_zspage for c in classes])
        self._huge_cid = next(c.cid for c in classes if c.huge)
        # _group_of[_group_base[cid] + inuse]: the fullness group of a zspage of class cid with
        # `inuse` live objects, precomputed for every class in one flat table.
        bases, table = [], bytearray()
        for c in classes:
            bases.append(len(table))
            table += bytes(
                _fullness_group(inuse, c.objs_per_zspage) for inuse in range(c.objs_per_zspage + 1)
            )
        self._group_base = array("I", bases)
        self._group_of = bytes(table)
        self._objs_allocated = array("q", bytes(8 * nclasses))
        self._objs_used = array("q", bytes(8 * nclasses))
        self._group_heads = array("i", [-1]) * (nclasses * NR_GROUPS)  # list heads, class*12+group
        self._group_count = array("i", bytes(4 * nclasses * NR_GROUPS))
        self._nonfull_mask = array("I", bytes(4 * nclasses))  # bit g set: group g (1..10) has zspages
        # Per zspage (indexed by zspage id; at most one zspage per frame). These arrays live in a
        # second reserved mapping, so they cost memory only for the zspage ids actually used.
        self._meta = ReservedArrays(max_pages)
        self._zs_class = self._meta.carve("H", 1)  # class id
        self._zs_inuse = self._meta.carve("H", 1)  # live objects
        self._zs_group = self._meta.carve("B", 1)  # fullness group
        self._zs_free = self._meta.carve("h", 1)  # head of the in-arena free list, or FREE_END
        self._zs_bump = self._meta.carve("H", 1)  # objects below this index have been handed out
        self._zs_prev = self._meta.carve("i", 1)  # fullness-list links
        self._zs_next = self._meta.carve("i", 1)
        self._zs_frames = self._meta.carve("i", chain_size)  # the chain's frames, in order
        self._zs_huge_owner = self._meta.carve("q", 1)  # owner of a huge (header-less) object
        # Released zspage ids and frames are stacks (reused first); beyond them lie never-used
        # ids and frames, handed out in order: `zspage_ids_touched` and `frames_touched`.
        self._free_ids = self._meta.carve("i", 1)
        self._nfree_ids = 0
        self.zspage_ids_touched = 0
        self._free_frames = self._meta.carve("i", 1)
        self._nfree_frames = 0
        self._nreleased = 0  # _free_frames[:_nreleased] were given back to the OS
        self._arena_address = 0

    # ------------------------------------------------------------------ allocation

    def malloc(self, size: int, owner: int) -> int:
        """Allocate an object for `size` bytes on behalf of `owner`; return its location.

        Mirrors ``zs_malloc``: the 8-byte header is added before the class lookup, the fullest
        non-full zspage of the class is used, else a new zspage is built. Raises ValueError for
        a size outside 1..4096 and `PoolExhausted` when a new zspage does not fit. This is the
        per-page hot path, so `_obj_malloc` and the fullness-group fix-up are written out inline
        here (compaction uses the out-of-line versions).
        """
        if not 0 < size <= PAGE_SIZE:
            raise ValueError(f"object size {size} outside 1..{PAGE_SIZE}")
        cid = self._class_for_size[size]
        mask = self._nonfull_mask[cid]
        if mask:
            group = RATIO_99  # the fullest non-full group that has zspages: mask's top bit
            while not mask >> group & 1:
                group -= 1
            zspage = self._group_heads[cid * NR_GROUPS + group]
        else:
            zspage = self._alloc_zspage(cid)
            group = RATIO_0  # not on any list yet
        if cid == self._huge_cid:
            self._zs_huge_owner[zspage] = owner
            index = 0
        else:
            free = self._zs_free
            index = free[zspage]
            if index >= 0:
                offset = self._object_offset(zspage, cid, index)
                free[zspage] = self._words[offset >> 3] >> 1
            else:  # no freed objects: hand out the next never-used one
                index = self._zs_bump[zspage]
                self._zs_bump[zspage] = index + 1
                offset = self._object_offset(zspage, cid, index)
            self._words[offset >> 3] = owner << 1 | 1
        inuse = self._zs_inuse[zspage] + 1
        self._zs_inuse[zspage] = inuse
        new_group = self._group_of[self._group_base[cid] + inuse]
        if new_group != group:
            if group == RATIO_0:
                self._insert(zspage, cid, new_group)
            else:
                self._move(zspage, cid, new_group)
        self._objs_used[cid] += 1
        return zspage << OBJ_INDEX_BITS | index

    def store(self, data: bytes, owner: int) -> int:
        """`malloc` for ``len(data)`` bytes and `write` `data` into it, in one step (the write
        path's common case)."""
        location = self.malloc(len(data), owner)
        self.write(location, data)
        return location

    def free(self, location: int) -> None:
        """Free the object at `location` (``zs_free``); an emptied zspage is released at once."""
        zspage = location >> OBJ_INDEX_BITS
        cid = self._zs_class[zspage]
        self._objs_used[cid] -= 1
        if cid == self._huge_cid:
            self._zs_huge_owner[zspage] = 0
        else:
            index = location & OBJ_INDEX_MASK
            offset = self._object_offset(zspage, cid, index)
            self._words[offset >> 3] = self._zs_free[zspage] * 2  # * 2, not << 1: the end mark is -1
            self._zs_free[zspage] = index
        inuse = self._zs_inuse[zspage] - 1
        self._zs_inuse[zspage] = inuse
        if inuse == 0:
            self._free_zspage(zspage, cid)
            return
        new_group = self._group_of[self._group_base[cid] + inuse]
        if new_group != self._zs_group[zspage]:
            self._move(zspage, cid, new_group)

    def _obj_malloc(self, zspage: int, cid: int, owner: int) -> int:
        """Take the head of `zspage`'s free list and tag it with `owner`; return the location."""
        if cid == self._huge_cid:
            self._zs_huge_owner[zspage] = owner
            index = 0
        else:
            index = self._zs_free[zspage]
            if index >= 0:
                offset = self._object_offset(zspage, cid, index)
                self._zs_free[zspage] = self._words[offset >> 3] >> 1
            else:  # no freed objects: hand out the next never-used one
                index = self._zs_bump[zspage]
                offset = self._object_offset(zspage, cid, index)
                self._zs_bump[zspage] = index + 1
            self._words[offset >> 3] = owner << 1 | 1
        self._zs_inuse[zspage] += 1
        return zspage << OBJ_INDEX_BITS | index

    def _obj_free(self, zspage: int, cid: int, index: int) -> None:
        if cid == self._huge_cid:
            self._zs_huge_owner[zspage] = 0
        else:
            offset = self._object_offset(zspage, cid, index)
            self._words[offset >> 3] = self._zs_free[zspage] * 2  # * 2, not << 1: the end mark is -1
            self._zs_free[zspage] = index
        self._zs_inuse[zspage] -= 1

    def _byte_offset(self, zspage: int, start: int) -> int:
        """Arena offset of byte `start` of `zspage`, counted across its chain of frames: the one
        place that maps a zspage-relative position to the arena (frames are not contiguous)."""
        return (self._zs_frames[zspage * self.chain + (start >> PAGE_SHIFT)] << PAGE_SHIFT) + (
            start & (PAGE_SIZE - 1)
        )

    def _object_offset(self, zspage: int, cid: int, index: int) -> int:
        """Arena offset of the first byte (the header) of object `index` of `zspage`."""
        return self._byte_offset(zspage, index * self._size[cid])

    def _span(self, zspage: int, cid: int, index: int, skip: int, n: int) -> tuple[int, int, int]:
        """Where `n` bytes of object `index` of `zspage` lie, from `skip` bytes into it (0: the
        whole chunk, HANDLE_SIZE: the payload): (arena offset, bytes there, arena offset of the
        rest or -1). Object starts are 16-byte aligned, so the header never straddles frames; the
        rest may continue at the start of the zspage's next frame."""
        start = index * self._size[cid] + skip
        room = PAGE_SIZE - (start & (PAGE_SIZE - 1))
        first = self._byte_offset(zspage, start)
        if n <= room:
            return first, n, -1
        return first, room, self._byte_offset(zspage, start + room)

    # ------------------------------------------------------------------ zspages and fullness

    def _alloc_zspage(self, cid: int) -> int:
        pages = self._pages[cid]
        if self._nfree_frames + (self.max_pages - self.frames_touched) < pages:
            raise PoolExhausted(
                f"pool full: {self.pages_allocated} of {self.max_pages} pages in use, "
                f"a new zspage needs {pages}"
            )
        if self._nfree_ids:
            self._nfree_ids -= 1
            zspage = self._free_ids[self._nfree_ids]
        else:
            zspage = self.zspage_ids_touched
            self.zspage_ids_touched += 1
        base = zspage * self.chain
        frames = self._zs_frames
        for i in range(pages):
            if self._nfree_frames:
                self._nfree_frames -= 1
                frames[base + i] = self._free_frames[self._nfree_frames]
                if self._nreleased > self._nfree_frames:
                    self._nreleased = self._nfree_frames  # a released frame faults in again
            else:
                frames[base + i] = self.frames_touched
                self.frames_touched += 1
        self._zs_class[zspage] = cid
        self._zs_inuse[zspage] = 0
        self._zs_free[zspage] = FREE_END
        self._zs_bump[zspage] = 0
        self.pages_allocated += pages
        self._objs_allocated[cid] += self._objs[cid]
        return zspage

    def _free_zspage(self, zspage: int, cid: int) -> None:
        self._remove(zspage, cid)
        pages = self._pages[cid]
        base = zspage * self.chain
        for i in range(pages - 1, -1, -1):  # pushed in reverse, so reuse takes them in order
            self._free_frames[self._nfree_frames] = self._zs_frames[base + i]
            self._nfree_frames += 1
        self._free_ids[self._nfree_ids] = zspage
        self._nfree_ids += 1
        self.pages_allocated -= pages
        self._objs_allocated[cid] -= self._objs[cid]

    @property
    def frames_resident(self) -> int:
        """Frames of the arena in memory: every frame ever handed out, less those released."""
        return self.frames_touched - self._nreleased

    def release_free_frames(self) -> int:
        """Give the free frames kept for reuse back to the OS (`zramd.core.memory.discard`);
        returns how many went. They stay on the free stack and fault in again when reused, so
        this trades the pool's never-shrink rule for memory: the caller opts in."""
        if self._arena_address == 0:
            self._arena_address = memory.mapping_address(self._arena)
        released = 0
        for pos in range(self._nreleased, self._nfree_frames):
            memory.discard(self._arena, self._arena_address, self._free_frames[pos] << PAGE_SHIFT, PAGE_SIZE)
            released += 1
        self._nreleased = self._nfree_frames
        return released

    def _fullness(self, zspage: int, cid: int) -> int:
        return self._group_of[self._group_base[cid] + self._zs_inuse[zspage]]

    def _move(self, zspage: int, cid: int, group: int) -> None:
        """`_remove` then `_insert` (``fix_fullness_group``'s move), written out in one function
        because the write path moves a zspage on most allocations and frees."""
        prev_of, next_of, heads, counts = self._zs_prev, self._zs_next, self._group_heads, self._group_count
        old = self._zs_group[zspage]
        base = cid * NR_GROUPS
        prev, nxt = prev_of[zspage], next_of[zspage]
        if prev >= 0:
            next_of[prev] = nxt
        else:
            heads[base + old] = nxt
            if nxt < 0 and RATIO_0 < old < RATIO_100:
                self._nonfull_mask[cid] &= ~(1 << old)
        if nxt >= 0:
            prev_of[nxt] = prev
        counts[base + old] -= 1
        head = heads[base + group]
        prev_of[zspage] = -1
        next_of[zspage] = head
        if head >= 0:
            prev_of[head] = zspage
        elif RATIO_0 < group < RATIO_100:
            self._nonfull_mask[cid] |= 1 << group
        heads[base + group] = zspage
        counts[base + group] += 1
        self._zs_group[zspage] = group

    def _insert(self, zspage: int, cid: int, group: int) -> None:
        """Put `zspage` at the head of its class's list for `group` (``insert_zspage``)."""
        slot = cid * NR_GROUPS + group
        head = self._group_heads[slot]
        self._zs_prev[zspage] = -1
        self._zs_next[zspage] = head
        if head >= 0:
            self._zs_prev[head] = zspage
        elif RATIO_0 < group < RATIO_100:
            self._nonfull_mask[cid] |= 1 << group
        self._group_heads[slot] = zspage
        self._group_count[slot] += 1
        self._zs_group[zspage] = group

    def _remove(self, zspage: int, cid: int) -> None:
        """Unlink `zspage` from its current group list (``remove_zspage``)."""
        group = self._zs_group[zspage]
        slot = cid * NR_GROUPS + group
        prev, nxt = self._zs_prev[zspage], self._zs_next[zspage]
        if prev >= 0:
            self._zs_next[prev] = nxt
        else:
            self._group_heads[slot] = nxt
            if nxt < 0 and RATIO_0 < group < RATIO_100:
                self._nonfull_mask[cid] &= ~(1 << group)
        if nxt >= 0:
            self._zs_prev[nxt] = prev
        self._group_count[slot] -= 1

    # ------------------------------------------------------------------ object contents

    def write(self, location: int, data: bytes | memoryview) -> None:
        """Copy `data` into the object at `location` (after its header), splitting the copy when
        the object straddles two frames (``zs_obj_write``)."""
        zspage = location >> OBJ_INDEX_BITS
        cid = self._zs_class[zspage]
        skip = 0 if cid == self._huge_cid else HANDLE_SIZE
        self._save(zspage, cid, location & OBJ_INDEX_MASK, skip, data)

    def read(self, location: int, size: int) -> bytes:
        """The first `size` bytes stored in the object at `location`, joined into one buffer when
        the object straddles two frames (``zs_obj_read_begin`` with a local copy)."""
        zspage = location >> OBJ_INDEX_BITS
        cid = self._zs_class[zspage]
        skip = 0 if cid == self._huge_cid else HANDLE_SIZE
        return self._load(zspage, cid, location & OBJ_INDEX_MASK, skip, size)

    def _load(self, zspage: int, cid: int, index: int, skip: int, n: int) -> bytes:
        """`n` bytes of object `index` of `zspage`, from `skip` on (see `_span`)."""
        first, head, second = self._span(zspage, cid, index, skip, n)
        if second < 0:
            return self._arena[first : first + n]
        return self._arena[first : first + head] + self._arena[second : second + n - head]

    def _save(self, zspage: int, cid: int, index: int, skip: int, data: bytes | memoryview) -> None:
        """The inverse of `_load`: copy `data` into object `index` of `zspage` from `skip` on."""
        n = len(data)
        first, head, second = self._span(zspage, cid, index, skip, n)
        if second < 0:
            self._mem[first : first + n] = data
        else:
            view = memoryview(data)
            self._mem[first : first + head] = view[:head]
            self._mem[second : second + n - head] = view[head:]

    def store_from(self, src: bytes | bytearray | memoryview, start: int, size: int, owner: int) -> int:
        """`store` for the `size` bytes at ``src[start:]`` (the write path's staging buffer),
        without a bytes object in between."""
        location = self.malloc(size, owner)
        zspage = location >> OBJ_INDEX_BITS
        cid = self._zs_class[zspage]
        skip = 0 if cid == self._huge_cid else HANDLE_SIZE
        at = (location & OBJ_INDEX_MASK) * self._size[cid] + skip
        head = min(size, PAGE_SIZE - (at & (PAGE_SIZE - 1)))  # the rest continues in the next frame
        first = self._byte_offset(zspage, at)
        self._bytes[first : first + head] = src[start : start + head]
        if head < size:
            second = self._byte_offset(zspage, at + head)
            self._bytes[second : second + size - head] = src[start + head : start + size]
        return location

    def read_into(self, location: int, size: int, dst: bytearray | memoryview, start: int) -> None:
        """`read` into ``dst[start:start + size]`` (the read path's staging or reply buffer): the
        inverse of `store_from`."""
        zspage = location >> OBJ_INDEX_BITS
        cid = self._zs_class[zspage]
        skip = 0 if cid == self._huge_cid else HANDLE_SIZE
        at = (location & OBJ_INDEX_MASK) * self._size[cid] + skip
        head = min(size, PAGE_SIZE - (at & (PAGE_SIZE - 1)))
        first = self._byte_offset(zspage, at)
        dst[start : start + head] = self._bytes[first : first + head]
        if head < size:
            second = self._byte_offset(zspage, at + head)
            dst[start + head : start + size] = self._bytes[second : second + size - head]

    def owner(self, location: int) -> int:
        """The owner recorded for the live object at `location`."""
        zspage = location >> OBJ_INDEX_BITS
        cid = self._zs_class[zspage]
        if cid == self._huge_cid:
            return self._zs_huge_owner[zspage]
        header = self._words[self._object_offset(zspage, cid, location & OBJ_INDEX_MASK) >> 3]
        if not header & 1:
            raise ValueError(f"location {location:#x} is not an allocated object")
        return int(header >> 1)

    def object_class_size(self, location: int) -> int:
        """The class size (bytes, header included) of the object at `location`."""
        return self._size[self._zs_class[location >> OBJ_INDEX_BITS]]

    # ------------------------------------------------------------------ compaction

    def compact(self) -> int:
        """Run ``zs_compact``: per class, largest first, move objects from the emptiest zspages
        into the fullest ones and release the emptied zspages. Returns the pages freed, which are
        also added to `pages_compacted`. Every moved object's owner is told its new location."""
        freed = 0
        for cid in range(len(self._size) - 1, -1, -1):
            freed += self._compact_class(cid)
        self.pages_compacted += freed
        return freed

    def can_compact(self, cid: int) -> int:
        """Pages that compacting class `cid` could free now (``zs_can_compact``)."""
        wasted = self._objs_allocated[cid] - self._objs_used[cid]
        if wasted <= 0:
            return 0
        return wasted // self._objs[cid] * self._pages[cid]

    def _compact_class(self, cid: int) -> int:
        freed = 0
        dst = -1
        while self.can_compact(cid):
            if dst < 0:
                dst = self._isolate(cid, range(RATIO_99, RATIO_0, -1))
                if dst < 0:
                    break
            src = self._isolate(cid, range(RATIO_0 + 1, RATIO_99 + 1))
            if src < 0:
                break
            self._migrate(cid, src, dst)
            group = self._fullness(src, cid)
            self._insert(src, cid, group)  # putback_zspage
            if group == RATIO_0:
                self._free_zspage(src, cid)
                freed += self._pages[cid]
            if self._fullness(dst, cid) == RATIO_100:
                self._insert(dst, cid, RATIO_100)
                dst = -1
        if dst >= 0:
            self._insert(dst, cid, self._fullness(dst, cid))
        return freed

    def _isolate(self, cid: int, groups: range) -> int:
        for group in groups:
            zspage = self._group_heads[cid * NR_GROUPS + group]
            if zspage >= 0:
                self._remove(zspage, cid)
                return zspage
        return -1

    def _migrate(self, cid: int, src: int, dst: int) -> None:
        """Move live objects of `src` into `dst` in index order until `dst` is full or `src`
        empty (``migrate_zspage``)."""
        size = self._size[cid]
        objs = self._objs[cid]
        for index in range(self._zs_bump[src]):
            header = self._words[self._object_offset(src, cid, index) >> 3]
            if not header & 1:
                continue
            owner = header >> 1
            old = src << OBJ_INDEX_BITS | index
            chunk = self._load(src, cid, index, 0, size)  # the whole chunk, header included
            new = self._obj_malloc(dst, cid, owner)
            self._save(dst, cid, new & OBJ_INDEX_MASK, 0, chunk)
            self.relocate(owner, new)
            self._obj_free(src, cid, old & OBJ_INDEX_MASK)
            if self._zs_inuse[dst] == objs or self._zs_inuse[src] == 0:
                break

    # ------------------------------------------------------------------ accounting

    @property
    def objects_used(self) -> int:
        """Live objects in the whole pool."""
        return sum(self._objs_used)

    def class_stats(self) -> list[ClassStats]:
        """One `ClassStats` per distinct class, smallest first (rendered by
        `zramd.core.attrs.format_classes`)."""
        rows = []
        for c in self.table.classes:
            base = c.cid * NR_GROUPS
            allocated = self._objs_allocated[c.cid]
            rows.append(
                ClassStats(
                    index=c.index,
                    size=c.size,
                    zspages_by_group=tuple(self._group_count[base + 1 : base + NR_GROUPS]),
                    objs_allocated=allocated,
                    objs_used=self._objs_used[c.cid],
                    pages_used=allocated // c.objs_per_zspage * c.pages_per_zspage,
                    pages_per_zspage=c.pages_per_zspage,
                    objs_per_zspage=c.objs_per_zspage,
                    freeable=self.can_compact(c.cid),
                )
            )
        return rows

    def metadata_bytes(self) -> int:
        """Bytes of bookkeeping the pool has committed beside the arena: the per-zspage arrays for
        the zspage ids used so far, plus the fixed per-class tables."""
        per_class = 4 * (len(self._group_heads) + len(self._group_count))  # "i" arrays
        per_class += 8 * (len(self._objs_allocated) + len(self._objs_used))  # "q" arrays
        per_zspage = self._meta.bytes_per_entry()
        return per_class + per_zspage * self.zspage_ids_touched

    def check_consistency(self) -> dict[int, int]:
        """Recount everything from the zspage arrays and raise AssertionError on any mismatch
        with the running counters. Returns {location: owner} for every live object."""
        live: dict[int, int] = {}
        pages = 0
        objs_allocated = [0] * len(self._size)
        objs_used = [0] * len(self._size)
        group_count = [0] * len(self._group_count)
        listed: set[int] = set()
        for cid in range(len(self._size)):
            for group in range(NR_GROUPS):
                slot = cid * NR_GROUPS + group
                zspage, prev = self._group_heads[slot], -1
                while zspage >= 0:
                    assert zspage not in listed, f"zspage {zspage} listed twice"
                    listed.add(zspage)
                    assert self._zs_prev[zspage] == prev, f"broken prev link at zspage {zspage}"
                    assert self._zs_class[zspage] == cid
                    assert self._zs_group[zspage] == group
                    assert group != RATIO_0, f"empty zspage {zspage} not released"
                    assert self._fullness(zspage, cid) == group, f"zspage {zspage} in wrong group"
                    group_count[slot] += 1
                    pages += self._pages[cid]
                    objs_allocated[cid] += self._objs[cid]
                    inuse = self._count_live(zspage, cid, live)
                    assert inuse == self._zs_inuse[zspage], f"zspage {zspage}: {inuse} live objects"
                    objs_used[cid] += inuse
                    prev, zspage = zspage, self._zs_next[zspage]
                has_any = self._group_heads[slot] >= 0
                if RATIO_0 < group < RATIO_100:
                    assert bool(self._nonfull_mask[cid] >> group & 1) == has_any, "stale nonfull mask"
        assert pages == self.pages_allocated, f"pages {pages} != counter {self.pages_allocated}"
        assert objs_allocated == list(self._objs_allocated), "objs_allocated counters disagree"
        assert objs_used == list(self._objs_used), "objs_used counters disagree"
        assert group_count == list(self._group_count), "group counters disagree"
        assert len(listed) + self._nfree_ids == self.zspage_ids_touched, "zspage ids leaked"
        assert pages + self._nfree_frames == self.frames_touched, "frames leaked"
        return live

    def _count_live(self, zspage: int, cid: int, live: dict[int, int]) -> int:
        if cid == self._huge_cid:
            live[zspage << OBJ_INDEX_BITS] = self._zs_huge_owner[zspage]
            return 1
        free: set[int] = set()
        index = self._zs_free[zspage]
        while index != FREE_END:
            assert index not in free and index < self._zs_bump[zspage], "corrupt free list"
            free.add(index)
            index = self._words[self._object_offset(zspage, cid, index) >> 3] >> 1
        count = 0
        for index in range(self._zs_bump[zspage]):
            header = self._words[self._object_offset(zspage, cid, index) >> 3]
            assert bool(header & 1) != (index in free), f"object {index} tag disagrees with free list"
            if header & 1:
                live[zspage << OBJ_INDEX_BITS | index] = header >> 1
                count += 1
        return count

    def close(self) -> None:
        """Release the arena and the bookkeeping (the pool is unusable afterwards).

        The views of the mappings are first rebound to empty arrays: a compiled build holds a
        buffer of its own on each, which would keep the mappings from being closed."""
        self._words = _empty("q")
        self._zs_class = self._zs_inuse = self._zs_bump = _empty("H")
        self._zs_group = _empty("B")
        self._zs_free = _empty("h")
        self._zs_prev = self._zs_next = self._zs_frames = self._free_ids = self._free_frames = _empty("i")
        self._zs_huge_owner = _empty("q")
        self._bytes = _empty("B")
        self._mem.release()
        self._arena.close()
        self._meta.close()


def _empty(fmt: IntFormat) -> memoryview[int]:
    """A writable typed view of no elements."""
    return memoryview(bytearray()).cast(fmt)


def empty_class_stats(table: SizeClassTable) -> list[ClassStats]:
    """The class rows of a pool that holds nothing (an uninitialised device's ``classes``)."""
    return [
        ClassStats(c.index, c.size, (0,) * (NR_GROUPS - 1), 0, 0, 0, c.pages_per_zspage, c.objs_per_zspage, 0)
        for c in table.classes
    ]


class ReservedArrays:
    """Typed arrays of `entries` elements carved out of one reserved anonymous mapping.

    The mapping is ``MAP_NORESERVE`` and zero-filled by the kernel, so an array costs memory only
    for the pages of it that are touched, and element access is as fast as `array.array`. The
    pool keeps its per-zspage arrays in one, the device its slot table in another.
    """

    def __init__(self, entries: int) -> None:
        self.entries = entries
        self._specs: list[tuple[str, int]] = []
        self._views: list[memoryview[int]] = []
        self._maps: list[mmap.mmap] = []

    def carve(self, fmt: IntFormat, per_entry: int) -> memoryview[int]:
        nbytes = struct.calcsize(fmt) * per_entry * self.entries
        region = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE)
        raw = memoryview(region)
        view = raw.cast(fmt)
        self._maps.append(region)
        self._views.extend((view, raw))
        self._specs.append((fmt, per_entry))
        return view

    def bytes_per_entry(self) -> int:
        return sum(struct.calcsize(fmt) * per for fmt, per in self._specs)

    def close(self) -> None:
        for view in self._views:
            view.release()
        for region in self._maps:
            region.close()

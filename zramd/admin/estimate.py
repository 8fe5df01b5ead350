"""`zramd estimate`: how much RAM would zram need for this data, without a device?

Owns: feeding an image (a file or a block device) page by page through a real `ZramDevice` (so the
same-filled / compress / huge rules and the pool are exactly those of the write path), replaying a
list of per-page outcomes (``S``, ``H`` or a compressed length, one line per page) through the
pool, and describing the result in words.
Must not: print (the CLI does) or mount anything.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from zramd.core.attrs import format_classes
from zramd.core.device import is_huge, pool_pages_for
from zramd.core.engine import ZramDevice, ZsPool
from zramd.core.errors import UserError
from zramd.core.records import MmStat
from zramd.core.units import PAGE_SHIFT, PAGE_SIZE, format_size, round_up_to_page

CHUNK = 1 << 20
ProgressCallback = Callable[[int, int], None]  # (bytes done, bytes total)


@dataclass(frozen=True, slots=True)
class Estimate:
    """The outcome of an estimate: the mm_stat the device would show, and the pool's classes."""

    mm_stat: MmStat
    classes: str


def image_size(path: str) -> int:
    """Size in bytes of a regular file or a block device."""
    try:
        with open(path, "rb") as f:
            return f.seek(0, os.SEEK_END)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None


def estimate_image(path: str, algorithm: str, progress: ProgressCallback | None = None) -> Estimate:
    """Write the image at `path` through a device of the same size and return what it shows.
    A last partial page is padded with zeros, as a block device holds whole pages only."""
    size = image_size(path)
    if size == 0:
        raise UserError(f"{path} is empty")
    device = ZramDevice()
    device.set_comp_algorithm(algorithm)
    device.set_disksize(round_up_to_page(size))
    try:
        done = 0
        with open(path, "rb", buffering=0) as image:
            while done < size:
                chunk = image.read(CHUNK)
                if not chunk:
                    break
                if len(chunk) % PAGE_SIZE:
                    chunk += bytes(PAGE_SIZE - len(chunk) % PAGE_SIZE)
                device.write(done, chunk)
                done += len(chunk)
                if progress:
                    progress(min(done, size), size)
        return Estimate(device.statistics().mm, format_classes(device.class_stats()))
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    finally:
        device.reset()


def estimate_sizes(lines: Iterable[str], progress: ProgressCallback | None = None) -> Estimate:
    """Replay per-page outcomes (``S`` same-filled, ``H`` huge, or the compressed length) into a
    pool, in order, with zram's accounting: same pages cost nothing, huge pages 4096 bytes."""
    outcomes = []
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line in ("S", "H"):
            outcomes.append(line)
            continue
        try:
            length = int(line)
        except ValueError:
            raise UserError(f"line {number}: expected S, H or a compressed length, got {line!r}") from None
        if not 0 < length <= PAGE_SIZE:
            raise UserError(f"line {number}: compressed length {length} outside 1..{PAGE_SIZE}")
        outcomes.append(line)
    pages = len(outcomes)
    pool = ZsPool(pool_pages_for(pages << PAGE_SHIFT), relocate=lambda owner, location: None)
    try:
        huge_class_size = pool.table.huge_class_size
        compr = same = huge = 0
        for index, outcome in enumerate(outcomes):
            if outcome == "S":
                same += 1
                continue
            size = PAGE_SIZE if outcome == "H" else int(outcome)
            if is_huge(size, huge_class_size):  # a length the kernel would have stored raw
                size = PAGE_SIZE
            huge += size == PAGE_SIZE
            pool.malloc(size, index)
            compr += size
            if progress and index % 4096 == 0:
                progress(index << PAGE_SHIFT, pages << PAGE_SHIFT)  # in bytes of data, like images
        used = pool.pages_allocated << PAGE_SHIFT
        # An append-only replay: nothing is freed, so the peak is the final size.
        stat = MmStat(
            orig_data_size=pages << PAGE_SHIFT,
            compr_data_size=compr,
            mem_used_total=used,
            mem_limit=0,
            mem_used_max=used,
            same_pages=same,
            pages_compacted=0,
            huge_pages=huge,
            huge_pages_since=huge,
        )
        return Estimate(stat, format_classes(pool.class_stats()))
    finally:
        pool.close()


def describe(stat: MmStat) -> str:
    """The estimate in words."""
    orig, compr, used = stat.orig_data_size, stat.compr_data_size, stat.mem_used_total
    lines = [f"{format_size(orig)} of data would take {format_size(used)} of RAM in zram"]
    if used:
        lines[0] += f" ({orig / used:.2f}:1)."
        lines.append(
            f"Compressed it is {format_size(compr)} ({orig / compr if compr else float('inf'):.2f}:1); "
            f"the allocator adds {100 * (used / compr - 1) if compr else 0:.1f}% on top."
        )
    else:
        lines[0] += " (every page is same-filled, so none at all)."
    pages = orig >> PAGE_SHIFT
    if pages:
        lines.append(
            f"{stat.same_pages} of {pages} pages are same-filled (stored free), "
            f"{stat.huge_pages} are incompressible (stored raw, 4 KiB each)."
        )
    return "\n".join(lines)

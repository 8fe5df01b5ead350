"""`zramd estimate`: how much RAM would zram need for this data, without a device?

Owns: feeding an image (a file or a block device) page by page through a real `ZramDevice` (so the
same-filled / compress / huge rules and the pool are exactly those of the write path) -- one
device per algorithm, all from one pass over the image, with each one's write and read speed --
replaying a list of per-page outcomes (``S``, ``H`` or a compressed length, one line per page)
through the pool, and describing the result in words, as a table, or as a bar chart.
Must not: print (the CLI does) or mount anything.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
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


def _chunks(path: str, size: int, progress: ProgressCallback | None) -> Iterator[tuple[int, bytes]]:
    """(offset, chunk) over the image in CHUNK-sized pieces, the last padded with zeros to a
    whole page (a block device holds whole pages only), reporting progress after each."""
    done = 0
    with open(path, "rb", buffering=0) as image:
        while done < size:
            chunk = image.read(CHUNK)
            if not chunk:
                break
            if len(chunk) % PAGE_SIZE:
                chunk += bytes(PAGE_SIZE - len(chunk) % PAGE_SIZE)
            yield done, chunk
            done += len(chunk)
            if progress:
                progress(min(done, size), size)


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
        for done, chunk in _chunks(path, size, progress):
            device.write(done, chunk)
        return Estimate(device.statistics().mm, format_classes(device.class_stats()))
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    finally:
        device.reset()


@dataclass(frozen=True, slots=True)
class AlgorithmEstimate:
    """One algorithm's row of `estimate_algorithms`.

    Attributes:
        algorithm: its name.  mm_stat: what its device would show.
        write_seconds, read_seconds: time its device took to store the image and to read it back
            (one compression stream; the pool and the same-filled test included).
    """

    algorithm: str
    mm_stat: MmStat
    write_seconds: float
    read_seconds: float

    @property
    def ratio(self) -> float:
        """orig / compr: the compression ratio."""
        return (
            self.mm_stat.orig_data_size / self.mm_stat.compr_data_size
            if self.mm_stat.compr_data_size
            else 0.0
        )

    @property
    def effective_ratio(self) -> float:
        """orig / mem_used_total: what the RAM actually holds against the data."""
        mm = self.mm_stat
        return mm.orig_data_size / mm.mem_used_total if mm.mem_used_total else 0.0

    def mb_per_s(self, seconds: float) -> float:
        return self.mm_stat.orig_data_size / seconds / 1e6 if seconds else 0.0


def estimate_algorithms(
    path: str, algorithms: Sequence[str], progress: ProgressCallback | None = None
) -> list[AlgorithmEstimate]:
    """`estimate_image` for every algorithm in one pass over the image: each chunk read once is
    written through every algorithm's device, then read back from it (checked to be the same
    bytes), the time of both measured per device."""
    size = image_size(path)
    if size == 0:
        raise UserError(f"{path} is empty")
    devices = []
    try:
        for name in algorithms:
            device = ZramDevice()
            device.set_comp_algorithm(name)
            device.set_disksize(round_up_to_page(size))
            devices.append(device)
        writing = [0.0] * len(devices)
        reading = [0.0] * len(devices)
        for done, chunk in _chunks(path, size, progress):
            for n, device in enumerate(devices):
                started = time.perf_counter()
                device.write(done, chunk)
                writing[n] += time.perf_counter() - started
                started = time.perf_counter()
                back = device.read(done, len(chunk))
                reading[n] += time.perf_counter() - started
                if back != chunk:
                    raise UserError(f"{algorithms[n]} did not give the image back at offset {done}")
        return [
            AlgorithmEstimate(name, device.statistics().mm, writing[n], reading[n])
            for n, (name, device) in enumerate(zip(algorithms, devices, strict=True))
        ]
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    finally:
        for device in devices:
            device.reset()


def format_algorithms(rows: Sequence[AlgorithmEstimate]) -> str:
    """The side-by-side table of `estimate_algorithms`."""
    header = (
        f"{'ALGORITHM':<10} {'DATA':>9} {'COMPR':>9} {'TOTAL':>9} {'RATIO':>6} {'EFFECTIVE':>9} "
        f"{'HUGE':>7} {'SAME':>7} {'WRITE MB/s':>10} {'READ MB/s':>9}"
    )
    lines = [header]
    for row in rows:
        mm = row.mm_stat
        lines.append(
            f"{row.algorithm:<10} {format_size(mm.orig_data_size):>9} {format_size(mm.compr_data_size):>9} "
            f"{format_size(mm.mem_used_total):>9} {row.ratio:>6.2f} {row.effective_ratio:>9.2f} "
            f"{mm.huge_pages:>7} {mm.same_pages:>7} {row.mb_per_s(row.write_seconds):>10.0f} "
            f"{row.mb_per_s(row.read_seconds):>9.0f}"
        )
    return "\n".join(lines) + "\n"


def plot_algorithms(rows: Sequence[AlgorithmEstimate], path: str, title: str) -> None:
    """A PNG at `path`: RAM needed (mem_used_total) per algorithm, the compressed size beside it.
    Needs matplotlib (UserError naming it when missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("--plot needs matplotlib (pip install matplotlib)") from None
    names = [row.algorithm for row in rows]
    used = [row.mm_stat.mem_used_total / 2**20 for row in rows]
    compr = [row.mm_stat.compr_data_size / 2**20 for row in rows]
    orig = rows[0].mm_stat.orig_data_size / 2**20 if rows else 0
    figure, axes = plt.subplots(figsize=(7, 4))
    positions = range(len(names))
    axes.bar([p - 0.2 for p in positions], used, width=0.4, label="RAM needed (mem_used_total)")
    axes.bar([p + 0.2 for p in positions], compr, width=0.4, label="compressed (compr_data_size)")
    for p, value, row in zip(positions, used, rows, strict=True):
        axes.annotate(f"{row.effective_ratio:.2f}:1", (p - 0.2, value), ha="center", va="bottom", fontsize=8)
    axes.axhline(orig, color="grey", linestyle="--", linewidth=1, label=f"data ({orig:.0f} MiB)")
    axes.set_xticks(list(positions), names)
    axes.set_ylabel("MiB")
    axes.set_title(title)
    axes.legend(fontsize=8)
    figure.tight_layout()
    try:
        figure.savefig(path, dpi=100)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        plt.close(figure)


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

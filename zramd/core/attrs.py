"""The attribute files of ``MOUNTPOINT/sys/``: zram's sysfs attributes, text in and text out.

Owns: the attribute table (name, mode, show, store); every text format of an attribute file,
rendered from the device's numbers (``mm_stat``, ``io_stat``, ``debug_stat``, ``stat``, and
zramd's ``classes`` and ``consistency``); and the exact parsing and errno of every store,
including sysfs's own rules: a zero-length write does nothing and returns 0, a write is cut to one
page and at the first NUL, and the whole write is reported as consumed when the store succeeds.
Reading a write-only attribute and opening a read-only one for writing are refused with EACCES,
as kernfs does for root.
Must not: touch the device's internals (only its public methods), or know about FUSE.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

from zramd.core import compress
from zramd.core.device import (
    HUGE_WRITEBACK,
    IDLE_WRITEBACK,
    INCOMPRESSIBLE_WRITEBACK,
    RECOMPRESS_HUGE,
    RECOMPRESS_IDLE,
    ZramDevice,
)
from zramd.core.errors import (
    ArgumentTooLong,
    DeviceBusy,
    InvalidArgument,
    NoDevice,
    NoMemory,
    OutOfRange,
    ZramError,
)
from zramd.core.kparse import (
    U64_MASK,
    kstrtoint,
    kstrtou16,
    kstrtouint,
    kstrtoull,
    memparse,
    next_args,
    store_buffer,
)
from zramd.core.records import BdStat, BlockStat, ClassStats, IoStat, MmStat, WritebackPolicy
from zramd.core.size_classes import SizeClassTable
from zramd.core.units import PAGE_SHIFT, PAGE_SIZE

ALGO_NAME_MAX = 128  # ZRAM_MAX_ALGO_NAME_SZ: names this long or longer get E2BIG
HUGE_CLASS_SIZE = SizeClassTable().huge_class_size  # recompress's threshold must stay below it
SYSFS_FILE_SIZE = PAGE_SIZE  # what stat() reports for every sysfs attribute


@dataclass(frozen=True, slots=True)
class Attribute:
    """One attribute file.

    Attributes:
        name: the file name, as in /sys/block/zram0/.
        mode: permission bits (0444 read-only, 0200 write-only, 0644 read-write).
        show: renders the file's text, or None for write-only attributes.
        store: parses a write and applies it, or None for read-only attributes; raises a
            `zramd.core.errors.ZramError` carrying the kernel's errno.
    """

    name: str
    mode: int
    show: Callable[[ZramDevice], str] | None
    store: Callable[[ZramDevice, str], None] | None
    read_at: Callable[[ZramDevice, int, int], bytes] | None = None  # for text too long to render whole

    @property
    def readable(self) -> bool:
        return self.show is not None or self.read_at is not None

    @property
    def writable(self) -> bool:
        return self.store is not None

    def write(self, device: ZramDevice, data: bytes) -> int:
        """Apply a write of `data` as sysfs would; returns the byte count to report."""
        if not data:
            return 0
        assert self.store is not None
        self.store(device, store_buffer(data))
        return min(len(data), PAGE_SIZE)


# ------------------------------------------------------------------ stores


def _store_disksize(device: ZramDevice, text: str) -> None:
    value, _ = memparse(text)
    if value == 0:
        raise InvalidArgument(f"disksize: {text!r} is not a size")
    aligned = (value + PAGE_SIZE - 1) & U64_MASK & ~(PAGE_SIZE - 1)
    if aligned == 0:  # PAGE_ALIGN wrapped around: the kernel's allocation of 0 pages fails
        if device.initialized:
            raise DeviceBusy("the device is already initialised; write 1 to reset first")
        raise NoMemory(f"disksize {value} is too large")
    device.set_disksize(aligned)


def parse_reset(text: str) -> None:
    """Check a write to ``reset`` (``reset_store``: kstrtou16, and 0 is EINVAL) before anything
    is claimed or changed."""
    if kstrtou16(text, 10) == 0:
        raise InvalidArgument("reset takes a positive number")


def parse_hot_remove(text: str) -> int:
    """The device id written to ``hot_remove`` (``hot_remove_store``: kstrtoint, negative EINVAL)."""
    device_id = kstrtoint(text, 10)
    if device_id < 0:
        raise InvalidArgument(f"no device id {device_id}")
    return device_id


def _store_reset(device: ZramDevice, text: str) -> None:
    """The device's half of a reset; the FUSE front end adds the block device's (it claims the
    block device first, EBUSY while it is in use, and sets its capacity to 0 after)."""
    parse_reset(text)
    device.reset()


def _store_compact(device: ZramDevice, text: str) -> None:
    device.compact()


def _store_mem_limit(device: ZramDevice, text: str) -> None:
    value, used = memparse(text)
    if used == 0:
        raise InvalidArgument(f"mem_limit: {text!r} is not a size")
    device.set_mem_limit((value + PAGE_SIZE - 1) & U64_MASK & ~(PAGE_SIZE - 1))


def _store_mem_used_max(device: ZramDevice, text: str) -> None:
    if kstrtoull(text, 10) != 0:
        raise InvalidArgument("mem_used_max only accepts 0")
    device.reset_mem_used_max()


def _store_comp_algorithm(device: ZramDevice, text: str) -> None:
    if len(text) >= ALGO_NAME_MAX:
        raise ArgumentTooLong(f"algorithm name of {len(text)} characters")
    name = text[:-1] if text.endswith("\n") else text
    device.set_comp_algorithm(name)


ZRAM_MAX_COMPS = 4  # priorities: the primary and three recompression algorithms (MULTI_COMP)


def parse_algorithm_params(text: str, selected: str | list[str | None]) -> tuple[int, compress.Params]:
    """``algorithm_params_store``: every word needs a value (EINVAL); ``priority``, ``level``
    and ``deflate.winbits`` are kstrtoint (their errno passed through), ``algo`` names the
    priority whose algorithm it is (EINVAL if none: here only `selected`, the primary's),
    ``dict`` a file to read (EINVAL if it cannot be read); other keys are ignored. `selected` is
    the algorithm of each priority (the primary's alone, as a string). Returns the
    priority and its new parameters: every one not given is unset again, as the kernel's
    ``comp_params_store`` resets them first."""
    priority, level, winbits = 0, None, None
    algo = dict_path = None
    for key, value in next_args(text):
        if not value:
            raise InvalidArgument(f"algorithm_params: {key!r} needs a value")
        if key == "priority":
            priority = kstrtoint(value, 10)
        elif key == "level":
            level = kstrtoint(value, 10)
        elif key == "algo":
            algo = value
        elif key == "dict":
            dict_path = value
        elif key == "deflate.winbits":
            winbits = kstrtoint(value, 10)
    names = [selected] if isinstance(selected, str) else selected
    if algo is not None:
        priority = next((p for p, name in enumerate(names) if name == algo), -1)
    if not 0 <= priority < ZRAM_MAX_COMPS:
        what = f"no priority {priority}" if algo is None else f"{algo} is not the selected algorithm"
        raise InvalidArgument(f"algorithm_params: {what}")
    dictionary = None
    if dict_path is not None:
        try:
            with open(dict_path, "rb") as f:
                dictionary = f.read()
        except OSError as exc:
            raise InvalidArgument(f"algorithm_params: cannot read dict {dict_path}: {exc.strerror}") from None
    return priority, compress.Params(level, dictionary, winbits)


def _store_algorithm_params(device: ZramDevice, text: str) -> None:
    names: list[str | None] = [device.comp_algorithm, *device.recomp_algorithms[1:]]
    priority, params = parse_algorithm_params(text, names)
    with device.lock:
        if priority == 0:
            device.algorithm_params = params
        else:
            device.recomp_params[priority] = params


def _show_recomp_algorithm(device: ZramDevice) -> str:
    """``#P: lzo lz4 [zstd] `` for each priority that has an algorithm."""
    return "".join(
        f"#{prio}: {compress.format_comp_algorithm(name)}"
        for prio, name in enumerate(device.recomp_algorithms)
        if prio and name is not None
    )


def _store_recomp_algorithm(device: ZramDevice, text: str) -> None:
    """``recomp_algorithm_store``: ``algo=NAME [priority=1..3]`` (every word needs a value,
    priority kstrtoint, default 1); then the comp_algorithm rules: E2BIG, EINVAL, EBUSY."""
    algo, priority = None, 1
    for key, value in next_args(text):
        if not value:
            raise InvalidArgument(f"recomp_algorithm: {key!r} needs a value")
        if key == "algo":
            algo = value
        elif key == "priority":
            priority = kstrtoint(value, 10)
    if algo is None:
        raise InvalidArgument("recomp_algorithm needs algo=NAME")
    if not 1 <= priority < ZRAM_MAX_COMPS:
        raise InvalidArgument(f"recomp_algorithm: no priority {priority}")
    if len(algo) >= ALGO_NAME_MAX:
        raise ArgumentTooLong(f"algorithm name of {len(algo)} characters")
    if algo not in compress.algorithm_names():
        raise InvalidArgument(f"recomp_algorithm: unknown algorithm {algo!r}")
    with device.lock:
        if device.initialized:
            raise DeviceBusy("recomp_algorithm can only be set before disksize")
        device.recomp_algorithms[priority] = algo


RECOMPRESS_TYPES = {
    "idle": RECOMPRESS_IDLE,
    "huge": RECOMPRESS_HUGE,
    "huge_idle": RECOMPRESS_IDLE | RECOMPRESS_HUGE,
}


def _store_recompress(device: ZramDevice, text: str) -> None:
    """``recompress_store``: ``type=``, ``max_pages=`` (kstrtoull), ``threshold=`` (kstrtouint),
    ``algo=`` and ``priority=`` (kstrtouint; 0 means 1, and it alone is then used), each with a
    value (EINVAL); an unknown type selects every page, as the kernel's does; a threshold of
    huge_class_size or more is EINVAL, checked before the device's state."""
    mode, max_pages, threshold = 0, 0, 0
    prio, prio_max = 1, ZRAM_MAX_COMPS
    algo = None
    for key, value in next_args(text):
        if not value:
            raise InvalidArgument(f"recompress: {key!r} needs a value")
        if key == "type":
            mode = RECOMPRESS_TYPES.get(value, mode)
        elif key == "max_pages":
            max_pages = kstrtoull(value, 10)
        elif key == "threshold":
            threshold = kstrtouint(value, 10)
        elif key == "algo":
            algo = value
        elif key == "priority":
            prio = max(1, kstrtouint(value, 10))
            prio_max = prio + 1
    if threshold >= HUGE_CLASS_SIZE:
        raise InvalidArgument(f"recompress: threshold {threshold} is not below {HUGE_CLASS_SIZE}")
    if not device.initialized:
        raise InvalidArgument("recompress needs an initialised device")
    if algo is not None:
        for p in range(prio, ZRAM_MAX_COMPS):
            if device.recomp_algorithms[p] == algo:
                prio_max = p + 1
                break
        else:
            raise InvalidArgument(f"recompress: no recompression algorithm {algo!r}")
    device.recompress(mode, threshold, max_pages, prio, prio_max)


def _store_backing_dev(device: ZramDevice, text: str) -> None:
    device.set_backing_dev(text[:-1] if text.endswith("\n") else text)


def _show_backing_dev(device: ZramDevice) -> str:
    return f"{device.backing_dev or 'none'}\n"


def _sysfs_streq(text: str, word: str) -> bool:
    return text in (word, word + "\n")


def _store_idle(device: ZramDevice, text: str) -> None:
    """``idle_store``: ``all``, or (access times are tracked) an age in seconds, kstrtouint
    with base detection; anything else EINVAL, checked before the device's state."""
    cutoff: int | None = None
    if not _sysfs_streq(text, "all"):
        try:
            age = kstrtouint(text, 0)
        except ZramError:
            raise InvalidArgument(f"idle: {text!r} is neither 'all' nor an age in seconds") from None
        cutoff = device.idle_cutoff(age)
    device.mark_idle(cutoff)


_WRITEBACK_MODES = {
    "idle": IDLE_WRITEBACK,
    "huge": HUGE_WRITEBACK,
    "huge_idle": IDLE_WRITEBACK | HUGE_WRITEBACK,
    "incompressible": INCOMPRESSIBLE_WRITEBACK,
}


def _writeback_mode(word: str) -> int:
    try:
        return _WRITEBACK_MODES[word]
    except KeyError:
        raise InvalidArgument(f"writeback: no mode {word!r}") from None


def _kstrtoul(text: str) -> int:
    return kstrtoull(text, 10)


def parse_writeback(text: str, nr_pages: int) -> list[tuple[int, int, int]]:
    """The scans a ``writeback`` write asks for, as ``writeback_store`` reads its words: a
    valueless word (the legacy ``idle``/``huge``/``huge_idle``/``incompressible``) or ``type=``
    scans the range so far with that mode and ends the parse; ``page_index=N`` and
    ``page_indexes=LO-HI`` each scan their range with the mode so far (none: any stored page);
    other ``key=value`` words are ignored. ERANGE for an index past the disk, EINVAL else."""
    first, end, mode = 0, nr_pages, 0
    scans: list[tuple[int, int, int]] = []
    for param, value in next_args(text):
        if not value:
            scans.append((_writeback_mode(param), first, end))
            break
        if param == "type":
            scans.append((_writeback_mode(value), first, end))
            break
        if param == "page_index":
            first = _kstrtoul(value)
            if first >= nr_pages:
                raise OutOfRange(f"page_index {first} is past the disk's {nr_pages} pages")
            end = first + 1
            scans.append((mode, first, end))
        elif param == "page_indexes":
            low, dash, high = value.partition("-")
            if not dash:
                raise InvalidArgument(f"page_indexes {value!r} is not LO-HI")
            first = _kstrtoul(low)
            if first >= nr_pages:
                raise OutOfRange(f"page_indexes starts past the disk's {nr_pages} pages")
            last = _kstrtoul(high)
            if last >= nr_pages or first > last:
                raise OutOfRange(f"page_indexes {value!r} is not a range of the disk's {nr_pages} pages")
            end = last + 1
            scans.append((mode, first, end))
    return scans


def _store_writeback(device: ZramDevice, text: str) -> None:
    if not device.initialized:
        raise InvalidArgument("writeback needs an initialised device")
    if device.backing_dev is None:
        raise NoDevice("writeback needs a backing_dev")
    device.writeback(parse_writeback(text, device.disksize >> PAGE_SHIFT))


def _kstrtoull_or_einval(text: str, name: str) -> int:
    try:
        return kstrtoull(text, 10)
    except ZramError:
        raise InvalidArgument(f"{name}: {text!r} is not a number") from None


def _store_writeback_limit(device: ZramDevice, text: str) -> None:
    value = _kstrtoull_or_einval(text, "writeback_limit")
    with device.lock:
        device.writeback_limit = value


def _store_writeback_limit_enable(device: ZramDevice, text: str) -> None:
    value = _kstrtoull_or_einval(text, "writeback_limit_enable")
    with device.lock:
        device.writeback_limit_enable = value != 0


def _store_writeback_batch_size(device: ZramDevice, text: str) -> None:
    try:
        value = kstrtouint(text, 10)
    except ZramError:
        raise InvalidArgument(f"writeback_batch_size: {text!r} is not a number") from None
    if value == 0:
        raise InvalidArgument("writeback_batch_size must be at least 1")
    with device.lock:
        device.writeback_batch_size = value


def _show_writeback_limit_enable(device: ZramDevice) -> str:
    return f"{int(device.writeback_limit_enable)}\n"


def _show_writeback_batch_size(device: ZramDevice) -> str:
    return f"{device.writeback_batch_size}\n"


def format_bd_stat(stat: BdStat) -> str:
    """``%8llu %8llu %8llu\n``: bd_count, bd_reads, bd_writes, in 4 KiB units."""
    return f"{stat.bd_count:8d} {stat.bd_reads:8d} {stat.bd_writes:8d}\n"


def parse_writeback_policy(text: str, current: WritebackPolicy | None = None) -> WritebackPolicy:
    """A ``writeback_policy`` text: ``key=value`` words (interval=SECONDS, idle_age=SECONDS,
    high_watermark=FRACTION, max_pages=N, max_seconds=SECONDS, release=0|1,
    recompress=none|idle|huge|huge_idle), each replacing that setting of
    `current`; EINVAL for an unknown key or a bad value, and nothing changes then."""
    policy = current if current is not None else WritebackPolicy()
    changes: dict[str, object] = {}
    for key, value in next_args(text):
        if value is None or value == "":
            raise InvalidArgument(f"writeback_policy: {key!r} needs a value (key=value)")
        try:
            if key in ("interval", "max_seconds"):
                number = float(value)
                if not (math.isfinite(number) and number >= (0 if key == "interval" else 0.01)):
                    raise ValueError
                changes[key] = number
            elif key in ("idle_age", "max_pages"):
                count = int(value, 10)
                if count < (1 if key == "max_pages" else 0):
                    raise ValueError
                changes[key] = count
            elif key == "high_watermark":
                fraction = float(value)
                if not 0 <= fraction <= 1:
                    raise ValueError
                changes[key] = fraction
            elif key == "release":
                if value not in ("0", "1"):
                    raise ValueError
                changes[key] = value == "1"
            elif key == "recompress":
                if value not in ("none", *RECOMPRESS_TYPES):
                    raise ValueError
                changes[key] = "" if value == "none" else value
            else:
                raise InvalidArgument(f"writeback_policy: unknown key {key!r}")
        except ValueError:
            raise InvalidArgument(f"writeback_policy: bad value {value!r} for {key}") from None
    return dataclasses.replace(policy, **changes)  # type: ignore[arg-type]


def format_writeback_policy(policy: WritebackPolicy) -> str:
    return (
        f"interval={policy.interval:g} idle_age={policy.idle_age} high_watermark={policy.high_watermark:g} "
        f"max_pages={policy.max_pages} max_seconds={policy.max_seconds:g} release={int(policy.release)} "
        f"recompress={policy.recompress or 'none'}\n"
    )


def _store_writeback_policy(device: ZramDevice, text: str) -> None:
    policy = parse_writeback_policy(text, device.writeback_policy)
    with device.lock:
        device.writeback_policy = policy
        device.release_frames = policy.release


BLOCK_STATE_LINE = 40  # "%12zd %12u.%06d %c%c%c%c%c%c\n"


def read_block_state(device: ZramDevice, offset: int, size: int) -> bytes:
    """Bytes [offset, offset + size) of ``block_state``: every line has the same length, so
    only the lines the read covers are rendered (the file has one line per stored page)."""
    first, skip = divmod(offset, BLOCK_STATE_LINE)
    lines = (skip + size + BLOCK_STATE_LINE - 1) // BLOCK_STATE_LINE
    return device.block_state(first, lines)[skip : skip + size]


# ------------------------------------------------------------------ text formats


def format_mm_stat(stat: MmStat) -> str:
    """``%8llu %8llu %8llu %8lu %8ld %8llu %8lu %8llu %8llu\\n`` (``mm_stat_show``)."""
    return " ".join(f"{getattr(stat, f.name):8d}" for f in fields(stat)) + "\n"


def format_io_stat(stat: IoStat) -> str:
    """failed_reads, failed_writes, the retired invalid_io column (always 0), notify_free."""
    return f"{stat.failed_reads:8d} {stat.failed_writes:8d} 0 {stat.notify_free:8d}\n"


# debug_stat's miss_free counts ``zram_slot_free_notify`` calls that lost the slot-lock race. Swap
# calls that hook only on a block device of zram's own; through a loop device it is never called,
# so the count is 0 here by construction, not by omission.
MISS_FREE = 0


def format_debug_stat() -> str:
    """``version: 1``, then the retired writestall column (0) and miss_free."""
    return f"version: 1\n0 {MISS_FREE:8d}\n"


def format_block_stat(stat: BlockStat) -> str:
    """The 17 columns of /sys/block/<dev>/stat: read, write, in-flight, discard and flush
    accounting (requests, merges, sectors, milliseconds). Requests are served one at a time,
    so nothing is in flight when this is read, and busy time is the sum of service times."""
    r, w, d, f = stat.read, stat.write, stat.discard, stat.flush
    busy_ms = (r.nanos + w.nanos + d.nanos + f.nanos) // 1_000_000
    columns = (
        r.ios, 0, r.sectors, r.nanos // 1_000_000,
        w.ios, 0, w.sectors, w.nanos // 1_000_000,
        0, busy_ms, busy_ms,
        d.ios, 0, d.sectors, d.nanos // 1_000_000,
        f.ios, f.nanos // 1_000_000,
    )  # fmt: skip
    return " ".join(f"{c:8d}" for c in columns) + "\n"


_GROUPS = ("10%", "20%", "30%", "40%", "50%", "60%", "70%", "80%", "90%", "99%", "100%")


def format_classes(rows: Sequence[ClassStats]) -> str:
    """The pool's class table in the layout of zsmalloc's debugfs ``classes`` file."""
    lines = [
        f" {'class':>5} {'size':>5} "
        + "".join(f"{g:>9} " for g in _GROUPS)
        + f"{'obj_allocated':>13} {'obj_used':>10} {'pages_used':>10} "
        + f"{'pages_per_zspage':>16} {'freeable':>8}"
    ]
    totals = [0] * len(_GROUPS)
    total_objs = total_used = total_pages = total_freeable = 0
    for row in rows:
        line = f" {row.index:5d} {row.size:5d} " + "".join(f"{n:9d} " for n in row.zspages_by_group)
        line += f"{row.objs_allocated:13d} {row.objs_used:10d} {row.pages_used:10d} "
        line += f"{row.pages_per_zspage:16d} {row.freeable:8d}"
        lines.append(line)
        totals = [a + b for a, b in zip(totals, row.zspages_by_group, strict=True)]
        total_objs += row.objs_allocated
        total_used += row.objs_used
        total_pages += row.pages_used
        total_freeable += row.freeable
    lines.append("")
    lines.append(
        f" {'Total':>5} {'':>5} "
        + "".join(f"{n:9d} " for n in totals)
        + f"{total_objs:13d} {total_used:10d} {total_pages:10d} {'':>16} {total_freeable:8d}"
    )
    return "\n".join(lines) + "\n"


def format_consistency(device: ZramDevice) -> str:
    """Recount the slot table and the pool (`ZramDevice.check_invariants`) and report it:
    ``ok`` and the recounted totals, or ``MISMATCH`` and what disagrees."""
    with device.lock:  # the recount and the totals describe the same instant
        try:
            device.check_invariants()
        except AssertionError as exc:
            return f"MISMATCH: {exc}\n"
        stat = device.statistics()
    mm = stat.mm
    return (
        f"ok: {stat.pages_stored} pages stored, {mm.same_pages} same, {mm.huge_pages} huge, "
        f"{mm.compr_data_size} bytes compressed in {stat.pool_pages} pool pages\n"
    )


def _show_comp_algorithm(device: ZramDevice) -> str:
    return compress.format_comp_algorithm(device.comp_algorithm)


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("disksize", 0o644, lambda d: f"{d.disksize}\n", _store_disksize),
    Attribute("initstate", 0o444, lambda d: f"{int(d.initialized)}\n", None),
    Attribute("reset", 0o200, None, _store_reset),
    Attribute("compact", 0o200, None, _store_compact),
    Attribute("mem_limit", 0o200, None, _store_mem_limit),
    Attribute("mem_used_max", 0o200, None, _store_mem_used_max),
    Attribute("comp_algorithm", 0o644, _show_comp_algorithm, _store_comp_algorithm),
    Attribute("algorithm_params", 0o200, None, _store_algorithm_params),
    # CONFIG_ZRAM_MULTI_COMP
    Attribute("recomp_algorithm", 0o644, _show_recomp_algorithm, _store_recomp_algorithm),
    Attribute("recompress", 0o200, None, _store_recompress),
    Attribute("io_stat", 0o444, lambda d: format_io_stat(d.statistics().io), None),
    Attribute("mm_stat", 0o444, lambda d: format_mm_stat(d.statistics().mm), None),
    Attribute("debug_stat", 0o444, lambda d: format_debug_stat(), None),
    Attribute("stat", 0o444, lambda d: format_block_stat(d.statistics().block), None),
    # CONFIG_ZRAM_WRITEBACK and CONFIG_ZRAM_TRACK_ENTRY_ACTIME
    Attribute("backing_dev", 0o644, _show_backing_dev, _store_backing_dev),
    Attribute("idle", 0o200, None, _store_idle),
    Attribute("writeback", 0o200, None, _store_writeback),
    Attribute("writeback_limit", 0o644, lambda d: f"{d.writeback_limit}\n", _store_writeback_limit),
    Attribute("writeback_limit_enable", 0o644, _show_writeback_limit_enable, _store_writeback_limit_enable),
    Attribute("writeback_batch_size", 0o644, _show_writeback_batch_size, _store_writeback_batch_size),
    Attribute("bd_stat", 0o444, lambda d: format_bd_stat(d.statistics().bd), None),
)
BY_NAME = {attr.name: attr for attr in ATTRIBUTES}


# ------------------------------------------------------------------ zramd's own additions

# zsmalloc's debugfs class table for this device's pool.
CLASSES = Attribute("classes", 0o444, lambda d: format_classes(d.class_stats()), None)
# A recount of the slot table and the pool against the counters: "ok: ..." or "MISMATCH: ...".
CONSISTENCY = Attribute("consistency", 0o444, format_consistency, None)
# zramd's writeback trigger and release policy (see `WritebackPolicy`).
WRITEBACK_POLICY = Attribute(
    "writeback_policy", 0o644, lambda d: format_writeback_policy(d.writeback_policy), _store_writeback_policy
)
# The kernel's debugfs block_state (CONFIG_ZRAM_MEMORY_TRACKING): one line per stored page.
BLOCK_STATE = Attribute("block_state", 0o444, None, None, read_at=read_block_state)
ZRAMD_ATTRIBUTES = (CLASSES, CONSISTENCY, BLOCK_STATE, WRITEBACK_POLICY)

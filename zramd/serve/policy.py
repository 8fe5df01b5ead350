"""zramd's writeback trigger, which the kernel lacks: one cycle of a device's `WritebackPolicy`.

Owns: what a cycle does, in order: (1) with ``idle_age``, mark the pages not accessed for that
long idle; with ``recompress``, recompress pages of that type with the device's recompression
algorithms and write back those none could shrink (INCOMPRESSIBLE); then write the idle ones
back; (2) with ``high_watermark``, while mem_used_total is above that
fraction of mem_limit, write back idle pages, then huge ones; (3) after any writeback, compact,
so that the zspages writeback emptied are freed (and, with ``release``, their frames go back to
the OS). A cycle writes at most ``max_pages`` pages and stops starting new chunks of
`CHUNK_PAGES` after ``max_seconds``; the device's writeback drops the device lock between its
batches, so the device keeps serving while a cycle runs. The daemon runs
cycles in a worker thread, one at a time with the lifecycle requests (`ZramOperations.run_policy`).
Must not: import trio or pyfuse3, allocate per page, or raise: a cycle's error (a full backing
device, an I/O error) is reported in its `CycleReport` and logged, and the next cycle tries again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from zramd.core.attrs import RECOMPRESS_TYPES
from zramd.core.device import HUGE_WRITEBACK, IDLE_WRITEBACK, INCOMPRESSIBLE_WRITEBACK, MAX_COMPS
from zramd.core.engine import ZramDevice
from zramd.core.errors import ZramError
from zramd.core.units import PAGE_SHIFT

log = logging.getLogger(__name__)

CHUNK_PAGES = 4096  # pages written back between two looks at the clock (16 MiB)


@dataclass(frozen=True, slots=True)
class CycleReport:
    """What one cycle did.

    Attributes:
        at: when it ended (time.time()).  seconds: how long it took.
        written: pages written back.  pages_compacted: pool pages compaction freed.
        recompressed: pages recompressed.
        error: the error that cut a step short ("" if none).
    """

    at: float
    seconds: float
    written: int
    pages_compacted: int
    error: str = ""
    recompressed: int = 0


def _recompresses(device: ZramDevice) -> bool:
    return bool(device.writeback_policy.recompress) and any(device.recomp_algorithms[1:])


def due(device: ZramDevice) -> bool:
    """Whether `device` has a policy that can act: an interval, a disk, and a backing store
    or recompression to do."""
    policy = device.writeback_policy
    can_act = device.backing_dev is not None or _recompresses(device)
    return bool(policy.interval) and device.initialized and can_act


def run_cycle(device: ZramDevice) -> CycleReport:
    """One cycle of `device`'s policy (synchronous: the daemon calls it in a worker thread)."""
    started = time.monotonic()
    policy = device.writeback_policy
    nr_pages = device.disksize >> PAGE_SHIFT
    written_before = device.statistics().bd.bd_writes
    budget = policy.max_pages
    error = ""

    def written() -> int:
        return device.statistics().bd.bd_writes - written_before

    def write_back(mode: int) -> bool:
        """Write back pages of `mode` within the budget, in chunks, until none is left or the
        cycle's time is up; False once the cycle must stop."""
        nonlocal error
        while True:
            left = budget - written()
            if left <= 0 or time.monotonic() - started >= policy.max_seconds:
                return False
            try:
                if device.writeback([(mode, 0, nr_pages)], max_pages=min(left, CHUNK_PAGES)) == 0:
                    return True  # nothing more of this kind
            except ZramError as exc:
                error = str(exc)
                return False

    backed = device.backing_dev is not None
    recompressed = 0
    try:
        if policy.idle_age:
            device.mark_idle(device.idle_cutoff(policy.idle_age))
        if _recompresses(device):
            mode = RECOMPRESS_TYPES[policy.recompress]
            recompressed = device.recompress(mode, 0, budget, 1, MAX_COMPS)
            if backed:
                write_back(INCOMPRESSIBLE_WRITEBACK)
        if policy.idle_age and backed:
            write_back(IDLE_WRITEBACK)
        if policy.high_watermark and backed and not error:
            for mode in (IDLE_WRITEBACK, HUGE_WRITEBACK):
                mm = device.statistics().mm
                if not mm.mem_limit or mm.mem_used_total <= policy.high_watermark * mm.mem_limit:
                    break
                if not write_back(mode):
                    break
                device.compact()
        compacted = device.compact() if written() or recompressed or policy.release else 0
    except ZramError as exc:  # the device was reset meanwhile, say
        error, compacted = str(exc), 0
    report = CycleReport(time.time(), time.monotonic() - started, written(), compacted, error, recompressed)
    if error:
        log.warning("writeback policy: %s (%d pages written back this cycle)", error, report.written)
    elif report.written:
        log.info(
            "writeback policy: %d pages written back, %d pool pages compacted in %.3f s",
            report.written,
            report.pages_compacted,
            report.seconds,
        )
    return report

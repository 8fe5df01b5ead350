"""Keeping a daemon in the swap path out of the memory it serves.

Owns: the process and thread settings that stop the kernel from deadlocking on zramd while it
reclaims memory through zramd, and the self-check that shows which of them took effect:

* ``prctl(PR_SET_IO_FLUSHER, 1)`` on every thread that serves I/O: sets PF_MEMALLOC_NOIO (the
  thread's own allocations never wait for I/O, so never for swap-out to this very device) and
  PF_LOCAL_THROTTLE (it is not throttled for other processes' dirty pages). Needs
  CAP_SYS_RESOURCE.
* ``oom_score_adj = -1000``: the OOM killer never picks the daemon (killing it would lose every
  page swapped to it). Lowering the score needs CAP_SYS_RESOURCE.
* ``mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)``: the daemon's memory, including the pool
  arena as it is touched, is never swapped out (to itself). ONFAULT keeps the reserved but
  untouched part of the arena uncommitted.
* glibc ``mallopt``: no trimming and no per-allocation mmap, so memory freed by one request is
  reused by the next instead of going back to the kernel and being faulted in again.
* The cyclic garbage collector: everything built at start-up is frozen (``gc.freeze``) and the
  automatic collector is off; `collect_garbage` runs from an idle-time task instead.

Where a setting is refused (no CAP_SYS_RESOURCE on this machine, even for root), the daemon says
so once and keeps working; the self-check reports exactly what is in force.
Must not: import pyfuse3 or trio.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import gc
import logging
import os
import threading
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

PR_SET_IO_FLUSHER = 57
MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4
PF_MEMALLOC_NOIO = 0x00080000
PF_LOCAL_THROTTLE = 0x00100000
IO_FLUSHER_FLAGS = PF_MEMALLOC_NOIO | PF_LOCAL_THROTTLE
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
CAP_SYS_RESOURCE = 24

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _errno_text(code: int) -> str:
    return f"{errno.errorcode.get(code, str(code))} ({os.strerror(code)})"


@dataclass
class HardeningState:
    """What `harden_process` and `harden_thread` achieved (for the log and ``zram-control/daemon``)."""

    io_flusher: str = "not tried"
    oom_score_adj: str = "not tried"
    mlockall: str = "not tried"
    malloc: str = "not tried"
    gc: str = "not tried"
    threads_hardened: set[int] = field(default_factory=set)
    thread_failures: dict[int, str] = field(default_factory=dict)


STATE = HardeningState()
_warned = False


def has_cap_sys_resource() -> bool:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1)
    return False


def harden_thread() -> bool:
    """Mark the calling thread as an I/O flusher. Call it first thing in every thread that
    serves I/O. Returns whether the kernel accepted it; a refusal is logged once per process."""
    global _warned
    tid = threading.get_native_id()
    if _libc.prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) == 0:
        STATE.threads_hardened.add(tid)
        STATE.io_flusher = "on"
        return True
    code = ctypes.get_errno()
    STATE.thread_failures[tid] = _errno_text(code)
    STATE.io_flusher = f"refused: {_errno_text(code)}"
    if not _warned:
        _warned = True
        log.warning(
            "PR_SET_IO_FLUSHER refused (%s): this daemon lacks CAP_SYS_RESOURCE, so its threads may "
            "wait on I/O while allocating; zramd keeps working, relying on mlockall and "
            "preallocated memory instead. Grant CAP_SYS_RESOURCE (the systemd unit does) to fix.",
            _errno_text(code),
        )
    return False


def harden_thread_once() -> None:
    """`harden_thread` for a worker thread that may be reused: only on its first call."""
    tid = threading.get_native_id()
    if tid not in STATE.threads_hardened and tid not in STATE.thread_failures:
        harden_thread()


def harden_process() -> HardeningState:
    """Apply every process-wide setting (and harden the calling thread); returns the state."""
    harden_thread()
    try:
        with open("/proc/self/oom_score_adj", "w", encoding="ascii") as f:
            f.write("-1000")
        STATE.oom_score_adj = "-1000"
    except OSError as exc:
        STATE.oom_score_adj = f"refused: {_errno_text(exc.errno or 0)}"
        log.warning(
            "oom_score_adj -1000 refused (%s): the OOM killer may pick this daemon", STATE.oom_score_adj
        )
    if _libc.mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0:
        STATE.mlockall = "MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT"
    else:
        STATE.mlockall = f"refused: {_errno_text(ctypes.get_errno())}"
        log.warning("mlockall refused (%s): the daemon's own memory could be swapped out", STATE.mlockall)
    trim = _libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
    mmap_ok = _libc.mallopt(M_MMAP_THRESHOLD, 2**25)  # 32 MiB: request buffers come from the heap
    STATE.malloc = "no trim, heap up to 32 MiB" if trim and mmap_ok else "mallopt refused"
    gc.collect()
    gc.freeze()
    gc.disable()
    STATE.gc = f"frozen ({gc.get_freeze_count()} objects), collected when idle"
    return STATE


def collect_garbage(full: bool = False) -> int:
    """A collection for an idle-time task (the automatic collector is off): the young
    generations, or with `full` every generation (objects frozen at start-up are never scanned).
    Returns the objects collected."""
    return gc.collect(2 if full else 1)


@dataclass(frozen=True)
class ThreadCheck:
    tid: int
    name: str
    io_flusher: bool


def thread_flags() -> list[ThreadCheck]:
    """Every thread of this process and whether PF_MEMALLOC_NOIO | PF_LOCAL_THROTTLE are set,
    read from /proc/self/task/*/stat (field 9, the task flags)."""
    checks = []
    for tid in sorted(os.listdir("/proc/self/task"), key=int):
        try:
            with open(f"/proc/self/task/{tid}/stat", encoding="ascii", errors="replace") as f:
                text = f.read()
        except OSError:
            continue  # the thread exited
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        flags = int(fields[6])  # field 9 of stat; fields[0] is field 3 (state)
        checks.append(ThreadCheck(int(tid), name, flags & IO_FLUSHER_FLAGS == IO_FLUSHER_FLAGS))
    return checks


def locked_memory() -> tuple[int, int, int]:
    """(locked and resident, locked address space, resident) in bytes.

    VmLck in /proc/self/status counts whole locked mappings, including the reserved but
    untouched part of the arena (MCL_ONFAULT locks pages only as they are touched); the
    ``Locked:`` line of /proc/self/smaps_rollup counts the resident pages that are locked."""
    values = {"VmLck": 0, "VmRSS": 0, "Locked": 0}
    for path in ("/proc/self/status", "/proc/self/smaps_rollup"):
        with open(path, encoding="ascii") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in values and line.rstrip().endswith("kB"):
                    values[key] = int(line.split()[1]) * 1024
    return values["Locked"], values["VmLck"], values["VmRSS"]


def self_check() -> dict[str, str]:
    """The self-check as key: value pairs (for the log and ``zram-control/daemon``)."""
    threads = thread_flags()
    locked, locked_space, rss = locked_memory()
    flagged = sum(t.io_flusher for t in threads)
    with open("/proc/self/oom_score_adj", encoding="ascii") as f:
        oom_score_adj = f.read().strip()
    report = {
        "cap_sys_resource": "yes" if has_cap_sys_resource() else "no",
        "io_flusher": STATE.io_flusher,
        "io_flusher_threads": f"{flagged}/{len(threads)}",
        "oom_score_adj": oom_score_adj,
        "oom_score_adj_setting": STATE.oom_score_adj,
        "mlockall": STATE.mlockall,
        "locked_resident_bytes": str(locked),
        "resident_bytes": str(rss),
        "locked_address_space_bytes": str(locked_space),
        "malloc": STATE.malloc,
        "gc": STATE.gc,
    }
    for t in threads:
        report[f"thread_{t.tid}"] = f"{t.name} io_flusher={'yes' if t.io_flusher else 'no'}"
    return report

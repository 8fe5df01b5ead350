"""`zramd bench`: one fio matrix against zramd, the no-op FUSE ceiling and the kernel's zram.

Owns: the benchmark of issue 6 from end to end -- building the data corpus, starting its own
daemons (``zramd start`` and ``zramd start --noop``) on temporary mount points, configuring the
kernel's zram0 when it is free, attaching loop devices, running the cell matrix with the targets
alternated between repetitions, the memory measurements (RSS, ``mm_stat``, repeated overwrite
passes), and the report: a table on stdout, progress on stderr, JSON, and a PNG chart of the
ratios. It always takes down what it set up -- loop devices, daemons, zram0 (reset), temporary
files -- also on failure and Ctrl-C, and checks afterwards that nothing was left behind.

Must not: touch a zram0 that someone else initialised, touch any mount or loop device it did not
create, or fail on speed: targets are reported as PASS/MISS, never turned into an exit status.
Matplotlib is imported only to draw the chart.

Method notes (the long form is in docs/performance.md):

* Data "fio50" is fio's own buffers, ``buffer_compress_percentage=50`` with ``refill_buffers``.
  Data "corpus" is a tar of /usr/lib/python3.11 and /usr/share/doc (at most 256 MiB, repeated to
  the disk size). fio cannot write a file's content (``buffer_pattern='file'`` keeps only the
  first 512 bytes and repeats them), so corpus reads are fio read cells over the corpus written
  in with ``dd oflag=direct``, and corpus writes are ``dd if=corpus bs=BS oflag=direct`` cells
  (QD1, sequential; no latency percentiles).
* Within a repetition each data kind starts with a prefill of every target with that kind, write
  cells run before read cells and only rewrite the same kind, so every read cell reads written
  pages of its own kind. For each cell the targets run back to back, in an order rotated per
  cell and repetition, so drift hits every target alike. Ratios are medians over repetitions of
  the per-repetition ratio.
* CPU: a daemon's utime+stime from /proc/PID/stat; for the kernel's zram the machine's system
  CPU (system+irq+softirq from /proc/stat), which also counts fio's own system time -- a proxy.
  The machine's system CPU is reported for every target as well.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from zramd import __version__
from zramd.admin import control
from zramd.core import compress
from zramd.core.errors import UserError
from zramd.core.units import PAGE_SIZE, format_size, parse_size
from zramd.host.processes import daemon_pid
from zramd.host.rundir import logfile_for
from zramd.host.settings import ServeConfig

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

TARGETS = ("zramd", "noop", "kernel")
KERNEL_SYSFS = Path("/sys/block/zram0")
KERNEL_DEV = "/dev/zram0"
CORPUS_ROOTS = ("usr/lib/python3.11", "usr/share/doc")
CORPUS_MAX = 256 * MiB
QUEUE_DEPTH = 16  # the libaio cells
OVERWRITE_PASSES = 3

# Goals of issue 6: reported next to the measured values, never an exit status.
NOOP_GOAL = 0.8  # 4k O_DIRECT random write and read on the file: zramd >= 0.8x no-op
KERNEL_GOAL = 0.5  # 128k and 1M sequential writes: zramd >= 0.5x kernel
MEM_USED_TOLERANCE = 0.005  # mem_used_total within 0.5% of the kernel's on the same data
RSS_BYTES_PER_PAGE = 16  # daemon RSS <= mem_used_total + 16 B per page of disksize + 64 MiB
RSS_SLACK = 64 * MiB
GROWTH_TOLERANCE = 0.01  # "no growth": later passes within 1% of the first

DEFAULTS = {"size": GiB, "runtime": 3.0, "repeat": 3}
QUICK_DEFAULTS = {"size": 64 * MiB, "runtime": 1.0, "repeat": 1}


# ---------------------------------------------------------------------------- the matrix


@dataclass(frozen=True, slots=True)
class Cell:
    """One workload: data kind, access path, engine, pattern and block size.

    Attributes:
        data: "fio50" (fio buffers, 50% compressible) or "corpus" (the tar of real files).
        path: "file" (O_DIRECT on the disk file or /dev/zram0) or "loop" (a direct-I/O loop
            device with 4 KiB sectors over it).
        engine: "psync" (QD1), "libaio" (QD16) or "dd" (a corpus write, QD1).
        rw: fio's rw= (randwrite, randread, write, read).
        bs: block size in bytes.
    """

    data: str
    path: str
    engine: str
    rw: str
    bs: int

    @property
    def iodepth(self) -> int:
        return QUEUE_DEPTH if self.engine == "libaio" else 1

    @property
    def is_write(self) -> bool:
        return "write" in self.rw

    @property
    def name(self) -> str:
        qd = {"psync": "qd1", "libaio": f"qd{QUEUE_DEPTH}", "dd": "dd"}[self.engine]
        return f"{self.data}/{self.path}/{qd}/{self.rw}-{_bs_label(self.bs)}"


def _bs_label(nbytes: int) -> str:
    return f"{nbytes // MiB}M" if nbytes >= MiB else f"{nbytes // KiB}k"


FIO50_WORKLOADS = [  # writes first: each data kind's read cells come after its write cells
    ("randwrite", 4 * KiB),
    ("write", 4 * KiB),
    ("write", 128 * KiB),
    ("write", MiB),
    ("randread", 4 * KiB),
    ("read", 128 * KiB),
    ("read", MiB),
]
CORPUS_READS = [("randread", 4 * KiB), ("read", 128 * KiB), ("read", MiB)]
CORPUS_WRITES = [4 * KiB, 128 * KiB, MiB]  # dd, after the corpus reads


def build_matrix(quick: bool = False) -> list[Cell]:
    """The cells in run order within one repetition: the fio50 cells, then the corpus cells."""
    if quick:
        return [
            Cell("fio50", "file", "psync", "randwrite", 4 * KiB),
            Cell("fio50", "file", "libaio", "write", 128 * KiB),
            Cell("fio50", "loop", "psync", "write", MiB),
            Cell("fio50", "file", "psync", "randread", 4 * KiB),
            Cell("fio50", "loop", "libaio", "read", MiB),
            Cell("corpus", "file", "psync", "read", 128 * KiB),
            Cell("corpus", "file", "dd", "write", MiB),
        ]
    cells = []
    for data, reads in (("fio50", FIO50_WORKLOADS), ("corpus", CORPUS_READS)):
        for rw, bs in reads:
            for path in ("file", "loop"):
                for engine in ("psync", "libaio"):
                    cells.append(Cell(data, path, engine, rw, bs))
    for bs in CORPUS_WRITES:
        for path in ("file", "loop"):
            cells.append(Cell("corpus", path, "dd", "write", bs))
    return cells


# ---------------------------------------------------------------------------- measurements


@dataclass(frozen=True, slots=True)
class Measurement:
    """One run of one cell on one target.

    Attributes:
        iops, mbps: operations and MB (10^6 bytes) per second.
        p50_us, p99_us: completion latency percentiles from fio (None for dd cells).
        nbytes, seconds: bytes moved and the time fio or dd measured.
        cpu_s_per_gib: the daemon's CPU seconds per GiB moved; for the kernel's zram the machine's
            system CPU (a proxy, see the module docstring).
        sys_s_per_gib: the machine's system CPU seconds per GiB moved, for every target.
    """

    iops: float
    mbps: float
    p50_us: float | None
    p99_us: float | None
    nbytes: int
    seconds: float
    cpu_s_per_gib: float | None
    sys_s_per_gib: float


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def machine_system_cpu() -> float:
    """system + irq + softirq time of all CPUs, in seconds, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return (values[2] + values[5] + values[6]) / _CLK_TCK


def process_rss(pid: int) -> int:
    """VmRSS of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * KiB
    raise UserError(f"no VmRSS for pid {pid}")


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


# ---------------------------------------------------------------------------- targets


@dataclass(slots=True)
class Target:
    """One device under test.

    Attributes:
        name: "zramd", "noop" or "kernel".
        file: the path the "file" cells use with O_DIRECT (MOUNTPOINT/disk or /dev/zram0).
        sysdir: its attribute directory (MOUNTPOINT/sys or /sys/block/zram0).
        pid: the daemon's pid (None for the kernel).
        loop: the loop device over `file`, once attached.
    """

    name: str
    file: str
    sysdir: Path
    pid: int | None = None
    loop: str = ""

    def path_for(self, cell: Cell) -> str:
        return self.loop if cell.path == "loop" else self.file

    def mm_stat(self) -> list[int]:
        return [int(v) for v in (self.sysdir / "mm_stat").read_text().split()]

    def cpu(self) -> float | None:
        return process_cpu(self.pid) if self.pid is not None else None


def _run(*args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, check=False, env={**os.environ, "LC_ALL": "C"}
    )
    if result.returncode != 0:
        detail = (result.stderr.strip() or result.stdout.strip())[-2000:]
        raise UserError(f"{' '.join(args)} failed with status {result.returncode}: {detail}")
    return result


def kernel_unavailable() -> str | None:
    """Why the kernel's zram0 cannot be used, or None when it is free to configure."""
    if not KERNEL_SYSFS.exists():
        return "the kernel's zram is absent (/sys/block/zram0 does not exist; modprobe zram)"
    if os.geteuid() != 0:
        return "configuring the kernel's zram0 needs root"
    if (KERNEL_SYSFS / "initstate").read_text().strip() != "0":
        return "the kernel's zram0 is in use (initialised) by someone else; not touching it"
    return None


def _wait_for_kernel(seconds: float) -> str | None:
    deadline = time.monotonic() + seconds
    while True:
        reason = kernel_unavailable()
        if reason is None or time.monotonic() >= deadline or not KERNEL_SYSFS.exists():
            return reason
        time.sleep(1)


def _detach_loop(loop: str) -> None:
    """losetup -d, then wait until the device has let go of its file: a loop device still busy
    (an interrupted fio's I/O) is only marked for autoclear, and its file stays open meanwhile."""
    backing = Path("/sys/block") / Path(loop).name / "loop" / "backing_file"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        subprocess.run(["losetup", "-d", loop], capture_output=True, check=False)
        if not backing.exists():
            return
        time.sleep(0.1)


def _remove_empty_dir(path: Path) -> None:
    """rmdir, unless something is still there (a mount we failed to take down): `leftovers`
    reports that, and removing what is under a mount point is never an option."""
    with contextlib.suppress(OSError):
        path.rmdir()


def _reset_kernel() -> None:
    """echo 1 > reset, retried while a just-detached loop device still holds zram0 (EBUSY)."""
    for attempt in range(50):
        try:
            (KERNEL_SYSFS / "reset").write_text("1")
            return
        except OSError:
            if attempt == 49:
                raise
            time.sleep(0.1)


def _running(pid: int) -> bool:
    """Whether `pid` still runs; reaps it when it is our child (`zramd start` forked it from
    this process, so an exited daemon stays a zombie until waited for)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _stop_daemon(mountpoint: str, pid: int | None) -> None:
    """`zramd stop`, or a forced teardown (lazy unmount, then SIGKILL) when that fails."""
    for attempt in range(5):
        try:
            control.stop(mountpoint, timeout=30, force=True)
            break
        except UserError as exc:  # "target is busy" while an interrupted client lets go
            if attempt == 4:
                sys.stderr.write(f"zramd bench: {exc}; unmounting lazily and killing the daemon\n")
            time.sleep(1)
    if f" {mountpoint} " in Path("/proc/mounts").read_text():
        subprocess.run(["umount", "-l", mountpoint], capture_output=True, check=False)
    if pid is not None and _running(pid):
        deadline = time.monotonic() + 10
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _running(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    logfile_for(mountpoint).unlink(missing_ok=True)


# ---------------------------------------------------------------------------- runners


def _fio_json(stdout: str) -> dict[str, Any]:
    start = stdout.find("{")
    if start < 0:
        raise UserError(f"fio printed no JSON: {stdout[-500:]}")
    data: dict[str, Any] = json.loads(stdout[start:])
    return data


def fio_args(cell: Cell, filename: str, disksize: int, runtime: float) -> list[str]:
    args = [
        "fio", "--name=bench", f"--filename={filename}", f"--rw={cell.rw}", f"--bs={cell.bs}",
        f"--ioengine={cell.engine}", f"--iodepth={cell.iodepth}", "--direct=1",
        f"--size={disksize}", "--time_based", f"--runtime={runtime:g}s", "--output-format=json",
    ]  # fmt: skip
    if cell.is_write:
        args += ["--buffer_compress_percentage=50", "--refill_buffers"]
    return args


def run_fio(
    cell: Cell, filename: str, disksize: int, runtime: float
) -> tuple[int, float, float, float | None, float | None]:
    """(bytes, seconds, iops, p50 µs, p99 µs) of one fio run."""
    result = _run(*fio_args(cell, filename, disksize, runtime), timeout=runtime + 120)
    job = _fio_json(result.stdout)["jobs"][0]
    side = job["write" if cell.is_write else "read"]
    percentiles = side.get("clat_ns", {}).get("percentile", {})
    p50 = percentiles.get("50.000000")
    p99 = percentiles.get("99.000000")
    return (
        int(side["io_bytes"]),
        side["runtime"] / 1000,
        float(side["iops"]),
        p50 / 1000 if p50 is not None else None,
        p99 / 1000 if p99 is not None else None,
    )


_DD_RE = re.compile(r"^(\d+) bytes .* copied, ([0-9.e+-]+) s", re.MULTILINE)


def dd_copy(source: str, dest: str, bs: int, offset: int, nbytes: int) -> tuple[int, float]:
    """Copy `nbytes` at `offset` from `source` to the same offset of `dest` with O_DIRECT;
    returns (bytes, seconds) as dd measured them."""
    result = _run(
        "dd", f"if={source}", f"of={dest}", f"bs={bs}", f"skip={offset}", f"seek={offset}",
        f"count={nbytes}", "iflag=fullblock,skip_bytes,count_bytes", "oflag=direct,seek_bytes",
        "conv=notrunc",
    )  # fmt: skip
    match = _DD_RE.search(result.stderr)
    if match is None:
        raise UserError(f"cannot parse dd's report: {result.stderr.strip()[-300:]}")
    return int(match.group(1)), float(match.group(2))


def run_dd(corpus: str, dest: str, bs: int, disksize: int, runtime: float) -> tuple[int, float]:
    """Write the corpus sequentially from offset 0 with dd in chunks (wrapping at the end of the
    disk) until `runtime` has passed; returns (bytes, seconds) summed over the chunks."""
    deadline = time.monotonic() + runtime
    offset, total, seconds, chunk = 0, 0, 0.0, 16 * MiB
    while time.monotonic() < deadline:
        nbytes = min(chunk, disksize - offset)
        done, took = dd_copy(corpus, dest, bs, offset, nbytes)
        total += done
        seconds += took
        offset = (offset + nbytes) % disksize
        remaining = deadline - time.monotonic()
        rate = done / max(took, 1e-6)
        chunk = max(MiB, min(int(rate * min(0.5, max(remaining, 0.05))) // MiB * MiB, 256 * MiB))
    return total, seconds


def write_corpus_pass(corpus: str, dest: str, disksize: int, shift: int) -> None:
    """Overwrite the whole of `dest` with the corpus rotated by `shift` bytes (1 MiB writes)."""
    if shift:
        dd_copy_shifted(corpus, dest, shift, disksize)
    else:
        dd_copy(corpus, dest, MiB, 0, disksize)


def dd_copy_shifted(corpus: str, dest: str, shift: int, disksize: int) -> None:
    """dest[0:n-shift] = corpus[shift:n], dest[n-shift:n] = corpus[0:shift]."""
    _run(
        "dd", f"if={corpus}", f"of={dest}", f"bs={MiB}", f"skip={shift}", "seek=0",
        f"count={disksize - shift}", "iflag=fullblock,skip_bytes,count_bytes",
        "oflag=direct,seek_bytes", "conv=notrunc",
    )  # fmt: skip
    _run(
        "dd", f"if={corpus}", f"of={dest}", f"bs={MiB}", "skip=0", f"seek={disksize - shift}",
        f"count={shift}", "iflag=fullblock,skip_bytes,count_bytes", "oflag=direct,seek_bytes",
        "conv=notrunc",
    )  # fmt: skip


def build_corpus(path: Path, disksize: int) -> dict[str, Any]:
    """A reproducible tar of the corpus roots, cut at 256 MiB, repeated to `disksize` bytes."""
    roots = [r for r in CORPUS_ROOTS if (Path("/") / r).is_dir()]
    if not roots:
        raise UserError(f"none of /{', /'.join(CORPUS_ROOTS)} exists to build the corpus from")
    tar = subprocess.Popen(
        ["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "-cf", "-", *roots],
        cwd="/", stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert tar.stdout is not None
    data = tar.stdout.read(min(CORPUS_MAX, disksize))
    tar.kill()
    tar.wait()
    if len(data) < PAGE_SIZE:
        raise UserError("the corpus came out empty")
    with open(path, "wb") as f:
        written = 0
        while written < disksize:
            piece = data[: disksize - written]
            f.write(piece)
            written += len(piece)
    return {"roots": ["/" + r for r in roots], "tar_bytes": len(data), "file_bytes": disksize}


# ---------------------------------------------------------------------------- progress


class Progress:
    """Which cell and repetition runs, and an ETA, on stderr (one rewritten line on a terminal)."""

    def __init__(self, total: int, estimate: float) -> None:
        self.total = total
        self.done = 0
        self.estimate = estimate  # seconds per run, until measured
        self.started = time.monotonic()
        self.matrix_started = self.started
        self.tty = sys.stderr.isatty()

    def note(self, text: str) -> None:
        self._write(f"{self._clock()} {text}")

    def run(self, rep: int, repeat: int, cell: Cell, target: str) -> None:
        elapsed = time.monotonic() - self.matrix_started
        per_run = elapsed / self.done if self.done else self.estimate
        eta = per_run * (self.total - self.done)
        self._write(
            f"{self._clock()} [{self.done + 1}/{self.total}] rep {rep + 1}/{repeat} "
            f"{cell.name} on {target}, ETA {_duration(eta)}"
        )

    def _clock(self) -> str:
        return f"[{_duration(time.monotonic() - self.started)}]"

    def _write(self, line: str) -> None:
        if self.tty:
            sys.stderr.write(f"\r\033[K{line}")
        else:
            sys.stderr.write(f"{line}\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s"


# ---------------------------------------------------------------------------- the run


@dataclass(slots=True)
class Options:
    """The parsed command line, with the --quick defaults filled in."""

    quick: bool
    repeat: int
    runtime: float
    size: int
    algorithm: str
    targets: list[str]
    json_path: Path
    png_path: Path
    wait_kernel: float


@dataclass(slots=True)
class Bench:
    """One benchmark run: its targets, its scratch space and its results."""

    options: Options
    cells: list[Cell]
    scratch: Path = Path()
    corpus: Path = Path()
    targets: dict[str, Target] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    results: dict[str, dict[str, list[Measurement]]] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)  # our mount points and loop devices
    kernel_claimed: bool = False
    progress: Progress = field(default_factory=lambda: Progress(0, 1.0))

    # -- setup, each step registering its own undo on the exit stack

    def undo(
        self, stack: contextlib.ExitStack, label: str, func: Callable[..., object], *args: object
    ) -> None:
        """Register `func(*args)` on `stack`, announced on stderr when it runs."""

        def step() -> None:
            self.progress.note(label)
            func(*args)

        stack.callback(step)

    def start_daemon(self, stack: contextlib.ExitStack, name: str) -> None:
        mountpoint = self.scratch / name
        mountpoint.mkdir()
        config = ServeConfig(
            mountpoint=str(mountpoint),
            disksize=self.options.size,
            algorithm=self.options.algorithm,
            noop=name == "noop",
        )
        self.undo(stack, f"removing {mountpoint}", _remove_empty_dir, mountpoint)
        control.start(config, log_level="warning", timeout=60)
        pid = daemon_pid(str(mountpoint))
        self.undo(stack, f"stopping {name} (pid {pid})", _stop_daemon, str(mountpoint), pid)
        if pid is None:
            raise UserError(f"no pid file for the daemon on {mountpoint}")
        self.created.append(str(mountpoint))
        self.targets[name] = Target(name, str(mountpoint / "disk"), mountpoint / "sys", pid)

    def claim_kernel(self, stack: contextlib.ExitStack) -> None:
        reason = _wait_for_kernel(self.options.wait_kernel)
        if reason is None:
            try:
                (KERNEL_SYSFS / "comp_algorithm").write_text(self.options.algorithm)
                (KERNEL_SYSFS / "disksize").write_text(str(self.options.size))
            except OSError as exc:  # EBUSY: someone initialised it just now; not ours to reset
                reason = f"cannot configure the kernel's zram0: {exc.strerror}"
        if reason is not None:
            self.skipped["kernel"] = reason
            return
        self.kernel_claimed = True
        self.undo(stack, "resetting the kernel's zram0", _reset_kernel)
        self.targets["kernel"] = Target("kernel", KERNEL_DEV, KERNEL_SYSFS)

    def attach_loop(self, stack: contextlib.ExitStack, target: Target) -> None:
        loop = _run("losetup", "--direct-io=on", "--sector-size", "4096", "-f", "--show", target.file)
        target.loop = loop.stdout.strip()
        self.created.append(target.loop)
        self.undo(stack, f"detaching {target.loop}", _detach_loop, target.loop)

    # -- measuring

    def prefill(self, target: Target, data: str) -> None:
        size = self.options.size
        if data == "corpus":
            dd_copy(str(self.corpus), target.file, MiB, 0, size)
        else:
            _run(
                "fio", "--name=prefill", f"--filename={target.file}", "--rw=write", f"--bs={MiB}",
                "--ioengine=libaio", f"--iodepth={QUEUE_DEPTH}", "--direct=1", f"--size={size}",
                "--buffer_compress_percentage=50", "--refill_buffers", "--output-format=json",
                timeout=600,
            )  # fmt: skip

    def measure(self, cell: Cell, target: Target) -> Measurement:
        runtime, size = self.options.runtime, self.options.size
        path = target.path_for(cell)
        cpu0, sys0 = target.cpu(), machine_system_cpu()
        if cell.engine == "dd":
            nbytes, seconds = run_dd(str(self.corpus), path, cell.bs, size, runtime)
            p50 = p99 = None
            iops = nbytes / cell.bs / seconds if seconds else 0.0
        else:
            nbytes, seconds, iops, p50, p99 = run_fio(cell, path, size, runtime)
        cpu1, sys1 = target.cpu(), machine_system_cpu()
        gib = nbytes / GiB if nbytes else float("nan")
        machine = (sys1 - sys0) / gib
        daemon = (cpu1 - cpu0) / gib if cpu0 is not None and cpu1 is not None else machine
        return Measurement(
            iops=iops,
            mbps=nbytes / seconds / 1e6 if seconds else 0.0,
            p50_us=p50,
            p99_us=p99,
            nbytes=nbytes,
            seconds=seconds,
            cpu_s_per_gib=daemon,
            sys_s_per_gib=machine,
        )

    def measure_memory(self, progress: Progress) -> None:
        """Idle RSS, then OVERWRITE_PASSES whole-disk corpus passes (each rotated by a third of
        the disk, so every page changes) with RSS and mm_stat after each; the same passes on the
        kernel's zram0, whose mm_stat after each pass is the reference for the same bytes at the
        same offsets."""
        size, corpus = self.options.size, str(self.corpus)
        pages = size // PAGE_SIZE
        zramd = self.targets["zramd"]
        assert zramd.pid is not None
        time.sleep(0.5)
        baseline = process_rss(zramd.pid)
        passes = []
        for k in range(OVERWRITE_PASSES):
            progress.note(f"memory: overwrite pass {k + 1}/{OVERWRITE_PASSES} on zramd")
            shift = (k * size // OVERWRITE_PASSES) // MiB * MiB
            write_corpus_pass(corpus, zramd.file, size, shift)
            mm = zramd.mm_stat()
            rss = process_rss(zramd.pid)
            passes.append(
                {
                    "pass": k + 1,
                    "shift_bytes": shift,
                    "rss": rss,
                    "orig_data_size": mm[0],
                    "compr_data_size": mm[1],
                    "mem_used_total": mm[2],
                    "metadata_bytes_per_page": (rss - mm[2] - baseline) / pages,
                }
            )
        first = passes[0]
        self.memory = {
            "data": "corpus",
            "disksize": size,
            "pages": pages,
            "idle_rss": baseline,
            "rss": first["rss"],
            "mem_used_total": first["mem_used_total"],
            "metadata_bytes_per_page": first["metadata_bytes_per_page"],
            "passes": passes,
            "kernel": None,
        }
        if "kernel" in self.targets:
            kernel = self.targets["kernel"]
            kernel_passes = []
            for k in range(OVERWRITE_PASSES):
                progress.note(f"memory: overwrite pass {k + 1}/{OVERWRITE_PASSES} on the kernel's zram0")
                shift = (k * size // OVERWRITE_PASSES) // MiB * MiB
                write_corpus_pass(corpus, kernel.file, size, shift)
                mm = kernel.mm_stat()
                kernel_passes.append(
                    {
                        "pass": k + 1,
                        "shift_bytes": shift,
                        "orig_data_size": mm[0],
                        "compr_data_size": mm[1],
                        "mem_used_total": mm[2],
                    }
                )
            self.memory["kernel"] = {**kernel_passes[0], "passes": kernel_passes}

    def run_matrix(self, progress: Progress) -> None:
        names = [t for t in self.options.targets if t in self.targets]
        repeat = self.options.repeat
        kinds = list(dict.fromkeys(cell.data for cell in self.cells))
        for cell in self.cells:
            self.results[cell.name] = {name: [] for name in names}
        progress.total = len(self.cells) * repeat * len(names)
        progress.matrix_started = time.monotonic()
        for rep in range(repeat):
            for data in kinds:
                for name in names:
                    progress.note(f"rep {rep + 1}/{repeat}: prefill {name} with {data} data")
                    self.prefill(self.targets[name], data)
                for index, cell in enumerate(c for c in self.cells if c.data == data):
                    turn = (rep + index) % len(names)
                    for name in names[turn:] + names[:turn]:
                        progress.run(rep, repeat, cell, name)
                        self.results[cell.name][name].append(self.measure(cell, self.targets[name]))
                        progress.done += 1

    def run(self, checkpoint: Callable[[], None] = lambda: None) -> None:
        """Set up, measure, call `checkpoint` (results are complete, nothing torn down yet), and
        tear down."""
        options = self.options
        progress = Progress(len(self.cells) * options.repeat * len(options.targets), options.runtime + 0.5)
        self.progress = progress
        started = time.time()
        self.info = machine_info()
        self.info["load_before"] = os.getloadavg()
        with contextlib.ExitStack() as stack:
            self.scratch = Path(tempfile.mkdtemp(prefix="zramd-bench-"))
            self.undo(stack, f"removing {self.scratch}", _remove_empty_dir, self.scratch)
            shm = Path("/dev/shm")
            corpus_dir = Path(tempfile.mkdtemp(prefix="zramd-bench-", dir=shm if shm.is_dir() else None))
            self.undo(stack, f"removing {corpus_dir}", shutil.rmtree, corpus_dir, True)
            self.corpus = corpus_dir / "corpus.img"
            progress.note(f"building the corpus ({format_size(options.size)})")
            self.info["corpus"] = build_corpus(self.corpus, options.size)
            for name in ("zramd", "noop"):
                if name in options.targets:
                    progress.note(f"starting {name}")
                    self.start_daemon(stack, name)
            if "kernel" in options.targets:
                self.claim_kernel(stack)
            if "zramd" in self.targets:
                self.measure_memory(progress)
            if any(cell.path == "loop" for cell in self.cells):
                for target in self.targets.values():
                    self.attach_loop(stack, target)
            self.run_matrix(progress)
            if "zramd" in self.targets:
                zramd = self.targets["zramd"]
                assert zramd.pid is not None
                self.memory["rss_after_matrix"] = process_rss(zramd.pid)
                self.memory["mm_stat_after_matrix"] = zramd.mm_stat()
                self.info["zramd_io_stat"] = (zramd.sysdir / "io_stat").read_text().split()
            self.info["seconds"] = time.time() - started
            self.info["leftovers"] = ["not checked yet: the run had not torn down when this was written"]
            checkpoint()
            progress.note("tearing down")
        progress.close()
        self.info["load_after"] = os.getloadavg()
        self.info["seconds"] = time.time() - started
        self.info["leftovers"] = self.leftovers()

    def leftovers(self) -> list[str]:
        """What this run left behind: loop devices or mounts it created, an initialised zram0."""
        found = []
        loops = _run("losetup", "-a").stdout
        mounts = Path("/proc/mounts").read_text()
        for item in self.created:
            if item.startswith("/dev/loop") and f"{item}:" in loops:
                found.append(f"loop device {item} is still attached")
            if not item.startswith("/dev/") and f" {item} " in mounts:
                found.append(f"{item} is still mounted")
        if str(self.scratch) in loops:
            found.append(f"a loop device still backs a file under {self.scratch}")
        if self.kernel_claimed and (KERNEL_SYSFS / "initstate").read_text().strip() != "0":
            found.append("the kernel's zram0 is still initialised")
        return found

    # -- results

    def summary(self) -> list[dict[str, Any]]:
        """One entry per cell: its runs, per-target medians, and the ratio medians."""
        rows = []
        for cell in self.cells:
            runs = self.results.get(cell.name, {})
            median = {
                name: {
                    key: _median([getattr(m, key) for m in measured])
                    for key in ("iops", "mbps", "p50_us", "p99_us", "cpu_s_per_gib", "sys_s_per_gib")
                }
                for name, measured in runs.items()
                if measured
            }
            ratios: dict[str, float | None] = {}
            for other in ("noop", "kernel"):
                mine, theirs = runs.get("zramd", []), runs.get(other, [])
                pairs = [a.mbps / b.mbps for a, b in zip(mine, theirs, strict=False) if b.mbps > 0]
                ratios[f"zramd/{other}"] = statistics.median(pairs) if pairs else None
            rows.append(
                {
                    "name": cell.name,
                    **asdict(cell),
                    "iodepth": cell.iodepth,
                    "runs": {name: [asdict(m) for m in measured] for name, measured in runs.items()},
                    "median": median,
                    "ratios": ratios,
                }
            )
        return rows

    def goals(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The targets of issue 6 with the measured values: PASS, MISS, or n/a when a target
        did not run."""
        goals: list[dict[str, Any]] = []
        ok: bool | None

        def add(name: str, value: float | None, limit: str, ok: bool | None) -> None:
            status = "n/a" if ok is None else "PASS" if ok else "MISS"
            goals.append({"goal": name, "value": value, "limit": limit, "status": status})

        for row in rows:
            if row["path"] == "file" and row["rw"] in ("randwrite", "randread") and row["bs"] == 4 * KiB:
                ratio = row["ratios"]["zramd/noop"]
                ok = None if ratio is None else ratio >= NOOP_GOAL
                add(f"{row['name']}: zramd/noop", ratio, f">= {NOOP_GOAL}", ok)
        for row in rows:
            if row["rw"] == "write" and row["bs"] in (128 * KiB, MiB):
                ratio = row["ratios"]["zramd/kernel"]
                ok = None if ratio is None else ratio >= KERNEL_GOAL
                add(f"{row['name']}: zramd/kernel", ratio, f">= {KERNEL_GOAL}", ok)
        memory = self.memory
        if memory:
            kernel = memory.get("kernel")
            if kernel:
                off = memory["mem_used_total"] / kernel["mem_used_total"] - 1
                ok = abs(off) <= MEM_USED_TOLERANCE
            else:
                off, ok = None, None
            add(
                "mem_used_total vs kernel (relative difference)", off, f"within ±{MEM_USED_TOLERANCE:.1%}", ok
            )
            allowance = RSS_BYTES_PER_PAGE * memory["pages"] + RSS_SLACK
            worst = max(p["rss"] - p["mem_used_total"] for p in memory["passes"])
            add(
                "daemon RSS - mem_used_total (worst pass), bytes",
                worst,
                f"<= {allowance} ({RSS_BYTES_PER_PAGE} B/page + 64 MiB)",
                worst <= allowance,
            )
            for key in ("rss", "mem_used_total"):
                first = memory["passes"][0][key]
                growth = max(p[key] for p in memory["passes"]) / first - 1
                add(
                    f"{key} growth over {OVERWRITE_PASSES} overwrite passes",
                    growth,
                    f"<= {GROWTH_TOLERANCE:.0%}",
                    growth <= GROWTH_TOLERANCE,
                )
        return goals

    def report(self) -> dict[str, Any]:
        rows = self.summary()
        targets: dict[str, Any] = {}
        for name in self.options.targets:
            if name in self.skipped:
                targets[name] = {"skipped": self.skipped[name]}
            elif name in self.targets:
                t = self.targets[name]
                targets[name] = {"file": t.file, "loop": t.loop, "pid": t.pid}
        cpu_note = (
            "cpu_s_per_gib: the daemon's utime+stime per GiB moved (zramd, noop); for the kernel "
            "target the machine's system CPU (system+irq+softirq, /proc/stat) as a proxy, which "
            "also counts fio's own system time. sys_s_per_gib: the machine's system CPU, every target."
        )
        return {
            "benchmark": "zramd issue 6",
            "options": {
                "quick": self.options.quick,
                "repeat": self.options.repeat,
                "runtime": self.options.runtime,
                "size": self.options.size,
                "algorithm": self.options.algorithm,
                "targets": self.options.targets,
            },
            "machine": self.info,
            "targets": targets,
            "notes": {"cpu": cpu_note, "ratios": "median over repetitions of zramd MB/s / other MB/s"},
            "cells": rows,
            "memory": self.memory,
            "goals": self.goals(rows),
        }


# ---------------------------------------------------------------------------- machine


def _first_line(*args: str) -> str:
    try:
        result = subprocess.run(args, capture_output=True, text=True, check=False)
    except OSError:
        return ""
    return (result.stdout.strip().splitlines() or [""])[0]


def machine_info() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = 0
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) * KiB
    repo = Path(__file__).resolve().parent.parent
    commit = _first_line("git", "-C", str(repo), "rev-parse", "HEAD")
    dirty = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split("\n")
    try:
        from importlib.metadata import version

        pyfuse3 = version("pyfuse3")
    except Exception:
        pyfuse3 = "?"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_bytes": ram,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "fio": _first_line("fio", "--version"),
        "pyfuse3": pyfuse3,
        "zramd": __version__,
        "git_commit": commit,
        "git_modified": [line[3:] for line in dirty if line.strip()],
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# ---------------------------------------------------------------------------- output


def _num(value: float | None, digits: int = 1) -> str:
    if value is None or value != value:  # None or NaN
        return "n/a"
    if abs(value) >= 100_000:
        return f"{value / 1000:.0f}k"
    return f"{value:.{digits}f}"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def format_table(report: dict[str, Any]) -> str:
    header = [
        "cell",
        "target",
        "IOPS",
        "MB/s",
        "p50 µs",
        "p99 µs",
        "cpu s/GiB",
        "sys s/GiB",
        "vs noop",
        "vs kernel",
    ]
    table = [header]
    for row in report["cells"]:
        first = True
        for name in TARGETS:
            med = row["median"].get(name)
            if med is None:
                continue
            ratios = row["ratios"] if name == "zramd" else {}
            table.append(
                [
                    row["name"] if first else "",
                    name,
                    _num(med["iops"], 0),
                    _num(med["mbps"]),
                    _num(med["p50_us"]),
                    _num(med["p99_us"]),
                    _num(med["cpu_s_per_gib"], 2) + ("*" if name == "kernel" else ""),
                    _num(med["sys_s_per_gib"], 2),
                    _ratio(ratios.get("zramd/noop")) if ratios else "",
                    _ratio(ratios.get("zramd/kernel")) if ratios else "",
                ]
            )
            first = False
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = []
    for r in table:
        cells = [c.ljust(widths[i]) if i < 2 else c.rjust(widths[i]) for i, c in enumerate(r)]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    lines.append(
        "* kernel: the machine's system CPU as a proxy (there is no daemon); medians over repetitions"
    )
    return "\n".join(lines) + "\n"


def format_goals(report: dict[str, Any]) -> str:
    lines = []
    for goal in report["goals"]:
        value = goal["value"]
        if value is None:
            shown = "n/a"
        elif "ratio" in goal["goal"] or "zramd/" in goal["goal"]:
            shown = f"{value:.2f}x"
        elif "bytes" in goal["goal"]:
            shown = format_size(int(value))
        else:
            shown = f"{value:+.2%}"
        lines.append(f"{goal['status']:>4}  {goal['goal']}: {shown} (target {goal['limit']})")
    return "\n".join(lines) + "\n"


def format_memory(report: dict[str, Any]) -> str:
    memory = report["memory"]
    if not memory:
        return "memory: not measured (zramd was not a target)\n"
    lines = [
        f"memory (corpus, disksize {format_size(memory['disksize'])}): idle daemon RSS "
        f"{format_size(memory['idle_rss'])}"
    ]
    for p in memory["passes"]:
        lines.append(
            f"  pass {p['pass']}: RSS {format_size(p['rss'])}, "
            f"mem_used_total {format_size(p['mem_used_total'])} ({p['mem_used_total']} B), "
            f"metadata {p['metadata_bytes_per_page']:.1f} B/page"
        )
    kernel = memory.get("kernel")
    if kernel:
        for p in kernel["passes"]:
            lines.append(
                f"  kernel zram0 pass {p['pass']}: mem_used_total {format_size(p['mem_used_total'])} "
                f"({p['mem_used_total']} B)"
            )
    else:
        lines.append(f"  kernel zram0: {report['targets'].get('kernel', {}).get('skipped', 'not a target')}")
    return "\n".join(lines) + "\n"


def write_png(report: dict[str, Any], path: Path) -> None:
    """A horizontal bar chart of zramd/noop and zramd/kernel per cell, with the goal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["cells"]
    names = [row["name"] for row in rows]
    height = max(3.0, 0.3 * len(rows) + 1.8)
    fig, ax = plt.subplots(figsize=(10, height))
    ys = list(range(len(rows)))
    for offset, key, color in ((-0.2, "zramd/noop", "tab:blue"), (0.2, "zramd/kernel", "tab:orange")):
        values = [row["ratios"][key] for row in rows]
        ax.barh(
            [y + offset for y, v in zip(ys, values, strict=True) if v is not None],
            [v for v in values if v is not None],
            height=0.4,
            color=color,
            label=key,
        )
        for y, v in zip(ys, values, strict=True):
            if v is not None:
                ax.text(v * 1.02, y + offset, f"{v:.2f}", va="center", fontsize=6)
    ax.axvline(NOOP_GOAL, color="tab:blue", linestyle="--", linewidth=1, label=f"goal vs noop ({NOOP_GOAL}x)")
    ax.axvline(
        KERNEL_GOAL, color="tab:orange", linestyle="--", linewidth=1, label=f"goal vs kernel ({KERNEL_GOAL}x)"
    )
    ax.axvline(1.0, color="grey", linewidth=0.8)
    ax.set_xscale("log")
    ticks = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 0.8, 1.0, 2.0]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_yticks(ys)
    ax.set_yticklabels(names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("zramd throughput / other target's (median over repetitions, log scale)")
    options = report["options"]
    machine = report["machine"]
    ax.set_title(
        f"zramd {options['algorithm']}, {format_size(options['size'])}, {options['repeat']}x"
        f"{options['runtime']:g}s per cell, commit {str(machine.get('git_commit', ''))[:10]}",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="lower right")
    shown = [v for row in rows for v in row["ratios"].values() if v is not None] or [1.0]
    ax.set_xlim(min(0.3, min(shown) / 1.5), max(1.5, max(shown) * 1.4))
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------- command line


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _targets(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in names if t not in TARGETS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"targets are a comma list of {', '.join(TARGETS)}")
    return [t for t in TARGETS if t in names]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zramd bench",
        description="fio matrix against zramd, the no-op FUSE ceiling and the kernel's zram (issue 6).",
    )
    parser.add_argument(
        "--quick", action="store_true", help="CI smoke run: reduced matrix, 1 repetition, 64M"
    )
    parser.add_argument("--repeat", type=int, default=None, help="repetitions (default 3; --quick 1)")
    parser.add_argument("--runtime", type=float, default=None, help="seconds per cell (default 3; --quick 1)")
    parser.add_argument(
        "--size", type=_size, default=None, help="disk size of every target (default 1G; --quick 64M)"
    )
    parser.add_argument(
        "--algorithm",
        default=compress.DEFAULT_ALGORITHM,
        choices=compress.algorithm_names(),
        help="lzo or lz4",
    )
    parser.add_argument("--targets", type=_targets, default=list(TARGETS), help="default zramd,noop,kernel")
    parser.add_argument(
        "--json", type=Path, default=None, help="default bench-results/bench-<timestamp>.json"
    )
    parser.add_argument("--png", type=Path, default=None, help="default: the JSON path with .png")
    parser.add_argument(
        "--wait-kernel",
        type=float,
        default=0,
        metavar="SECONDS",
        help="wait up to this long for someone else's zram0 to be reset before skipping it",
    )
    return parser


def parse_options(argv: Sequence[str] | None) -> Options:
    args = build_parser().parse_args(argv)
    defaults = QUICK_DEFAULTS if args.quick else DEFAULTS
    size = int(args.size if args.size is not None else defaults["size"])
    if size < 4 * MiB or size % MiB:
        raise UserError("--size must be a whole number of MiB, at least 4M", exit_code=2)
    repeat = int(args.repeat if args.repeat is not None else defaults["repeat"])
    runtime = float(args.runtime if args.runtime is not None else defaults["runtime"])
    if repeat < 1 or runtime <= 0:
        raise UserError("--repeat must be at least 1 and --runtime positive", exit_code=2)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    json_path = args.json or Path("bench-results") / f"bench-{stamp}.json"
    png_path = args.png or json_path.with_suffix(".png")
    return Options(
        quick=args.quick,
        repeat=repeat,
        runtime=runtime,
        size=size,
        algorithm=args.algorithm,
        targets=args.targets,
        json_path=json_path,
        png_path=png_path,
        wait_kernel=args.wait_kernel,
    )


def check_tools() -> None:
    if os.geteuid() != 0:
        raise UserError("the benchmark needs root (it mounts FUSE, manages loop devices and zram0)")
    for tool in ("fio", "dd", "losetup", "tar", "fusermount3"):
        if shutil.which(tool) is None:
            raise UserError(f"{tool} is not installed")
    if not os.path.exists("/dev/fuse"):
        raise UserError("/dev/fuse is missing")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError("matplotlib is needed for the chart (pip install matplotlib)") from None


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when it ran (whatever the speed), 2 on bad use, 1 on failure."""
    previous: Callable[[int, FrameType | None], Any] | int | None = None
    try:
        options = parse_options(argv)
        check_tools()
        bench = Bench(options, build_matrix(options.quick))
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)

        def save() -> None:
            options.json_path.parent.mkdir(parents=True, exist_ok=True)
            options.json_path.write_text(json.dumps(bench.report(), indent=1) + "\n")

        bench.run(checkpoint=save)
        save()
        report = bench.report()
        write_png(report, options.png_path)
        print(format_table(report))
        print(format_memory(report))
        print("targets (reported, never enforced):")
        print(format_goals(report))
        for name, reason in bench.skipped.items():
            print(f"skipped {name}: {reason}")
        leftovers = report["machine"]["leftovers"]
        print("cleanup: " + ("; ".join(leftovers) if leftovers else "nothing left behind"))
        print(
            f"took {_duration(report['machine']['seconds'])}; "
            f"JSON {options.json_path}, chart {options.png_path}"
        )
        return 1 if leftovers else 0
    except UserError as exc:
        print(f"zramd bench: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("\nzramd bench: interrupted; everything it set up was taken down", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())

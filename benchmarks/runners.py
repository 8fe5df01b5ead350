"""Running the fio matrix: the devices under test, fio and dd, and the raw measurements.

Owns: what a cell is and how to run one (fio or dd, with the CPU and byte counts around it);
building the data corpus; starting the benchmark's own daemons (``zramd start`` and ``zramd start
--noop``) on temporary mount points, configuring the kernel's zram0 when it is free, attaching
loop devices; running the cells in the rotated order; the memory measurements (RSS, ``mm_stat``,
repeated overwrite passes); the machine description; progress on stderr. It always takes down
what it set up -- loop devices, daemons, zram0 (reset), temporary files -- also on failure and
Ctrl-C, and checks afterwards that nothing was left behind.

Must not: touch a zram0 that someone else initialised, touch any mount or loop device it did not
create, decide which cells make up the matrix (``fio_matrix`` does), or compute ratios, judge
targets or format anything for the report (``report`` does).

CPU: a daemon's utime+stime from /proc/PID/stat; for the kernel's zram the machine's system CPU
(system+irq+softirq from /proc/stat), which also counts fio's own system time -- a proxy. The
machine's system CPU is recorded for every target as well.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zramd import __version__
from zramd.admin import control
from zramd.core.engine import PURE_PYTHON_ENV
from zramd.core.errors import UserError
from zramd.core.units import PAGE_SIZE, format_size
from zramd.host import mounts
from zramd.host.processes import daemon_pid, pid_alive, run_tool
from zramd.host.rundir import CONTROL_NAME, device_dir, logfile_for
from zramd.host.settings import ServeConfig
from zramd.host.sysdir import SysDir

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

TARGETS = ("zramd", "python", "noop", "kernel")  # python: zramd running its pure-Python core
KERNEL_SYSFS = Path("/sys/block/zram0")
KERNEL = SysDir(KERNEL_SYSFS)
KERNEL_DEV = "/dev/zram0"
CORPUS_ROOTS = ("usr/lib/python3.11", "usr/share/doc")
CORPUS_MAX = 256 * MiB
QUEUE_DEPTH = 16  # the libaio cells
OVERWRITE_PASSES = 3


# ---------------------------------------------------------------------------- cells


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


# ---------------------------------------------------------------------------- targets


@dataclass(slots=True)
class Target:
    """One device under test.

    Attributes:
        name: "zramd", "python" (zramd with ZRAMD_PURE_PYTHON=1), "noop" or "kernel".
        file: the path the "file" cells use with O_DIRECT (ROOT/zram0/disk or /dev/zram0).
        sysdir: its attribute directory (ROOT/zram0 or /sys/block/zram0).
        pid: the daemon's pid (None for the kernel).
        loop: the block device the "loop" cells use: the daemon's own loop device over `file`.
    """

    name: str
    file: str
    sysdir: SysDir
    pid: int | None = None
    loop: str = ""

    def path_for(self, cell: Cell) -> str:
        return self.loop if cell.path == "loop" else self.file

    def cpu(self) -> float | None:
        return process_cpu(self.pid) if self.pid is not None else None


def kernel_unavailable() -> str | None:
    """Why the kernel's zram0 cannot be used, or None when it is free to configure."""
    if not KERNEL_SYSFS.exists():
        return "the kernel's zram is absent (/sys/block/zram0 does not exist; modprobe zram)"
    if os.geteuid() != 0:
        return "configuring the kernel's zram0 needs root"
    if KERNEL.number("initstate") != 0:
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
        with contextlib.suppress(UserError):
            run_tool("losetup", "-d", loop)
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
            KERNEL.write("reset", "1")
            return
        except OSError:
            if attempt == 49:
                raise
            time.sleep(0.1)


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
    if mounts.mount_entry(mountpoint) is not None:
        with contextlib.suppress(UserError):
            mounts.unmount(mountpoint, lazy=True)
    if pid is not None and pid_alive(pid):
        deadline = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    logfile_for(mountpoint).unlink(missing_ok=True)


# ---------------------------------------------------------------------------- fio and dd


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
    result = run_tool(*fio_args(cell, filename, disksize, runtime), timeout=runtime + 120)
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


def dd_copy(
    source: str, dest: str, bs: int, offset: int, nbytes: int, seek: int | None = None
) -> tuple[int, float]:
    """Copy `nbytes` at `offset` from `source` to `dest` with O_DIRECT, at the same offset or at
    `seek` when given; returns (bytes, seconds) as dd measured them."""
    result = run_tool(
        "dd", f"if={source}", f"of={dest}", f"bs={bs}", f"skip={offset}",
        f"seek={offset if seek is None else seek}", f"count={nbytes}",
        "iflag=fullblock,skip_bytes,count_bytes", "oflag=direct,seek_bytes", "conv=notrunc",
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
    """Overwrite the whole of `dest` with the corpus rotated by `shift` bytes (1 MiB writes):
    dest[0:n-shift] = corpus[shift:n], dest[n-shift:n] = corpus[0:shift]."""
    if shift:
        dd_copy(corpus, dest, MiB, shift, disksize - shift, seek=0)
        dd_copy(corpus, dest, MiB, 0, shift, seek=disksize - shift)
    else:
        dd_copy(corpus, dest, MiB, 0, disksize)


def corpus_tar(limit: int) -> tuple[bytes, list[str]]:
    """The first `limit` bytes of a reproducible tar of the corpus roots that exist, and those
    roots (as absolute paths)."""
    roots = [r for r in CORPUS_ROOTS if (Path("/") / r).is_dir()]
    if not roots:
        raise UserError(f"none of /{', /'.join(CORPUS_ROOTS)} exists to build the corpus from")
    tar = subprocess.Popen(
        ["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "-cf", "-", *roots],
        cwd="/", stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert tar.stdout is not None
    data = tar.stdout.read(limit)
    tar.kill()
    tar.wait()
    return data, ["/" + r for r in roots]


def build_corpus(path: Path, disksize: int) -> dict[str, Any]:
    """The corpus tar, cut at 256 MiB, repeated to `disksize` bytes in the file `path`."""
    data, roots = corpus_tar(min(CORPUS_MAX, disksize))
    if len(data) < PAGE_SIZE:
        raise UserError("the corpus came out empty")
    with open(path, "wb") as f:
        written = 0
        while written < disksize:
            piece = data[: disksize - written]
            f.write(piece)
            written += len(piece)
    return {"roots": roots, "tar_bytes": len(data), "file_bytes": disksize}


# ---------------------------------------------------------------------------- progress


class MatrixProgress:
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
            f"{cell.name} on {target}, ETA {duration(eta)}"
        )

    def _clock(self) -> str:
        return f"[{duration(time.monotonic() - self.started)}]"

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


def duration(seconds: float) -> str:
    """`seconds` as ``MmSSs``."""
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
    """One benchmark run: its targets, its scratch space and its raw results."""

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
    progress: MatrixProgress = field(default_factory=lambda: MatrixProgress(0, 1.0))

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
        pure = os.environ.get(PURE_PYTHON_ENV)
        if name == "python":  # the daemon inherits the environment
            os.environ[PURE_PYTHON_ENV] = "1"
        try:
            control.start(config, log_level="warning", timeout=60)
        finally:
            if pure is None:
                os.environ.pop(PURE_PYTHON_ENV, None)
            else:
                os.environ[PURE_PYTHON_ENV] = pure
        pid = daemon_pid(str(mountpoint))
        self.undo(stack, f"stopping {name} (pid {pid})", _stop_daemon, str(mountpoint), pid)
        if pid is None:
            raise UserError(f"no pid file for the daemon on {mountpoint}")
        self.created.append(str(mountpoint))
        report = dict(
            line.split(": ", 1)
            for line in SysDir(mountpoint / CONTROL_NAME).read("daemon").splitlines()
            if ": " in line
        )
        self.info[f"{name}_core"] = report.get("core", "")
        self.info[f"{name}_streams"] = report.get("streams", "")
        want = {"zramd": "compiled", "python": "python"}.get(name)
        if want and not report.get("core", "").startswith(want):
            raise UserError(f"the {name} target runs the {report.get('core')!r} core, not the {want} one")
        device = device_dir(mountpoint, 0)
        self.targets[name] = Target(name, str(device / "disk"), SysDir(device), pid)

    def claim_kernel(self, stack: contextlib.ExitStack) -> None:
        reason = _wait_for_kernel(self.options.wait_kernel)
        if reason is None:
            try:
                KERNEL.write("comp_algorithm", self.options.algorithm)
                KERNEL.write("disksize", str(self.options.size))
            except OSError as exc:  # EBUSY: someone initialised it just now; not ours to reset
                reason = f"cannot configure the kernel's zram0: {exc.strerror}"
        if reason is not None:
            self.skipped["kernel"] = reason
            return
        self.kernel_claimed = True
        self.undo(stack, "resetting the kernel's zram0", _reset_kernel)
        self.targets["kernel"] = Target("kernel", KERNEL_DEV, KERNEL)

    def attach_loop(self, stack: contextlib.ExitStack, target: Target) -> None:
        if target.pid is not None:  # a zramd daemon: its device's own block device
            target.loop = target.sysdir.read("block_device").strip()
            return
        loop = run_tool("losetup", "--direct-io=on", "--sector-size", "4096", "-f", "--show", target.file)
        target.loop = loop.stdout.strip()
        self.created.append(target.loop)
        self.undo(stack, f"detaching {target.loop}", _detach_loop, target.loop)

    # -- measuring

    def prefill(self, target: Target, data: str) -> None:
        size = self.options.size
        if data == "corpus":
            dd_copy(str(self.corpus), target.file, MiB, 0, size)
        else:
            run_tool(
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

    def overwrite_passes(
        self, target: Target, label: str, progress: MatrixProgress, idle_rss: int = 0
    ) -> list[dict[str, Any]]:
        """OVERWRITE_PASSES whole-disk corpus passes over `target`, each rotated by a further third
        of the disk (so every page changes), with its ``mm_stat`` after each -- and, for a daemon,
        its RSS and the metadata bytes per page beyond `idle_rss`."""
        size = self.options.size
        passes = []
        for k in range(OVERWRITE_PASSES):
            progress.note(f"memory: overwrite pass {k + 1}/{OVERWRITE_PASSES} on {label}")
            shift = (k * size // OVERWRITE_PASSES) // MiB * MiB
            write_corpus_pass(str(self.corpus), target.file, size, shift)
            mm = target.sysdir.mm_stat()
            row: dict[str, Any] = {"pass": k + 1, "shift_bytes": shift}
            rss = process_rss(target.pid) if target.pid is not None else None
            if rss is not None:
                row["rss"] = rss
            row |= {"orig_data_size": mm[0], "compr_data_size": mm[1], "mem_used_total": mm[2]}
            if rss is not None:
                row["metadata_bytes_per_page"] = (rss - mm[2] - idle_rss) / (size // PAGE_SIZE)
            passes.append(row)
        return passes

    def measure_memory(self, progress: MatrixProgress) -> None:
        """Idle RSS, then the overwrite passes on zramd with RSS and mm_stat after each; the same
        passes on the kernel's zram0, whose mm_stat after each pass is the reference for the same
        bytes at the same offsets."""
        size = self.options.size
        zramd = self.targets["zramd"]
        assert zramd.pid is not None
        time.sleep(0.5)
        baseline = process_rss(zramd.pid)
        passes = self.overwrite_passes(zramd, "zramd", progress, idle_rss=baseline)
        first = passes[0]
        self.memory = {
            "data": "corpus",
            "disksize": size,
            "pages": size // PAGE_SIZE,
            "idle_rss": baseline,
            "rss": first["rss"],
            "mem_used_total": first["mem_used_total"],
            "metadata_bytes_per_page": first["metadata_bytes_per_page"],
            "passes": passes,
            "kernel": None,
        }
        if "kernel" in self.targets:
            kernel_passes = self.overwrite_passes(self.targets["kernel"], "the kernel's zram0", progress)
            self.memory["kernel"] = {**kernel_passes[0], "passes": kernel_passes}

    def run_matrix(self, progress: MatrixProgress) -> None:
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
        progress = MatrixProgress(
            len(self.cells) * options.repeat * len(options.targets), options.runtime + 0.5
        )
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
            for name in ("zramd", "python", "noop"):
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
                self.memory["mm_stat_after_matrix"] = zramd.sysdir.mm_stat()
                self.info["zramd_io_stat"] = zramd.sysdir.io_stat()
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
        loops = run_tool("losetup", "-a").stdout
        for item in self.created:
            if item.startswith("/dev/loop") and f"{item}:" in loops:
                found.append(f"loop device {item} is still attached")
            if not item.startswith("/dev/") and mounts.mount_entry(item) is not None:
                found.append(f"{item} is still mounted")
        if str(self.scratch) in loops:
            found.append(f"a loop device still backs a file under {self.scratch}")
        if self.kernel_claimed and KERNEL.number("initstate") != 0:
            found.append("the kernel's zram0 is still initialised")
        return found


# ---------------------------------------------------------------------------- machine


def _tool_output(*args: str) -> str:
    """The standard output of a tool, or "" when it is missing or fails."""
    try:
        return run_tool(*args).stdout
    except (UserError, OSError):
        return ""


def _first_line(*args: str) -> str:
    return (_tool_output(*args).strip().splitlines() or [""])[0]


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
    dirty = _tool_output("git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no").split("\n")
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

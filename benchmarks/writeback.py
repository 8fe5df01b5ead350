"""The writeback cell: 4 KiB random-read latency of written-back pages against resident pages.

One zramd device (``--size``, default 256 MiB) gets a sparse backing file on a real disk
(``--backing-dir``, default /var/tmp; tmpfs and ramfs are refused) through ``backing_dev`` while
uninitialised, then its ``disksize``. Its block device is filled by fio with half-compressible
buffers (``buffer_compress_percentage=50``, ``refill_buffers``, a fixed seed), every page is
marked idle (``idle`` <- ``all``) and the first half is written back (``writeback`` <-
``page_indexes=0-N``); the block device's buffers are flushed (``blockdev --flushbufs``). Then
fio reads 4 KiB at random with O_DIRECT (``psync``, QD1, ``--runtime`` seconds a run) over one
range at a time, the rows of a round in an order rotated per round (``--rounds``):

* written-back: the zramd block device, the first half (every read is a backing-store read:
  zramd reads the page from the backing file with O_DIRECT each time, there is no cache, so the
  latency includes a disk read);
* resident: the zramd block device, the second half (decompressed from the pool);
* kernel: /sys/block/zram0's /dev/zram0, same size, algorithm and data, the second half -- the
  kernel's resident read, for reference (skipped, with the reason, when zram0 is absent or in
  use by someone else; ``echo 1 > reset`` afterwards on every exit path once configured);
* disk: the backing file itself over the blocks written back, O_DIRECT -- the disk's own 4 KiB
  read latency, what a written-back read adds to a resident one.

Reported per row: the medians over rounds of fio's median and p99 completion latency (µs) and of
IOPS; for the zramd rows the backing-store reads per I/O (``bd_stat``'s bd_reads before and after
each run); the median over rounds of the per-round ratio written-back/resident (median clat, p99,
IOPS), and bd_stat and mm_stat after the fill, after the writeback and after the reads. Run it as
``python -m benchmarks.writeback [--quick] [--json FILE]`` (scripts/bench-writeback).

Owns: setting up and taking down the daemon and its mount, the backing file and the kernel's
zram0, the rounds and the figures and their printout.

Must not: touch a zram0 someone else initialised, a mount or a file it did not create, leave
anything behind on any exit path (Ctrl-C and SIGTERM included), or fail on speed: 0 when it ran,
1 when it could not run or left something behind, 2 on bad use, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from benchmarks.runners import KERNEL, KERNEL_DEV, KiB, MiB, _fio_json, _reset_kernel, kernel_unavailable
from tests.mount_util import daemon_log_problems, force_cleanup, fuse_unavailable
from zramd import __version__
from zramd.admin import control
from zramd.core import compress
from zramd.core.errors import UserError
from zramd.core.units import PAGE_SIZE, format_size, parse_size
from zramd.host.mounts import mount_entry
from zramd.host.processes import daemon_pid, pid_alive, run_tool
from zramd.host.rundir import CONTROL_NAME, device_dir, logfile_for
from zramd.host.settings import ServeConfig
from zramd.host.sysdir import SysDir

DEFAULTS: dict[str, Any] = {"size": 256 * MiB, "runtime": 3.0, "rounds": 5}
QUICK_DEFAULTS: dict[str, Any] = {"size": 16 * MiB, "runtime": 1.0, "rounds": 1}
FILL_SEED = 20240917  # the same fio buffers for zramd and the kernel
BS = 4 * KiB
ROWS = ("written-back", "resident", "kernel", "disk")
ZRAMD_ROWS = ("written-back", "resident")
MEMORY_FS = {"tmpfs", "ramfs", "devtmpfs", "hugetlbfs"}
PROG = "zramd bench-writeback"


def note(text: str) -> None:
    sys.stderr.write(f"{PROG}: {text}\n")
    sys.stderr.flush()


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


# ---------------------------------------------------------------------------- fio


def fill(device: str, size: int) -> None:
    """Write all of `device` once, 1 MiB at QD16 with O_DIRECT, fio's half-compressible buffers."""
    run_tool(
        "fio", "--name=fill", f"--filename={device}", "--rw=write", f"--bs={MiB}", "--ioengine=libaio",
        "--iodepth=16", "--direct=1", f"--size={size}", "--buffer_compress_percentage=50",
        "--refill_buffers", f"--randseed={FILL_SEED}", "--output-format=json",
        timeout=600,
    )  # fmt: skip


def randread(path: str, offset: int, length: int, runtime: float) -> dict[str, float]:
    """One fio run of 4 KiB O_DIRECT random reads at QD1 (psync) over [offset, offset+length):
    iops, p50_us, p99_us, mean_us (completion latency) and ios."""
    result = run_tool(
        "fio", "--name=randread", f"--filename={path}", "--rw=randread", f"--bs={BS}",
        "--ioengine=psync", "--iodepth=1", "--direct=1", f"--offset={offset}", f"--size={length}",
        "--randrepeat=0", "--norandommap", "--time_based", f"--runtime={runtime:g}s",
        "--output-format=json",
        timeout=runtime + 120,
    )  # fmt: skip
    side = _fio_json(result.stdout)["jobs"][0]["read"]
    clat = side["clat_ns"]
    percentiles = clat.get("percentile", {})
    return {
        "iops": float(side["iops"]),
        "p50_us": percentiles["50.000000"] / 1000,
        "p99_us": percentiles["99.000000"] / 1000,
        "mean_us": float(clat["mean"]) / 1000,
        "ios": int(side["total_ios"]),
    }


def flush_buffers(device: str) -> None:
    """Drop `device`'s page cache (the reads are O_DIRECT too)."""
    run_tool("blockdev", "--flushbufs", device)


# ---------------------------------------------------------------------------- the run


@dataclass(frozen=True, slots=True)
class Row:
    """One range that is read: what, where, and whether its bd_stat is watched."""

    name: str
    path: str
    offset: int
    length: int
    bd: SysDir | None = None  # the zramd device whose bd_reads each run should count


@dataclass
class WritebackBench:
    size: int
    runtime: float
    rounds: int
    algorithm: str
    backing_dir: Path
    use_kernel: bool = True
    scratch: Path | None = None
    mountpoint: Path | None = None
    backing: Path | None = None
    device: SysDir | None = None
    block: str = ""
    pid: int | None = None
    core: str = ""
    kernel_claimed: bool = False
    kernel_skipped: str | None = None
    rows: list[Row] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def pages(self) -> int:
        return self.size // PAGE_SIZE

    @property
    def half(self) -> int:
        """Pages written back: 0 .. half-1."""
        return self.pages // 2

    def undo(
        self, stack: contextlib.ExitStack, label: str, func: Callable[..., object], *args: object
    ) -> None:
        """Register `func(*args)` on `stack`; a failure is recorded and the other steps still run."""

        def step() -> None:
            note(label)
            try:
                func(*args)
            except Exception as exc:
                self.problems.append(f"{label}: {exc}")
                note(f"{label} failed: {exc}")

        stack.callback(step)

    # -- setup

    def make_backing(self, stack: contextlib.ExitStack) -> None:
        """A sparse file of `size` bytes (room for every page) on a disk, not in memory."""
        fstype, source = filesystem_of(self.backing_dir)
        if fstype in MEMORY_FS or source.startswith("/dev/zram"):
            raise UserError(
                f"--backing-dir {self.backing_dir} is on {fstype} ({source}), in memory; "
                "written-back reads must hit a disk: pick a directory on one",
                exit_code=2,
            )
        fd, name = tempfile.mkstemp(prefix="zramd-bench-wb-", suffix=".img", dir=self.backing_dir)
        self.backing = Path(name)
        self.undo(stack, f"removing {name}", self.backing.unlink, True)
        try:
            os.ftruncate(fd, self.size)
        finally:
            os.close(fd)
        self.info["backing"] = {"path": name, "fstype": fstype, "source": source, "size": self.size}

    def start_zramd(self, stack: contextlib.ExitStack) -> None:
        assert self.scratch is not None
        assert self.backing is not None
        mountpoint = self.scratch / "root"
        mountpoint.mkdir()
        self.mountpoint = mountpoint
        self.undo(stack, f"removing {mountpoint}", _rmdir, mountpoint)
        self.undo(stack, f"stopping zramd on {mountpoint}", self.stop_zramd, mountpoint)
        control.start(
            ServeConfig(mountpoint=str(mountpoint), disksize=0, algorithm=self.algorithm),
            log_level="warning",
            timeout=60,
        )
        self.pid = daemon_pid(str(mountpoint))
        if self.pid is None:
            raise UserError(f"no pid file for the daemon on {mountpoint}")
        report = dict(
            line.split(": ", 1)
            for line in SysDir(mountpoint / CONTROL_NAME).read("daemon").splitlines()
            if ": " in line
        )
        self.core = report.get("core", "")
        device = SysDir(device_dir(mountpoint, 0))
        device.write("backing_dev", str(self.backing))
        device.write("comp_algorithm", self.algorithm)
        device.write("disksize", str(self.size))
        self.device = device
        self.block = device.read("block_device").strip()
        if not self.block.startswith("/dev/"):
            raise UserError(f"the daemon on {mountpoint} reports no block device ({self.block!r})")
        backing_dev = device.read("backing_dev").strip()
        note(f"zramd pid {self.pid}, block device {self.block}, backing_dev {backing_dev}")
        note(f"core: {self.core}")

    def stop_zramd(self, mountpoint: Path) -> None:
        """`zramd stop`, a forced cleanup whatever happened, then the daemon's log must hold no
        error (recorded as a problem) and is removed."""
        try:
            if mount_entry(str(mountpoint)) is not None:
                control.stop(str(mountpoint), timeout=60, force=True)
        except UserError as exc:
            self.problems.append(f"zramd stop {mountpoint}: {exc}")
        finally:
            force_cleanup(mountpoint)
        log = logfile_for(str(mountpoint))
        with contextlib.suppress(FileNotFoundError):
            errors = daemon_log_problems(log.read_text(errors="replace"))
            self.problems += [f"daemon log: {line}" for line in errors]
            log.unlink()

    def claim_kernel(self, stack: contextlib.ExitStack) -> None:
        reason = kernel_unavailable() if self.use_kernel else "--no-kernel"
        if reason is None:
            try:
                KERNEL.write("comp_algorithm", self.algorithm)
                KERNEL.write("disksize", str(self.size))
            except OSError as exc:
                if exc.errno != errno.EBUSY:  # not someone else's: ours, half configured
                    _reset_kernel()
                reason = f"cannot configure the kernel's zram0: {exc.strerror or exc}"
        if reason is not None:
            self.kernel_skipped = reason
            note(f"kernel zram0 skipped: {reason}")
            return
        self.kernel_claimed = True
        self.undo(stack, "resetting the kernel's zram0", _reset_kernel)

    # -- filling and writing back

    def prepare(self) -> None:
        assert self.device is not None
        assert self.backing is not None
        device, size = self.device, self.size
        note(f"filling {self.block} ({format_size(size)}, fio buffer_compress_percentage=50)")
        fill(self.block, size)
        self.stats["mm_stat_after_fill"] = device.mm_stat()
        self.stats["bd_stat_after_fill"] = device.columns("bd_stat")
        device.write("idle", "all")
        last = self.half - 1
        note(f"writeback page_indexes=0-{last}")
        started = time.monotonic()
        device.write("writeback", f"page_indexes=0-{last}")
        self.stats["writeback_seconds"] = time.monotonic() - started
        self.stats["writeback_request"] = f"page_indexes=0-{last}"
        self.stats["mm_stat_after_writeback"] = device.mm_stat()
        bd = device.columns("bd_stat")
        self.stats["bd_stat_after_writeback"] = bd
        self.stats["backing_allocated_after_writeback"] = os.stat(self.backing).st_blocks * 512
        if bd[0] == 0:
            raise UserError("the writeback wrote no page back (bd_stat bd_count is 0)")
        if bd[0] != self.half:
            self.problems.append(f"writeback wrote back {bd[0]} pages of the {self.half} asked for")
        flush_buffers(self.block)
        half_bytes = self.half * PAGE_SIZE
        self.rows = [
            Row("written-back", self.block, 0, half_bytes, device),
            Row("resident", self.block, half_bytes, size - half_bytes, device),
        ]
        if self.kernel_claimed:
            note(f"filling {KERNEL_DEV} with the same data")
            fill(KERNEL_DEV, size)
            flush_buffers(KERNEL_DEV)
            self.stats["kernel_mm_stat_after_fill"] = KERNEL.mm_stat()
            self.rows.append(Row("kernel", KERNEL_DEV, half_bytes, size - half_bytes))
        self.rows.append(Row("disk", str(self.backing), 0, bd[0] * PAGE_SIZE))

    # -- measuring

    def measure(self) -> None:
        assert self.device is not None
        self.stats["bd_stat_before_reads"] = self.device.columns("bd_stat")
        for r in range(self.rounds):
            turn = r % len(self.rows)
            for row in self.rows[turn:] + self.rows[:turn]:
                before = row.bd.columns("bd_stat")[1] if row.bd is not None else None
                figures: dict[str, Any] = {"round": r + 1, "row": row.name}
                figures |= randread(row.path, row.offset, row.length, self.runtime)
                if row.bd is not None and before is not None:
                    figures["bd_reads"] = row.bd.columns("bd_stat")[1] - before
                self.runs.append(figures)
                extra = f", bd_reads +{figures['bd_reads']}" if "bd_reads" in figures else ""
                note(
                    f"round {r + 1}/{self.rounds} {row.name:>12}: p50 {figures['p50_us']:.1f} µs, "
                    f"p99 {figures['p99_us']:.1f} µs, {figures['iops']:.0f} IOPS{extra}"
                )
        self.stats["bd_stat_after_reads"] = self.device.columns("bd_stat")
        self.stats["mm_stat_after_reads"] = self.device.mm_stat()

    def run(self) -> None:
        with contextlib.ExitStack() as stack:
            self.scratch = Path(tempfile.mkdtemp(prefix="zramd-bench-wb-"))
            self.undo(stack, f"removing {self.scratch}", _rmdir, self.scratch)
            self.make_backing(stack)
            self.start_zramd(stack)
            self.claim_kernel(stack)
            self.prepare()
            self.measure()
            note("tearing down")

    def leftovers(self) -> list[str]:
        found = []
        if self.mountpoint is not None and mount_entry(str(self.mountpoint)) is not None:
            found.append(f"{self.mountpoint} is still mounted")
        if self.pid is not None and pid_alive(self.pid):
            found.append(f"the zramd daemon (pid {self.pid}) is still running")
        if self.scratch is not None and self.scratch.exists():
            found.append(f"{self.scratch} is still there")
        if self.backing is not None and self.backing.exists():
            found.append(f"the backing file {self.backing} is still there")
        if self.kernel_claimed and (KERNEL.number("initstate") != 0 or KERNEL.number("disksize") != 0):
            found.append("the kernel's zram0 is still initialised")
        return found


def _rmdir(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.rmdir()


def filesystem_of(path: Path) -> tuple[str, str]:
    """(fstype, source) of the filesystem holding `path`, from findmnt ("?" when unknown)."""
    try:
        out = run_tool("findmnt", "-n", "-o", "FSTYPE,SOURCE", "-T", str(path)).stdout.split()
    except UserError:
        return "?", "?"
    return (out[0], out[1]) if len(out) >= 2 else ("?", "?")


# ---------------------------------------------------------------------------- figures


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summary(bench: WritebackBench) -> dict[str, Any]:
    """Per row: medians over rounds; per-round ratios written-back/resident and their medians."""
    rows: dict[str, Any] = {}
    for row in bench.rows:
        runs = [r for r in bench.runs if r["row"] == row.name]
        if not runs:
            continue
        entry: dict[str, Any] = {
            "path": row.path,
            "offset": row.offset,
            "length": row.length,
            "rounds": len(runs),
            "median_p50_us": _median([r["p50_us"] for r in runs]),
            "median_p99_us": _median([r["p99_us"] for r in runs]),
            "median_iops": _median([r["iops"] for r in runs]),
            "median_mean_us": _median([r["mean_us"] for r in runs]),
            "ios": sum(r["ios"] for r in runs),
        }
        if row.bd is not None:
            entry["bd_reads"] = sum(r["bd_reads"] for r in runs)
            entry["bd_reads_per_io"] = entry["bd_reads"] / entry["ios"] if entry["ios"] else None
        rows[row.name] = entry
    out: dict[str, Any] = {"rows": rows}
    by_round: dict[int, dict[str, dict[str, Any]]] = {}
    for r in bench.runs:
        by_round.setdefault(r["round"], {})[r["row"]] = r
    for key in ("p50_us", "p99_us", "iops"):
        ratios = [
            pair["written-back"][key] / pair["resident"][key]
            for pair in by_round.values()
            if "written-back" in pair and "resident" in pair and pair["resident"][key] > 0
        ]
        out[f"ratio_{key}"] = ratios
        out[f"median_ratio_{key}"] = _median(ratios)
    return out


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def format_table(bench: WritebackBench, figures: dict[str, Any]) -> str:
    header = ["row", "reads", "range", "clat p50 µs", "clat p99 µs", "IOPS", "vs resident", "bd_reads/IO"]
    table = [header]
    resident = figures["rows"].get("resident")
    where = {"written-back": "zramd", "resident": "zramd", "kernel": "kernel zram0", "disk": "backing file"}
    for name in ROWS:
        row = figures["rows"].get(name)
        if row is None:
            continue
        if name == "written-back":
            vs = _ratio(figures["median_ratio_p50_us"])
        elif resident and resident["median_p50_us"] and name != "resident":
            vs = _ratio(row["median_p50_us"] / resident["median_p50_us"])
        else:
            vs = ""
        span = f"{format_size(row['offset'])}-{format_size(row['offset'] + row['length'])}"
        table.append(
            [
                name,
                where[name],
                span,
                _num(row["median_p50_us"]),
                _num(row["median_p99_us"]),
                _num(row["median_iops"], 0),
                vs,
                _num(row.get("bd_reads_per_io"), 2) if "bd_reads_per_io" in row else "",
            ]
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(widths[i]) if i < 3 else c.rjust(widths[i]) for i, c in enumerate(r)).rstrip()
             for r in table]  # fmt: skip
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def print_report(bench: WritebackBench, figures: dict[str, Any]) -> None:
    backing = bench.info.get("backing", {})
    print(
        f"writeback cell: 4 KiB O_DIRECT random reads (fio psync, QD1, {bench.runtime:g} s a run, "
        f"{bench.rounds} round{'s' if bench.rounds != 1 else ''} alternated), "
        f"{format_size(bench.size)} device, {bench.algorithm}, "
        f"fio50 data, pages 0-{bench.half - 1} written back. A written-back read re-reads its page "
        f"from the backing file with O_DIRECT every time (no cache), so its latency includes a "
        f"disk read (backing file on {backing.get('fstype', '?')} {backing.get('source', '?')})."
    )
    print(f"zramd core: {bench.core}")
    if bench.core and not bench.core.startswith("compiled"):
        print("WARNING: the daemon does not run the compiled core")
    print(format_table(bench, figures))
    for key in ("p50_us", "p99_us", "iops"):
        ratios = figures.get(f"ratio_{key}") or []
        if ratios:
            print(
                f"written-back/resident {key}: median {figures[f'median_ratio_{key}']:.2f}x "
                f"(per round {' '.join(f'{x:.2f}' for x in ratios)})"
            )
    stats = bench.stats
    labels = (
        ("bd_stat_after_fill", "after fill"),
        ("bd_stat_after_writeback", "after writeback"),
        ("bd_stat_before_reads", "before reads"),
        ("bd_stat_after_reads", "after reads"),
    )
    for key, label in labels:
        if key in stats:
            count, reads, writes = stats[key]
            print(f"bd_stat {label + ':':17} bd_count {count:8d}  bd_reads {reads:8d}  bd_writes {writes:8d}")
    for key, label in (("mm_stat_after_fill", "zramd after fill"),
                       ("mm_stat_after_writeback", "zramd after writeback"),
                       ("kernel_mm_stat_after_fill", "kernel after fill")):  # fmt: skip
        if key in stats:
            mm = stats[key]
            print(
                f"mm_stat {label + ':':23} orig_data_size {format_size(mm[0])}, "
                f"compr_data_size {format_size(mm[1])} ({mm[1]} B), mem_used_total {format_size(mm[2])}"
            )
    if "writeback_seconds" in stats:
        print(
            f"writeback of {stats['bd_stat_after_writeback'][0]} pages took "
            f"{stats['writeback_seconds']:.2f} s"
        )
    if bench.kernel_skipped:
        print(f"kernel zram0: skipped: {bench.kernel_skipped}")


# ---------------------------------------------------------------------------- main


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="4 KiB O_DIRECT random-read latency of written-back pages against resident "
        "pages of one zramd device, with the kernel's zram0 (resident) and the backing disk as "
        "reference rows (needs root, FUSE and fio).",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 16M, 1 round, 1 s a run")
    parser.add_argument("--size", type=_size, default=None, help="disk size (default 256M; --quick 16M)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of every row (default 5; --quick 1)")
    parser.add_argument("--runtime", type=float, default=None, help="seconds a run (default 3; --quick 1)")
    parser.add_argument(
        "--algorithm",
        default=compress.DEFAULT_ALGORITHM,
        choices=compress.algorithm_names(),
        help="lzo or lz4",
    )
    parser.add_argument(
        "--backing-dir", type=Path, default=Path("/var/tmp"), help="where the sparse backing file goes "
        "(a disk, not tmpfs; default /var/tmp)",
    )  # fmt: skip
    parser.add_argument("--no-kernel", action="store_true", help="leave the kernel's zram0 alone")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the figures here")
    args = parser.parse_args(argv)
    defaults = QUICK_DEFAULTS if args.quick else DEFAULTS
    for key in ("size", "rounds", "runtime"):
        if getattr(args, key) is None:
            setattr(args, key, defaults[key])
    if args.size < 4 * MiB or args.size % MiB:
        parser.error("--size must be a whole number of MiB, at least 4M")
    if args.rounds < 1 or args.runtime <= 0:
        parser.error("--rounds must be at least 1 and --runtime positive")
    if not args.backing_dir.is_dir():
        parser.error(f"--backing-dir {args.backing_dir} is not a directory")
    return args


def preflight() -> None:
    reason = fuse_unavailable()
    if reason:
        raise UserError(reason)
    for tool in ("fio", "blockdev", "findmnt"):
        if shutil.which(tool) is None:
            raise UserError(f"{tool} is not installed")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = WritebackBench(
        size=args.size,
        runtime=args.runtime,
        rounds=args.rounds,
        algorithm=args.algorithm,
        backing_dir=args.backing_dir.resolve(),
        use_kernel=not args.no_kernel,
    )
    bench.info = {
        "kernel": platform.release(),
        "cores": os.cpu_count(),
        "fio": run_tool("fio", "--version").stdout.strip() if shutil.which("fio") else "",
        "zramd": __version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_before": os.getloadavg(),
    }
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    status, error = 0, None
    try:
        preflight()
        bench.run()
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; everything it set up was taken down", file=sys.stderr)
        status, error = 130, "interrupted"
    except UserError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        status, error = exc.exit_code, str(exc)
    except (OSError, AssertionError) as exc:
        print(f"{PROG}: FAILED: {exc}", file=sys.stderr)
        status, error = 1, f"{type(exc).__name__}: {exc}"
    finally:
        signal.signal(signal.SIGTERM, previous)
    bench.info["load_after"] = os.getloadavg()
    bench.info["core"] = bench.core
    leftovers = bench.leftovers()
    figures = summary(bench)
    if bench.runs:
        print_report(bench, figures)
    for problem in bench.problems:
        print(f"problem: {problem}")
    print("cleanup: " + ("; ".join(leftovers) if leftovers else "nothing left behind"))
    if leftovers or bench.problems:
        status = status or 1
    if args.json is not None:
        report = {
            "cell": "writeback-read-latency",
            "config": {
                "size": bench.size,
                "pages": bench.pages,
                "written_back_pages": bench.half,
                "runtime": bench.runtime,
                "rounds": bench.rounds,
                "algorithm": bench.algorithm,
                "bs": BS,
                "ioengine": "psync",
                "iodepth": 1,
                "direct": True,
                "fill": f"fio buffer_compress_percentage=50 refill_buffers randseed={FILL_SEED}",
            },
            "note": "a written-back read re-reads the page from the backing file with O_DIRECT each "
            "time (no cache): its latency includes a disk read",
            "info": bench.info,
            "kernel_skipped": bench.kernel_skipped,
            "stats": bench.stats,
            "runs": bench.runs,
            "summary": figures,
            "error": error,
            "problems": bench.problems,
            "leftovers": leftovers,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return status


if __name__ == "__main__":
    sys.exit(main())

"""The swap cell: the same swap storm through zramd and through the kernel's own zram, alternated.

A storm is tests/swap_storm.py's `run_storm`: a process in a memory cgroup whose limit is
``--factor`` times smaller than its working set writes a checksummed pattern over all of it and
reads it back, verifying every page, so most of it goes out to swap and comes back in. Both
sides are a ``--size`` device with the same algorithm, used as swap with priority 32767 and
``--discard`` (which also discards the whole area at each swapon, so every storm starts on an
empty device):

* zramd: one daemon (``zramd start ROOT --size SIZE --algorithm ALG``), its zram0's block device
  made swap per storm with ``zramd swapon ROOT --priority 32767 --discard``.
* kernel: /sys/block/zram0 reset, comp_algorithm and disksize written once, then per storm
  ``mkswap /dev/zram0`` and ``swapon -p 32767 --discard /dev/zram0``.

Run i runs kernel then zramd when i is even, zramd then kernel when it is odd, with the same
seed (the same data) for both. Reported: per-run seconds and swap MB/s of each side, their
medians, the median of the per-run ratios zramd/kernel wall time against the 1.15 target
(PASS/MISS), the zramd daemon's CPU seconds (utime+stime from /proc/PID/stat) during its
storms, the machine's system CPU (system+irq+softirq) during every storm, and the load average
before and after. Run it as ``python -m benchmarks.swap`` (scripts/bench-swap); ``--json`` writes
the figures for the main benchmark report.

Owns: setting up and tearing down both swap devices and the storms' cgroups, the alternation,
the figures and their printout. Both devices exist for the whole run, but only one of them is
active swap at a time (the other is swapped off before a storm starts); any other swap the
machine has is reported, since it takes pages too.

Must not: touch a zram0 someone else initialised (it exits non-zero with one line instead, as
when zram0 is absent), touch a mount, loop device or swap it did not create, leave anything
behind -- swap, the daemon and its mount, an initialised zram0, a cgroup -- on any exit path,
Ctrl-C and SIGTERM included; or turn a MISS into an exit status: 0 when it ran whatever the
speed, 1 when it could not run or a storm failed, 2 on bad use, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from benchmarks.runners import (
    KERNEL,
    KERNEL_DEV,
    KERNEL_SYSFS,
    _reset_kernel,
    kernel_unavailable,
    machine_system_cpu,
    process_cpu,
)
from tests.mount_util import check_daemon_log, force_cleanup, fuse_unavailable, zramd
from tests.swap_storm import MiB, StormHang, StormResult, cgroup_version, run_storm
from zramd.core.units import SizeError, format_size, parse_size
from zramd.host.mounts import mount_entry
from zramd.host.processes import daemon_pid, pid_alive
from zramd.host.rundir import device_dir

TARGET_RATIO = 1.15  # zramd's storm may take at most 1.15x the kernel's
PRIORITY = 32767
SETTLE_SECONDS = 2.0  # between storms: let the previous swapoff and the freed memory settle
SIDES = ("kernel", "zramd")


class Unavailable(Exception):
    """The benchmark cannot run here (the reason is the message)."""


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def note(text: str) -> None:
    sys.stderr.write(f"zramd bench-swap: {text}\n")
    sys.stderr.flush()


def run(*args: str, timeout: float = 120) -> None:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")


def active_swaps() -> list[dict[str, Any]]:
    """The rows of /proc/swaps: name, type, size and used (bytes), priority."""
    rows = []
    for line in Path("/proc/swaps").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5:
            rows.append(
                {
                    "name": fields[0],
                    "type": fields[1],
                    "size": int(fields[2]) * 1024,
                    "used": int(fields[3]) * 1024,
                    "priority": int(fields[4]),
                }
            )
    return rows


def swap_names() -> set[str]:
    return {row["name"] for row in active_swaps()}


# ---------------------------------------------------------------------------- the two sides


@dataclass
class Side:
    """One swap device under test: how to make it swap and stop, where its mm_stat is."""

    name: str
    block: str = ""
    mm_stat: Path = Path()
    mountpoint: Path | None = None  # the zramd root (a hung storm aborts its FUSE connection)
    pid: int | None = None  # the zramd daemon

    def swapon(self) -> None:
        if self.mountpoint is not None:
            zramd("swapon", str(self.mountpoint), "--priority", str(PRIORITY), "--discard")
        else:
            run("mkswap", self.block)
            run("swapon", "-p", str(PRIORITY), "--discard", self.block)

    def swapoff(self) -> None:
        if self.block and self.block in swap_names():
            run("swapoff", self.block, timeout=600)

    def cpu(self) -> float | None:
        return process_cpu(self.pid) if self.pid is not None else None


@dataclass
class SwapBench:
    """One run: its options, both sides, the measurements and what went wrong in teardown."""

    runs: int
    limit: int
    factor: int
    size: int
    algorithm: str
    bound: float
    sides: dict[str, Side] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    scratch: Path | None = None
    kernel_claimed: bool = False
    zramd_core: str = ""  # the per-page path the daemon runs, from `zramd status --json`

    def undo(
        self, stack: contextlib.ExitStack, label: str, func: Callable[..., object], *args: object
    ) -> None:
        """Register `func(*args)` on `stack`; a failure is noted and recorded, and the remaining
        steps still run."""

        def step() -> None:
            note(label)
            try:
                func(*args)
            except Exception as exc:
                self.problems.append(f"{label}: {exc}")
                note(f"{label} failed: {exc}")

        stack.callback(step)

    # -- setup

    def claim_kernel(self, stack: contextlib.ExitStack) -> None:
        reason = kernel_unavailable()
        if reason is not None:
            raise Unavailable(reason)
        side = Side("kernel", block=KERNEL_DEV, mm_stat=KERNEL_SYSFS / "mm_stat")
        try:
            KERNEL.write("reset", "1")  # uninitialised (checked above): only clears leftovers
            KERNEL.write("comp_algorithm", self.algorithm)
            KERNEL.write("disksize", str(self.size))
        except OSError as exc:  # EBUSY: someone initialised it just now; not ours to reset
            raise Unavailable(f"cannot configure the kernel's zram0: {exc.strerror or exc}") from None
        self.kernel_claimed = True
        self.undo(stack, "resetting the kernel's zram0", _reset_kernel)
        self.undo(stack, f"swapoff {KERNEL_DEV} (if active)", side.swapoff)
        self.sides["kernel"] = side

    def start_zramd(self, stack: contextlib.ExitStack, scratch: Path) -> None:
        mountpoint = scratch / "swapdev"
        mountpoint.mkdir()
        self.undo(stack, f"removing {mountpoint}", _rmdir, mountpoint)
        self.undo(stack, f"stopping zramd on {mountpoint}", self.stop_zramd, mountpoint)
        zramd("start", str(mountpoint), "--size", str(self.size), "--algorithm", self.algorithm, timeout=120)
        pid = daemon_pid(str(mountpoint))
        if pid is None:
            raise RuntimeError(f"no pid file for the daemon on {mountpoint}")
        block = (device_dir(mountpoint, 0) / "block_device").read_text().strip()
        if not block.startswith("/dev/"):
            raise RuntimeError(f"the daemon on {mountpoint} reports no block device ({block!r})")
        self.sides["zramd"] = Side(
            "zramd", block=block, mm_stat=mountpoint / "zram0" / "mm_stat", mountpoint=mountpoint, pid=pid
        )
        rows = json.loads(zramd("status", str(mountpoint), "--json").stdout)
        self.zramd_core = str(rows[0].get("core", "")) if rows else ""
        print(f"zramd daemon pid {pid}, block device {block}, core: {self.zramd_core}", flush=True)
        if not self.zramd_core.startswith("compiled"):
            print("WARNING: the daemon does not run the compiled core", flush=True)

    def stop_zramd(self, mountpoint: Path) -> None:
        """`zramd stop --force` (it swaps off first), a forced cleanup whatever happened, then the
        daemon's log must hold no error."""
        try:
            if mount_entry(str(mountpoint)) is not None:
                result = zramd(
                    "stop", str(mountpoint), "--force", "--timeout", "300", check=False, timeout=360
                )
                if result.returncode != 0:
                    self.problems.append(f"zramd stop {mountpoint} failed: {result.stderr.strip()}")
        finally:
            force_cleanup(mountpoint)
        check_daemon_log(mountpoint)

    # -- measuring

    def storm(self, side: Side, seed: int) -> dict[str, Any]:
        others = [s.block for s in self.sides.values() if s is not side and s.block in swap_names()]
        if others:
            raise RuntimeError(f"{', '.join(others)} still active swap before the {side.name} storm")
        side.swapon()
        load1 = os.getloadavg()[0]
        try:
            cpu0, sys0 = side.cpu(), machine_system_cpu()
            result: StormResult = run_storm(
                side.mountpoint, self.limit, self.factor, seed, self.bound, mm_stat=side.mm_stat
            )
            cpu1, sys1 = side.cpu(), machine_system_cpu()
        finally:
            side.swapoff()
        figures: dict[str, Any] = {
            "seconds": result.seconds,
            "swapped_out": result.swapped_out,
            "swapped_in": result.swapped_in,
            "swap_mb_per_s": result.swap_mb_per_s,
            "peak_orig_data_size": result.peak_orig_data_size,
            "machine_system_cpu_s": sys1 - sys0,
            "load1_before": load1,  # the machine's 1-minute load average as the storm started
        }
        if cpu0 is not None and cpu1 is not None:
            figures["daemon_cpu_s"] = cpu1 - cpu0
        return figures

    def run(self) -> None:
        for i in range(self.runs):
            order = SIDES if i % 2 == 0 else SIDES[::-1]
            row: dict[str, Any] = {"run": i + 1, "seed": i, "order": list(order)}
            for name in order:
                time.sleep(SETTLE_SECONDS)
                row[name] = figures = self.storm(self.sides[name], seed=i)
                extra = f", daemon CPU {figures['daemon_cpu_s']:.1f} s" if "daemon_cpu_s" in figures else ""
                print(
                    f"run {i + 1}/{self.runs} {name:>6}: {figures['seconds']:6.1f} s, out "
                    f"{figures['swapped_out'] / MiB:.0f} MiB, in {figures['swapped_in'] / MiB:.0f} MiB, "
                    f"{figures['swap_mb_per_s']:.0f} MB/s, peak orig_data_size "
                    f"{figures['peak_orig_data_size'] / MiB:.0f} MiB, machine sys CPU "
                    f"{figures['machine_system_cpu_s']:.1f} s{extra}, load {figures['load1_before']:.2f}",
                    flush=True,
                )
            row["ratio"] = row["zramd"]["seconds"] / row["kernel"]["seconds"]
            print(f"run {i + 1}/{self.runs}  ratio zramd/kernel {row['ratio']:.3f}", flush=True)
            self.results.append(row)

    # -- afterwards

    def leftovers(self) -> list[str]:
        found = []
        swaps = swap_names()
        for side in self.sides.values():
            if side.block in swaps:
                found.append(f"{side.block} ({side.name}) is still active swap")
        zramd_side = self.sides.get("zramd")
        if zramd_side is not None and zramd_side.mountpoint is not None:
            if mount_entry(str(zramd_side.mountpoint)) is not None:
                found.append(f"{zramd_side.mountpoint} is still mounted")
            if zramd_side.pid is not None and pid_alive(zramd_side.pid):
                found.append(f"the zramd daemon (pid {zramd_side.pid}) is still running")
        if self.scratch is not None:
            loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=False).stdout
            if str(self.scratch) in loops:
                found.append(f"a loop device still backs a file under {self.scratch}")
            if self.scratch.exists():
                found.append(f"{self.scratch} is still there")
        if self.kernel_claimed and (KERNEL.number("initstate") != 0 or KERNEL.number("disksize") != 0):
            found.append("the kernel's zram0 is still initialised")
        found += [f"cgroup {path} is still there" for path in _our_cgroups()]
        return found


def _rmdir(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.rmdir()


def _cgroup_root() -> Path | None:
    version = cgroup_version()
    if version == 2:
        return Path("/sys/fs/cgroup")
    if version == 1:
        return Path("/sys/fs/cgroup/memory")
    return None


def _our_cgroups() -> list[Path]:
    """The storm cgroups of this process (run_storm names them zramd-storm-PID-SEED)."""
    root = _cgroup_root()
    return sorted(root.glob(f"zramd-storm-{os.getpid()}-*")) if root is not None else []


def _remove_cgroups() -> None:
    for path in _our_cgroups():
        for _ in range(50):
            try:
                path.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.1)


# ---------------------------------------------------------------------------- figures


def summary(bench: SwapBench) -> dict[str, Any]:
    rows = bench.results
    out: dict[str, Any] = {"runs_completed": len(rows)}
    if not rows:
        return out
    for name in SIDES:
        out[name] = {
            "seconds": [r[name]["seconds"] for r in rows],
            "median_seconds": statistics.median(r[name]["seconds"] for r in rows),
            "median_swap_mb_per_s": statistics.median(r[name]["swap_mb_per_s"] for r in rows),
            "median_machine_system_cpu_s": statistics.median(r[name]["machine_system_cpu_s"] for r in rows),
        }
    daemon = [r["zramd"]["daemon_cpu_s"] for r in rows]
    out["zramd"] |= {"daemon_cpu_s": daemon, "median_daemon_cpu_s": statistics.median(daemon)}
    ratios = [r["ratio"] for r in rows]
    out["ratios"] = ratios
    out["median_ratio"] = statistics.median(ratios)
    out["ratio_of_medians"] = out["zramd"]["median_seconds"] / out["kernel"]["median_seconds"]
    out["target_ratio"] = TARGET_RATIO
    out["verdict"] = "PASS" if out["median_ratio"] <= TARGET_RATIO else "MISS"
    return out


def print_summary(figures: dict[str, Any]) -> None:
    if not figures.get("runs_completed"):
        print("no run completed")
        return
    k, z = figures["kernel"], figures["zramd"]
    print(
        f"kernel: {' '.join(f'{s:.1f}' for s in k['seconds'])} s; median {k['median_seconds']:.1f} s, "
        f"{k['median_swap_mb_per_s']:.0f} MB/s, machine sys CPU {k['median_machine_system_cpu_s']:.1f} s"
    )
    print(
        f"zramd:  {' '.join(f'{s:.1f}' for s in z['seconds'])} s; median {z['median_seconds']:.1f} s, "
        f"{z['median_swap_mb_per_s']:.0f} MB/s, machine sys CPU {z['median_machine_system_cpu_s']:.1f} s, "
        f"daemon CPU {z['median_daemon_cpu_s']:.1f} s"
    )
    print(
        f"zramd/kernel wall time: median of per-run ratios {figures['median_ratio']:.3f} "
        f"({' '.join(f'{r:.3f}' for r in figures['ratios'])}), ratio of medians "
        f"{figures['ratio_of_medians']:.3f} -> {figures['verdict']} (target <= {TARGET_RATIO:g}x)"
    )


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks.swap",
        description="A swap storm through zramd against the same storm through the kernel's zram "
        "(alternated; needs root, FUSE, a memory cgroup and an unused /sys/block/zram0).",
    )
    parser.add_argument("--runs", type=int, default=5, help="storms per side (default 5)")
    parser.add_argument("--limit-mib", type=int, default=64, help="the cgroup's memory limit (default 64)")
    parser.add_argument("--factor", type=int, default=8, help="working set / limit (default 8)")
    parser.add_argument("--size", default="1G", help="each swap device's disk size (default 1G)")
    parser.add_argument("--algorithm", default="lzo", help="both devices' algorithm (default lzo)")
    parser.add_argument("--bound", type=float, default=300, help="seconds a storm may take (default 300)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the figures here")
    args = parser.parse_args(argv)
    try:
        args.size_bytes = parse_size(args.size)
    except SizeError as exc:
        parser.error(str(exc))
    if args.runs < 1 or args.limit_mib < 1 or args.factor < 2 or args.bound <= 0:
        parser.error("--runs and --limit-mib must be >= 1, --factor >= 2, --bound > 0")
    if args.size_bytes < args.limit_mib * args.factor * MiB:
        parser.error(
            f"--size {args.size} is smaller than the working set ({args.limit_mib * args.factor} MiB)"
        )
    return args


def preflight() -> None:
    reason = fuse_unavailable()
    if reason:
        raise Unavailable(reason)
    if cgroup_version() is None:
        raise Unavailable("no memory cgroup controller (v1 or v2) is mounted")
    for tool in ("mkswap", "swapon", "swapoff", "losetup"):
        if shutil.which(tool) is None:
            raise Unavailable(f"{tool} is not installed")
    reason = kernel_unavailable()
    if reason is not None:
        raise Unavailable(reason)


@contextlib.contextmanager
def shielded_teardown() -> Iterator[None]:
    """Ctrl-C and SIGTERM are ignored while what follows the block runs (the teardown)."""
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        preflight()
    except Unavailable as exc:
        print(f"zramd bench-swap: not run: {exc}")
        return 1
    bench = SwapBench(
        runs=args.runs,
        limit=args.limit_mib * MiB,
        factor=args.factor,
        size=args.size_bytes,
        algorithm=args.algorithm,
        bound=args.bound,
    )
    others = active_swaps()
    info: dict[str, Any] = {
        "kernel": platform.release(),
        "cores": os.cpu_count(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_before": os.getloadavg(),
        "other_swaps": others,
    }
    print(
        f"swap storm: {args.limit_mib * args.factor} MiB working set in a {args.limit_mib} MiB memory "
        f"cgroup (v{cgroup_version()}, factor {args.factor}), {args.algorithm}, "
        f"{format_size(args.size_bytes)} swap devices (priority {PRIORITY}, discard), "
        f"{args.runs} runs alternated, bound {args.bound:g} s"
    )
    if others:
        listed = ", ".join(f"{row['name']} (priority {row['priority']})" for row in others)
        print(f"WARNING: other swap is active and takes pages too: {listed}")
    else:
        print("other active swap: none")
    print("load average before: " + " ".join(f"{x:.2f}" for x in info["load_before"]), flush=True)

    previous_int = signal.getsignal(signal.SIGINT)
    previous_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    status, error = 0, None
    try:
        with contextlib.ExitStack() as stack, shielded_teardown():
            bench.scratch = Path(tempfile.mkdtemp(prefix="zramd-bench-swap-"))
            bench.undo(stack, f"removing {bench.scratch}", _rmdir, bench.scratch)
            bench.undo(stack, "removing the storm cgroups", _remove_cgroups)
            bench.claim_kernel(stack)
            bench.start_zramd(stack, bench.scratch)
            bench.run()
    except KeyboardInterrupt:
        print("interrupted; everything the benchmark set up was taken down", flush=True)
        status, error = 130, "interrupted"
    except Unavailable as exc:
        print(f"zramd bench-swap: not run: {exc}", flush=True)
        status, error = 1, str(exc)
    except (StormHang, AssertionError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"FAILED: {exc}", flush=True)
        status, error = 1, f"{type(exc).__name__}: {exc}"
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)

    info["load_after"] = os.getloadavg()
    info["zramd_core"] = bench.zramd_core
    leftovers = bench.leftovers()
    figures = summary(bench)
    print_summary(figures)
    zramd_cpu = [r["zramd"]["daemon_cpu_s"] for r in bench.results]
    if zramd_cpu:
        print(f"zramd daemon CPU per storm (utime+stime): {' '.join(f'{c:.1f}' for c in zramd_cpu)} s")
    print("load average after: " + " ".join(f"{x:.2f}" for x in info["load_after"]))
    for problem in bench.problems:
        print(f"teardown problem: {problem}")
    print("leftovers: " + ("; ".join(leftovers) if leftovers else "none"))
    if leftovers or bench.problems:
        status = status or 1
    if args.json is not None:
        report = {
            "cell": "swap-storm",
            "config": {
                "runs": args.runs,
                "limit": bench.limit,
                "factor": args.factor,
                "working_set": bench.limit * args.factor,
                "disksize": bench.size,
                "algorithm": args.algorithm,
                "bound": args.bound,
                "priority": PRIORITY,
                "discard": True,
                "settle_seconds": SETTLE_SECONDS,
                "cgroup_version": cgroup_version(),
            },
            "info": info,
            "runs": bench.results,
            "summary": figures,
            "error": error,
            "teardown_problems": bench.problems,
            "leftovers": leftovers,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"figures written to {args.json}")
    return status


if __name__ == "__main__":
    sys.exit(main())

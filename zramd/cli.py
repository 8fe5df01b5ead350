"""The `zramd` command line.

Owns: argument parsing, turning `UserError` and bad arguments into one line on stderr and a
non-zero exit status (never a traceback), progress output on a terminal, and dispatch to the
commands. Must not: hold device logic; each command calls into the layer that owns the job.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import stat
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from zramd.core import compress
from zramd.core.errors import UserError
from zramd.core.units import SizeError, format_size, parse_size
from zramd.host.rundir import DEFAULT_ROOT
from zramd.host.settings import ServeConfig

if TYPE_CHECKING:
    from zramd.admin.devices import DeviceRef

MAX_START_DEVICES = 64
MAX_STREAMS = 256
DEVICE_HELP = "a zramd root (its zram0) or ROOT/zramN"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit status 2, and takes options only
    by their full names (no ``--device`` for ``--devices``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see '{self.prog} --help')", exit_code=2)


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except SizeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _algorithm(text: str) -> str:
    if text not in compress.algorithm_names():
        raise argparse.ArgumentTypeError(
            f"unknown algorithm {text!r} (available: {', '.join(compress.algorithm_names())})"
        )
    return text


class _TerminalProgress:
    """A one-line progress indicator on stderr, shown only when stderr is a terminal."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty()
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self._last < 0.2 and done < total):
            return
        self._last = now
        percent = 100 * done // total if total else 100
        sys.stderr.write(f"\r{self.label}: {percent:3d}% ({format_size(done)} of {format_size(total)})")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self._last:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def cmd_estimate(args: argparse.Namespace) -> int:
    from zramd.admin import estimate
    from zramd.core.attrs import format_mm_stat

    progress = _TerminalProgress("estimate")
    try:
        if args.sizes:
            try:
                with open(args.sizes, encoding="ascii") as f:
                    lines = f.readlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise UserError(f"cannot read {args.sizes}: {exc}") from None
            result = estimate.estimate_sizes(lines, progress)
        elif args.image and (len(args.algorithm) > 1 or args.plot):
            rows = estimate.estimate_algorithms(args.image, args.algorithm, progress)
        elif args.image:
            result = estimate.estimate_image(args.image, args.algorithm[0], progress)
        else:
            raise UserError("estimate needs an IMAGE or --sizes FILE", exit_code=2)
    finally:
        progress.close()
    if args.image and not args.sizes and (len(args.algorithm) > 1 or args.plot):
        return _print_algorithms(args, rows)
    stat = result.mm_stat
    if args.json:
        print(json.dumps({"mm_stat": {k: getattr(stat, k) for k in stat.__dataclass_fields__}}))
        return 0
    print(f"mm_stat: {format_mm_stat(stat)}", end="")
    print(estimate.describe(stat))
    if args.classes:
        print(result.classes, end="")
    return 0


def _print_algorithms(args: argparse.Namespace, rows: list[Any]) -> int:
    from zramd.admin import estimate

    if args.plot:
        estimate.plot_algorithms(rows, args.plot, f"{os.path.basename(args.image)}: RAM needed per algorithm")
    if args.json:
        print(json.dumps([
            {
                "algorithm": row.algorithm,
                "mm_stat": {k: getattr(row.mm_stat, k) for k in row.mm_stat.__dataclass_fields__},
                "ratio": row.ratio,
                "effective_ratio": row.effective_ratio,
                "write_mb_per_s": row.mb_per_s(row.write_seconds),
                "read_mb_per_s": row.mb_per_s(row.read_seconds),
            }
            for row in rows
        ]))  # fmt: skip
        return 0
    print(estimate.format_algorithms(rows), end="")
    if args.plot:
        print(f"chart: {args.plot}")
    return 0


def _require_root(action: str) -> None:
    if os.geteuid() != 0:
        raise UserError(f"{action} needs root (it mounts a FUSE filesystem and manages loop devices)")


def _default_size() -> int:
    from zramd.admin.config_file import default_zram_size

    return default_zram_size()


def _serve_config(args: argparse.Namespace, ready_fd: int | None = None) -> ServeConfig:
    return ServeConfig(
        mountpoint=args.mountpoint,
        disksize=args.size if args.size is not None else _default_size(),
        algorithm=args.algorithm,
        mem_limit=args.mem_limit,
        devices=args.devices,
        allow_other=args.allow_other,
        ready_fd=ready_fd,
        noop=args.noop,
        streams=args.streams,
        backing_dev=args.backing_dev or "",
        writeback_policy=args.writeback_policy or "",
    )


def _backing_dev(text: str) -> str:
    """An existing block device or regular file, as an absolute path (the daemon opens it)."""
    path = os.path.abspath(text)
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{text}: {exc.strerror}") from None
    if not (stat.S_ISBLK(mode) or stat.S_ISREG(mode)):
        raise argparse.ArgumentTypeError(f"{text}: neither a block device nor a regular file")
    return path


def _writeback_policy(text: str) -> str:
    from zramd.core.attrs import parse_writeback_policy
    from zramd.core.errors import ZramError

    try:
        parse_writeback_policy(text)
    except ZramError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _algorithms(text: str) -> list[str]:
    """``all`` or a comma-separated list of algorithm names, each checked."""
    if text == "all":
        return compress.algorithm_names()
    names = [name.strip() for name in text.split(",")]
    for name in names:
        _algorithm(name)
    return names


def _device(target: str) -> DeviceRef:
    from zramd.admin.devices import resolve

    return resolve(target)


def cmd_run(args: argparse.Namespace) -> int:
    from zramd.serve import daemon

    _require_root("zramd run")
    logging.basicConfig(level=args.log_level.upper(), format="zramd[%(process)d]: %(levelname)s: %(message)s")
    return daemon.run(_serve_config(args, args.ready_fd))


def cmd_start(args: argparse.Namespace) -> int:
    from zramd.admin import control

    _require_root("zramd start")
    config = _serve_config(args)
    message = control.start(config, args.log_level, timeout=args.timeout)
    print(message)
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from zramd.admin import control

    _require_root("zramd stop")
    print(control.stop(args.mountpoint, timeout=args.timeout, force=args.force))
    return 0


def cmd_swapon(args: argparse.Namespace) -> int:
    from zramd.admin import blockdev

    _require_root("zramd swapon")
    ref = _device(args.target)
    block = blockdev.swapon(ref, priority=args.priority, discard=args.discard)
    print(f"zramd: swap on {block} ({ref.link}), priority {args.priority}")
    return 0


def cmd_swapoff(args: argparse.Namespace) -> int:
    from zramd.admin import blockdev

    _require_root("zramd swapoff")
    print(f"zramd: swapoff {blockdev.swapoff(_device(args.target))}")
    return 0


def cmd_mkfs(args: argparse.Namespace) -> int:
    from zramd.admin import blockdev

    _require_root("zramd mkfs")
    ref = _device(args.target)
    block = blockdev.mkfs(ref, args.fs, args.mount, args.options)
    print(f"zramd: {args.fs} on {block} ({ref.link}) mounted on {args.mount}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from zramd.admin import control

    rows = control.status(args.mountpoints)
    if args.json:
        print(json.dumps([row.as_dict() for row in rows], indent=2))
    else:
        print(control.format_status(rows, raw_bytes=args.bytes), end="")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    """Bring the configured devices up: the daemon if needed, each device, swap or a filesystem."""
    from zramd.admin import configured

    _require_root("zramd up")
    for line in configured.up(args.config, args.root or str(DEFAULT_ROOT), args.device):
        print(line)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    """Undo `zramd up`, in reverse."""
    from zramd.admin import configured

    _require_root("zramd down")
    for line in configured.down(args.config, args.root or str(DEFAULT_ROOT), args.device):
        print(line)
    return 0


def _count(what: str, low: int, high: int) -> Callable[[str], int]:
    """An argparse type for a whole number of `what` from `low` to `high`."""

    def parse(text: str) -> int:
        try:
            count = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {what} count {text!r}") from None
        if not low <= count <= high:
            raise argparse.ArgumentTypeError(f"{what} count must be {low} to {high}")
        return count

    return parse


def _add_device_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("mountpoint", metavar="ROOT", help="an empty directory to mount on")
    parser.add_argument(
        "--size",
        type=_size,
        default=None,
        help="zram0's disk size, e.g. 512M or 4G; 0 leaves it uninitialised (default: min(RAM/2, 4G))",
    )
    parser.add_argument(
        "--algorithm",
        type=_algorithm,
        default=compress.DEFAULT_ALGORITHM,
        help="zram0's algorithm: one of comp_algorithm's (lzo, lz4, lz4hc, zstd, deflate)",
    )
    parser.add_argument(
        "--mem-limit", type=_size, default=0, metavar="SIZE", help="zram0's pool memory limit (0: none)"
    )
    parser.add_argument(
        "--devices",
        type=_count("device", 0, MAX_START_DEVICES),
        default=1,
        metavar="N",
        help="devices to start with, zram0.. (default 1; 0: none, add them with zram-control/hot_add)",
    )
    parser.add_argument(
        "--streams",
        type=_count("stream", 1, MAX_STREAMS),
        default=0,
        metavar="N",
        help="compression streams: threads that compress a large request's pages in parallel "
        "(default: one per online CPU)",
    )
    parser.add_argument(
        "--backing-dev",
        type=_backing_dev,
        default=None,
        metavar="PATH",
        help="zram0's backing_dev for writeback: a block device or a regular file (preallocated or sparse)",
    )
    parser.add_argument(
        "--writeback-policy",
        type=_writeback_policy,
        default=None,
        metavar="'KEY=VALUE ...'",
        help="zram0's writeback policy: interval=SECONDS idle_age=SECONDS high_watermark=FRACTION "
        "max_pages=N release=0|1 (see docs/user-guide.md)",
    )
    parser.add_argument(
        "--allow-other", action="store_true", help="let other users through (file permissions still apply)"
    )
    parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], default="info", help="daemon log level"
    )
    parser.add_argument("--noop", action="store_true", help=argparse.SUPPRESS)  # the benchmark's ceiling


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="zramd", description="A userspace clone of Linux zram, served over FUSE.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    est = sub.add_parser("estimate", help="how much RAM zram would need for an image, without a device")
    est.add_argument("image", nargs="?", metavar="IMAGE", help="a file or block device to read page by page")
    est.add_argument(
        "--algorithm",
        type=_algorithms,
        default=[compress.DEFAULT_ALGORITHM],
        metavar="NAME[,NAME...]|all",
        help="lzo, lz4, lz4hc, zstd or deflate; several (comma-separated) or all for a table side by side",
    )
    est.add_argument(
        "--plot", metavar="PNG", help="with several algorithms: a bar chart of the RAM each needs"
    )
    est.add_argument(
        "--sizes",
        metavar="FILE",
        help="replay per-page outcomes instead: S, H or a compressed length per line",
    )
    est.add_argument("--classes", action="store_true", help="also print the pool's size-class table")
    est.add_argument("--json", action="store_true", help="print the mm_stat fields as JSON")
    est.set_defaults(func=cmd_estimate)

    start = sub.add_parser(
        "start", help="mount a root with its devices in the background; returns once they serve"
    )
    _add_device_options(start)
    start.add_argument("--timeout", type=float, default=30, help="seconds to wait for the mount (default 30)")
    start.set_defaults(func=cmd_start)

    run = sub.add_parser("run", help="mount a root and serve its devices in the foreground (for systemd)")
    _add_device_options(run)
    run.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)
    run.set_defaults(func=cmd_run)

    stop = sub.add_parser("stop", help="stop a daemon: release its block devices, detach them, unmount")
    stop.add_argument("mountpoint", metavar="ROOT")
    stop.add_argument("--timeout", type=float, default=30, help="seconds to wait for the daemon (default 30)")
    stop.add_argument("--force", action="store_true", help="swapoff first where a device is active swap")
    stop.set_defaults(func=cmd_stop)

    swapon = sub.add_parser("swapon", help="use a device as swap (mkswap and swapon on its block device)")
    swapon.add_argument("target", metavar="DEVICE", help=DEVICE_HELP)
    swapon.add_argument(
        "--priority", type=int, default=100, help="swap priority (default 100, like zram-generator)"
    )
    swapon.add_argument("--discard", action="store_true", help="free pages as swap releases them")
    swapon.set_defaults(func=cmd_swapon)

    swapoff = sub.add_parser("swapoff", help="stop swapping to a device")
    swapoff.add_argument("target", metavar="DEVICE", help=DEVICE_HELP)
    swapoff.set_defaults(func=cmd_swapoff)

    for name, func, text in (
        ("up", cmd_up, "bring the devices of a config file up: the daemon, each device, swap or mkfs+mount"),
        ("down", cmd_down, "undo 'zramd up' in reverse: swapoff or umount, reset, remove, stop the daemon"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument(
            "--config",
            metavar="FILE",
            required=True,
            help="a zram-generator style config, e.g. /etc/zramd/zramd.conf",
        )
        cmd.add_argument("--device", metavar="NAME", help="only this [zramN] section")
        cmd.add_argument("--root", metavar="ROOT", help=f"the daemon's mount point (default {DEFAULT_ROOT})")
        cmd.set_defaults(func=func)

    mkfs = sub.add_parser("mkfs", help="make a scratch filesystem on a device and mount it")
    mkfs.add_argument("target", metavar="DEVICE", help=DEVICE_HELP)
    mkfs.add_argument("--fs", default="ext4", help="filesystem type (default ext4)")
    mkfs.add_argument("--mount", required=True, metavar="DIR", help="where to mount the filesystem")
    mkfs.add_argument("--options", default="", help="mount options, e.g. discard")
    mkfs.set_defaults(func=cmd_mkfs)

    status = sub.add_parser("status", help="one row per device, like zramctl")
    status.add_argument("mountpoints", nargs="*", metavar="ROOT", help="default: every zramd root")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--bytes", action="store_true", help="sizes in bytes instead of human units")
    status.set_defaults(func=cmd_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser.parse_args(argv)
        func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
        if func is None:
            parser.print_help()
            return 2
        return func(args)
    except UserError as exc:
        print(f"zramd: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("zramd: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The `zramd` command line.

Owns: argument parsing, turning `UserError` and bad arguments into one line on stderr and a
non-zero exit status (never a traceback), progress output on a terminal, and dispatch to the
commands. Must not: hold device logic; each command calls into the layer that owns the job.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import NoReturn

from zramd import compress
from zramd.errors import UserError
from zramd.units import SizeError, format_size, parse_size


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit status 2."""

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


class _Progress:
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
    from zramd import estimate

    progress = _Progress("estimate")
    try:
        if args.sizes:
            try:
                with open(args.sizes, encoding="ascii") as f:
                    lines = f.readlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise UserError(f"cannot read {args.sizes}: {exc}") from None
            result = estimate.estimate_sizes(lines, progress, len(lines))
        elif args.image:
            result = estimate.estimate_image(args.image, args.algorithm, progress)
        else:
            raise UserError("estimate needs an IMAGE or --sizes FILE", exit_code=2)
    finally:
        progress.close()
    stat = result.mm_stat
    if args.json:
        print(json.dumps({"mm_stat": {k: getattr(stat, k) for k in stat.__dataclass_fields__}}))
        return 0
    print(f"mm_stat: {stat.format()}", end="")
    print(estimate.describe(stat))
    if args.classes:
        print(result.classes, end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="zramd", description="A userspace clone of Linux zram, served over FUSE.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    est = sub.add_parser("estimate", help="how much RAM zram would need for an image, without a device")
    est.add_argument("image", nargs="?", metavar="IMAGE", help="a file or block device to read page by page")
    est.add_argument("--algorithm", type=_algorithm, default=compress.DEFAULT_ALGORITHM, help="lzo or lz4")
    est.add_argument(
        "--sizes",
        metavar="FILE",
        help="replay per-page outcomes instead: S, H or a compressed length per line",
    )
    est.add_argument("--classes", action="store_true", help="also print the pool's size-class table")
    est.add_argument("--json", action="store_true", help="print the mm_stat fields as JSON")
    est.set_defaults(func=cmd_estimate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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

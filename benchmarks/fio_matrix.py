"""`zramd bench`: one fio matrix against zramd, the no-op FUSE ceiling and the kernel's zram.

Owns: the matrix (which cells run, in which order within a repetition), the command line and its
defaults, the checks before a run (root, tools, /dev/fuse, matplotlib), and ``main``: run the
matrix (``runners``), save the JSON report also at the checkpoint before teardown (``report``),
draw the chart (``chart``) and print the tables on stdout. Run it as
``python -m benchmarks.fio_matrix`` (scripts/bench).

Must not: run fio or touch a device itself, compute or format results, or fail on speed: zramd's
targets are reported as PASS/MISS, never turned into an exit status.

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
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from benchmarks import chart, report
from benchmarks.runners import TARGETS, Bench, Cell, GiB, KiB, MiB, Options, duration
from zramd.core import compress
from zramd.core.errors import UserError
from zramd.core.units import parse_size

DEFAULTS = {"size": GiB, "runtime": 3.0, "repeat": 3}
QUICK_DEFAULTS = {"size": 64 * MiB, "runtime": 1.0, "repeat": 1}


# ---------------------------------------------------------------------------- the matrix


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
        description=(
            "fio matrix against zramd, the no-op FUSE ceiling and the kernel's zram; zramd's speed "
            "and memory targets are reported as PASS/MISS, never as the exit status."
        ),
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
    chart.require_matplotlib()


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
            options.json_path.write_text(json.dumps(report.build_report(bench), indent=1) + "\n")

        bench.run(checkpoint=save)
        save()
        result = report.build_report(bench)
        chart.write_png(result, options.png_path)
        print(report.format_table(result))
        print(report.format_memory(result))
        print("targets (reported, never enforced):")
        print(report.format_goals(result))
        for name, reason in bench.skipped.items():
            print(f"skipped {name}: {reason}")
        leftovers = result["machine"]["leftovers"]
        print("cleanup: " + ("; ".join(leftovers) if leftovers else "nothing left behind"))
        print(
            f"took {duration(result['machine']['seconds'])}; "
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

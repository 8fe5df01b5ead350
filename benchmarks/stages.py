"""The per-page path, stage by stage, without FUSE: times per 4 KiB page of each stage for the
compiled core and the Python source side by side, and (``--callgrind``) instructions per page
counted by valgrind, which unlike time is repeatable on a shared machine.

Stages, per page of fio-like half-compressible data (``fio50``: 2 KiB random, 2 KiB zeros) and of
this machine's files (``corpus``: /usr/lib/python3.11 sources): the codec's batch compress
(fill-word test included) and decompress, the pool's store and free, and read, and the device's
whole write and read paths for one 4 KiB request and per page of a 1 MiB request. Medians of 9
passes over 4096 pages; the pool stages are called from Python, so they include one call each.

Instructions: ``valgrind --tool=callgrind`` runs one operation over N and over 2N pages in fresh
interpreters; the difference divided by N is the cost per page, start-up excluded.

Must not: mount anything, need root, or touch the kernel's zram. Run it as
``python -m benchmarks.stages [--callgrind]``.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from zramd.core import codec as python_codec
from zramd.core import device as python_device
from zramd.core import engine
from zramd.core import pool as python_pool
from zramd.core.codec import COMPRESS_STRIDE, FILLED
from zramd.core.units import PAGE_SIZE

PAGES = 4096
PASSES = 9
MiB = 1 << 20


def data_of(kind: str, pages: int = PAGES) -> bytes:
    if kind == "fio50":
        rng = __import__("random").Random(50)
        return b"".join(rng.randbytes(2048) + bytes(2048) for _ in range(pages))
    files = sorted(Path("/usr/lib/python3.11").rglob("*.py"))
    blob = bytearray()
    for path in files:
        blob += path.read_bytes()
        if len(blob) >= pages * PAGE_SIZE:
            break
    while len(blob) < pages * PAGE_SIZE:  # fewer sources than pages: repeat them
        blob.extend(bytes(blob))
    return bytes(blob[: pages * PAGE_SIZE])


def builds() -> dict[str, tuple[ModuleType, ModuleType, ModuleType]]:
    found = {"python": (python_codec, python_pool, python_device)}
    if engine.COMPILED_IN_USE:
        found["compiled"] = (engine.codec_module, engine.pool_module, engine.device_module)
    return found


def per_page(run: Callable[[], None], pages: int) -> float:
    """Median µs per page of `run` over PASSES passes."""
    times = []
    for _ in range(PASSES):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) / pages * 1e6


def stages(build: tuple[ModuleType, ModuleType, ModuleType], data: bytes) -> dict[str, float]:
    codec_module, pool_module, device_module = build
    pages = len(data) // PAGE_SIZE
    codec = codec_module.PageCodec("lzo")
    batch = 256
    out = bytearray(batch * COMPRESS_STRIDE)
    src_off = array("q", [k * PAGE_SIZE for k in range(batch)])
    dst_off = array("q", [k * COMPRESS_STRIDE for k in range(batch)])
    result, fills = array("q", bytes(8 * batch)), array("Q", bytes(8 * batch))
    figures: dict[str, float] = {}

    def compress_all() -> None:
        for first in range(0, pages, batch):
            codec.compress_jobs(0, data[first * PAGE_SIZE : (first + batch) * PAGE_SIZE], out, src_off,
                                dst_off, result, fills, 0, batch)  # fmt: skip

    figures["codec compress (lzo, fill test included)"] = per_page(compress_all, pages)
    # The compressed objects of every page, for the pool and decompress stages.
    objects: list[bytes] = []
    for first in range(0, pages, batch):
        codec.compress_jobs(0, data[first * PAGE_SIZE : (first + batch) * PAGE_SIZE], out, src_off, dst_off,
                            result, fills, 0, batch)  # fmt: skip
        objects += [
            bytes(out[dst_off[k] : dst_off[k] + result[k]]) for k in range(batch) if result[k] != FILLED
        ]
    staging = bytearray(b"".join(objects))
    offsets = array("q", [0] * len(objects))
    sizes = array("q", [len(o) for o in objects])
    for k in range(1, len(objects)):
        offsets[k] = offsets[k - 1] + sizes[k - 1]
    n = len(objects)
    dst = bytearray(n * PAGE_SIZE)
    page_off = array("q", [k * PAGE_SIZE for k in range(n)])
    nfills = array("Q", bytes(8 * n))

    def decompress_all() -> None:
        res = array("q", sizes)
        codec.decompress_jobs(0, staging, dst, offsets, page_off, res, nfills, 0, n)

    figures["codec decompress (lzo)"] = per_page(decompress_all, n)
    pool = pool_module.ZsPool(2 * pages)
    locations = [0] * n

    def store_free() -> None:
        for k in range(n):
            locations[k] = pool.store_from(staging, offsets[k], sizes[k], k)
        for k in range(n):
            pool.free(locations[k])

    figures["pool store_from + free"] = per_page(store_free, n)
    for k in range(n):
        locations[k] = pool.store_from(staging, offsets[k], sizes[k], k)
    back = bytearray(len(staging))

    def read_all() -> None:
        for k in range(n):
            pool.read_into(locations[k], sizes[k], back, offsets[k])

    figures["pool read_into"] = per_page(read_all, n)
    device = device_module.ZramDevice()
    device.set_disksize(len(data))
    device.write(0, data)
    reply = bytearray(MiB)
    pieces4k = [data[i : i + PAGE_SIZE] for i in range(0, len(data), PAGE_SIZE)]
    pieces1m = [data[i : i + MiB] for i in range(0, len(data), MiB)]

    def write4k() -> None:
        for i, piece in enumerate(pieces4k):
            device.write(i * PAGE_SIZE, piece)

    def write1m() -> None:
        for i, piece in enumerate(pieces1m):
            device.write(i * MiB, piece)

    def read4k() -> None:
        for i in range(pages):
            device.read_view(i * PAGE_SIZE, PAGE_SIZE, reply)

    def read1m() -> None:
        for i in range(len(pieces1m)):
            device.read_view(i * MiB, MiB, reply)

    figures["device write, one 4 KiB request"] = per_page(write4k, pages)
    figures["device write, per page of a 1 MiB request"] = per_page(write1m, pages)
    figures["device read, one 4 KiB request"] = per_page(read4k, pages)
    figures["device read, per page of a 1 MiB request"] = per_page(read1m, pages)
    assert device.read(0, len(data)) == data
    device.reset()
    return figures


# ---------------------------------------------------------------------------- instructions

OPERATIONS = ("write4k", "write1m", "read4k", "read1m")


def run_operation(operation: str, kind: str, pages: int) -> None:
    """One operation over `pages` pages (what callgrind counts)."""
    device = engine.ZramDevice()
    data = data_of(kind, pages)
    if operation == "data":  # making the data alone: subtracted from the others
        return
    device.set_disksize(len(data) + MiB)
    reply = bytearray(MiB)
    step = PAGE_SIZE if operation.endswith("4k") else MiB
    if operation.startswith("read"):  # written as write1m writes it, which is subtracted
        for offset in range(0, len(data), MiB):
            device.write(offset, data[offset : offset + MiB])
    for offset in range(0, len(data), step):
        if operation.startswith("write"):
            device.write(offset, data[offset : offset + step])
        else:
            device.read_view(offset, step, reply)


def instructions(operation: str, kind: str, pure: bool) -> float:
    counts = []
    for pages in (1024, 2048):
        env = dict(os.environ, ZRAMD_PURE_PYTHON="1" if pure else "0")
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-m",
             "benchmarks.stages", "--run", operation, kind, str(pages)],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
        match = re.search(r"refs:\s+([\d,]+)", run.stderr)
        assert match, run.stderr[-500:]
        counts.append(int(match.group(1).replace(",", "")))
    return (counts[1] - counts[0]) / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stages", description=__doc__.split("\n\n")[0])
    parser.add_argument("--callgrind", action="store_true", help="also count instructions per page (slow)")
    parser.add_argument("--run", nargs=3, metavar=("OP", "DATA", "PAGES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        run_operation(args.run[0], args.run[1], int(args.run[2]))
        return 0
    print(f"core in use: {engine.describe()}")
    found = builds()
    for kind in ("fio50", "corpus"):
        data = data_of(kind)
        results = {name: stages(build, data) for name, build in found.items()}
        print(f"\n{kind} pages, µs per 4 KiB page (median of {PASSES} passes over {PAGES} pages):")
        names = list(results)
        print(
            f"  {'stage':48}" + "".join(f"{n:>10}" for n in names) + ("     ratio" if len(names) == 2 else "")
        )
        for stage in results[names[0]]:
            values = [results[n][stage] for n in names]
            ratio = f"{values[0] / values[1]:9.2f}x" if len(values) == 2 and values[1] else ""
            print(f"  {stage:48}" + "".join(f"{v:10.2f}" for v in values) + ratio)
    if args.callgrind:
        print("\ninstructions per page (valgrind callgrind, N and 2N pages, the difference / N):")
        print("  (making the data is subtracted; a read operation first writes its data in 1 MiB")
        print("  requests, and that is subtracted too)")
        for kind in ("fio50", "corpus"):
            counted: dict[tuple[str, bool], float] = {}
            for operation in OPERATIONS:
                for pure in (False, True) if engine.COMPILED_IN_USE else (True,):
                    if ("data", pure) not in counted:
                        counted[("data", pure)] = instructions("data", kind, pure)
                    value = instructions(operation, kind, pure)
                    if operation.startswith("read"):
                        value -= counted[("write1m", pure)]
                    value -= counted[("data", pure)]
                    counted[(operation, pure)] = value
                text = ", ".join(
                    f"{'python' if pure else 'compiled'} {counted[(operation, pure)]:,.0f}"
                    for pure in (False, True)
                    if (operation, pure) in counted
                )
                print(f"  {kind:6} {operation:8} {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

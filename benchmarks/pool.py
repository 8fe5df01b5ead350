"""Benchmark the pool and the codecs, side by side in one run.

Prints, as medians over --repeat runs, for the Python source and (where in use) the compiled
build side by side, with their ratios: pool malloc+write, read and free rates (objects/s) for the
per-page sizes of the test corpus (kernel lzo figures, tests/data/), compression and decompression MB/s per
backend on real pages, the pool's bookkeeping time per page against lzo's compression time per
page, and the metadata bytes per stored object. It takes its pages from the fio matrix's corpus
tar (`runners.corpus_tar`).

Must not: mount anything, touch a device or need root: it drives the core in this process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from benchmarks.runners import corpus_tar
from zramd.core import compress, engine
from zramd.core.device import ZramDevice
from zramd.core.pool import ZsPool
from zramd.core.units import PAGE_SIZE

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "data" / "complen_corpus64_lzo.txt"


def corpus_pages(limit_mb: int) -> list[bytes]:
    """The whole pages of the first `limit_mb` MiB of the fio matrix's corpus tar."""
    data, _ = corpus_tar(limit_mb << 20)
    return [data[i : i + PAGE_SIZE] for i in range(0, len(data) - PAGE_SIZE + 1, PAGE_SIZE)]


def builds() -> dict[str, tuple[type[ZsPool], type[ZramDevice]]]:
    """The builds of the per-page path to measure side by side: the Python source, and the
    compiled one where it is in use."""
    found: dict[str, tuple[type[ZsPool], type[ZramDevice]]] = {"python": (ZsPool, ZramDevice)}
    if engine.COMPILED_IN_USE:
        found["compiled"] = (engine.ZsPool, engine.ZramDevice)
    return found


def bench_pool(sizes: list[int], pool_class: type[ZsPool]) -> dict[str, float]:
    owners: dict[int, int] = {}
    pool = pool_class(len(sizes) * 2, relocate=owners.__setitem__)
    payload = os.urandom(PAGE_SIZE)
    views = [memoryview(payload)[:n] for n in sizes]
    t0 = time.perf_counter()
    locs = []
    for owner, (size, view) in enumerate(zip(sizes, views, strict=True)):
        loc = pool.malloc(size, owner)
        pool.write(loc, view)
        locs.append(loc)
    t1 = time.perf_counter()
    for loc, size in zip(locs, sizes, strict=True):
        pool.read(loc, size)
    t2 = time.perf_counter()
    meta = pool.metadata_bytes()
    for loc in locs:
        pool.free(loc)
    t3 = time.perf_counter()
    pool.close()
    n = len(sizes)
    return {
        "malloc_write_per_s": n / (t1 - t0),
        "read_per_s": n / (t2 - t1),
        "free_per_s": n / (t3 - t2),
        "pool_meta_bytes_per_object": meta / n,
    }


def bench_codec(name: str, pages: list[bytes]) -> dict[str, float]:
    backend = compress.lookup(name)
    t0 = time.perf_counter()
    blobs = [backend.compress(p) for p in pages]
    t1 = time.perf_counter()
    for blob in blobs:
        backend.decompress(blob)
    t2 = time.perf_counter()
    nbytes = len(pages) * PAGE_SIZE
    return {
        "compress_MBps": nbytes / (t1 - t0) / 1e6,
        "decompress_MBps": nbytes / (t2 - t1) / 1e6,
        "compress_us_per_page": (t1 - t0) / len(pages) * 1e6,
    }


def bench_device(pages: list[bytes], device_class: type[ZramDevice]) -> dict[str, float]:
    device = device_class()
    device.set_disksize(len(pages) * PAGE_SIZE)
    data = b"".join(pages)
    t0 = time.perf_counter()
    for off in range(0, len(data), 1 << 20):
        device.write(off, data[off : off + (1 << 20)])
    t1 = time.perf_counter()
    for off in range(0, len(data), 1 << 20):
        device.read(off, 1 << 20)
    t2 = time.perf_counter()
    device.reset()
    return {"device_write_MBps": len(data) / (t1 - t0) / 1e6, "device_read_MBps": len(data) / (t2 - t1) / 1e6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--mb", type=int, default=64, help="MiB of corpus pages for the codec runs")
    args = parser.parse_args()

    sizes = [PAGE_SIZE if s == "H" else int(s) for s in VECTORS.read_text().split() if s != "S"]
    pages = corpus_pages(args.mb)
    runs: dict[str, list[float]] = {}
    available = builds()
    for _ in range(args.repeat):  # the builds alternate within every repetition
        for build, (pool_class, device_class) in available.items():
            for key, value in bench_pool(sizes, pool_class).items():
                runs.setdefault(f"{build}_{key}", []).append(value)
            for key, value in bench_device(pages, device_class).items():
                runs.setdefault(f"{build}_{key}", []).append(value)
        for name in compress.algorithm_names():
            for key, value in bench_codec(name, pages).items():
                runs.setdefault(f"{name}_{key}", []).append(value)
    med = {key: statistics.median(values) for key, values in runs.items()}

    print(f"core in use: {engine.describe()}")
    for build in available:
        objects = f"{len(sizes)} objects of the corpus's kernel lzo sizes"
        print(f"pool ({build}), {objects} (median of {args.repeat}):")
        print(f"  malloc+write  {med[f'{build}_malloc_write_per_s']:>12,.0f} objects/s")
        print(f"  read          {med[f'{build}_read_per_s']:>12,.0f} objects/s")
        print(f"  free          {med[f'{build}_free_per_s']:>12,.0f} objects/s")
    print(f"codecs on {len(pages)} corpus pages:")
    for name in compress.algorithm_names():
        print(
            f"  {name:4s} compress {med[f'{name}_compress_MBps']:7.1f} MB/s "
            f"({med[f'{name}_compress_us_per_page']:.2f} us/page), "
            f"decompress {med[f'{name}_decompress_MBps']:7.1f} MB/s"
        )
    lzo_us = med["lzo_compress_us_per_page"]
    for build in available:
        write, read = med[f"{build}_device_write_MBps"], med[f"{build}_device_read_MBps"]
        print(f"device ({build}) write path {write:.1f} MB/s, read path {read:.1f} MB/s")
        bookkeeping_us = 1e6 / med[f"{build}_malloc_write_per_s"] + 1e6 / med[f"{build}_free_per_s"]
        print(
            f"pool ({build}) bookkeeping per stored page (malloc+write+free) {bookkeeping_us:.2f} us "
            f"vs lzo compression {lzo_us:.2f} us: ratio {bookkeeping_us / lzo_us:.2f}"
        )
    if "compiled" in available:
        for key in ("malloc_write_per_s", "free_per_s", "device_write_MBps", "device_read_MBps"):
            print(f"compiled / python {key}: {med[f'compiled_{key}'] / med[f'python_{key}']:.2f}x")
    meta = med["python_pool_meta_bytes_per_object"]
    print(
        f"metadata per stored object: pool {meta:.1f} B (zspage arrays) + slot table 12 B "
        f"+ 8 B header inside the object = {meta + 20:.1f} B"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

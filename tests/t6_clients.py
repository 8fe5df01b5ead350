"""Tier 6: real clients on a real mount -- fio with verify, mkfs.ext4 + e2fsck through a loop
device, discard from blkdiscard, ext4 and fstrim, and the kernel's zram side by side.
"""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from tests.fragmentation import STEPS, format_rows, run_recipe
from tests.kernel_zram import kernel_zram
from tests.mount_util import Mount, block_device, mounted, zramd_mount
from zramd.core import compress

MiB = 1 << 20

pytestmark = pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed")


def fio(*args: str, timeout: float = 300) -> str:
    """Run fio (a job named "zramd" from `args`, or a job file given as the only argument)."""
    name = [] if len(args) == 1 and args[0].endswith(".fio") else ["--name=zramd"]
    result = subprocess.run(
        ["fio", *name, "--output-format=normal", "--verify_state_save=0", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, (
        f"fio {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    assert "verify: bad" not in result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def mount64(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mount]:
    with zramd_mount(tmp_path_factory.mktemp("fio") / "m", "--size", "64M") as mount:
        yield mount


VERIFY_JOBS = {
    "seq-4k-direct": ["--rw=write", "--bs=4k", "--direct=1"],
    "rand-4k-direct": ["--rw=randwrite", "--bs=4k", "--direct=1"],
    "seq-128k-buffered": ["--rw=write", "--bs=128k", "--direct=0"],
    "rand-128k-direct-qd16": [
        "--rw=randwrite",
        "--bs=128k",
        "--direct=1",
        "--ioengine=libaio",
        "--iodepth=16",
    ],
    "overwrite-3-passes-4k": ["--rw=randwrite", "--bs=4k", "--direct=1", "--loops=3"],
    "mixed-sizes-direct": ["--rw=randwrite", "--bsrange=4k-256k", "--direct=1"],
    "unaligned-buffered": ["--rw=write", "--bs=3000", "--direct=0"],
    "unaligned-rand-buffered": ["--rw=randwrite", "--bs=1000", "--direct=0", "--size=8M"],
}


@pytest.mark.parametrize("job", list(VERIFY_JOBS), ids=list(VERIFY_JOBS))
def test_fio_verify_whole_disk(mount64: Mount, job: str) -> None:
    args = VERIFY_JOBS[job]
    size = [] if any(a.startswith("--size") for a in args) else ["--size=64M"]
    fio(
        f"--filename={mount64.disk}", *size, *args,
        "--verify=crc32c", "--do_verify=1", "--verify_fatal=1",
        "--buffer_compress_percentage=50", "--refill_buffers",
    )  # fmt: skip
    stat = mount64.mm_stat()
    assert stat[0] > 0
    assert mount64.io_stat()[:2] == [0, 0]  # no failed reads or writes


def test_mkfs_copy_fsck_remount(tmp_path: Path) -> None:
    source = Path("/usr/lib/python3.11/email")
    if not source.is_dir():
        source = Path(subprocess.__file__).parent / "email"
    with zramd_mount(tmp_path / "m", "--size", "256M") as mount, block_device(mount) as loop:
        subprocess.run(["mkfs.ext4", "-q", "-F", loop], check=True, capture_output=True)
        with mounted(loop, tmp_path / "fs") as fs:
            shutil.copytree(source, fs / "tree")
            subprocess.run(["sync"], check=True)
        fsck = subprocess.run(["e2fsck", "-fn", loop], capture_output=True, text=True, check=False)
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr
        with mounted(loop, tmp_path / "fs") as fs:
            compare = filecmp.dircmp(source, fs / "tree")
            assert _identical(compare), "copied tree differs"
        tree_bytes = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
        orig, compr, used, *_ = mount.mm_stat()
        assert orig >= tree_bytes and 0 < compr < orig and used > 0


def _identical(compare: filecmp.dircmp[str]) -> bool:
    if compare.left_only or compare.right_only or compare.funny_files:
        return False
    _match, mismatch, errors = filecmp.cmpfiles(
        compare.left, compare.right, compare.common_files, shallow=False
    )
    if mismatch or errors:
        return False
    return all(_identical(sub) for sub in compare.subdirs.values())


def test_same_image_on_zramd_and_the_kernels_zram(tmp_path: Path, corpus64: Path) -> None:
    dd = ["dd", f"if={corpus64}", "bs=1M", "iflag=fullblock", "oflag=direct", "conv=notrunc", "status=none"]
    with zramd_mount(tmp_path / "m", "--size", "128M", "--algorithm", "lzo") as mount:
        subprocess.run([*dd, f"of={mount.disk}"], check=True)
        ours = mount.mm_stat()
    with kernel_zram("lzo", "128M") as zram:
        subprocess.run([*dd, f"of={zram.dev}"], check=True)
        theirs = zram.mm_stat()
    orig, compr, used, _limit, _max, same, _compacted, huge, _since = theirs
    assert ours[0] == orig
    assert ours[5] == same
    assert abs(ours[7] - huge) <= max(1, huge * 0.02), (ours[7], huge)
    assert abs(ours[1] - compr) / compr < 0.005, (ours[1], compr)
    assert abs(ours[2] - used) / used < 0.005, (ours[2], used)


# ---------------------------------------------------------------------------- discard


def test_blkdiscard_frees_everything(tmp_path: Path, corpus64: Path) -> None:
    with zramd_mount(tmp_path / "m", "--size", "128M") as mount, block_device(mount) as loop:
        subprocess.run(
            ["dd", f"if={corpus64}", f"of={loop}", "bs=1M", "oflag=direct", "status=none"], check=True
        )
        before = mount.mm_stat()
        assert before[0] == 64 * MiB and before[2] > 0
        subprocess.run(["blkdiscard", loop], check=True)
        after = mount.mm_stat()
        assert after[0] == after[1] == 0
        assert after[2] == 0  # every zspage emptied and released
        assert after[5] == after[7] == 0
        assert mount.io_stat()[3] == 128 * MiB // 4096  # notify_free counts every page covered
        with open(loop, "rb") as f:
            assert f.read(MiB) == bytes(MiB)


def _settled_orig(mount: Mount, timeout: float = 20) -> int:
    """orig_data_size once it stops falling (ext4 sends online discards asynchronously after
    the commit)."""
    deadline = time.monotonic() + timeout
    last = mount.mm_stat()[0]
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = mount.mm_stat()[0]
        if now == last:
            return now
        last = now
    return last


def _write_files(root: Path, total: int) -> None:
    chunk = (Path(subprocess.__file__).read_bytes() * 64)[:MiB]
    for n in range(total // MiB):
        (root / f"f{n}").write_bytes(chunk[n:] + chunk[:n])


@pytest.mark.parametrize("how", ["mount -o discard", "fstrim"])
def test_deleted_files_give_memory_back(tmp_path: Path, how: str) -> None:
    """Write 64 MiB of files, delete them, sync: the data's pages are freed and only the
    filesystem's metadata (superblocks, bitmaps, inode tables in use, the journal) stays; a
    second round of the same lands at the same level, so nothing accumulates."""
    with zramd_mount(tmp_path / "m", "--size", "256M") as mount, block_device(mount) as loop:
        subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "nodiscard", loop], check=True, capture_output=True)
        options = ["-o", "discard"] if how == "mount -o discard" else []
        levels = []
        with mounted(loop, tmp_path / "fs", *options) as fs:
            for _round in range(2):
                _write_files(fs, 64 * MiB)
                subprocess.run(["sync"], check=True)
                full = mount.mm_stat()[0]
                for path in fs.iterdir():
                    if path.name.startswith("f"):
                        path.unlink()
                subprocess.run(["sync", "-f", str(fs)], check=True)  # commit: online discards go out
                if how == "fstrim":
                    subprocess.run(["fstrim", str(fs)], check=True)
                levels.append((full, _settled_orig(mount)))
        print(f"{how}: orig_data_size (with files, after delete) per round: {levels}")
        for full, gone in levels:
            assert full - gone >= 63 * MiB, levels  # the files' pages were freed
        assert levels[1][1] <= levels[0][1] + MiB, levels  # and nothing accumulates
        assert mount.io_stat()[3] >= 2 * 63 * MiB // 4096


def _segment_jobs(device: str, segments: list[int], verify_only: bool) -> str:
    """A fio job file with one job per 1 MiB segment, each with its own fixed seed, so that a
    later `verify_only` run over any subset of segments replays exactly what was written."""
    lines = [
        "[global]", f"filename={device}", "size=1M", "bs=16k", "rw=randwrite", "direct=1",
        "verify=crc32c", "verify_fatal=1", "buffer_compress_percentage=50", "refill_buffers",
        *(["verify_only=1"] if verify_only else []),
    ]  # fmt: skip
    for n in segments:
        lines += [f"[seg{n}]", f"offset={n}M", f"randseed={1000 + n}"]
    return "\n".join(lines) + "\n"


def test_fio_verify_around_discarded_holes(tmp_path: Path) -> None:
    jobfile = tmp_path / "segments.fio"
    with zramd_mount(tmp_path / "m", "--size", "64M") as mount, block_device(mount) as loop:
        jobfile.write_text(_segment_jobs(loop, list(range(64)), verify_only=False))
        fio(str(jobfile))
        holes = list(range(3, 64, 4))  # whole segments discarded through the block device
        for n in holes:
            subprocess.run(["blkdiscard", "-o", str(n * MiB), "-l", str(MiB), loop], check=True)
        # Unaligned holes punched in the file itself: partial pages are zeroed in place.
        ragged = {1: (MiB + 1000, 10_000), 5: (5 * MiB + 4096 * 7 + 3, 123_457)}
        with open(mount.disk, "r+b") as f:
            before = {n: _read(f, n * MiB, MiB) for n in ragged}
        for offset, length in ragged.values():
            subprocess.run(
                ["fallocate", "-p", "-o", str(offset), "-l", str(length), str(mount.disk)], check=True
            )
        untouched = [n for n in range(64) if n not in holes and n not in ragged]
        jobfile.write_text(_segment_jobs(loop, untouched, verify_only=True))
        report = fio(str(jobfile))
        assert report.count("read: IOPS=") == len(untouched)  # every segment was read back and checked
        with open(mount.disk, "rb") as f:
            for n in holes:
                assert _read(f, n * MiB, MiB) == bytes(MiB), f"segment {n} not zero"
            for n, (offset, length) in ragged.items():
                expected = bytearray(before[n])
                start = offset - n * MiB
                expected[start : start + length] = bytes(length)
                assert _read(f, n * MiB, MiB) == expected, f"segment {n} around its hole"
        assert mount.io_stat()[3] >= len(holes) * MiB // 4096
        assert mount.io_stat()[:2] == [0, 0]


def _read(f: BinaryIO, offset: int, size: int) -> bytes:
    f.seek(offset)
    return f.read(size)


def test_fragmentation_and_compaction_side_by_side_with_the_kernel(tmp_path: Path, corpus64: Path) -> None:
    """The recipe of tests/fragmentation.py (lz4, the corpus twice, every other page discarded,
    compact): zramd's pool frees and compacts like the kernel's zsmalloc, step by step."""
    with kernel_zram("lz4", "128M") as zram:
        kernel = run_recipe(str(zram.dev), zram.sysfs, corpus64)
    with (
        zramd_mount(tmp_path / "m", "--size", "128M", "--algorithm", "lz4") as mount,
        block_device(mount) as loop,
    ):
        ours = run_recipe(loop, mount.sys, corpus64)
    print(format_rows("kernel zram0", kernel))
    print(format_rows("zramd", ours))
    for step in STEPS:
        k, z = kernel[step], ours[step]
        assert z[0] == k[0] and z[5] == k[5] and z[9] == k[9], step  # orig, same pages, notify_free
        assert abs(z[2] - k[2]) / k[2] < 0.005, (step, z[2], k[2])  # mem_used_total
        assert abs(z[7] - k[7]) <= max(2, 0.02 * k[7]), (step, z[7], k[7])  # huge pages
    assert ours["freed 1/2"][2] > 0.8 * ours["written"][2]  # scattered frees return little...
    assert ours["compact"][2] < 0.6 * ours["freed 1/2"][2]  # ...until compaction
    assert abs(ours["compact"][6] - kernel["compact"][6]) / kernel["compact"][6] < 0.02  # pages_compacted
    assert ours["used_max=0"][4] == ours["used_max=0"][2]


@pytest.mark.parametrize("algorithm", compress.algorithm_names())
def test_fio_verify_with_every_algorithm(tmp_path: Path, algorithm: str) -> None:
    """Each algorithm of comp_algorithm stores and restores real data through a mount: fio's
    verify over half-compressible and incompressible pages, and the pool recounts clean."""
    with zramd_mount(tmp_path / "m", "--size", "32M", "--algorithm", algorithm) as mount:
        assert f"[{algorithm}]" in mount.attr("comp_algorithm")
        for percentage in ("50", "0"):
            fio(
                f"--filename={mount.disk}", "--size=32M", "--rw=randwrite", "--bs=64k", "--direct=1",
                "--verify=crc32c", "--do_verify=1", "--verify_fatal=1",
                f"--buffer_compress_percentage={percentage}", "--refill_buffers",
            )  # fmt: skip
        orig, compr, *_ = mount.mm_stat()
        assert orig == 32 * MiB and 0 < compr <= orig
        assert mount.attr("consistency").startswith("ok")
        assert mount.io_stat()[:2] == [0, 0]

"""Tier 5: writeback through a real mount -- the policy the daemon runs, memory that really goes
back to the OS, and backing paths that would route back into the daemon.

Each test starts its own daemon (`zramd_mount`); backing files live in pytest's tmp_path, on the
real disk. They skip with the reason where FUSE or root is missing.
"""

from __future__ import annotations

import errno
import mmap
import os
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.mount_util import Mount, block_device, mounted, zramd, zramd_mount

MiB = 1 << 20
PAGE = 4096


def sparse_file(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def write_attr(path: Path, data: str) -> int | str:
    """Write `data` to an attribute file; the byte count, or the errno's name."""
    fd = os.open(path, os.O_WRONLY)
    try:
        return os.write(fd, data.encode())
    except OSError as exc:
        return errno.errorcode[exc.errno or 0]
    finally:
        os.close(fd)


def pages_of(seed: int, count: int) -> bytes:
    """`count` pages that compress to about half: random bytes then zeros, in every page."""
    rnd = random.Random(seed)
    return b"".join(rnd.randbytes(PAGE // 2) + bytes(PAGE // 2) for _ in range(count))


def direct_io(block: str, data: bytes | None = None, length: int = 0) -> bytes:
    """Write `data` at offset 0 of `block` with O_DIRECT, or read `length` bytes from it."""
    buf = mmap.mmap(-1, len(data) if data is not None else length)
    fd = os.open(block, os.O_RDWR | os.O_DIRECT)
    try:
        if data is not None:
            buf[:] = data
            assert os.pwritev(fd, [buf], 0) == len(data)
            return b""
        assert os.preadv(fd, [buf], 0) == length
        return bytes(buf)
    finally:
        os.close(fd)
        buf.close()


def daemon_report(mount: Mount) -> dict[str, str]:
    text = (mount.control / "daemon").read_text()
    return dict(line.split(": ", 1) for line in text.splitlines())


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_policy_writes_back_idle_pages_and_data_survives(tmp_path: Path) -> None:
    """--backing-dev and --writeback-policy from the command line: the daemon marks pages idle
    for a second as idle and writes them back on its own; every byte reads back."""
    backing = sparse_file(tmp_path / "back.img", 32 * MiB)
    policy = "interval=1 idle_age=1 max_pages=100000"
    with zramd_mount(
        tmp_path / "m", "--size", "16M", "--backing-dev", str(backing), "--writeback-policy", policy
    ) as mount:
        assert mount.attr("backing_dev") == f"{backing}\n"
        shown = "interval=1 idle_age=1 high_watermark=0 max_pages=100000 max_seconds=2 release=0"
        shown += " recompress=none\n"
        assert mount.attr("writeback_policy") == shown
        data = pages_of(1, 1024)
        with block_device(mount) as block:
            direct_io(block, data)
            wait_until(lambda: int(mount.attr("bd_stat").split()[2]) == 1024, 15, "the policy's writeback")
            bd_count, bd_reads, bd_writes = map(int, mount.attr("bd_stat").split())
            assert (bd_count, bd_reads, bd_writes) == (1024, 0, 1024)
            mm = mount.mm_stat()
            assert mm[0] == 4 * MiB and mm[1] == 0 and mm[2] == 0  # orig counts them; nothing in RAM
            assert direct_io(block, length=len(data)) == data
            assert int(mount.attr("bd_stat").split()[1]) == 1024
        assert "zram0: last cycle" in daemon_report(mount)["writeback_policy"]
        assert os.stat(backing).st_blocks * 512 >= 4 * MiB  # the pages are on the disk


def test_policy_at_run_time_with_a_high_watermark(tmp_path: Path) -> None:
    """The policy set through its file: above 50% of mem_limit, huge pages go first (no page
    is idle), until mem_used_total is under the watermark."""
    backing = sparse_file(tmp_path / "back.img", 64 * MiB)
    with zramd_mount(tmp_path / "m", "--size", "0") as mount:
        mount.set("backing_dev", str(backing))
        mount.set("mem_limit", "8M")
        mount.set("disksize", "32M")
        random_pages = random.Random(2).randbytes(1536 * PAGE)  # huge: 6 MiB in the pool
        with block_device(mount) as block:
            direct_io(block, random_pages)
            assert mount.mm_stat()[2] > 4 * MiB
            assert write_attr(mount.sys / "writeback_policy", "interval=abc") == "EINVAL"
            mount.set("writeback_policy", "high_watermark=0.5 interval=1")
            wait_until(lambda: mount.mm_stat()[2] <= 4 * MiB, 15, "the watermark rule")
            assert int(mount.attr("bd_stat").split()[0]) > 0
            assert mount.mm_stat()[7] < 1536  # huge_pages went down by what went to the disk
            assert direct_io(block, length=len(random_pages)) == random_pages


def rss(mount: Mount) -> int:
    return int(daemon_report(mount)["rss_bytes"])


@pytest.mark.parametrize("release", [0, 1])
def test_release_policy_gives_memory_back(tmp_path: Path, release: int) -> None:
    """Writeback plus compaction lowers mem_used_total either way; only with release=1 does the
    daemon's RSS fall with it (the pool keeps its frames by default)."""
    backing = sparse_file(tmp_path / "back.img", 256 * MiB)
    with zramd_mount(tmp_path / "m", "--size", "128M", "--backing-dev", str(backing)) as mount:
        mount.set("writeback_policy", f"release={release}")
        with block_device(mount) as block:
            direct_io(block, pages_of(3, 16384))  # 64 MiB, ~34 MiB in the pool
            before = rss(mount)
            pool = int(daemon_report(mount)["pool_resident_bytes"])
            assert pool > 30 * MiB
            mount.set("idle", "all")
            mount.set("writeback", "idle")
            mount.set("compact", "1")
            after = rss(mount)
            report = daemon_report(mount)
            assert int(report["mem_used_total_bytes"]) == 0
            if release:
                assert int(report["pool_resident_bytes"]) == 0
                assert before - after > 0.8 * pool, (before, after, pool)
            else:
                assert int(report["pool_resident_bytes"]) == pool
                assert abs(before - after) < 0.2 * pool, (before, after, pool)
            # Frames given back come back on demand: the pool grows again.
            direct_io(block, pages_of(4, 4096))
            assert mount.mm_stat()[2] > 8 * MiB


def test_backing_paths_into_the_daemon_are_refused(tmp_path: Path) -> None:
    """EINVAL for this daemon's own disk file, its block devices, and a file on a filesystem
    made on one of them; the refusal changes nothing (backing_dev stays none)."""
    with zramd_mount(tmp_path / "m", "--size", "64M", expect_log=("refused",)) as mount:
        other = mount.device(int((mount.control / "hot_add").read_text()))
        with block_device(mount) as block:
            assert write_attr(other.sys / "backing_dev", block) == "EINVAL"  # an unused one: ours
            subprocess.run(["mkfs.ext4", "-q", "-F", block], check=True)
            with mounted(block, tmp_path / "fs") as fs:
                # Mounted, it cannot be opened exclusively (the kernel's O_EXCL: EBUSY).
                assert write_attr(other.sys / "backing_dev", block) == "EBUSY"
                inner = sparse_file(fs / "inner.img", 16 * MiB)
                refused = {
                    "disk file": str(mount.disk),
                    "file on a filesystem on it": str(inner),
                    "the other device's own disk": str(other.disk),
                }
                for what, path in refused.items():
                    assert write_attr(other.sys / "backing_dev", path) == "EINVAL", what
                    assert other.attr("backing_dev") == "none\n", what
                fine = sparse_file(tmp_path / "fine.img", 16 * MiB)
                assert write_attr(other.sys / "backing_dev", str(fine)) == len(str(fine))
                assert write_attr(other.sys / "backing_dev", "/dev/null") == "ENOTBLK"
                assert write_attr(other.sys / "backing_dev", str(tmp_path)) == "EISDIR"
                assert write_attr(other.sys / "backing_dev", str(tmp_path / "missing")) == "ENOENT"
                assert other.attr("backing_dev") == f"{fine}\n"  # refusals keep the one set


def test_bad_writeback_options_are_one_line_errors(tmp_path: Path) -> None:
    for option, value in (("--writeback-policy", "interval=-3"), ("--backing-dev", str(tmp_path / "none"))):
        result = zramd("start", str(tmp_path / "m"), option, value, check=False)
        assert result.returncode == 2, result
        assert len(result.stderr.strip().splitlines()) <= 2 and "Traceback" not in result.stderr
        assert option in result.stderr


def test_config_file_sets_backing_dev_and_policy(tmp_path: Path) -> None:
    """zram-generator's ``writeback-device`` and zramd's ``writeback-policy`` through `zramd up`:
    the device gets both before its disksize, and the policy writes pages of a scratch
    filesystem back; `zramd down` takes it all down and releases the backing file."""
    from tests.mount_util import check_daemon_log, force_cleanup, fuse_unavailable

    reason = fuse_unavailable()
    if reason:
        pytest.skip(reason)
    root, scratch = tmp_path / "root", tmp_path / "scratch"
    backing = sparse_file(tmp_path / "back.img", 64 * MiB)
    config = tmp_path / "zramd.conf"
    config.write_text(
        f"[zram0]\nzram-size = 32\nfs-type = ext4\nmount-point = {scratch}\n"
        f"writeback-device = {backing}\nwriteback-policy = interval=1 idle_age=1 release=1\n"
    )
    try:
        zramd("up", "--config", str(config), "--root", str(root))
        mount = Mount(root)
        assert mount.attr("backing_dev") == f"{backing}\n"
        assert mount.attr("writeback_policy").startswith("interval=1 idle_age=1 ")
        (scratch / "data").write_bytes(pages_of(5, 1024))
        subprocess.run(["sync"], check=True)
        wait_until(lambda: int(mount.attr("bd_stat").split()[0]) > 256, 20, "the configured policy")
        assert (scratch / "data").read_bytes() == pages_of(5, 1024)
        zramd("down", "--config", str(config), "--root", str(root))
        assert os.stat(backing).st_blocks == 0  # the reset punched everything out
    finally:
        force_cleanup(root)
    check_daemon_log(root)


def test_policy_recompresses_idle_pages_and_writes_back_what_none_shrinks(tmp_path: Path) -> None:
    """recompress=idle in the policy: idle pages go to zstd (smaller compr_data_size, block_state
    shows r), the ones zstd cannot shrink either become INCOMPRESSIBLE and go to the backing
    file, and every byte reads back."""
    backing = sparse_file(tmp_path / "back.img", 32 * MiB)
    with zramd_mount(tmp_path / "m", "--size", "0") as mount:
        if "zstd" not in mount.attr("comp_algorithm"):
            pytest.skip("zstd is not installed")
        mount.set("recomp_algorithm", "algo=zstd")
        mount.set("backing_dev", str(backing))
        mount.set("disksize", "16M")
        text = b"".join(p.read_bytes() for p in sorted(Path(__file__).parent.glob("t*.py")))
        text = (text * (1 + 2048 * PAGE // len(text)))[: 2048 * PAGE]
        noise = random.Random(9).randbytes(64 * PAGE)
        with block_device(mount) as block:
            direct_io(block, text + noise)
            before = mount.mm_stat()
            mount.set("writeback_policy", "interval=1 idle_age=1 recompress=idle")
            wait_until(lambda: int(mount.attr("bd_stat").split()[2]) >= 64, 15, "the recompression policy")
            after = mount.mm_stat()
            assert after[1] < before[1] - 64 * PAGE  # compr_data_size: zstd, and the noise went out
            flags = [line.split()[2] for line in mount.attr("block_state").splitlines()]
            assert sum(f[4] == "r" for f in flags) > 1024
            assert sum(f[1] == "w" for f in flags) >= 64
            assert direct_io(block, length=len(text) + len(noise)) == text + noise
            assert mount.attr("consistency").startswith("ok")

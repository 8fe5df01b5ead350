"""Tiers 6-7 with writeback: fio verify over a device half written back (then overwritten and
discarded across the written-back pages), ext4 + e2fsck under an active writeback policy, and
swap storms with the policy writing back while the storm runs, the backing file on the real disk.
"""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mount_util import Mount, block_device, mounted, zramd_mount
from tests.swap_storm import cgroup_version, run_storm, swap_on_zramd
from tests.t5_writeback import daemon_report, sparse_file, wait_until
from tests.t6_clients import _identical, fio

MiB = 1 << 20
PAGES = 16384  # a 64 MiB device

pytestmark = pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed")


def block_state(mount: Mount) -> dict[int, str]:
    """Page index -> its six flag characters, from block_state."""
    rows = {}
    for line in mount.attr("block_state").splitlines():
        index, _time, flags = line.split()
        rows[int(index)] = flags
    return rows


def bd_stat(mount: Mount) -> tuple[int, int, int]:
    count, reads, writes = map(int, mount.attr("bd_stat").split())
    return count, reads, writes


def test_fio_verify_across_written_back_pages(tmp_path: Path) -> None:
    backing = sparse_file(tmp_path / "back.img", 128 * MiB)
    with zramd_mount(tmp_path / "m", "--size", "64M", "--backing-dev", str(backing)) as mount:
        disk = str(mount.disk)
        halves = {"compressible": ("0", "50"), "incompressible": ("32M", "0")}
        common = ["--bs=64k", "--direct=1", "--verify=crc32c", "--refill_buffers", "--size=32M"]
        for offset, percentage in halves.values():
            fio(f"--filename={disk}", "--rw=write", f"--offset={offset}", *common,
                f"--buffer_compress_percentage={percentage}", "--do_verify=0")  # fmt: skip
        before = block_state(mount)
        assert sum(f[2] == "h" for i, f in before.items() if i >= PAGES // 2) > PAGES // 2 - 64
        # About half the pages go: all of the first quarter (idle), then every huge page.
        mount.set("idle", "all")
        mount.set("writeback", f"page_indexes=0-{PAGES // 4 - 1} type=idle")
        mount.set("writeback", "huge")
        moved = [i for i, f in before.items() if f[0] != "s" and (i < PAGES // 4 or f[2] == "h")]
        assert 0.45 * PAGES < len(moved) < 0.8 * PAGES
        assert bd_stat(mount) == (len(moved), 0, len(moved))  # exact against the pages moved
        after = block_state(mount)
        assert sorted(i for i, f in after.items() if f[1] == "w") == sorted(moved)
        mm = mount.mm_stat()
        assert mm[0] == sum(1 for _ in before) * 4096  # orig_data_size still counts them
        assert mm[7] == 0  # every huge page went to the backing file
        # Verify everything, written-back pages read from the backing file once each.
        for offset, percentage in halves.values():
            fio(f"--filename={disk}", "--rw=write", f"--offset={offset}", *common,
                f"--buffer_compress_percentage={percentage}", "--verify_only=1")  # fmt: skip
        assert bd_stat(mount) == (len(moved), len(moved), len(moved))
        # Overwrite random pages everywhere (freeing their blocks), then discard across the
        # written-back range; both verified.
        fio(f"--filename={disk}", "--rw=randwrite", "--bs=4k", "--direct=1", "--size=64M",
            "--io_size=16M", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1",
            "--buffer_compress_percentage=50", "--refill_buffers", "--randrepeat=0")  # fmt: skip
        subprocess.run(["blkdiscard", "-o", str(8 * MiB), "-l", str(16 * MiB), mount.block], check=True)
        assert mount.disk.read_bytes()[8 * MiB : 24 * MiB] == bytes(16 * MiB)
        now = block_state(mount)
        written_back = sum(f[1] == "w" for f in now.values())
        assert bd_stat(mount)[0] == written_back < len(moved)
        assert not any(8 * MiB // 4096 <= i < 24 * MiB // 4096 for i in now)
        assert mount.attr("consistency").startswith("ok")
        assert mount.io_stat()[:2] == [0, 0]
        assert (
            int(subprocess.check_output(["stat", "-c", "%b", str(backing)])) * 512
            <= (written_back + 256) * 4096
        )


def test_ext4_and_fsck_under_an_active_writeback_policy(tmp_path: Path) -> None:
    source = Path(subprocess.__file__).parent / "email"
    backing = sparse_file(tmp_path / "back.img", 256 * MiB)
    policy = "interval=1 idle_age=1"
    options = ("--size", "128M", "--backing-dev", str(backing), "--writeback-policy", policy)
    with zramd_mount(tmp_path / "m", *options) as mount, block_device(mount) as loop:
        subprocess.run(["mkfs.ext4", "-q", "-F", loop], check=True, capture_output=True)
        with mounted(loop, tmp_path / "fs") as fs:
            shutil.copytree(source, fs / "tree")
            subprocess.run(["sync"], check=True)
            wait_until(lambda: bd_stat(mount)[2] > 100, 20, "the policy to write back")
            shutil.copytree(source, fs / "tree2")  # more writes while pages are out
            subprocess.run(["sync"], check=True)
        time.sleep(2.5)  # another cycle or two
        assert bd_stat(mount)[0] > 100
        fsck = subprocess.run(["e2fsck", "-fn", loop], capture_output=True, text=True, check=False)
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr
        with mounted(loop, tmp_path / "fs") as fs:
            assert _identical(filecmp.dircmp(source, fs / "tree"))
            assert _identical(filecmp.dircmp(source, fs / "tree2"))
        assert bd_stat(mount)[1] > 0  # the checks read pages back from the backing file
        assert mount.io_stat()[:2] == [0, 0]


STORMS = 3


@pytest.fixture(params=[0, 1], ids=["release-off", "release-on"])
def swap_with_policy(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, int]]:
    if cgroup_version() is None:
        pytest.skip("no memory cgroup controller is mounted")
    backing = sparse_file(tmp_path / "back.img", 1 << 30)
    policy = f"interval=1 idle_age=1 release={request.param}"
    with swap_on_zramd(tmp_path, "1G", "--backing-dev", str(backing), "--writeback-policy", policy) as root:
        yield root, request.param


def test_swap_storm_with_the_writeback_policy(swap_with_policy: tuple[Path, int]) -> None:
    root, release = swap_with_policy
    mount = Mount(root)
    peak_rss = 0
    for seed in range(STORMS):
        result = run_storm(root, limit=64 * MiB, factor=4, seed=seed, bound=180)
        assert result.pages == 256 * 256  # the worker verified every page it read back
        peak_rss = max(peak_rss, int(daemon_report(mount)["rss_bytes"]))
    time.sleep(3)  # a policy cycle after the last storm
    report = daemon_report(mount)
    count, reads, writes = bd_stat(mount)
    print(
        f"release={release}: {writes} pages written back, {reads} read back, {count} still out; "
        f"RSS peak {peak_rss / MiB:.0f} MiB, after {int(report['rss_bytes']) / MiB:.0f} MiB, "
        f"pool resident {int(report['pool_resident_bytes']) / MiB:.0f} MiB, "
        f"mem_used_total {int(report['mem_used_total_bytes']) / MiB:.0f} MiB"
    )
    assert writes > 0
    assert mount.io_stat()[:2] == [0, 0]
    assert mount.attr("consistency").startswith("ok")
    if release:
        assert int(report["pool_resident_bytes"]) <= int(report["mem_used_total_bytes"]) + 4 * MiB

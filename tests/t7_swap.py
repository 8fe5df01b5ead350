"""Tier 7: zramd as swap -- a swap storm under a memory cgroup, repeated, under a watchdog; the
hardening self-check; and the scratch-filesystem helper path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mount_util import Mount, check_daemon_log, force_cleanup, fuse_unavailable, zramd, zramd_mount
from tests.swap_storm import MiB, cgroup_version, run_storm, swap_on_zramd
from zramd.host.loop import bound_under
from zramd.host.mounts import loop_devices_for, mount_entry, swap_devices
from zramd.host.processes import daemon_pid
from zramd.host.rundir import logfile_for
from zramd.serve import hardening

STORM_RUNS = 5
STORM_BOUND = 120  # seconds; a storm of 256 MiB takes a few seconds here


@pytest.fixture(scope="module")
def swapdev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    reason = fuse_unavailable()
    if reason:
        pytest.skip(reason)
    if cgroup_version() is None:
        pytest.skip("no memory cgroup controller is mounted")
    with swap_on_zramd(tmp_path_factory.mktemp("swap")) as mountpoint:
        yield mountpoint


@pytest.mark.parametrize("run", range(STORM_RUNS))
def test_swap_storm(swapdev: Path, run: int) -> None:
    result = run_storm(swapdev, limit=64 * MiB, factor=4, seed=run, bound=STORM_BOUND)
    print(
        f"storm {run}: {result.seconds:.1f} s, out {result.swapped_out / MiB:.0f} MiB, "
        f"in {result.swapped_in / MiB:.0f} MiB, {result.swap_mb_per_s:.0f} MB/s, "
        f"peak orig_data_size {result.peak_orig_data_size / MiB:.0f} MiB"
    )
    assert result.pages == 256 * 256
    assert result.swapped_out >= 128 * MiB  # most of the 256 MiB went out through zramd
    assert result.peak_orig_data_size >= 64 * MiB  # and zramd's mm_stat showed it meanwhile


def test_swap_is_freed_with_discard_after_the_storm(swapdev: Path) -> None:
    # swapon --discard: pages swap releases are discarded, so the storm's data does not linger.
    subprocess.run(["sync"], check=True)
    orig = Mount(swapdev).mm_stat()[0]
    assert orig < 16 * MiB, orig  # the swap header and stragglers only


def test_stop_refuses_while_swap_is_active(swapdev: Path) -> None:
    result = zramd("stop", str(swapdev), check=False)
    assert result.returncode == 1
    assert "active swap" in result.stderr
    assert mount_entry(str(swapdev)) is not None
    assert Mount(swapdev).block in swap_devices()


def test_sigterm_is_refused_while_swap_is_active(swapdev: Path) -> None:
    pid = daemon_pid(str(swapdev))
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    time.sleep(1)
    os.kill(pid, 0)  # still running
    assert Mount(swapdev).attr("initstate") == "1\n"
    assert "SIGTERM refused" in logfile_for(str(swapdev)).read_text()


def test_self_check_reports_locked_memory_and_flags(tmp_path: Path) -> None:
    with zramd_mount(tmp_path / "m", "--size", "64M") as mount:
        mount.disk.write_bytes(bytes(4096) + b"x" * (8 << 20))
        report = dict(line.split(": ", 1) for line in (mount.control / "daemon").read_text().splitlines())
        assert report["mlockall"] == "MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT"
        assert int(report["locked_resident_bytes"]) > 8 << 20
        # Locked as touched, not up front: far less than the reserved address space.
        assert int(report["locked_resident_bytes"]) < int(report["locked_address_space_bytes"]) // 4
        threads = [v for k, v in report.items() if k.startswith("thread_")]
        assert threads
        if report["cap_sys_resource"] == "yes":
            assert all(v.endswith("io_flusher=yes") for v in threads), threads
            assert report["oom_score_adj"] == "-1000"
        else:
            assert report["io_flusher"].startswith("refused: EPERM")
            assert all(v.endswith("io_flusher=no") for v in threads)


@pytest.mark.skipif(
    not hardening.has_cap_sys_resource(),
    reason="this machine does not grant CAP_SYS_RESOURCE even to root, so PR_SET_IO_FLUSHER is refused",
)
def test_io_flusher_flags_on_every_daemon_thread(tmp_path: Path) -> None:
    with zramd_mount(tmp_path / "m", "--size", "16M") as mount:
        mount.disk.write_bytes(b"y" * MiB)
        report = dict(line.split(": ", 1) for line in (mount.control / "daemon").read_text().splitlines())
        flagged, total = report["io_flusher_threads"].split("/")
        assert flagged == total


def test_scratch_filesystem_helper_path(tmp_path: Path) -> None:
    fs = tmp_path / "fs"
    fs.mkdir()
    with zramd_mount(tmp_path / "m", "--size", "128M") as mount:
        zramd("mkfs", str(mount.path), "--fs", "ext4", "--mount", str(fs))
        source = Path(subprocess.__file__).parent / "json"
        subprocess.run(["cp", "-a", str(source), str(fs / "json")], check=True)
        subprocess.run(["diff", "-r", str(source), str(fs / "json")], check=True)
        block = mount.block
        assert mount_entry(str(fs)) is not None and mount_entry(str(fs)).source == block  # type: ignore[union-attr]
        assert loop_devices_for(str(mount.disk)) == [block]  # the daemon's own loop device, no other
        stopped = zramd("stop", str(mount.path))
        assert f"unmounted {fs}" in stopped.stdout
        assert mount_entry(str(fs)) is None
        assert mount_entry(str(mount.path)) is None
        assert not bound_under(str(mount.path))  # the daemon detached its loop device


def test_up_and_down_bring_a_whole_config_file_up_and_take_it_down(tmp_path: Path) -> None:
    """`zramd up --config FILE` does what boot does for every section -- the daemon, each device
    through hot_add and its files, swap or mkfs + mount -- and `down` undoes it all in reverse."""
    reason = fuse_unavailable()
    if reason:
        pytest.skip(reason)
    root, scratch = tmp_path / "root", tmp_path / "scratch"
    config = tmp_path / "zramd.conf"
    config.write_text(
        "[zram0]\nzram-size = 64\ncompression-algorithm = lz4\nswap-priority = 7\n\n"
        f"[zram2]\nzram-size = 32\nfs-type = ext4\nmount-point = {scratch}\n"
    )
    try:
        up = zramd("up", "--config", str(config), "--root", str(root))
        assert "serving" in up.stdout and "zram2: ext4 on /dev/loop" in up.stdout, up.stdout
        zram0, zram2 = Mount(root), Mount(root, 2)
        assert (
            zram0.attr("comp_algorithm") == "lzo [lz4] lz4hc zstd deflate \n"
            and zram0.attr("disksize") == f"{64 * MiB}\n"
        )
        assert Mount(root, 1).attr("initstate") == "0\n"  # hot_add reached zram2 through zram1
        swaps = [line.split() for line in Path("/proc/swaps").read_text().splitlines()[1:]]
        assert [zram0.block, "7"] in [[row[0], row[-1]] for row in swaps]
        entry = mount_entry(str(scratch))
        assert entry is not None and entry.source == zram2.block
        rows = {
            row["name"].rsplit("/", 1)[1]: row
            for row in json.loads(zramd("status", str(root), "--json").stdout)
        }
        assert (rows["zram0"]["mountpoint"], rows["zram2"]["mountpoint"]) == ("[SWAP]", str(scratch))
        again = zramd("up", "--config", str(config), "--root", str(root))
        assert again.stdout == "", again.stdout  # idempotent: everything was up already
        swap_block = zram0.block
        down = zramd("down", "--config", str(config), "--root", str(root))
        assert f"unmounted {scratch}" in down.stdout and f"stopped {root}" in down.stdout, down.stdout
        assert mount_entry(str(root)) is None and mount_entry(str(scratch)) is None
        assert swap_block not in swap_devices() and not bound_under(str(root))
    finally:
        force_cleanup(root)
    check_daemon_log(root)

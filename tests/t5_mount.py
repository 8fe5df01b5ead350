"""Tier 5: a real zramd mount, driven through the CLI and plain file I/O.

Each test starts its own daemon with `zramd start` in a temporary directory and stops it (or
forcibly cleans up) afterwards; they skip with the reason where FUSE or root is missing.
"""

from __future__ import annotations

import errno
import json
import mmap
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.mount_util import (
    Mount,
    daemon_log_problems,
    exited,
    fuse_unavailable,
    wait_served,
    zramd,
    zramd_mount,
)
from zramd.core import engine
from zramd.core.streams import online_cpus
from zramd.host.loop import bound_under
from zramd.host.mounts import DEAD_MOUNT_ERRNOS, mount_entry, swap_devices
from zramd.host.processes import daemon_pid
from zramd.host.rundir import RUN_DIR, logfile_for, run_name
from zramd.serve.ops import ATTR_TIMEOUT

MiB = 1 << 20


def wait_gone(pid: int, timeout: float = 10) -> None:
    assert exited(pid, timeout), f"pid {pid} still running"


def test_tree_shape_and_disk_file(tmp_path: Path) -> None:
    with zramd_mount(tmp_path / "m", "--size", "8M") as mount:
        assert sorted(os.listdir(mount.path)) == ["zram-control", "zram0"]
        assert sorted(os.listdir(mount.control)) == ["block_prefix", "daemon", "hot_add", "hot_remove"]
        assert {"disk", "disksize", "mm_stat", "io_stat", "reset", "comp_algorithm", "block_device"} <= set(
            os.listdir(mount.sys)
        )
        st = os.stat(mount.disk)
        assert (st.st_size, st.st_mode & 0o7777, st.st_uid, st.st_gid) == (8 * MiB, 0o600, 0, 0)
        entry = mount_entry(str(mount.path))
        assert entry is not None and entry.fstype == "fuse.zramd"
        assert mount.attr("initstate") == "1\n"
        assert mount.attr("comp_algorithm") == "[lzo] lz4 lz4hc zstd deflate \n"
        report = dict(line.split(": ", 1) for line in (mount.control / "daemon").read_text().splitlines())
        assert int(report["pid"]) == mount.pid
        assert report["devices"] == "zram0"
        assert report["core"].startswith(engine.IMPLEMENTATION + " ("), report["core"]  # the daemon's build


def test_unwritten_pages_read_as_zeros_and_cost_nothing(tmp_path: Path) -> None:
    with zramd_mount(tmp_path / "m", "--size", "16M") as mount:
        with open(mount.disk, "rb") as f:
            data = f.read()
        assert data == bytes(16 * MiB)
        assert mount.mm_stat() == [0] * 9


def test_direct_and_buffered_io_round_trip(tmp_path: Path) -> None:
    payload = os.urandom(MiB) + (b"zramd text " * 300_000)[: 3 * MiB]
    with zramd_mount(tmp_path / "m", "--size", "8M") as mount:
        fd = os.open(mount.disk, os.O_RDWR | os.O_DIRECT)
        try:
            buf = mmap.mmap(-1, len(payload))  # page-aligned memory for O_DIRECT
            buf.write(payload)
            assert os.pwrite(fd, buf, 4 * MiB) == len(payload)
            back = mmap.mmap(-1, len(payload))
            assert os.preadv(fd, [back], 4 * MiB) == len(payload)
            assert bytes(back) == payload
        finally:
            os.close(fd)
        with open(mount.disk, "r+b") as f:  # buffered, unaligned
            f.seek(12345)
            f.write(b"hello, zram")
            f.flush()
            os.fsync(f.fileno())
        with open(mount.disk, "rb") as f:
            f.seek(12340)
            assert f.read(20) == bytes(5) + b"hello, zram" + bytes(4)
        orig, _compr, used, *_rest = mount.mm_stat()
        assert orig == 4 * MiB + 4096  # the 1 MiB random + 3 MiB text, plus the patched page
        assert 0 < used < orig


def test_io_at_and_past_the_end(tmp_path: Path) -> None:
    with zramd_mount(tmp_path / "m", "--size", "1M") as mount:
        fd = os.open(mount.disk, os.O_RDWR)
        try:
            with pytest.raises(OSError) as past:
                os.pwrite(fd, b"x" * 4096, MiB)
            assert past.value.errno == errno.ENOSPC
            assert os.pwrite(fd, b"y" * 8192, MiB - 4096) == 4096  # cut short at the end
            assert os.pread(fd, 8192, MiB - 4096) == b"y" * 4096
            assert os.pread(fd, 100, MiB) == b""
        finally:
            os.close(fd)
        assert mount.mm_stat()[0] == 4096


def test_mem_limit_makes_writes_fail_with_eio_and_keeps_old_data(tmp_path: Path) -> None:
    with zramd_mount(tmp_path / "m", "--size", "8M", "--mem-limit", "256K") as mount:
        first = os.urandom(4096)
        fd = os.open(mount.disk, os.O_RDWR | os.O_DIRECT)
        try:
            buf = mmap.mmap(-1, 4096)
            buf.write(first)
            os.pwrite(fd, buf, 0)
            written = 1
            with pytest.raises(OSError) as failed:
                for page in range(1, 200):
                    buf.seek(0)
                    buf.write(os.urandom(4096))
                    os.pwrite(fd, buf, page * 4096)
                    written += 1
            assert failed.value.errno == errno.EIO
            assert written == 64  # 256 KiB of huge pages; the 65th needs a page over the limit
            buf.seek(0)
            buf.write(os.urandom(4096))
            with pytest.raises(OSError):
                os.pwrite(fd, buf, 0)  # an overwrite that does not fit keeps the old page
            back = mmap.mmap(-1, 4096)
            os.preadv(fd, [back], 0)
            assert bytes(back) == first
        finally:
            os.close(fd)
        assert mount.io_stat()[1] == 2  # failed_writes
        stat = mount.mm_stat()
        assert stat[3] == 256 * 1024 and stat[2] == 256 * 1024
        assert stat[4] == 256 * 1024 + 4096  # the peak records the failed attempt, like zram


def test_namespace_changes_are_refused(tmp_path: Path) -> None:
    with zramd_mount(tmp_path / "m", "--size", "1M") as mount:
        cases: list[tuple[Callable[[], object], int]] = [
            (lambda: os.truncate(mount.disk, 4096), errno.EPERM),
            (lambda: os.chmod(mount.disk, 0o666), errno.EPERM),
            (lambda: os.rename(mount.disk, mount.path / "other"), errno.EPERM),
            (lambda: os.unlink(mount.disk), errno.EPERM),
            (lambda: os.mkdir(mount.path / "dir"), errno.EPERM),
            (lambda: open(mount.path / "new", "w").close(), errno.EPERM),
            (lambda: os.setxattr(mount.disk, "user.x", b"1"), errno.EOPNOTSUPP),
        ]
        for action, expected in cases:
            with pytest.raises(OSError) as refused:
                action()
            assert refused.value.errno == expected, action
        assert os.stat(mount.disk).st_size == MiB
        os.truncate(mount.disk, MiB)  # truncating to its own size is harmless


def test_stop_unmounts_and_the_daemon_exits(mountpoint: Path) -> None:
    zramd("start", str(mountpoint), "--size", "4M")
    pid = daemon_pid(str(mountpoint))
    assert pid is not None
    result = zramd("stop", str(mountpoint))
    assert "stopped" in result.stdout
    assert mount_entry(str(mountpoint)) is None
    wait_gone(pid)


def run_daemon(path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`zramd run PATH --size 4M`, logging where `zramd start` would, so the mountpoint fixture
    scans what it logs."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    with open(logfile_for(str(path)), "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "zramd", "run", str(path), "--size", "4M"], env=env, stderr=log
        )


def test_sigterm_unmounts_and_exits_zero(mountpoint: Path) -> None:
    path = mountpoint
    proc = run_daemon(path)
    try:
        wait_served(path, proc)
        Mount(path).disk.write_bytes(b"x" * MiB)
        # Let the kernel's cached attributes expire: a daemon that looked at its own mount while
        # handling the signal would now wait on itself forever (a regression test for that).
        time.sleep(ATTR_TIMEOUT + 0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert mount_entry(str(path)) is None
    finally:
        if proc.poll() is None:
            proc.kill()


def test_start_refuses_bad_mount_points(tmp_path: Path) -> None:
    reason = fuse_unavailable()
    if reason:
        pytest.skip(reason)
    full = tmp_path / "full"
    full.mkdir()
    (full / "file").write_text("x")
    cases = {
        str(tmp_path / "missing"): "does not exist",
        str(full): "is not empty",
        str(full / "file"): "is not a directory",
    }
    for where, message in cases.items():
        result = zramd("start", where, "--size", "1M", check=False)
        assert result.returncode == 1
        assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr
    with zramd_mount(tmp_path / "m", "--size", "1M") as mount:
        again = zramd("start", str(mount.path), "--size", "1M", check=False)
        assert again.returncode == 1 and "already served" in again.stderr
        assert mount.attr("initstate") == "1\n"  # the first daemon is unharmed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "12Q"], "invalid size"),
        (["--size", "-1"], "invalid size"),
        (["--algorithm", "842"], "unknown algorithm"),
        (["--mem-limit", "lots"], "invalid size"),
    ],
)
def test_bad_arguments_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = zramd("start", str(tmp_path), *args, check=False)
    assert result.returncode == 2
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_sigkill_leaves_a_dead_mount_that_start_cleans_up(mountpoint: Path) -> None:
    path = mountpoint
    zramd("start", str(path), "--size", "1M")
    pid = daemon_pid(str(path))
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    with pytest.raises(OSError) as dead:
        os.listdir(path)  # a request the kernel cannot answer from its caches
    assert dead.value.errno in DEAD_MOUNT_ERRNOS
    result = zramd("start", str(path), "--size", "2M")
    assert "was a dead zramd mount" in result.stdout, result.stdout  # the user is told
    assert os.stat(Mount(path).disk).st_size == 2 * MiB
    zramd("stop", str(path))


def test_status_lists_devices_like_zramctl(tmp_path: Path) -> None:
    with zramd_mount(tmp_path / "m", "--size", "64M", "--algorithm", "lz4") as mount:
        mount.disk.write_bytes((b"status line " * 200_000)[: 2 * MiB])
        text = zramd("status", str(mount.path)).stdout.splitlines()
        assert text[0].split() == [
            "NAME",
            "ALGORITHM",
            "DISKSIZE",
            "DATA",
            "COMPR",
            "TOTAL",
            "STREAMS",
            "MOUNTPOINT",
        ]
        row = text[1].split()
        link = f"/dev/zramd/{run_name(str(mount.path))}/zram0"
        assert row[:4] == [link, "lz4", "64M", "2M"]
        assert os.readlink(link) == mount.block
        data = json.loads(zramd("status", str(mount.path), "--json").stdout)
        assert data[0]["data"] == 2 * MiB and data[0]["algorithm"] == "lz4"
        raw = zramd("status", str(mount.path), "--bytes").stdout.splitlines()[1].split()
        assert raw[2:4] == [str(64 * MiB), str(2 * MiB)]
        listing = zramd("status").stdout
        assert link in listing
        assert row[6] == str(online_cpus())  # STREAMS: one per online CPU by default
        assert data[0]["streams"] == online_cpus()


def test_streams_setting_reaches_the_daemon(tmp_path: Path) -> None:
    """--streams sets the daemon's compression streams; a 1 MiB write through 3 streams stores
    exactly what a single stream would (the contents and the compressed size)."""
    payload = (b"".join(os.urandom(1024) + b"text %d " % i * 100 for i in range(256)) * 3)[:MiB]
    sizes = []
    for streams in ("1", "3"):
        with zramd_mount(tmp_path / f"m{streams}", "--size", "8M", "--streams", streams) as mount:
            assert f"streams: {streams}\n" in (mount.path / "zram-control" / "daemon").read_text()
            assert zramd("status", str(mount.path)).stdout.splitlines()[1].split()[6] == streams
            fd = os.open(mount.disk, os.O_RDWR | os.O_DIRECT)
            try:
                buf = mmap.mmap(-1, MiB)
                buf[:] = payload
                assert os.pwrite(fd, buf, 0) == MiB
                buf[:] = bytes(MiB)
                assert os.preadv(fd, [buf], 0) == MiB
                assert bytes(buf) == payload
            finally:
                os.close(fd)
            sizes.append(mount.mm_stat()[:2])
    assert sizes[0] == sizes[1]


def test_reset_and_reinitialise_through_the_mount(tmp_path: Path) -> None:
    with zramd_mount(tmp_path / "m", "--size", "4M") as mount:
        mount.disk.write_bytes(b"a" * 4096 + os.urandom(4096))
        assert mount.mm_stat()[0] == 8192
        mount.set("reset", "1")
        assert mount.attr("initstate") == "0\n" and os.stat(mount.disk).st_size == 0
        mount.set("comp_algorithm", "lz4")
        mount.set("disksize", "8M")
        assert os.stat(mount.disk).st_size == 8 * MiB
        assert mount.attr("comp_algorithm") == "lzo [lz4] lz4hc zstd deflate \n"
        assert mount.mm_stat() == [0] * 9
        assert Mount(mount.path).disk.read_bytes()[:8192] == bytes(8192)


def test_run_notifies_systemd_when_ready(tmp_path: Path, mountpoint: Path) -> None:
    path = mountpoint
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(30)
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path)}
    proc = run_daemon(path, env)
    try:
        message = sock.recv(4096).decode()
        assert "READY=1" in message.splitlines()
        assert f"MAINPID={proc.pid}" in message
        assert Mount(path).attr("initstate") == "1\n"  # it serves once it says so
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        sock.close()
        if proc.poll() is None:
            proc.kill()


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed")
def test_not_root_is_one_clear_line(tmp_path: Path) -> None:
    nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    probe = subprocess.run(
        [*nobody, sys.executable, "-c", "import zramd"], capture_output=True, check=False, cwd="/"
    )
    if probe.returncode != 0:
        pytest.skip("user nobody cannot read this checkout's Python environment")
    result = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         sys.executable, "-m", "zramd", "start", "/tmp", "--size", "1M"],
        capture_output=True, text=True, check=False, cwd="/",
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "zramd: zramd start needs root (it mounts a FUSE filesystem and manages loop devices)"
    )


def test_the_log_check_fails_on_a_daemon_error_and_accepts_a_declared_one(tmp_path: Path) -> None:
    """The log check every mount test relies on can fail: an unexpected ERROR line fails it, a
    declared one does not, and ordinary warnings never do."""
    log = (
        "zramd[7]: WARNING: mlockall refused (EPERM)\n"
        "zramd[7]: ERROR: unexpected error in read; answering EIO\n"
        "Traceback (most recent call last):\n"
    )
    assert daemon_log_problems(log) == [
        "zramd[7]: ERROR: unexpected error in read; answering EIO",
        "Traceback (most recent call last):",
    ]
    assert daemon_log_problems(log, ("unexpected error in read", "^Traceback")) == []
    assert daemon_log_problems("zramd[7]: WARNING: mlockall refused\n") == []


def test_start_recovers_the_block_devices_a_killed_daemon_left_in_use(
    mountpoint: Path, tmp_path: Path
) -> None:
    """A killed daemon's loop devices go away with it (autoclear) unless swap or a mount held
    them; `zramd start` on the dead root turns those off, detaches them and starts afresh."""
    path = mountpoint
    fs = tmp_path / "fs"
    fs.mkdir()
    zramd("start", str(path), "--size", "64M", "--devices", "3")
    held = [Mount(path, n).block for n in range(3)]
    (path / "zram1" / "disksize").write_text("32M")
    zramd("mkfs", str(path / "zram0"), "--fs", "ext4", "--mount", str(fs))
    zramd("swapon", str(path / "zram1"))
    pid = daemon_pid(str(path))
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    time.sleep(0.5)
    left = {device.path for device in bound_under(str(path))}
    assert left == set(held[:2]), left  # zram2 was unused: autoclear took its loop device with the daemon
    result = zramd("start", str(path), "--size", "8M")
    assert "was a dead zramd mount" in result.stdout, result.stdout
    assert f"unmounted {fs}" in result.stdout and f"swapoff {held[1]}" in result.stdout, result.stdout
    assert mount_entry(str(fs)) is None
    assert held[1] not in swap_devices()
    assert {device.path for device in bound_under(str(path))} == {Mount(path).block}  # only the new one
    assert sorted(os.listdir(path)) == ["zram-control", "zram0"]
    zramd("stop", str(path))


def test_a_device_can_start_uninitialised_and_be_set_up_through_its_files(tmp_path: Path) -> None:
    with zramd_mount(tmp_path / "m", "--size", "0") as mount:
        assert mount.attr("initstate") == "0\n" and os.stat(mount.disk).st_size == 0
        block = mount.block
        with open(block, "rb") as f:
            assert f.seek(0, os.SEEK_END) == 0  # the block device follows: no capacity yet
        mount.set("comp_algorithm", "lz4")
        mount.set("mem_limit", "8M")
        mount.set("disksize", "16M")
        with open(block, "rb") as f:
            assert f.seek(0, os.SEEK_END) == 16 * MiB  # already when the write returned
        assert mount.attr("comp_algorithm") == "lzo [lz4] lz4hc zstd deflate \n"
        assert mount.mm_stat()[3] == 8 * MiB


def test_concurrent_lifecycle_requests_all_complete(tmp_path: Path) -> None:
    """Many hot_adds, disksize writes and resets at once: each waits for the kernel (a loop
    device to attach or resize) while the daemon keeps serving, and none may hang."""
    with zramd_mount(tmp_path / "m", "--size", "0") as mount:
        added: list[int] = []

        def hot_add() -> None:
            added.append(int((mount.control / "hot_add").read_text()))

        threads = [threading.Thread(target=hot_add) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads), "a hot_add hung"
        assert sorted(added) == list(range(1, 13))

        failures: list[str] = []

        def resize(device_id: int) -> None:
            device = mount.device(device_id)
            try:
                device.set("disksize", f"{device_id + 1}M")
                with open(device.block, "rb") as f:
                    size = f.seek(0, os.SEEK_END)
                if size != (device_id + 1) * MiB:
                    failures.append(f"zram{device_id}: block device of {size} bytes")
                device.set("reset", "1")
            except OSError as exc:
                failures.append(f"zram{device_id}: {exc}")

        threads = [threading.Thread(target=resize, args=(n,)) for n in range(13)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads), "a disksize or reset hung"
        assert not failures, failures
        assert all(mount.device(n).attr("initstate") == "0\n" for n in range(13))
        for n in range(1, 13):
            (mount.control / "hot_remove").write_text(str(n))
        assert sorted(os.listdir(mount.path)) == ["zram-control", "zram0"]

"""Tier 8: things going wrong -- odd requests, injected codec faults and corruption, the pool
filling up under concurrent writers, signals during heavy I/O, a stress run with every control
file hammered at once, and permissions for unprivileged users.
"""

from __future__ import annotations

import errno
import mmap
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mount_util import Mount, wait_served, zramd, zramd_mount
from zramd.host.mounts import mount_entry

MiB = 1 << 20
PAGE = 4096


def direct_write(fd: int, offset: int, data: bytes) -> int:
    buf = mmap.mmap(-1, len(data))
    buf.write(data)
    return os.pwrite(fd, buf, offset)


def direct_read(fd: int, offset: int, size: int) -> bytes:
    buf = mmap.mmap(-1, size)
    n = os.preadv(fd, [buf], offset)
    return bytes(buf[:n])


@pytest.fixture
def faulty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mount]:
    monkeypatch.setenv("ZRAMD_FAULT_INJECTION", "1")
    with zramd_mount(tmp_path / "m", "--size", "16M") as mount:
        yield mount


# ---------------------------------------------------------------------------- odd requests


def test_zero_length_enormous_and_past_the_end_requests(tmp_path: Path) -> None:
    with zramd_mount(tmp_path / "m", "--size", "16M") as mount:
        fd = os.open(mount.disk, os.O_RDWR)
        try:
            assert os.pwrite(fd, b"", 0) == 0
            assert os.pread(fd, 0, 0) == b""
            assert os.pread(fd, 64 * MiB, 0) == bytes(16 * MiB)  # more than the disk holds
            assert os.pread(fd, 10, 16 * MiB + 12345) == b""
            with pytest.raises(OSError) as past:
                os.pwrite(fd, b"x", 16 * MiB + 1)
            assert past.value.errno == errno.ENOSPC
            big = random.Random(1).randbytes(16 * MiB)
            assert os.pwrite(fd, big, 0) == 16 * MiB  # one request as large as the disk
            assert os.pread(fd, 16 * MiB, 0) == big
        finally:
            os.close(fd)
        assert mount.io_stat()[:2] == [0, 0]


def test_mmap_of_the_disk_works(tmp_path: Path) -> None:
    """mmap is supported: MAP_SHARED writes reach the device through writeback (documented)."""
    with zramd_mount(tmp_path / "m", "--size", "4M") as mount:
        with open(mount.disk, "r+b") as f:
            area = mmap.mmap(f.fileno(), 4 * MiB)
            area[PAGE : PAGE + 11] = b"mapped data"
            area.flush()
            area.close()
        with open(mount.disk, "rb") as f:
            f.seek(PAGE)
            assert f.read(11) == b"mapped data"
        assert mount.mm_stat()[0] >= PAGE


def test_attribute_files_cannot_be_mapped(tmp_path: Path) -> None:
    with zramd_mount(tmp_path / "m", "--size", "1M") as mount, open(mount.sys / "mm_stat", "rb") as f:
        with pytest.raises(OSError):
            mmap.mmap(f.fileno(), 4096, prot=mmap.PROT_READ)
        assert f.read().count(b" ") > 8  # still readable


# ---------------------------------------------------------------------------- injected faults


def test_fault_injection_is_off_by_default(tmp_path: Path) -> None:
    with zramd_mount(tmp_path / "m", "--size", "1M") as mount:
        assert not (mount.sys / "fault_inject").exists()


def test_compressor_failure_fails_the_write_only(faulty: Mount) -> None:
    text = (b"zram fault injection " * 200)[:PAGE]
    fd = os.open(faulty.disk, os.O_RDWR | os.O_DIRECT)
    try:
        direct_write(fd, 0, text)
        faulty.set("fault_inject", "compress 1")
        with pytest.raises(OSError) as failed:
            direct_write(fd, 0, text[::-1])
        assert failed.value.errno == errno.EIO
        assert direct_read(fd, 0, PAGE) == text  # the old data stays readable
        direct_write(fd, PAGE, text[::-1])  # the next write works again
        assert direct_read(fd, PAGE, PAGE) == text[::-1]
    finally:
        os.close(fd)
    assert faulty.io_stat()[:2] == [0, 1]
    assert faulty.attr("consistency").startswith("ok")


def test_decompressor_failure_and_corruption_fail_reads_only(faulty: Mount) -> None:
    pages = [(f"page {n} ".encode() * 600)[:PAGE] for n in range(4)]
    fd = os.open(faulty.disk, os.O_RDWR | os.O_DIRECT)
    try:
        direct_write(fd, 0, b"".join(pages))
        faulty.set("fault_inject", "decompress 1")
        with pytest.raises(OSError) as failed:
            direct_read(fd, 0, PAGE)
        assert failed.value.errno == errno.EIO
        assert direct_read(fd, 0, PAGE) == pages[0]  # a transient fault: fine again
        faulty.set("fault_inject", "corrupt 2")
        for _ in range(2):  # a corrupted object fails every time, and only its own page
            with pytest.raises(OSError):
                direct_read(fd, 2 * PAGE, PAGE)
        assert direct_read(fd, PAGE, PAGE) == pages[1]
        assert direct_read(fd, 3 * PAGE, PAGE) == pages[3]
        direct_write(fd, 2 * PAGE, pages[2])  # overwriting the page repairs it
        assert direct_read(fd, 0, 4 * PAGE) == b"".join(pages)
    finally:
        os.close(fd)
    assert faulty.io_stat()[:2] == [3, 0]
    assert faulty.attr("consistency").startswith("ok")


def test_bad_fault_requests_are_refused(faulty: Mount) -> None:
    for bad in ("explode 1", "compress", "corrupt 999999", "corrupt 0"):
        fd = os.open(faulty.sys / "fault_inject", os.O_WRONLY)
        try:
            with pytest.raises(OSError) as refused:
                os.write(fd, bad.encode())
            assert refused.value.errno == errno.EINVAL, bad
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------- the pool filling up


def test_mem_limit_under_concurrent_writers(tmp_path: Path) -> None:
    with zramd_mount(tmp_path / "m", "--size", "64M", "--mem-limit", "4M") as mount:
        written: dict[int, bytes] = {}
        errors: list[int] = []
        lock = threading.Lock()

        def writer(region: int) -> None:
            fd = os.open(mount.disk, os.O_RDWR | os.O_DIRECT)
            rng = random.Random(region)
            try:
                for n in range(1024):
                    offset = (region * 2048 + n) * PAGE
                    data = rng.randbytes(PAGE // 2) * 2 if n % 3 else rng.randbytes(PAGE)
                    try:
                        direct_write(fd, offset, data)
                    except OSError as exc:
                        with lock:
                            errors.append(exc.errno or 0)
                        continue
                    with lock:
                        written[offset] = data
            finally:
                os.close(fd)

        threads = [threading.Thread(target=writer, args=(r,)) for r in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert errors
        assert set(errors) == {errno.EIO}
        mm = mount.mm_stat()
        assert mm[2] <= 4 * MiB  # mem_used_total never settles above the limit
        assert mount.io_stat()[1] == len(errors)
        fd = os.open(mount.disk, os.O_RDONLY | os.O_DIRECT)
        try:
            for offset, data in written.items():
                assert direct_read(fd, offset, PAGE) == data, offset
        finally:
            os.close(fd)
        assert mount.attr("consistency").startswith("ok")


# ---------------------------------------------------------------------------- signals


@pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed")
def test_sigterm_during_heavy_io_exits_zero_and_unmounts(mountpoint: Path) -> None:
    path = mountpoint
    daemon = subprocess.Popen(
        [sys.executable, "-m", "zramd", "run", str(path), "--size", "256M"], stderr=subprocess.PIPE, text=True
    )
    fio = None
    try:
        wait_served(path, daemon)
        fio = subprocess.Popen(
            ["fio", "--name=load", f"--filename={path / 'disk'}", "--rw=randrw", "--bs=64k", "--direct=1",
             "--ioengine=libaio", "--iodepth=16", "--numjobs=2", "--size=256M", "--time_based",
             "--runtime=60", "--buffer_compress_percentage=50", "--output=/dev/null"],
        )  # fmt: skip
        time.sleep(2)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
        assert mount_entry(str(path)) is None
        fio.wait(timeout=30)  # fio sees I/O errors and ends (raises TimeoutExpired if it hangs)
    finally:
        if fio is not None and fio.poll() is None:
            fio.kill()
        if daemon.poll() is None:
            daemon.kill()


# ---------------------------------------------------------------------------- stress


@pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed")
def test_concurrent_verify_jobs_with_control_files_hammered(tmp_path: Path) -> None:
    seconds = int(os.environ.get("ZRAMD_STRESS_SECONDS", "15"))  # scripts/stress runs it longer
    with zramd_mount(tmp_path / "m", "--size", "128M") as mount:
        jobfile = tmp_path / "stress.fio"
        verify_jobs = "".join(
            f"""
[verify{n}]
offset={n * 32}M
size=32M
rw=randwrite
bs={bs}
verify=crc32c
verify_fatal=1
loops=1000
runtime={seconds}
"""
            for n, bs in enumerate(("4k", "16k", "128k"))
        )
        clash_jobs = "".join(
            f"""
[clash{n}]
offset=96M
size=32M
rw=randwrite
bsrange=4k-64k
runtime={seconds}
time_based=1
"""
            for n in range(2)
        )
        # Three verifying writers on disjoint ranges; two writers fighting over a shared range,
        # and a reader of it.
        jobfile.write_text(
            f"""[global]
filename={mount.disk}
direct=1
ioengine=libaio
iodepth=8
buffer_compress_percentage=50
refill_buffers
verify_state_save=0
{verify_jobs}{clash_jobs}
[reader]
offset=96M
size=32M
rw=randread
bs=8k
runtime={seconds}
time_based=1
"""
        )
        stop = threading.Event()
        hammer_errors: list[str] = []

        def hammer(name: str, action: str, value: str | None) -> None:
            while not stop.is_set():
                try:
                    if value is None:
                        (mount.sys / action).read_text()
                    else:
                        (mount.sys / action).write_text(value)
                except OSError as exc:
                    hammer_errors.append(f"{name}: {exc}")
                time.sleep(0.01)

        hammers = [
            threading.Thread(target=hammer, args=args)
            for args in (
                ("compact", "compact", "1"),
                ("peak reset", "mem_used_max", "0"),
                ("mm_stat", "mm_stat", None),
                ("io_stat", "io_stat", None),
                ("stat", "stat", None),
                ("classes", "classes", None),
            )
        ]
        for t in hammers:
            t.start()
        try:
            result = subprocess.run(
                ["fio", str(jobfile)], capture_output=True, text=True, timeout=seconds * 10, check=False
            )
        finally:
            stop.set()
            for t in hammers:
                t.join(timeout=30)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "verify: bad" not in result.stdout
        assert hammer_errors == []
        assert mount.attr("consistency").startswith("ok"), mount.attr("consistency")
        assert mount.io_stat()[:2] == [0, 0]


# ---------------------------------------------------------------------------- security


def as_nobody(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *command],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user can traverse (pytest's own tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="zramd-perm-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed")
def test_unprivileged_users_are_kept_out(open_dir: Path) -> None:
    with zramd_mount(open_dir / "m", "--size", "1M") as mount:
        commands = [
            ["cat", str(mount.sys / "mm_stat")],
            ["cat", str(mount.disk)],
            ["sh", "-c", f"echo 1 > {mount.sys / 'reset'}"],
            ["ls", str(mount.path)],
        ]
        for command in commands:
            result = as_nobody(*command)
            assert result.returncode != 0, command
            assert "Permission denied" in result.stderr, result.stderr
        assert mount.attr("initstate") == "1\n"


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed")
def test_allow_other_still_enforces_permissions(open_dir: Path) -> None:
    with zramd_mount(open_dir / "m", "--size", "1M", "--allow-other") as mount:
        mount.disk.write_bytes(b"secret" * 1000)
        readable = as_nobody("cat", str(mount.sys / "mm_stat"))
        assert readable.returncode == 0  # attributes are readable, like sysfs ones
        assert readable.stdout == mount.attr("mm_stat")
        commands = [
            ["cat", str(mount.disk)],
            ["sh", "-c", f"echo 1 > {mount.sys / 'reset'}"],
            ["sh", "-c", f"echo 1 > {mount.sys / 'compact'}"],
            ["sh", "-c", f"echo x > {mount.disk}"],
            ["cat", str(mount.sys / "mem_limit")],
        ]
        for command in commands:
            result = as_nobody(*command)
            assert result.returncode != 0, command
            assert "Permission denied" in result.stderr, (command, result.stderr)
        assert mount.attr("initstate") == "1\n"
        assert mount.disk.read_bytes()[:6] == b"secret"


def test_bad_config_is_one_clear_line(tmp_path: Path) -> None:
    conf = tmp_path / "zramd.conf"
    conf.write_text("[zram0]\nzram-size = ram / 0\n")
    result = zramd("up", "--config", str(conf), "--device", "zram0", check=False)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "zram-size" in result.stderr and ":2:" in result.stderr
    conf.write_text("[zram0]\nzram-size = 512\ncolour = blue\n")
    result = zramd("up", "--config", str(conf), check=False)
    assert result.returncode == 1
    assert "colour" in result.stderr and ":3:" in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["frobnicate"], 2, "invalid choice"),
        (["start"], 2, "the following arguments are required: ROOT"),
        (["start", "/tmp", "--devices", "-1"], 2, "device count must be 0 to 64"),
        (["start", "/tmp", "--streams", "0"], 2, "stream count must be 1 to 256"),
        (["start", "/tmp", "--streams", "two"], 2, "invalid stream count"),
        (["start", "/tmp", "--device", "zram0"], 2, "unrecognized arguments: --device"),
        (["start", "/tmp", "--size", "4X"], 2, "invalid size"),
        (["start", "/tmp", "--size", ""], 2, "invalid size"),
        (["start", "/tmp", "--algorithm", "lzo-rle"], 2, "unknown algorithm"),
        (["run"], 2, "the following arguments are required: ROOT"),
        (["up", "--config", "/nonexistent.conf", "--device", "zram0"], 1, "/nonexistent.conf"),
        (["up"], 2, "the following arguments are required: --config"),
        (["up", "--config", "/dev/null", "--device", "zram9"], 1, "no device 'zram9'"),
        (["swapon", "/tmp/zram0"], 1, "is not a zramd mount"),
        (["stop", "/proc"], 1, "is not a zramd mount"),
        (["status", "/proc"], 1, "is not a zramd mount"),
        (["swapon", "/proc"], 1, "is not a zramd mount"),
        (["swapoff", "/proc"], 1, "is not a zramd mount"),
        (["mkfs", "/proc"], 2, "the following arguments are required: --mount"),
        (["mkfs", "/proc", "--mount", "/mnt"], 1, "is not a zramd mount"),
        (["swapon", "/proc", "--priority", "high"], 2, "invalid int value"),
        (["estimate"], 2, "needs an IMAGE"),
        (["estimate", "/nonexistent"], 1, "cannot read /nonexistent"),
        (["estimate", "--sizes", "/nonexistent"], 1, "cannot read /nonexistent"),
    ],
)
def test_every_bad_command_line_is_one_clear_line(args: list[str], code: int, message: str) -> None:
    result = zramd(*args, check=False)
    assert result.returncode == code, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("zramd: ")
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr

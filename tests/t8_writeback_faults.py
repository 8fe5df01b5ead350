"""Tier 8: writeback going wrong on a real mount -- a full backing store, backing writes and reads
that fail, a remote backing tier, and a daemon restarted with a backing file still around.

Each test checks the errno the kernel's zram gives and then every page of the disk, byte for
byte: a fault may fail the request that met it, never another page. The remote tier is an NBD
server (nbdkit's memory plugin, behind its error filter) exposed as a regular file by nbdfuse:
there is no nbd kernel module here, and zramd takes a regular file as backing_dev. The error
filter's trigger files switch write or read errors on and off at a chosen moment. Tests that need
nbdkit or nbdfuse (Debian's nbdkit and libnbd-bin) skip, saying so, where they are missing.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.mount_util import Mount, block_device, exited, zramd, zramd_mount

MiB = 1 << 20
PAGE = 4096
DISKSIZE = 4 * MiB
NR_PAGES = DISKSIZE // PAGE


# ---------------------------------------------------------------------------- pages and checks


def make_pages(count: int, seed: int) -> list[bytes]:
    """`count` distinct pages, none of them same-filled: every third random (a huge page), the
    others compressible text with a random tail (objects of varied sizes)."""
    rng = random.Random(seed)
    pages = []
    for i in range(count):
        if i % 3 == 0:
            pages.append(rng.randbytes(PAGE))
        else:
            head = f"seed {seed} page {i} ".encode() * rng.randint(8, 64)
            page = head + rng.randbytes(rng.randint(16, 1024))
            pages.append((page * (PAGE // len(page) + 1))[:PAGE])
    return pages


def direct_write(fd: int, index: int, data: bytes) -> None:
    buf = mmap.mmap(-1, len(data))  # page-aligned memory for O_DIRECT
    buf.write(data)
    assert os.pwritev(fd, [buf], index * PAGE) == len(data)


def direct_read(fd: int, index: int, count: int = 1) -> bytes:
    buf = mmap.mmap(-1, count * PAGE)
    n = os.preadv(fd, [buf], index * PAGE)
    return bytes(buf[:n])


def page_errno(fd: int, index: int) -> int | None:
    """The errno of a direct read of page `index`, or None if it succeeds."""
    try:
        direct_read(fd, index)
    except OSError as exc:
        return exc.errno
    return None


def check_pages(fd: int, expected: dict[int, bytes], failing: frozenset[int] = frozenset()) -> None:
    """Every page of the disk reads back as `expected` says (pages not in it as zeros), page by
    page, except that the pages in `failing` must fail with EIO."""
    wrong = []
    for index in range(NR_PAGES):
        if index in failing:
            assert page_errno(fd, index) == errno.EIO, f"page {index} did not fail with EIO"
            continue
        if direct_read(fd, index) != expected.get(index, bytes(PAGE)):
            wrong.append(index)
    assert not wrong, f"{len(wrong)} pages read back wrong: {wrong[:20]}"


def bd_stat(mount: Mount) -> tuple[int, int, int]:
    """bd_count, bd_reads, bd_writes."""
    count, reads, writes = mount.sysdir.columns("bd_stat")
    return count, reads, writes


def written_back(mount: Mount) -> set[int]:
    """The pages block_state flags as written back (its 'w')."""
    pages = set()
    for line in mount.attr("block_state").splitlines():
        index, _time, flags = line.split()
        if flags[1] == "w":
            pages.add(int(index))
    return pages


def consistent(mount: Mount) -> None:
    report = mount.attr("consistency")
    assert report.startswith("ok:"), report


def write_attr_errno(mount: Mount, name: str, value: str) -> int | None:
    """The errno writing `value` to attribute `name` gives, or None if it succeeds."""
    try:
        mount.set(name, value)
    except OSError as exc:
        return exc.errno
    return None


def set_up_backed(mount: Mount, backing: Path, disksize: int = DISKSIZE) -> None:
    """Reset the device, give it `backing` as backing_dev, and initialise it."""
    mount.set("reset", "1")
    mount.set("backing_dev", str(backing))
    assert mount.attr("backing_dev") == f"{backing}\n"
    mount.set("disksize", str(disksize))


def fill(fd: int, pages: dict[int, bytes]) -> None:
    for index, data in pages.items():
        direct_write(fd, index, data)


@contextlib.contextmanager
def open_direct(path: str) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR | os.O_DIRECT)
    try:
        yield fd
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- a remote tier over NBD


def nbd_unavailable() -> str | None:
    missing = [tool for tool in ("nbdkit", "nbdfuse") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (Debian packages nbdkit, libnbd-bin)"
    return None


@dataclass
class NbdBacking:
    """An nbdkit memory disk behind the error filter, as the regular file `path` (nbdfuse)."""

    path: Path
    write_errors: Path  # exists: every backing write (NBD pwrite) fails with EIO
    read_errors: Path  # exists: every backing read (NBD pread) fails with EIO

    def fail_writes(self, on: bool) -> None:
        _switch(self.write_errors, on)

    def fail_reads(self, on: bool) -> None:
        _switch(self.read_errors, on)


def _switch(trigger: Path, on: bool) -> None:
    if on:
        trigger.touch()
    else:
        trigger.unlink(missing_ok=True)


def _log_tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-2000:]
    except FileNotFoundError:
        return ""


def _wait_until(ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 10
    while not ready():
        assert proc.poll() is None, f"{what} exited ({proc.returncode}): {_log_tail(log)}"
        assert time.monotonic() < deadline, f"{what} was not ready within 10 s: {_log_tail(log)}"
        time.sleep(0.02)


def _reap(proc: subprocess.Popen[bytes], terminate: bool) -> None:
    """Wait for `proc` to exit (after SIGTERM if `terminate`), SIGKILL it if it will not."""
    if terminate and proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@contextlib.contextmanager
def nbd_backing(where: Path, size: str = "8M") -> Iterator[NbdBacking]:
    """nbdkit serving a `size` memory disk on a Unix socket, with write and read errors armed by
    trigger files, and nbdfuse presenting it as the regular file `where`/fuse/nbd. Afterwards
    nbdfuse is unmounted and nbdkit stopped, whatever happened (the processes' messages, such
    as each injected error, go to `where`/*.log)."""
    reason = nbd_unavailable()
    if reason:
        pytest.skip(reason)
    fuse_dir = where / "fuse"
    fuse_dir.mkdir(parents=True)
    backing = NbdBacking(fuse_dir / "nbd", where / "fail-writes", where / "fail-reads")
    server_log, client_log = where / "nbdkit.log", where / "nbdfuse.log"
    with contextlib.ExitStack() as cleanup:
        sock = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="zramd-nbd-"))) / "sock"  # short
        with open(server_log, "wb") as log:
            server = subprocess.Popen(
                ["nbdkit", "--foreground", "--exit-with-parent", "--unix", str(sock), "--filter=error",
                 "memory", size,
                 "error-pwrite=EIO", "error-pwrite-rate=100%", f"error-pwrite-file={backing.write_errors}",
                 "error-pread=EIO", "error-pread-rate=100%", f"error-pread-file={backing.read_errors}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip
        cleanup.callback(_reap, server, terminate=True)
        _wait_until(sock.exists, server, "nbdkit", server_log)
        with open(client_log, "wb") as log:
            client = subprocess.Popen(
                ["nbdfuse", str(fuse_dir), "--unix", str(sock)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        cleanup.callback(_unmount_nbdfuse, fuse_dir, client)
        _wait_until(backing.path.exists, client, "nbdfuse", client_log)
        yield backing


def _unmount_nbdfuse(fuse_dir: Path, client: subprocess.Popen[bytes]) -> None:
    if subprocess.run(["fusermount3", "-u", str(fuse_dir)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(fuse_dir)], capture_output=True)
    _reap(client, terminate=False)  # unmounting ends nbdfuse (its man page: do not kill it)


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted on `where`, unmounted afterwards."""
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def sparse_file(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


# ---------------------------------------------------------------------------- a full backing store


def test_writeback_past_a_full_backing_file_is_enospc(tmp_path: Path) -> None:
    """A backing file of 8 blocks takes 8 of 24 idle pages, then ENOSPC, and stays full; an
    overwrite frees a block, which the next writeback takes; every page reads back throughout."""
    backing = sparse_file(tmp_path / "backing.img", 8 * PAGE)
    pages = {3 * i: page for i, page in enumerate(make_pages(24, seed=1))}
    with zramd_mount(tmp_path / "m", "--size", "16M") as mount:
        set_up_backed(mount, backing)
        with block_device(mount) as block, open_direct(block) as fd:
            fill(fd, pages)
            mount.set("idle", "all")
            assert write_attr_errno(mount, "writeback", "idle") == errno.ENOSPC
            assert bd_stat(mount) == (8, 0, 8)
            out = written_back(mount)
            assert len(out) == 8 and out <= set(pages)
            consistent(mount)
            check_pages(fd, pages)
            assert bd_stat(mount) == (8, 8, 8)  # each written-back page read once, from the file

            mount.set("idle", "all")
            assert write_attr_errno(mount, "writeback", "idle") == errno.ENOSPC
            assert bd_stat(mount) == (8, 8, 8)

            victim = min(out)
            pages[victim] = make_pages(1, seed=2)[0]
            direct_write(fd, victim, pages[victim])
            assert bd_stat(mount)[0] == 7
            mount.set("idle", "all")
            assert write_attr_errno(mount, "writeback", "idle") == errno.ENOSPC
            assert bd_stat(mount) == (8, 8, 9)
            assert len(written_back(mount)) == 8
            consistent(mount)
            check_pages(fd, pages)


def test_writeback_limit_used_up_is_eio(tmp_path: Path) -> None:
    """With writeback_limit_enable, a writeback stops with EIO once the limit is used up; the
    pages written before stay written, the others in RAM."""
    backing = sparse_file(tmp_path / "backing.img", 64 * PAGE)
    pages = dict(enumerate(make_pages(12, seed=8)))
    with zramd_mount(tmp_path / "m", "--size", "0") as mount:
        mount.set("backing_dev", str(backing))
        mount.set("disksize", str(DISKSIZE))
        mount.set("writeback_limit_enable", "1")
        mount.set("writeback_limit", "5")
        with block_device(mount) as block, open_direct(block) as fd:
            fill(fd, pages)
            mount.set("idle", "all")
            assert write_attr_errno(mount, "writeback", "idle") == errno.EIO
            assert bd_stat(mount) == (5, 0, 5)
            assert mount.attr("writeback_limit") == "0\n"
            assert write_attr_errno(mount, "writeback", "idle") == errno.EIO  # nothing left to spend
            assert bd_stat(mount) == (5, 0, 5)
            consistent(mount)
            check_pages(fd, pages)


def _writeback_onto_a_full_tmpfs(tmp_path: Path) -> tuple[int | None, tuple[int, int, int], int]:
    """Write back 24 idle pages to a sparse backing file of 32 blocks on a tmpfs that holds 16
    pages; check that every page still reads back and the counts agree with block_state.
    Returns the writeback's errno, bd_stat right after it, and the pages written back."""
    pages = dict(enumerate(make_pages(24, seed=5)))
    with small_tmpfs(tmp_path / "tmpfs", "64k") as fs:
        backing = sparse_file(fs / "backing.img", 32 * PAGE)
        with zramd_mount(tmp_path / "m", "--size", "0") as mount:
            mount.set("backing_dev", str(backing))
            mount.set("disksize", str(DISKSIZE))
            with block_device(mount) as block, open_direct(block) as fd:
                fill(fd, pages)
                orig = mount.mm_stat()[0]
                mount.set("idle", "all")
                err = write_attr_errno(mount, "writeback", "idle")
                stat = bd_stat(mount)
                out = len(written_back(mount))
                assert stat[0] == stat[2] == out  # bd_count, bd_writes, block_state agree
                assert mount.mm_stat()[0] == orig
                check_pages(fd, pages)
                consistent(mount)
    return err, stat, out


def test_writeback_to_a_full_filesystem_fails_and_keeps_every_page(tmp_path: Path) -> None:
    """The backing file's filesystem fills up during a writeback: the writeback fails, and
    every page, written back or not, still reads back."""
    err, _stat, out = _writeback_onto_a_full_tmpfs(tmp_path)
    assert err is not None
    assert out <= 16


def test_writeback_to_a_full_filesystem_is_enospc_after_the_pages_that_fit(tmp_path: Path) -> None:
    err, stat, out = _writeback_onto_a_full_tmpfs(tmp_path)
    assert (err, stat[0], stat[2], out) == (errno.ENOSPC, 16, 16, 16)


# ---------------------------------------------------------------------------- backing I/O errors over NBD


def test_nbdfuse_file_takes_direct_io(tmp_path: Path) -> None:
    """zramd opens its backing store with O_DIRECT: an nbdfuse file allows that (FUSE passes
    O_DIRECT to nbdfuse, which needs no option for it), and aligned I/O goes to the server."""
    with nbd_backing(tmp_path / "nbd", size="1M") as nbd, open_direct(str(nbd.path)) as fd:
        page = make_pages(1, seed=10)[0]
        direct_write(fd, 3, page)
        assert direct_read(fd, 3) == page
        nbd.fail_reads(True)  # the read reaches the server: the page cache is not in the way
        assert page_errno(fd, 3) == errno.EIO
        nbd.fail_reads(False)
        nbd.fail_writes(True)
        with pytest.raises(OSError) as failed:
            direct_write(fd, 4, page)
        assert failed.value.errno == errno.EIO
        nbd.fail_writes(False)
        assert direct_read(fd, 3) == page


def test_backing_write_and_read_errors_over_nbd(tmp_path: Path) -> None:
    """Backing writes that fail: EIO, the pages stay in RAM, bd_writes counts only what was
    written. Backing reads that fail: EIO for those pages alone, each counted in failed_reads.
    With the errors switched off everything reads back and writeback goes on."""
    pages = {5 * i: page for i, page in enumerate(make_pages(48, seed=3))}
    first = sorted(pages)[:16]
    with nbd_backing(tmp_path / "nbd") as nbd, zramd_mount(tmp_path / "m", "--size", "0") as mount:
        mount.set("backing_dev", str(nbd.path))
        assert mount.attr("backing_dev") == f"{nbd.path}\n"
        mount.set("disksize", str(DISKSIZE))
        with block_device(mount) as block, open_direct(block) as fd:
            fill(fd, pages)
            orig = mount.mm_stat()[0]
            mount.set("writeback", f"page_indexes={first[0]}-{first[-1]}")  # no fault yet
            assert bd_stat(mount) == (16, 0, 16)
            assert written_back(mount) == set(first)

            nbd.fail_writes(True)
            mount.set("idle", "all")
            assert write_attr_errno(mount, "writeback", "idle") == errno.EIO
            assert bd_stat(mount) == (16, 0, 16)  # the 32 pages that failed stay in RAM
            assert written_back(mount) == set(first)
            assert mount.mm_stat()[0] == orig
            assert mount.io_stat()[:2] == [0, 0]
            check_pages(fd, pages)
            assert bd_stat(mount) == (16, 16, 16)
            consistent(mount)
            nbd.fail_writes(False)

            nbd.fail_reads(True)
            check_pages(fd, pages, failing=frozenset(first))
            assert mount.io_stat()[:2] == [16, 0]
            assert bd_stat(mount) == (16, 32, 16)  # a read is counted when it is tried
            assert written_back(mount) == set(first)  # a failed read changes nothing
            consistent(mount)
            nbd.fail_reads(False)

            check_pages(fd, pages)
            assert mount.io_stat()[:2] == [16, 0]
            mount.set("idle", "all")
            mount.set("writeback", "idle")
            assert bd_stat(mount) == (48, 48, 48)
            assert written_back(mount) == set(pages)
            consistent(mount)
            check_pages(fd, pages)


def test_pages_whose_backing_write_failed_are_written_back_later(tmp_path: Path) -> None:
    pages = dict(enumerate(make_pages(8, seed=9)))
    with nbd_backing(tmp_path / "nbd") as nbd, zramd_mount(tmp_path / "m", "--size", "0") as mount:
        mount.set("backing_dev", str(nbd.path))
        mount.set("disksize", str(DISKSIZE))
        with block_device(mount) as block, open_direct(block) as fd:
            fill(fd, pages)
            mount.set("idle", "all")
            nbd.fail_writes(True)
            assert write_attr_errno(mount, "writeback", "idle") == errno.EIO
            nbd.fail_writes(False)
            try:
                consistent(mount)
                mount.set("writeback", "idle")  # the pages are still idle
                assert bd_stat(mount) == (8, 0, 8)
            finally:
                check_pages(fd, pages)


def test_remote_tier_over_nbd(tmp_path: Path) -> None:
    """The remote tier: idle pages move to the NBD server, free their memory, read back
    intact, and an overwrite brings a page back into RAM and frees its remote block."""
    pages = dict(enumerate(make_pages(256, seed=4)))
    pages[300] = b"\xab" * PAGE  # same-filled: never written back
    with nbd_backing(tmp_path / "nbd", size="2M") as nbd, zramd_mount(tmp_path / "m", "--size", "0") as mount:
        mount.set("backing_dev", str(nbd.path))
        mount.set("disksize", str(DISKSIZE))
        with block_device(mount) as block, open_direct(block) as fd:
            fill(fd, pages)
            orig, _compr, used, *_ = mount.mm_stat()
            mount.set("idle", "all")
            mount.set("writeback", "idle")
            assert bd_stat(mount) == (256, 0, 256)
            assert written_back(mount) == set(range(256))
            after = mount.mm_stat()
            assert after[0] == orig  # still stored, in the other tier
            assert after[1] == 0  # nothing compressed is left in RAM
            assert after[2] < used
            assert after[5] == 1  # the same-filled page

            remote = nbd.path.read_bytes()
            blocks = {remote[k : k + PAGE] for k in range(0, len(remote), PAGE)}
            assert all(pages[i] in blocks for i in range(256)), "a page is not on the NBD server"

            check_pages(fd, pages)
            assert bd_stat(mount) == (256, 256, 256)
            for i, page in enumerate(make_pages(64, seed=6)):
                pages[i] = page
                direct_write(fd, i, page)
            assert bd_stat(mount) == (192, 256, 256)
            assert written_back(mount) == set(range(64, 256))
            consistent(mount)
            check_pages(fd, pages)


# ---------------------------------------------------------------------------- a restart


def pages_in_file(path: Path, pages: dict[int, bytes]) -> int:
    """How many of `pages` the file at `path` holds, at any block."""
    data = path.read_bytes()
    blocks = {data[k : k + PAGE] for k in range(0, len(data), PAGE)}
    return sum(page in blocks for page in pages.values())


def written_back_and_stopped(path: Path, backing: Path, pages: dict[int, bytes], kill: bool) -> None:
    """Start a daemon on `path`, write `pages` back to `backing`, and stop it (`kill`: SIGKILL)."""
    zramd("start", str(path), "--size", "16M")
    mount = Mount(path)
    set_up_backed(mount, backing)
    with block_device(mount) as block, open_direct(block) as fd:
        fill(fd, pages)
        mount.set("idle", "all")
        mount.set("writeback", "idle")
        assert bd_stat(mount) == (len(pages), 0, len(pages))
        check_pages(fd, pages)
    if not kill:
        zramd("stop", str(path))
        return
    pid = mount.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert exited(pid, timeout=10), f"the daemon {pid} outlived SIGKILL"


def test_a_restarted_daemon_never_reads_an_old_backing_file(mountpoint: Path) -> None:
    """A backing file outlives its daemon. A clean stop resets the device, which punches its
    pages out of the file; a killed daemon leaves them there. Either way the next daemon's
    device starts empty (zeros, bd_stat 0, backing_dev none) and, given the same file again,
    still reads zeros: no old page comes back."""
    path = mountpoint
    backing = sparse_file(path.parent / "backing.img", 64 * PAGE)
    pages = {2 * i: page for i, page in enumerate(make_pages(32, seed=7))}
    written_back_and_stopped(path, backing, pages, kill=False)
    assert pages_in_file(backing, pages) == 0
    written_back_and_stopped(path, backing, pages, kill=True)
    assert pages_in_file(backing, pages) == 32

    zramd("start", str(path), "--size", "4M")  # cleans up the dead mount first
    mount = Mount(path)
    assert mount.attr("initstate") == "1\n"
    assert mount.attr("backing_dev") == "none\n"
    assert bd_stat(mount) == (0, 0, 0)
    assert write_attr_errno(mount, "backing_dev", str(backing)) == errno.EBUSY  # initialised
    with block_device(mount) as block, open_direct(block) as fd:
        check_pages(fd, {})
    set_up_backed(mount, backing)  # reset, then the same file again
    with block_device(mount) as block, open_direct(block) as fd:
        check_pages(fd, {})
        assert bd_stat(mount) == (0, 0, 0)
        assert pages_in_file(backing, pages) == 32  # the zeros are not the file's doing
        fill(fd, {1: pages[0]})  # and it serves as a backing store again
        mount.set("idle", "all")
        mount.set("writeback", "idle")
        assert bd_stat(mount) == (1, 0, 1)
        check_pages(fd, {1: pages[0]})
    zramd("stop", str(path))

    zramd("start", str(path), "--size", "0")  # uninitialised: backing_dev can be set at once
    mount = Mount(path)
    assert mount.attr("initstate") == "0\n"
    assert mount.attr("backing_dev") == "none\n"
    mount.set("backing_dev", str(backing))
    mount.set("disksize", str(DISKSIZE))
    assert bd_stat(mount) == (0, 0, 0)
    with block_device(mount) as block, open_direct(block) as fd:
        check_pages(fd, {})
    zramd("stop", str(path))

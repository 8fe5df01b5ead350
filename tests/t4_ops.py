"""Tier 4: the FUSE operations class driven directly, without a mount, root or /dev/fuse.

`ZramOperations` is called the way pyfuse3 calls it (one coroutine per request, under trio), with a
plain `ZramDevice` underneath. This pins down what the mount tier can only sample: the errno of
every refusal (open modes, setattr, fallocate modes, bad handles, namespace changes), that device
errors reach the kernel as their errno, that nothing but `pyfuse3.FUSEError` ever leaves a handler
(anything else would end pyfuse3's main loop), and how attribute files are read (seq_file's rules).
readdir needs a token only libfuse can make, so it stays with the mount tier.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import pyfuse3
import pytest
import trio
import trio.testing

from zramd.core import attrs
from zramd.core.engine import ZramDevice
from zramd.core.units import PAGE_SIZE
from zramd.serve import ops as ops_module
from zramd.serve.ops import (
    FALLOC_FL_KEEP_SIZE,
    FALLOC_FL_PUNCH_HOLE,
    FALLOC_FL_ZERO_RANGE,
    MAX_LIFECYCLE_WAITERS,
    ROOT_INODE,
    ZramOperations,
    device_inode,
)

MiB = 1 << 20
DISK_INODE = device_inode(0) + 1  # zram0/disk
CTX = cast(pyfuse3.RequestContext, None)  # no handler of zramd reads the request context
T = TypeVar("T")


def run(coroutine: Callable[..., Awaitable[T]], *args: Any) -> T:
    """One request: the handler's coroutine run to completion, as pyfuse3's main loop does."""

    async def request() -> T:
        return await coroutine(*args)

    return trio.run(request)


def refused(expected_errno: int, coroutine: Callable[..., Awaitable[Any]], *args: Any) -> None:
    with pytest.raises(pyfuse3.FUSEError) as caught:
        run(coroutine, *args)
    assert caught.value.errno == expected_errno, (
        f"{coroutine.__name__}: {errno.errorcode.get(caught.value.errno)}, "
        f"expected {errno.errorcode[expected_errno]}"
    )


@dataclass
class Fields:
    """Stands in for pyfuse3.SetattrFields, whose flags cannot be set from Python."""

    update_size: bool = False
    update_mode: bool = False
    update_uid: bool = False
    update_gid: bool = False
    update_atime: bool = False
    update_mtime: bool = False
    update_ctime: bool = False


def setattr_request(ops: ZramOperations, inode: int, fields: Fields, size: int = 0) -> Any:
    attr = pyfuse3.EntryAttributes()
    attr.st_size = size
    return ops.setattr(inode, attr, cast(pyfuse3.SetattrFields, fields), None, CTX)


@pytest.fixture
def invalidations(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bool]]:
    """Calls of pyfuse3.invalidate_inode (there is no session to send them to)."""
    calls: list[tuple[int, bool]] = []
    monkeypatch.setattr(
        pyfuse3,
        "invalidate_inode",
        lambda inode, attr_only=False: calls.append((inode, attr_only)),
    )
    return calls


@pytest.fixture
def ops(invalidations: list[tuple[int, bool]]) -> ZramOperations:
    device = ZramDevice()
    device.set_disksize(1 * MiB)
    operations = ZramOperations(
        attributes=(*attrs.ATTRIBUTES, attrs.CLASSES),
        control_files={"daemon": lambda: "compiled: no\n"},
    )
    assert operations.add_device(device) == 0
    return operations


def dev(ops: ZramOperations) -> ZramDevice:
    return ops.devices[0]


def inode_of(ops: ZramOperations, path: str) -> int:
    inode = ROOT_INODE
    for name in path.split("/"):
        inode = run(ops.lookup, inode, os.fsencode(name), CTX).st_ino
    return inode


def open_file(ops: ZramOperations, path: str, flags: int) -> int:
    return run(ops.open, inode_of(ops, path), flags, CTX).fh


@pytest.fixture
def disk(ops: ZramOperations) -> Iterator[int]:
    fh = open_file(ops, "zram0/disk", os.O_RDWR)
    yield fh
    run(ops.release, fh)


# ---------------------------------------------------------------------- the tree


def test_lookup_and_getattr_describe_the_tree(ops: ZramOperations) -> None:
    device_dir = run(ops.lookup, ROOT_INODE, b"zram0", CTX)
    assert stat.S_ISDIR(device_dir.st_mode) and device_dir.st_ino == device_inode(0)
    disk = run(ops.lookup, device_dir.st_ino, b"disk", CTX)
    assert stat.S_IMODE(disk.st_mode) == 0o600 and stat.S_ISREG(disk.st_mode)
    assert disk.st_size == 1 * MiB
    control = run(ops.lookup, ROOT_INODE, b"zram-control", CTX)
    assert run(ops.getattr, ROOT_INODE, CTX).st_nlink == 4  # ".", "..", zram-control and zram0
    modes = {name: stat.S_IMODE(run(ops.lookup, device_dir.st_ino, name.encode(), CTX).st_mode) for name in (
        "disksize", "reset", "mm_stat", "classes", "block_device",
    )}  # fmt: skip
    assert modes == {
        "disksize": 0o644,
        "reset": 0o200,
        "mm_stat": 0o444,
        "classes": 0o444,
        "block_device": 0o444,
    }
    control_modes = {
        name: stat.S_IMODE(run(ops.lookup, control.st_ino, name.encode(), CTX).st_mode)
        for name in ("hot_add", "hot_remove", "daemon")
    }
    assert control_modes == {"hot_add": 0o444, "hot_remove": 0o200, "daemon": 0o444}
    assert run(ops.lookup, device_dir.st_ino, b"..", CTX).st_ino == ROOT_INODE
    refused(errno.ENOENT, ops.lookup, ROOT_INODE, b"missing", CTX)
    refused(errno.ENOENT, ops.lookup, ROOT_INODE, b"zram1", CTX)
    refused(errno.ENOENT, ops.lookup, control.st_ino, b"disk", CTX)
    refused(errno.ENOENT, ops.getattr, 9999, CTX)


def test_statfs_reports_the_disk_in_pages(ops: ZramOperations) -> None:
    data = run(ops.statfs, CTX)
    assert (data.f_bsize, data.f_blocks, data.f_bfree) == (PAGE_SIZE, MiB // PAGE_SIZE, 0)


def test_the_disks_block_count_is_the_pools_memory(ops: ZramOperations, disk: int) -> None:
    assert run(ops.getattr, DISK_INODE, CTX).st_blocks == 0
    run(ops.write, disk, 0, bytes(range(256)) * 16 * 8)  # 8 pages, compressible
    used = dev(ops).statistics().pool_pages
    assert used > 0
    assert run(ops.getattr, DISK_INODE, CTX).st_blocks == used * (PAGE_SIZE // 512)


# ---------------------------------------------------------------------- opening


@pytest.mark.parametrize(
    ("path", "flags", "expected"),
    [
        ("zram0/mm_stat", os.O_WRONLY, errno.EACCES),  # read-only attribute
        ("zram0/mm_stat", os.O_RDWR, errno.EACCES),
        ("zram0/reset", os.O_RDONLY, errno.EACCES),  # write-only attribute: even root cannot read
        ("zram0/reset", os.O_RDWR, errno.EACCES),
        ("zram-control/daemon", os.O_WRONLY, errno.EACCES),  # zramd's own read-only files
        ("zram0", os.O_RDONLY, errno.EISDIR),
        ("zram-control/hot_add", os.O_WRONLY, errno.EACCES),
        ("zram-control/hot_remove", os.O_RDONLY, errno.EACCES),
    ],
)
def test_open_refuses_what_kernfs_refuses(ops: ZramOperations, path: str, flags: int, expected: int) -> None:
    refused(expected, ops.open, inode_of(ops, path), flags, CTX)
    assert not ops.rendered


@pytest.mark.parametrize(
    ("path", "flags"),
    [
        ("zram0/disksize", os.O_RDWR),
        ("zram0/disksize", os.O_RDONLY),
        ("zram0/reset", os.O_WRONLY),
        ("zram0/disk", os.O_RDONLY),
    ],
)
def test_open_grants_what_the_mode_allows(ops: ZramOperations, path: str, flags: int) -> None:
    info = run(ops.open, inode_of(ops, path), flags, CTX)
    assert info.direct_io == (path != "zram0/disk")  # attributes bypass the page cache, like sysfs
    run(ops.release, info.fh)
    assert not ops.rendered


def test_opendir_refuses_a_file(ops: ZramOperations) -> None:
    refused(errno.ENOTDIR, ops.opendir, inode_of(ops, "zram0/disk"), CTX)
    assert run(ops.opendir, inode_of(ops, "zram0"), CTX) == inode_of(ops, "zram0")


def test_handles_are_stateless(ops: ZramOperations) -> None:
    """A disk handle is its inode, so a successor daemon could serve handles it never opened;
    an attribute handle is its inode plus a render key, and works without its open too."""
    fh = open_file(ops, "zram0/disk", os.O_RDWR)
    assert fh == DISK_INODE
    run(ops.write, DISK_INODE, 0, b"\3" * PAGE_SIZE)  # never opened as such: still served
    assert bytes(run(ops.read, DISK_INODE, 0, 4)) == b"\3" * 4
    disksize = inode_of(ops, "zram0/disksize")
    assert bytes(run(ops.read, (77 << 32) | disksize, 0, 100)) == f"{MiB}\n".encode()
    run(ops.release, fh)
    assert bytes(run(ops.read, DISK_INODE, 0, 4)) == b"\3" * 4  # nothing was counted


def test_reset_without_a_block_device_frees_everything(ops: ZramOperations, disk: int) -> None:
    run(ops.write, disk, 0, bytes(range(256)) * 16)
    reset = open_file(ops, "zram0/reset", os.O_WRONLY)
    refused(errno.EINVAL, ops.write, reset, 0, b"0\n")  # checked before anything changes
    refused(errno.EINVAL, ops.write, reset, 0, b"yes\n")
    assert dev(ops).initialized
    assert run(ops.write, reset, 0, b"1\n") == 2
    assert not dev(ops).initialized and dev(ops).statistics().pages_stored == 0


@pytest.mark.parametrize("handler", ["read", "write", "flush", "fsync", "fallocate"])
def test_an_unknown_handle_is_ebadf(ops: ZramOperations, handler: str) -> None:
    args: dict[str, tuple[Any, ...]] = {
        "read": (0, 4096),
        "write": (0, b"x"),
        "flush": (),
        "fsync": (False,),
        "fallocate": (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096),
    }
    refused(errno.EBADF, getattr(ops, handler), 999, *args[handler])  # no such inode


def test_releasing_twice_is_harmless(ops: ZramOperations) -> None:
    fh = open_file(ops, "zram0/mm_stat", os.O_RDONLY)
    run(ops.read, fh, 0, 10)
    run(ops.release, fh)
    run(ops.release, fh)
    assert not ops.rendered


# ---------------------------------------------------------------------- setattr


def test_setattr_allows_only_truncating_the_disk_to_its_own_size(ops: ZramOperations) -> None:
    disk = DISK_INODE
    attr = run(setattr_request, ops, disk, Fields(update_size=True), 1 * MiB)
    assert attr.st_size == 1 * MiB
    for size in (0, 2 * MiB, MiB - PAGE_SIZE):
        refused(errno.EPERM, setattr_request, ops, disk, Fields(update_size=True), size)
    refused(errno.EPERM, setattr_request, ops, inode_of(ops, "zram0/disksize"), Fields(update_size=True), 0)
    for fields in (Fields(update_mode=True), Fields(update_uid=True), Fields(update_gid=True)):
        refused(errno.EPERM, setattr_request, ops, disk, fields)
        refused(errno.EPERM, setattr_request, ops, inode_of(ops, "zram0/mm_stat"), fields)
    touched = run(setattr_request, ops, disk, Fields(update_atime=True, update_mtime=True))
    assert touched.st_size == 1 * MiB  # time updates are accepted (touch works) and change nothing


# ---------------------------------------------------------------------- the disk


def test_disk_io_reaches_the_device(ops: ZramOperations, disk: int) -> None:
    page = b"zramd ops tier\n" * 273 + b"x"
    assert len(page) == PAGE_SIZE
    assert run(ops.write, disk, 3 * PAGE_SIZE, page * 2) == 2 * PAGE_SIZE
    assert bytes(run(ops.read, disk, 3 * PAGE_SIZE, 2 * PAGE_SIZE)) == page * 2
    assert bytes(run(ops.read, disk, 3 * PAGE_SIZE + 5, 10)) == page[5:15]
    assert bytes(run(ops.read, disk, MiB - 1, 4096)) == b"\0"  # a read past the end is cut short
    run(ops.fsync, disk, False)
    assert dev(ops).statistics().block.flush.ios == 1


def test_device_errors_reach_the_kernel_as_their_errno(ops: ZramOperations, disk: int) -> None:
    refused(errno.ENOSPC, ops.write, disk, MiB, b"past the end")
    disksize = open_file(ops, "zram0/disksize", os.O_WRONLY)
    refused(errno.EBUSY, ops.write, disksize, 0, b"2M\n")  # initialised
    comp = open_file(ops, "zram0/comp_algorithm", os.O_RDWR)
    refused(errno.EBUSY, ops.write, comp, 0, b"lz4\n")
    mem_limit = open_file(ops, "zram0/mem_limit", os.O_WRONLY)
    refused(errno.EINVAL, ops.write, mem_limit, 0, b"lots\n")
    assert dev(ops).disksize == MiB and dev(ops).comp_algorithm == "lzo"


def test_a_failed_page_is_eio_and_keeps_the_old_data(ops: ZramOperations, disk: int) -> None:
    old = bytes(range(256)) * 16
    run(ops.write, disk, 0, old)

    def fail(operation: str, index: int) -> None:
        raise OSError(errno.EIO, f"injected {operation} failure on page {index}")

    dev(ops).fault_hook = fail
    refused(errno.EIO, ops.write, disk, 0, bytes(reversed(old)))
    dev(ops).fault_hook = None
    assert bytes(run(ops.read, disk, 0, PAGE_SIZE)) == old
    assert dev(ops).statistics().io.failed_writes == 1


@pytest.mark.parametrize(
    "mode",
    [
        FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,  # discard (blkdiscard, fstrim, swap discard)
        FALLOC_FL_ZERO_RANGE,  # fallocate -z on the file
        FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,  # write-zeroes from a loop device
    ],
)
def test_fallocate_discards_and_zeroes_free_pages(ops: ZramOperations, disk: int, mode: int) -> None:
    run(ops.write, disk, 0, bytes(range(256)) * 16 * 5)  # 5 pages
    assert dev(ops).statistics().pages_stored == 5
    run(ops.fallocate, disk, mode, 0, 2 * PAGE_SIZE)
    assert dev(ops).statistics().pages_stored == 3
    assert bytes(run(ops.read, disk, 0, 2 * PAGE_SIZE)) == bytes(2 * PAGE_SIZE)


@pytest.mark.parametrize(
    "mode",
    [
        0,  # allocate: the disk cannot grow, and zram has no preallocation
        FALLOC_FL_KEEP_SIZE,
        FALLOC_FL_PUNCH_HOLE,  # PUNCH_HOLE without KEEP_SIZE is invalid for fallocate(2) itself
        0x08,  # FALLOC_FL_COLLAPSE_RANGE
        0x20,  # FALLOC_FL_INSERT_RANGE
    ],
)
def test_other_fallocate_modes_are_eopnotsupp(ops: ZramOperations, disk: int, mode: int) -> None:
    run(ops.write, disk, 0, b"\7" * PAGE_SIZE)
    refused(errno.EOPNOTSUPP, ops.fallocate, disk, mode, 0, PAGE_SIZE)
    assert dev(ops).statistics().pages_stored == 1


def test_fallocate_past_the_end(ops: ZramOperations, disk: int) -> None:
    refused(errno.EINVAL, ops.fallocate, disk, FALLOC_FL_ZERO_RANGE, MiB - PAGE_SIZE, 2 * PAGE_SIZE)
    run(ops.fallocate, disk, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, MiB - PAGE_SIZE, 2 * PAGE_SIZE)
    refused(errno.EINVAL, ops.fallocate, disk, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, MiB, PAGE_SIZE)


def test_fallocate_on_an_attribute_is_eopnotsupp(ops: ZramOperations) -> None:
    fh = open_file(ops, "zram0/disksize", os.O_RDWR)
    refused(errno.EOPNOTSUPP, ops.fallocate, fh, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096)


# ---------------------------------------------------------------------- attributes


def test_a_disksize_write_invalidates_the_disks_cached_size(
    ops: ZramOperations, invalidations: list[tuple[int, bool]]
) -> None:
    reset = open_file(ops, "zram0/reset", os.O_WRONLY)
    run(ops.write, reset, 0, b"1")
    assert invalidations == [(DISK_INODE, True)]
    disksize = open_file(ops, "zram0/disksize", os.O_RDWR)
    assert run(ops.write, disksize, 0, b"4M\n") == 3
    assert invalidations == [(DISK_INODE, True)] * 2
    assert run(ops.getattr, DISK_INODE, CTX).st_size == 4 * MiB
    refused(errno.EBUSY, ops.write, disksize, 0, b"8M\n")
    assert len(invalidations) == 2  # a refused write changes nothing


def test_attribute_reads_follow_seq_file(ops: ZramOperations, disk: int) -> None:
    """A read at offset 0 renders afresh and keeps the text on the handle; later offsets come from
    the kept text, so small reads never mix two renderings; a re-read from 0 is fresh."""
    fh = open_file(ops, "zram0/mm_stat", os.O_RDONLY)
    head = bytes(run(ops.read, fh, 0, 10))
    run(ops.write, disk, 0, b"\5" * PAGE_SIZE + bytes(range(256)) * 16)  # changes mm_stat
    rest = bytes(run(ops.read, fh, 10, 4096))
    before = attrs.format_mm_stat(ZramDevice().statistics().mm).encode()  # an empty device's
    assert head + rest == before
    fresh = bytes(run(ops.read, fh, 0, 4096))
    assert fresh == attrs.format_mm_stat(dev(ops).statistics().mm).encode() != before
    assert bytes(run(ops.read, fh, len(fresh), 4096)) == b""  # end of file
    other = open_file(ops, "zram0/mm_stat", os.O_RDONLY)  # a first read past 0 renders too
    assert bytes(run(ops.read, other, 5, 4096)) == fresh[5:]


def test_small_reads_of_classes_are_never_torn(ops: ZramOperations, disk: int) -> None:
    fh = open_file(ops, "zram0/classes", os.O_RDONLY)
    whole = bytes(run(ops.read, fh, 0, MiB))
    assert len(whole) > 1000
    pieces = [bytes(run(ops.read, fh, 0, 7))]
    for index in range(8):
        run(ops.write, disk, index * PAGE_SIZE, bytes([index + 1]) * 100 + bytes(range(256)) * 15)
        pieces.append(bytes(run(ops.read, fh, 7 + index * 7, 7)))
    offset = 7 + 8 * 7
    while chunk := bytes(run(ops.read, fh, offset, 7)):
        pieces.append(chunk)
        offset += len(chunk)
    assert b"".join(pieces) == whole  # every small read came from the rendering at offset 0
    assert bytes(run(ops.read, fh, 0, MiB)) != whole


def test_extra_files_render_on_each_read_from_zero(ops: ZramOperations) -> None:
    fh = open_file(ops, "zram-control/daemon", os.O_RDONLY)
    assert bytes(run(ops.read, fh, 0, 4096)) == b"compiled: no\n"


# ---------------------------------------------------------------------- hot_add, hot_remove


def test_hot_add_creates_the_lowest_free_device_once_per_read_from_zero(ops: ZramOperations) -> None:
    fh = open_file(ops, "zram-control/hot_add", os.O_RDONLY)
    assert bytes(run(ops.read, fh, 0, 4096)) == b"1\n"
    assert bytes(run(ops.read, fh, 2, 4096)) == b""  # cat's second read: end of file, no device
    assert sorted(ops.devices) == [0, 1]
    zram1 = inode_of(ops, "zram1/disksize")
    assert bytes(run(ops.read, open_file(ops, "zram1/disksize", os.O_RDONLY), 0, 100)) == b"0\n"
    assert zram1 == device_inode(1) + inode_of(ops, "zram0/disksize") - device_inode(0)
    assert bytes(run(ops.read, fh, 0, 4096)) == b"2\n"
    remove = open_file(ops, "zram-control/hot_remove", os.O_WRONLY)
    assert run(ops.write, remove, 0, b"1\n") == 2
    refused(errno.ENOENT, ops.lookup, ROOT_INODE, b"zram1", CTX)
    assert bytes(run(ops.read, fh, 0, 4096)) == b"1\n"  # the lowest free id again


def test_hot_remove_errnos(ops: ZramOperations) -> None:
    remove = open_file(ops, "zram-control/hot_remove", os.O_WRONLY)
    for text, expected in ((b"-1\n", errno.EINVAL), (b"one\n", errno.EINVAL), (b"7\n", errno.ENODEV),
                           (b"99999999999\n", errno.ERANGE)):  # fmt: skip
        refused(expected, ops.write, remove, 0, text)
    assert sorted(ops.devices) == [0]
    refused(errno.EACCES, ops.read, remove, 0, 4096)


def test_a_removed_devices_open_attribute_is_enodev(ops: ZramOperations) -> None:
    mm_stat = open_file(ops, "zram0/mm_stat", os.O_RDONLY)
    remove = open_file(ops, "zram-control/hot_remove", os.O_WRONLY)
    run(ops.write, remove, 0, b"0")
    refused(errno.ENODEV, ops.read, mm_stat, 0, 4096)
    refused(errno.ENODEV, ops.write, DISK_INODE, 0, b"x")


def test_lifecycle_requests_beyond_the_free_tasks_are_ebusy(ops: ZramOperations) -> None:
    """Lifecycle requests wait for the kernel one at a time; so that waiting ones can never
    take every serving task, those beyond MAX_LIFECYCLE_WAITERS are refused at once."""
    answers: list[int | str] = []

    async def scenario() -> None:
        await ops._lifecycle_lock.acquire()  # one lifecycle request is in flight
        async with trio.open_nursery() as nursery:

            async def hot_add() -> None:
                fh = (await ops.open(inode_of_async(ops), os.O_RDONLY, CTX)).fh
                try:
                    answers.append(bytes(await ops.read(fh, 0, 100)).decode().strip())
                except pyfuse3.FUSEError as exc:
                    answers.append(errno.errorcode[exc.errno])

            for _ in range(MAX_LIFECYCLE_WAITERS + 2):
                nursery.start_soon(hot_add)
            await trio.testing.wait_all_tasks_blocked()
            assert answers == ["EBUSY", "EBUSY"]
            ops._lifecycle_lock.release()

    trio.run(scenario)
    assert answers[2:] == [str(n) for n in range(1, MAX_LIFECYCLE_WAITERS + 1)]


def inode_of_async(ops: ZramOperations) -> int:
    control = ops.nodes[ROOT_INODE].children["zram-control"]
    return ops.nodes[control].children["hot_add"]


# ---------------------------------------------------------------------- what escapes


@pytest.mark.parametrize(
    "handler", ["mknod", "mkdir", "unlink", "rmdir", "symlink", "rename", "link", "create"]
)
def test_namespace_changes_are_eperm(ops: ZramOperations, handler: str) -> None:
    refused(errno.EPERM, getattr(ops, handler), ROOT_INODE, b"new", 0o644, CTX)


class Exploding:
    """A device every use of which fails in a way nobody planned for."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"the device exploded on {name}")


def requests(ops: ZramOperations, disk: int, attribute: int) -> list[tuple[str, tuple[Any, ...]]]:
    return [
        ("lookup", (device_inode(0), b"disk", CTX)),
        ("getattr", (DISK_INODE, CTX)),
        ("setattr", (DISK_INODE, pyfuse3.EntryAttributes(), Fields(update_size=True), None, CTX)),
        ("statfs", (CTX,)),
        ("open", (DISK_INODE, os.O_RDWR, CTX)),
        ("read", (disk, 0, 4096)),
        ("write", (disk, 0, b"x" * 4096)),
        ("read", (attribute, 0, 4096)),
        ("write", (attribute, 0, b"1G\n")),
        ("fallocate", (disk, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096)),
        ("fsync", (disk, True)),
        ("release", (disk,)),
    ]


def test_only_fuse_errors_escape_and_the_unexpected_is_logged(
    ops: ZramOperations, disk: int, caplog: pytest.LogCaptureFixture
) -> None:
    attribute = open_file(ops, "zram0/disksize", os.O_RDWR)
    device, ops.devices[0] = ops.devices[0], cast(ZramDevice, Exploding())
    caplog.set_level(logging.ERROR, logger=ops_module.log.name)
    failed = []
    try:
        for name, args in requests(ops, disk, attribute):
            caplog.clear()
            try:
                run(getattr(ops, name), *args)  # anything but FUSEError fails the test here
            except pyfuse3.FUSEError as exc:
                failed.append(name)
                assert exc.errno == errno.EIO, name
                assert f"unexpected error in {name}; answering EIO" in caplog.text
                assert caplog.records[-1].exc_info is not None  # logged with its traceback
            else:
                assert not caplog.text, name
    finally:
        ops.devices[0] = device
    assert {"lookup", "getattr", "setattr", "statfs", "read", "write", "fallocate", "fsync"} <= set(failed)

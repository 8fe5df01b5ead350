"""Tier 4: the attribute files -- one table of writes, run against zramd's attribute layer, against
a real zramd mount, and against the kernel's own /sys/block/zram0, with identical expectations.

Every row: the state to start from, an attribute, the bytes written, and what the kernel answers
(the byte count reported, or an errno) plus the state afterwards. A refused write must leave the
state exactly as it was. The rows were measured on the kernel's zram (6.18) and are re-checked
against it on every run where /sys/block/zram0 is free.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import mmap
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from tests.kernel_zram import kernel_zram_unavailable
from tests.mount_util import zramd_mount
from zramd.core import attrs
from zramd.core.engine import ZramDevice
from zramd.core.errors import ZramError

MiB = 1 << 20
BIG_ONES = b"1" * MiB  # a 1 MiB write: sysfs passes only its first page to the store
BIG_ONES_LIMIT = ((int("1" * 4096) % 2**64) + 4095) // 4096 * 4096 % 2**64


@dataclass(frozen=True)
class Row:
    start: str  # "uninit" or "init" (1 MiB, lzo)
    attr: str
    data: bytes
    result: int | str  # bytes reported written, or an errno name
    disksize: int | None = None  # expected afterwards (None: unchanged)
    algorithm: str | None = None  # the selected algorithm afterwards (None: unchanged)
    mem_limit: int | None = None  # mm_stat's mem_limit afterwards (None: unchanged)
    offset: int = 0


ROWS = [
    # disksize: memparse, no sign, no leading space, anything after the number ignored
    Row("uninit", "disksize", b"", 0),
    Row("uninit", "disksize", b"\n", "EINVAL"),
    Row("uninit", "disksize", b"0", "EINVAL"),
    Row("uninit", "disksize", b"abc", "EINVAL"),
    Row("uninit", "disksize", b" 4096", "EINVAL"),
    Row("uninit", "disksize", b"-4096", "EINVAL"),
    Row("uninit", "disksize", b"+4096", "EINVAL"),
    Row("uninit", "disksize", b"4096 ", 5, disksize=4096),
    Row("uninit", "disksize", b"100abc", 6, disksize=4096),
    Row("uninit", "disksize", b"0x1000", 6, disksize=4096),
    Row("uninit", "disksize", b"010", 3, disksize=4096),
    Row("uninit", "disksize", b"1k", 2, disksize=4096),
    Row("uninit", "disksize", b"1M\n", 3, disksize=MiB),
    Row("uninit", "disksize", b"18446744073709551616", "EINVAL"),  # wraps to 0
    Row("uninit", "disksize", b"16E", "EINVAL"),  # wraps to 0
    Row("uninit", "disksize", b"18446744073709551615", "ENOMEM"),  # page-aligns to 0
    Row("uninit", "disksize", b"1E", "ENOMEM"),
    Row("uninit", "disksize", BIG_ONES, "ENOMEM"),
    Row("init", "disksize", b"2M", "EBUSY"),
    Row("init", "disksize", b"0", "EINVAL"),
    Row("init", "disksize", b"abc", "EINVAL"),
    Row("init", "disksize", b"18446744073709551615", "EBUSY"),
    # comp_algorithm: exact names, one trailing newline, E2BIG from 128 characters
    Row("uninit", "comp_algorithm", b"", 0),
    Row("uninit", "comp_algorithm", b"\n", "EINVAL"),
    Row("uninit", "comp_algorithm", b"lz4", 3, algorithm="lz4"),
    Row("uninit", "comp_algorithm", b"lz4\n", 4, algorithm="lz4"),
    Row("uninit", "comp_algorithm", b"lzo\n", 4, algorithm="lzo"),
    Row("uninit", "comp_algorithm", b"lz4\n\n", 5, algorithm="-"),  # accepted, shown unselected
    Row("uninit", "comp_algorithm", b" lz4", "EINVAL"),
    Row("uninit", "comp_algorithm", b"lz4 ", "EINVAL"),
    Row("uninit", "comp_algorithm", b"LZ4", "EINVAL"),
    Row("uninit", "comp_algorithm", b"zstd-not-built", "EINVAL"),
    Row("uninit", "comp_algorithm", b"algo=lz4", "EINVAL"),
    Row("uninit", "comp_algorithm", b"x" * 127, "EINVAL"),
    Row("uninit", "comp_algorithm", b"x" * 128, "E2BIG"),
    Row("uninit", "comp_algorithm", b"l" * MiB, "E2BIG"),
    Row("uninit", "comp_algorithm", b"lz4\x00junk", 8, algorithm="lz4"),
    Row("init", "comp_algorithm", b"lz4", "EBUSY"),
    Row("init", "comp_algorithm", b"no-such", "EINVAL"),
    Row("init", "comp_algorithm", b"x" * 200, "E2BIG"),
    # reset: kstrtou16, base 10
    Row("uninit", "reset", b"", 0),
    Row("uninit", "reset", b"1", 1),
    Row("uninit", "reset", b"0", "EINVAL"),
    Row("uninit", "reset", b"65535", 5),
    Row("uninit", "reset", b"65536", "ERANGE"),
    Row("uninit", "reset", b"18446744073709551616", "ERANGE"),
    Row("uninit", "reset", b"-1", "EINVAL"),
    Row("uninit", "reset", b"abc", "EINVAL"),
    Row("uninit", "reset", b" 1", "EINVAL"),
    Row("uninit", "reset", b"1 ", "EINVAL"),
    Row("uninit", "reset", b"+1", 2),
    Row("uninit", "reset", b"0x1", "EINVAL"),
    Row("uninit", "reset", b"1\n\n", "EINVAL"),
    Row("init", "reset", b"0", "EINVAL"),
    Row("init", "reset", b"70000", "ERANGE"),
    Row("init", "reset", b"1\n", 2, disksize=0, algorithm="lzo-default"),
    # compact: any text, but only on an initialised device
    Row("uninit", "compact", b"1", "EINVAL"),
    Row("uninit", "compact", b"", 0),
    Row("init", "compact", b"1", 1),
    Row("init", "compact", b"garbage", 7),
    # mem_used_max: kstrtoul, only 0
    Row("uninit", "mem_used_max", b"0", 1),
    Row("init", "mem_used_max", b"0\n", 2),
    Row("init", "mem_used_max", b"00", 2),
    Row("init", "mem_used_max", b"+0", 2),
    Row("init", "mem_used_max", b"-0", "EINVAL"),
    Row("init", "mem_used_max", b" 0", "EINVAL"),
    Row("init", "mem_used_max", b"0 ", "EINVAL"),
    Row("init", "mem_used_max", b"0x0", "EINVAL"),
    Row("init", "mem_used_max", b"1", "EINVAL"),
    Row("init", "mem_used_max", b"abc", "EINVAL"),
    # mem_limit: memparse, refused only when no digit parses; wraps like the kernel
    Row("uninit", "mem_limit", b"abc", "EINVAL"),
    Row("uninit", "mem_limit", b"-1", "EINVAL"),
    Row("uninit", "mem_limit", b" 1M", "EINVAL"),
    Row("uninit", "mem_limit", b"1", 1, mem_limit=4096),
    Row("uninit", "mem_limit", b"1M junk", 7, mem_limit=MiB),
    Row("uninit", "mem_limit", b"0x10", 4, mem_limit=4096),
    Row("init", "mem_limit", b"2M", 2, mem_limit=2 * MiB),
    Row("init", "mem_limit", b"18446744073709551616", 20, mem_limit=0),
    Row("init", "mem_limit", b"99999999999999999999999", 23, mem_limit=200376420520689664),
    Row("init", "mem_limit", b"15E", 3, mem_limit=17293822569102704640),
    Row("init", "mem_limit", BIG_ONES, 4096, mem_limit=BIG_ONES_LIMIT),
    Row("init", "mem_limit", b"1M", 2, mem_limit=MiB, offset=100),  # sysfs ignores the offset
]


class Target(Protocol):
    """Something that behaves like /sys/block/zram0."""

    def prepare(self, start: str) -> None: ...
    def write(self, attr: str, data: bytes, offset: int) -> int | str: ...
    def state(self) -> tuple[int, str, int]: ...


def _selected(comp_algorithm: str) -> str:
    words = [w for w in comp_algorithm.split() if w.startswith("[")]
    return words[0].strip("[]") if words else "-"


class DirectTarget:
    """zramd's attribute layer called directly, with no mount."""

    def __init__(self) -> None:
        self.device = ZramDevice()

    def prepare(self, start: str) -> None:
        self.device.reset()
        if start == "init":
            self.device.set_comp_algorithm("lzo")
            self.device.set_disksize(MiB)

    def write(self, attr: str, data: bytes, offset: int) -> int | str:
        try:
            return attrs.BY_NAME[attr].write(self.device, data)
        except ZramError as exc:
            return errno.errorcode[exc.errno]

    def state(self) -> tuple[int, str, int]:
        algorithm = _selected(attrs.BY_NAME["comp_algorithm"].show(self.device))  # type: ignore[misc]
        return self.device.disksize, algorithm, self.device.statistics().mm.mem_limit


class FileTarget:
    """A directory of attribute files: a zramd mount's sys/ or /sys/block/zram0."""

    def __init__(self, sysdir: Path, default_algorithm: str) -> None:
        self.sysdir = sysdir
        self.default_algorithm = default_algorithm

    def prepare(self, start: str) -> None:
        (self.sysdir / "reset").write_text("1")
        if start == "init":
            (self.sysdir / "comp_algorithm").write_text("lzo")
            (self.sysdir / "disksize").write_text("1M")

    def write(self, attr: str, data: bytes, offset: int) -> int | str:
        fd = os.open(self.sysdir / attr, os.O_WRONLY)
        try:
            return os.pwrite(fd, data, offset) if offset else os.write(fd, data)
        except OSError as exc:
            return errno.errorcode[exc.errno or 0]
        finally:
            os.close(fd)

    def state(self) -> tuple[int, str, int]:
        disksize = int((self.sysdir / "disksize").read_text())
        algorithm = _selected((self.sysdir / "comp_algorithm").read_text())
        mem_limit = int((self.sysdir / "mm_stat").read_text().split()[3])
        return disksize, algorithm, mem_limit


def check_row(target: Target, row: Row, default_algorithm: str) -> None:
    target.prepare(row.start)
    before = target.state()
    result = target.write(row.attr, row.data, row.offset)
    after = target.state()
    assert result == row.result, f"{row.attr} <- {row.data[:40]!r}: got {result}, kernel gives {row.result}"
    expected_size = before[0] if row.disksize is None else row.disksize
    expected_algo = before[1] if row.algorithm is None else row.algorithm
    if expected_algo == "lzo-default":
        expected_algo = default_algorithm
    expected_limit = before[2] if row.mem_limit is None else row.mem_limit
    assert after == (expected_size, expected_algo, expected_limit), f"state after {row}"


def _row_id(row: Row) -> str:
    return f"{row.start}-{row.attr}-{row.data[:24]!r}"


@pytest.mark.parametrize("row", ROWS, ids=_row_id)
def test_attribute_layer_matches_kernel_table(row: Row) -> None:
    check_row(DirectTarget(), row, "lzo")


@pytest.fixture(scope="module")
def mounted_sys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with zramd_mount(tmp_path_factory.mktemp("attrs") / "mnt", "--size", "1M") as mount:
        yield mount.sys


@pytest.fixture(scope="module")
def kernel_sys() -> Iterator[Path]:
    reason = kernel_zram_unavailable()
    if reason:
        pytest.skip(reason)
    sysdir = Path("/sys/block/zram0")
    try:
        yield sysdir
    finally:
        (sysdir / "reset").write_text("1")


def test_whole_table_through_a_mount(mounted_sys: Path) -> None:
    target = FileTarget(mounted_sys, "lzo")
    for row in ROWS:
        check_row(target, row, "lzo")


def test_whole_table_on_the_kernels_zram(kernel_sys: Path) -> None:
    target = FileTarget(kernel_sys, "lzo-rle")
    for row in ROWS:
        check_row(target, row, "lzo-rle")


@pytest.mark.parametrize("attr", ["reset", "compact", "mem_limit", "mem_used_max"])
def test_write_only_attributes_refuse_reading(mounted_sys: Path, attr: str) -> None:
    with pytest.raises(PermissionError):
        (mounted_sys / attr).read_bytes()
    assert os.stat(mounted_sys / attr).st_mode & 0o777 == 0o200


@pytest.mark.parametrize("attr", ["initstate", "mm_stat", "io_stat", "debug_stat", "stat"])
def test_read_only_attributes_refuse_opening_for_write(mounted_sys: Path, attr: str) -> None:
    with pytest.raises(PermissionError):
        os.open(mounted_sys / attr, os.O_WRONLY)
    with pytest.raises(PermissionError):
        os.open(mounted_sys / attr, os.O_RDWR)
    assert os.stat(mounted_sys / attr).st_mode & 0o777 == 0o444


def test_modes_match_the_kernel(mounted_sys: Path) -> None:
    expected = {
        "disksize": 0o644, "initstate": 0o444, "reset": 0o200, "comp_algorithm": 0o644, "mem_limit": 0o200,
        "mem_used_max": 0o200, "compact": 0o200, "mm_stat": 0o444, "io_stat": 0o444, "debug_stat": 0o444,
        "stat": 0o444,
    }  # fmt: skip
    for name, mode in expected.items():
        st = os.stat(mounted_sys / name)
        assert (st.st_mode & 0o777, st.st_size, st.st_uid) == (mode, 4096, 0), name
    if kernel_zram_unavailable() is None:
        for name, mode in expected.items():
            assert os.stat(Path("/sys/block/zram0") / name).st_mode & 0o777 == mode


def test_reads_at_offsets_return_the_rest(mounted_sys: Path) -> None:
    (mounted_sys / "reset").write_text("1")
    fd = os.open(mounted_sys / "comp_algorithm", os.O_RDONLY)
    try:
        assert os.pread(fd, 100, 0) == b"[lzo] lz4 lz4hc zstd deflate \n"
        assert os.pread(fd, 100, 3) == b"o] lz4 lz4hc zstd deflate \n"
        assert os.pread(fd, 3, 0) == b"[lz"
        assert os.pread(fd, 100, 100) == b""
    finally:
        os.close(fd)


def test_uninitialised_formats(mounted_sys: Path) -> None:
    (mounted_sys / "reset").write_text("1")
    assert (mounted_sys / "initstate").read_text() == "0\n"
    assert (mounted_sys / "disksize").read_text() == "0\n"
    assert (mounted_sys / "mm_stat").read_text() == "       0" + " " + " ".join(["       0"] * 8) + "\n"
    assert (mounted_sys / "io_stat").read_text() == "       0        0 0        0\n"
    assert (mounted_sys / "debug_stat").read_text() == "version: 1\n0        0\n"
    assert (mounted_sys / "stat").read_text() == " ".join(["       0"] * 17) + "\n"
    if kernel_zram_unavailable() is None:
        kernel = Path("/sys/block/zram0")
        for name in ("initstate", "disksize", "mm_stat", "io_stat", "debug_stat", "stat"):
            assert (kernel / name).read_text() == (mounted_sys / name).read_text(), name


@pytest.mark.parametrize("what", ["disk file", "block device"])
def test_reset_refused_while_the_disk_is_open(mounted_sys: Path, what: str) -> None:
    """EBUSY while anyone holds the disk file or its block device open, as the kernel refuses
    while /dev/zramN has an opener; the block device's capacity follows the size at once."""
    (mounted_sys / "reset").write_text("1")
    (mounted_sys / "disksize").write_text("1M")
    disk = mounted_sys / "disk"
    block = (mounted_sys / "block_device").read_text().strip()
    assert block_size(block) == MiB  # when the disksize write returned
    fd = os.open(disk if what == "disk file" else block, os.O_RDONLY)
    try:
        with pytest.raises(OSError) as refused:
            (mounted_sys / "reset").write_text("1")
        assert refused.value.errno == errno.EBUSY
        assert (mounted_sys / "initstate").read_text() == "1\n"
    finally:
        os.close(fd)
    (mounted_sys / "reset").write_text("1")
    assert (mounted_sys / "initstate").read_text() == "0\n"
    assert os.stat(disk).st_size == 0 and block_size(block) == 0
    (mounted_sys / "disksize").write_text("2M")
    assert os.stat(disk).st_size == 2 * MiB and block_size(block) == 2 * MiB  # visible at once


def block_size(block: str) -> int:
    fd = os.open(block, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def test_kernel_refuses_reset_while_open_too(kernel_sys: Path) -> None:
    (kernel_sys / "reset").write_text("1")
    (kernel_sys / "disksize").write_text("1M")
    fd = os.open("/dev/zram0", os.O_RDONLY)
    try:
        with pytest.raises(OSError) as refused:
            (kernel_sys / "reset").write_text("1")
        assert refused.value.errno == errno.EBUSY
    finally:
        os.close(fd)
        (kernel_sys / "reset").write_text("1")


# ============================================================================ writeback attributes
#
# CONFIG_ZRAM_WRITEBACK's files (backing_dev, writeback, writeback_limit, writeback_limit_enable,
# writeback_batch_size, bd_stat) and idle (whose ages need CONFIG_ZRAM_TRACK_ENTRY_ACTIME). Their
# state is more than the table above tracks, so they have a table and a state of their own: what
# each of these files shows. The idle rows without an age were measured on this machine's kernel
# (6.18, built with neither option); the others follow drivers/block/zram/zram_drv.c's stores
# (backing_dev_store, idle_store, writeback_store and its parsers, the kstrto* of the limit
# stores) and are checked on a kernel that has them. The kernel takes only block devices as
# backing_dev, zramd regular files too: on the kernel {backing} is a loop device over the file,
# and rows that give the kernel a regular file say what it answers (`kernel`). A directory is left
# out: zramd answers ENOTBLK where the kernel's filp_open answers EISDIR (see
# tests/t3_writeback.py, test_backing_dev_directory_is_eisdir_as_in_the_kernel).

WHOLE = -1  # a row's result: the whole write consumed
WB_SHOWN = ("initstate", "backing_dev", "writeback_limit", "writeback_limit_enable", "writeback_batch_size",
            "bd_stat")  # fmt: skip
WB_DEFAULTS = {"writeback_limit": b"0", "writeback_limit_enable": b"0", "writeback_batch_size": b"32"}


@dataclass(frozen=True)
class WbRow:
    start: str  # "uninit", "init" (1 MiB, lzo), "backed" (backing_dev set, uninitialised), "backed-init"
    attr: str
    data: bytes  # may name {backing}, {file}, {small} (4095 bytes) and {missing}
    result: int | str  # WHOLE, a byte count, or an errno name
    after: tuple[tuple[str, str], ...] = ()  # files that show something else afterwards
    needs: str = "writeback"  # the kernel must have: "writeback", "actime" (idle ages) or "" (idle)
    kernel: str | None = None  # the kernel's errno where zramd answers otherwise on purpose


def _limit_rows(attr: str, good: list[tuple[bytes, str]], bad: list[bytes]) -> list[WbRow]:
    rows = [WbRow("uninit", attr, b"", 0)]
    rows += [WbRow("uninit", attr, data, WHOLE, ((attr, shown),)) for data, shown in good]
    rows += [WbRow("uninit", attr, data, "EINVAL") for data in bad]
    rows.append(WbRow("backed-init", attr, good[0][0], WHOLE, ((attr, good[0][1]),)))  # no EBUSY
    rows.append(WbRow("backed-init", attr, bad[0], "EINVAL"))
    return rows


_WB_GOOD = [
    b"idle",
    b"idle\n",
    b"huge",
    b"huge_idle",
    b"incompressible",
    b"type=idle",
    b"type=huge\n",
    b"type=huge_idle",
    b"type=incompressible",
    b'"type=idle"',
    b'type="huge"',
    b"page_index=0",
    b"page_index=255",
    b"page_index=+7",
    b"page_indexes=0-255",
    b"page_indexes=7-7",
    b"page_index=1 page_index=2",
    b"page_indexes=0-3 type=idle",
    b"foo=bar",
    b"\n",
    b"  ",
]
_WB_BAD = [
    (b"bogus", "EINVAL"),
    (b"IDLE", "EINVAL"),
    (b"type=", "EINVAL"),
    (b"type=bogus", "EINVAL"),
    (b"page_index=", "EINVAL"),
    (b"page_index=x", "EINVAL"),
    (b"page_index=-1", "EINVAL"),
    (b"page_index=0x1", "EINVAL"),
    (b"page_index=256", "ERANGE"),
    (b"page_index=18446744073709551616", "ERANGE"),
    (b"page_indexes=5", "EINVAL"),
    (b"page_indexes=a-5", "EINVAL"),
    (b"page_indexes=1-b", "EINVAL"),
    (b"page_indexes=256-300", "ERANGE"),
    (b"page_indexes=0-256", "ERANGE"),
    (b"page_indexes=5-4", "ERANGE"),
    (b"page_index=1 page_index=256", "ERANGE"),
    (b"page_index=1 bogus", "EINVAL"),
]

WB_ROWS = [
    # backing_dev: only before initialisation; the open's own errno; one trailing newline dropped
    WbRow("uninit", "backing_dev", b"", 0),
    WbRow("uninit", "backing_dev", b"{backing}", WHOLE, (("backing_dev", "{backing}\n"),)),
    WbRow("uninit", "backing_dev", b"{backing}\n", WHOLE, (("backing_dev", "{backing}\n"),)),
    WbRow("uninit", "backing_dev", b"{file}", WHOLE, (("backing_dev", "{file}\n"),), kernel="ENOTBLK"),
    WbRow("uninit", "backing_dev", b"{backing}\n\n", "ENOENT"),  # the name ends in a newline
    WbRow("uninit", "backing_dev", b"{missing}", "ENOENT"),
    WbRow("uninit", "backing_dev", b"{missing}/deeper", "ENOENT"),
    WbRow("uninit", "backing_dev", b"/dev/null", "ENOTBLK"),
    WbRow("uninit", "backing_dev", b"{small}", "EINVAL", kernel="ENOTBLK"),  # less than one block
    WbRow("backed", "backing_dev", b"{missing}", "ENOENT"),  # the one set before stays
    WbRow("backed", "backing_dev", b"/dev/null", "ENOTBLK"),
    WbRow("backed", "backing_dev", b"{backing}", WHOLE),  # set again: the same
    WbRow("init", "backing_dev", b"{backing}", "EBUSY"),
    WbRow("init", "backing_dev", b"{missing}", "EBUSY"),  # EBUSY comes before the path is looked at
    WbRow("backed-init", "backing_dev", b"/dev/null", "EBUSY"),
    WbRow("backed-init", "reset", b"1", 1, (("initstate", "0\n"), ("backing_dev", "none\n"))),
    # idle: "all" (sysfs_streq), else an age in seconds (kstrtouint, base 0), on an initialised device
    WbRow("uninit", "idle", b"", 0, needs=""),
    *(WbRow("uninit", "idle", data, "EINVAL", needs="") for data in (b"all", b"all\n", b"bogus", b"10")),
    WbRow("init", "idle", b"", 0, needs=""),
    WbRow("init", "idle", b"all", 3, needs=""),
    WbRow("init", "idle", b"all\n", 4, needs=""),
    *(
        WbRow("init", "idle", data, "EINVAL", needs="")
        for data in (b"all\n\n", b" all", b"all ", b"ALL", b"al", b"bogus", b"-1", b"10 ", b"4294967296")
    ),
    *(
        WbRow("init", "idle", data, WHOLE, needs="actime")
        for data in (b"10", b"10\n", b"0x10", b"010", b"+5", b"0", b"4294967295")
    ),
    # writeback: EINVAL uninitialised, then ENODEV without a backing store, then the parse
    WbRow("uninit", "writeback", b"", 0),
    WbRow("uninit", "writeback", b"idle", "EINVAL"),
    WbRow("backed", "writeback", b"idle", "EINVAL"),
    WbRow("init", "writeback", b"", 0),
    *(WbRow("init", "writeback", data, "ENODEV") for data in (b"idle", b"bogus", b"page_index=999")),
    *(WbRow("backed-init", "writeback", data, WHOLE) for data in _WB_GOOD),
    *(WbRow("backed-init", "writeback", data, error) for data, error in _WB_BAD),
    # writeback_limit: kstrtoull, base 10, every failure EINVAL (overflow too); no init check
    *_limit_rows(
        "writeback_limit",
        [
            (b"100", "100\n"),
            (b"0", "0\n"),
            (b"7\n", "7\n"),
            (b"+7", "7\n"),
            (b"18446744073709551615", "18446744073709551615\n"),
        ],
        [b"18446744073709551616", b"-1", b"abc", b" 1", b"1 ", b"0x10", b"1k", b"\n", b"1\n\n"],
    ),
    # writeback_limit_enable: kstrtoull into a bool: any non-zero number enables
    *_limit_rows(
        "writeback_limit_enable",
        [
            (b"1", "1\n"),
            (b"1\n", "1\n"),
            (b"2", "1\n"),
            (b"256", "1\n"),
            (b"18446744073709551615", "1\n"),
            (b"00", "0\n"),
        ],
        [b"yes", b"18446744073709551616", b"true", b"-1", b" 1", b"1 ", b"0x1", b"on"],
    ),
    # writeback_batch_size: kstrtouint, base 10, and 0 is EINVAL (6.19)
    *_limit_rows(
        "writeback_batch_size",
        [(b"16", "16\n"), (b"1", "1\n"), (b"64\n", "64\n"), (b"+8", "8\n"), (b"4294967295", "4294967295\n")],
        [b"0", b"00", b"0\n", b"4294967296", b"-1", b"abc", b"0x10", b" 8", b"8 "],
    ),
]


class WbTarget(Protocol):
    paths: dict[bytes, bytes]

    def prepare(self, start: str) -> None: ...
    def write(self, attr: str, data: bytes) -> int | str: ...
    def state(self) -> dict[str, str]: ...


def _expand(paths: dict[bytes, bytes], data: bytes) -> bytes:
    for name, path in paths.items():
        data = data.replace(name, path)
    return data


@dataclass(frozen=True)
class WbFiles:
    """The files the rows name: a sparse 64-block backing file, one of 4095 bytes, a missing path."""

    backing: Path
    small: Path
    missing: Path

    def paths(self, backing: str | None = None) -> dict[bytes, bytes]:
        return {b"{backing}": os.fsencode(backing or self.backing), b"{file}": os.fsencode(self.backing),
                b"{small}": os.fsencode(self.small), b"{missing}": os.fsencode(self.missing)}  # fmt: skip


@pytest.fixture(scope="module")
def wb_files(tmp_path_factory: pytest.TempPathFactory) -> WbFiles:
    directory = tmp_path_factory.mktemp("wbfiles")
    backing = directory / "backing.img"
    with open(backing, "wb") as f:
        f.truncate(64 * 4096)
    small = directory / "small.img"
    small.write_bytes(b"s" * 4095)
    return WbFiles(backing, small, directory / "missing")


class WbDirectTarget:
    """The attribute layer, no mount."""

    def __init__(self, files: WbFiles) -> None:
        self.device = ZramDevice()
        self.files = files
        self.paths = files.paths()

    def prepare(self, start: str) -> None:
        self.device.reset()
        for name, value in WB_DEFAULTS.items():
            attrs.BY_NAME[name].write(self.device, value)
        if start.startswith("backed"):
            self.device.set_backing_dev(str(self.files.backing))
        if start in ("init", "backed-init"):
            self.device.set_comp_algorithm("lzo")
            self.device.set_disksize(MiB)

    def write(self, attr: str, data: bytes) -> int | str:
        try:
            return attrs.BY_NAME[attr].write(self.device, _expand(self.paths, data))
        except ZramError as exc:
            return errno.errorcode[exc.errno]

    def state(self) -> dict[str, str]:
        shown = {}
        for name in WB_SHOWN:
            show = attrs.BY_NAME[name].show
            assert show is not None
            shown[name] = show(self.device)
        return shown


class WbFileTarget:
    """A directory of attribute files: a zramd mount's device directory or /sys/block/zram0
    (there, only the files the kernel has are shown and written)."""

    def __init__(self, sysdir: Path, paths: dict[bytes, bytes]) -> None:
        self.sysdir = sysdir
        self.paths = paths

    def prepare(self, start: str) -> None:
        (self.sysdir / "reset").write_text("1")
        for name, value in WB_DEFAULTS.items():
            if (self.sysdir / name).exists():
                (self.sysdir / name).write_bytes(value)
        if start.startswith("backed"):
            (self.sysdir / "backing_dev").write_bytes(self.paths[b"{backing}"])
        if start in ("init", "backed-init"):
            (self.sysdir / "comp_algorithm").write_text("lzo")
            (self.sysdir / "disksize").write_text("1M")

    def write(self, attr: str, data: bytes) -> int | str:
        fd = os.open(self.sysdir / attr, os.O_WRONLY)
        try:
            return os.write(fd, _expand(self.paths, data))
        except OSError as exc:
            return errno.errorcode[exc.errno or 0]
        finally:
            os.close(fd)

    def state(self) -> dict[str, str]:
        return {name: (self.sysdir / name).read_text() for name in WB_SHOWN if (self.sysdir / name).exists()}


def check_wb_row(target: WbTarget, row: WbRow, on_kernel: bool = False) -> None:
    target.prepare(row.start)
    before = target.state()
    data = _expand(target.paths, row.data)
    result = target.write(row.attr, row.data)
    after = target.state()
    expected = row.kernel if on_kernel and row.kernel else row.result
    if expected == WHOLE:
        expected = min(len(data), 4096)
    assert result == expected, f"{row.attr} <- {data[:60]!r}: got {result}, expected {expected}"
    wanted = dict(before)
    if not isinstance(expected, str):  # a refused write changes nothing
        for name, shown in row.after:
            if name in wanted:
                wanted[name] = _expand(target.paths, shown.encode()).decode()
    assert after == wanted, f"state after {row}"


def _wb_row_id(row: WbRow) -> str:
    return f"{row.start}-{row.attr}-{row.data[:30]!r}"


@pytest.mark.parametrize("row", WB_ROWS, ids=_wb_row_id)
def test_writeback_attributes_on_the_attribute_layer(row: WbRow, wb_files: WbFiles) -> None:
    target = WbDirectTarget(wb_files)
    try:
        check_wb_row(target, row)
    finally:
        target.device.reset()


def test_writeback_table_through_a_mount(mounted_sys: Path, wb_files: WbFiles) -> None:
    target = WbFileTarget(mounted_sys, wb_files.paths())
    try:
        for row in WB_ROWS:
            check_wb_row(target, row)
    finally:
        target.prepare("uninit")


def _kernel_config(option: str) -> bool | None:
    """Whether the running kernel was built with `option` (from /proc/config.gz), None if unknown."""
    try:
        with gzip.open("/proc/config.gz", "rt") as config:
            return any(line.strip() in (f"{option}=y", f"{option}=m") for line in config)
    except OSError:
        return None


def _kernel_lacks(needs: str) -> str | None:
    """Why the kernel's zram0 cannot check rows that need `needs`, or None when it can."""
    if needs == "writeback" and not (Path("/sys/block/zram0") / "backing_dev").exists():
        return "the kernel's zram is built without CONFIG_ZRAM_WRITEBACK (no /sys/block/zram0/backing_dev)"
    if needs == "actime":
        built = _kernel_config("CONFIG_ZRAM_TRACK_ENTRY_ACTIME")
        if built is None:
            return "cannot tell whether the kernel has CONFIG_ZRAM_TRACK_ENTRY_ACTIME (no /proc/config.gz)"
        if not built:
            return "the kernel's zram is built without CONFIG_ZRAM_TRACK_ENTRY_ACTIME (idle takes no ages)"
    return None


@contextmanager
def _loop_device(backing: Path) -> Iterator[str]:
    """A loop device over `backing`: the kernel takes only block devices as backing_dev."""
    loop = subprocess.run(["losetup", "--find", "--show", str(backing)], capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip
    try:
        yield loop
    finally:
        subprocess.run(["losetup", "--detach", loop], check=False)


@pytest.mark.parametrize("needs", ["", "actime", "writeback"])
def test_writeback_table_on_the_kernels_zram(kernel_sys: Path, wb_files: WbFiles, needs: str) -> None:
    reason = _kernel_lacks(needs)
    if reason:
        pytest.skip(reason)
    rows = [row for row in WB_ROWS if row.needs == needs]
    with contextlib.ExitStack() as stack:
        backing = stack.enter_context(_loop_device(wb_files.backing)) if needs == "writeback" else None
        target = WbFileTarget(kernel_sys, wb_files.paths(backing))
        try:
            for row in rows:
                check_wb_row(target, row, on_kernel=True)
        finally:
            target.prepare("uninit")


WB_MODES = {"backing_dev": 0o644, "idle": 0o200, "writeback": 0o200, "writeback_limit": 0o644,
            "writeback_limit_enable": 0o644, "writeback_batch_size": 0o644, "bd_stat": 0o444,
            "block_state": 0o444}  # fmt: skip


def test_writeback_attribute_modes(mounted_sys: Path) -> None:
    for name, mode in WB_MODES.items():
        attribute = attrs.BLOCK_STATE if name == "block_state" else attrs.BY_NAME[name]
        assert attribute.mode == mode, name
        assert (attribute.readable, attribute.writable) == (bool(mode & 0o444), bool(mode & 0o200)), name
        st = os.stat(mounted_sys / name)
        assert (st.st_mode & 0o777, st.st_size, st.st_uid) == (mode, 4096, 0), name
    if kernel_zram_unavailable() is None:  # block_state is the kernel's debugfs file (0400): not here
        kernel = Path("/sys/block/zram0")
        for name, mode in WB_MODES.items():
            if name != "block_state" and (kernel / name).exists():
                assert os.stat(kernel / name).st_mode & 0o777 == mode, name


@pytest.mark.parametrize("attr", ["idle", "writeback"])
def test_new_write_only_attributes_refuse_reading(mounted_sys: Path, attr: str) -> None:
    with pytest.raises(PermissionError):
        (mounted_sys / attr).read_bytes()


@pytest.mark.parametrize("attr", ["bd_stat", "block_state"])
def test_new_read_only_attributes_refuse_opening_for_write(mounted_sys: Path, attr: str) -> None:
    for flags in (os.O_WRONLY, os.O_RDWR):
        with pytest.raises(PermissionError):
            os.open(mounted_sys / attr, flags)


def test_writeback_through_a_mount(mounted_sys: Path, wb_files: WbFiles) -> None:
    """The whole path once through FUSE: backing_dev, pages written to the disk file, idle,
    writeback, the counters and block_state, and the pages read back with O_DIRECT (so from the
    device, through the backing store)."""
    sysdir = mounted_sys
    (sysdir / "reset").write_text("1")
    with pytest.raises(OSError) as uninitialised:
        (sysdir / "block_state").read_bytes()
    assert uninitialised.value.errno == errno.EINVAL
    (sysdir / "backing_dev").write_text(f"{wb_files.backing}\n")
    (sysdir / "comp_algorithm").write_text("lzo")
    (sysdir / "disksize").write_text("1M")
    pages = [os.urandom(4096) for _ in range(4)] + [b"zram idle writeback %d " % k * 180 for k in range(4)]
    pages = [p[:4096].ljust(4096, b".") for p in pages] + [bytes(4096), b"\x5a" * 4096]
    data = b"".join(pages)
    fd = os.open(sysdir / "disk", os.O_RDWR | os.O_DIRECT)
    try:
        buf = mmap.mmap(-1, len(data))  # page-aligned memory for O_DIRECT
        buf[:] = data
        assert os.pwritev(fd, [buf], 0) == len(data)
        before = [int(v) for v in (sysdir / "mm_stat").read_text().split()]
        (sysdir / "idle").write_text("all")
        lines = (sysdir / "block_state").read_text().splitlines()
        huge, text = [(k, "..hi..") for k in range(4)], [(k, "...i..") for k in range(4, 8)]
        assert [(int(line[:12]), line[33:39]) for line in lines] == [
            *huge,
            *text,
            (8, "s....."),
            (9, "s....."),
        ]
        (sysdir / "writeback").write_text("idle\n")
        assert (sysdir / "bd_stat").read_text() == f"{8:8d} {0:8d} {8:8d}\n"
        after = [int(v) for v in (sysdir / "mm_stat").read_text().split()]
        assert after[0] == before[0] == 10 * 4096  # orig_data_size
        assert (after[1], after[2], after[5], after[7]) == (0, 0, 2, 0)  # compr, used, same, huge
        lines = (sysdir / "block_state").read_text().splitlines()
        assert [line[33:39] for line in lines] == [".w...."] * 8 + ["s....."] * 2
        back = mmap.mmap(-1, len(data))
        assert os.preadv(fd, [back], 0) == len(data)
        assert bytes(back) == data
        assert (sysdir / "bd_stat").read_text() == f"{8:8d} {8:8d} {8:8d}\n"
        assert (sysdir / "consistency").read_text().startswith("ok")
    finally:
        os.close(fd)
    (sysdir / "reset").write_text("1")
    assert (sysdir / "backing_dev").read_text() == "none\n"

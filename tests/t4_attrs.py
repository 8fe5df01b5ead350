"""Tier 4: the attribute files -- one table of writes, run against zramd's attribute layer, against
a real zramd mount, and against the kernel's own /sys/block/zram0, with identical expectations.

Every row: the state to start from, an attribute, the bytes written, and what the kernel answers
(the byte count reported, or an errno) plus the state afterwards. A refused write must leave the
state exactly as it was. The rows were measured on the kernel's zram (6.18) and are re-checked
against it on every run where /sys/block/zram0 is free.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
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
        assert os.pread(fd, 100, 0) == b"[lzo] lz4 \n"
        assert os.pread(fd, 100, 3) == b"o] lz4 \n"
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

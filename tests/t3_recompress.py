"""Tier 3: recompression (``CONFIG_ZRAM_MULTI_COMP``) on a device without a mount --
``recomp_algorithm``'s format and errnos, ``recompress``'s selection and ``recompress_slot``'s
rules, the counters after it, and reads through the algorithm that compressed each page.
"""

from __future__ import annotations

import errno
import random
from pathlib import Path

import pytest

from zramd.core import attrs, compress
from zramd.core.engine import ZramDevice
from zramd.core.errors import ZramError

PAGE = 4096
MiB = 1 << 20

pytestmark = pytest.mark.skipif("zstd" not in compress.algorithm_names(), reason="zstd is not installed")


def write_attr(device: ZramDevice, name: str, text: str) -> int | str:
    """The byte count a write reports, or its errno's name."""
    try:
        return attrs.BY_NAME[name].write(device, text.encode())
    except ZramError as exc:
        return errno.errorcode[exc.errno]


def show(device: ZramDevice, name: str) -> str:
    show_text = attrs.BY_NAME[name].show
    assert show_text is not None
    return show_text(device)


def corpus(pages: int) -> bytes:
    text = b"".join(p.read_bytes() for p in sorted(Path(attrs.__file__).parent.glob("*.py")))
    text *= -(-(pages * 2500 + PAGE) // len(text))  # long enough: no page runs past the end
    return b"".join(text[i * 2500 : i * 2500 + PAGE] for i in range(pages))


def device_with(*recomp: str, size: int = 4 * MiB) -> ZramDevice:
    device = ZramDevice()
    for prio, name in enumerate(recomp, start=1):
        assert isinstance(write_attr(device, "recomp_algorithm", f"algo={name} priority={prio}"), int)
    device.set_disksize(size)
    return device


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("algo=zstd", 9),
        ("algo=zstd priority=3", 20),
        ("priority=2 algo=deflate", 23),
        ("algo=zstd priority=0", "EINVAL"),
        ("algo=zstd priority=4", "EINVAL"),
        ("priority=1", "EINVAL"),  # no algo
        ("algo", "EINVAL"),
        ("algo=no-such", "EINVAL"),
        ("algo=" + "x" * 128, "E2BIG"),
        ("algo=zstd priority=x", "EINVAL"),
    ],
)
def test_recomp_algorithm_store(text: str, result: int | str) -> None:
    device = ZramDevice()
    assert write_attr(device, "recomp_algorithm", text) == result
    if isinstance(result, str):
        assert show(device, "recomp_algorithm") == ""


def test_recomp_algorithm_show_and_busy() -> None:
    device = ZramDevice()
    write_attr(device, "recomp_algorithm", "algo=zstd")
    write_attr(device, "recomp_algorithm", "algo=lz4hc priority=3")
    assert show(device, "recomp_algorithm") == (
        "#1: lzo lz4 lz4hc [zstd] deflate \n#3: lzo lz4 [lz4hc] zstd deflate \n"
    )
    device.set_disksize(MiB)
    assert write_attr(device, "recomp_algorithm", "algo=deflate") == "EBUSY"
    device.reset()
    assert show(device, "recomp_algorithm") == ""  # reset forgets them


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("type", "EINVAL"),
        ("threshold=3625", "EINVAL"),  # not below huge_class_size
        ("threshold=x", "EINVAL"),
        ("max_pages=x", "EINVAL"),
        ("algo=lz4", "EINVAL"),  # not a recompression algorithm of this device
        ("priority=2", "EINVAL"),  # nothing at priority 2
    ],
)
def test_recompress_errors(text: str, result: str) -> None:
    device = device_with("zstd")
    device.write(0, corpus(16))
    before = device.statistics()
    assert write_attr(device, "recompress", text) == result
    assert device.statistics() == before


def test_recompress_needs_an_initialised_device_and_algorithms() -> None:
    device = ZramDevice()
    assert write_attr(device, "recompress", "type=idle") == "EINVAL"
    plain = device_with()
    assert write_attr(plain, "recompress", "type=huge") == "EINVAL"  # no secondary algorithm


def test_recompress_the_corpus_shrinks_it_and_reads_back() -> None:
    data = corpus(512)
    device = device_with("zstd", size=len(data))
    device.write(0, data)
    before = device.statistics().mm
    assert write_attr(device, "recompress", "type=huge_idle") == 14  # nothing is idle yet
    assert device.statistics().mm == before
    device.mark_idle(None)
    write_attr(device, "recompress", "type=idle")
    after = device.statistics().mm
    assert after.compr_data_size < 0.9 * before.compr_data_size
    assert after.orig_data_size == before.orig_data_size
    assert device.read(0, len(data)) == data
    state = attrs.read_block_state(device, 0, 40 * 512).decode().splitlines()
    flags = [line.split()[2] for line in state]
    assert sum(f[4] == "r" for f in flags) > 256  # most pages went to zstd
    assert all(f[3] == "." for f in flags if f[4] == "r")  # recompressed pages are not idle
    device.check_invariants()


def test_huge_pages_recompress_or_become_incompressible() -> None:
    rnd = random.Random(3)
    # Random letters of a 16-letter alphabet: no repeats for lzo to find (huge), but 4 bits a
    # byte for zstd's entropy coder; and pure noise, which nothing shrinks.
    squeezable = [bytes(rnd.choice(b"abcdefghijklmnop") for _ in range(PAGE)) for _ in range(8)]
    noise = [rnd.randbytes(PAGE) for _ in range(8)]
    device = device_with("zstd")
    device.write(0, b"".join(squeezable + noise))
    mm = device.statistics().mm
    assert mm.huge_pages == 16
    write_attr(device, "recompress", "type=huge")
    mm = device.statistics().mm
    assert mm.huge_pages == 8 and mm.huge_pages_since == 16  # since never goes down
    state = attrs.read_block_state(device, 0, 40 * 16).decode().splitlines()
    flags = [line.split()[2] for line in state]
    assert [f[4] for f in flags[:8]] == ["r"] * 8
    assert [f[5] for f in flags[8:]] == ["n"] * 8  # the last algorithm failed: INCOMPRESSIBLE
    assert device.read(0, 16 * PAGE) == b"".join(squeezable + noise)
    # INCOMPRESSIBLE pages are not tried again.
    before = device.statistics()
    write_attr(device, "recompress", "type=huge")
    assert device.statistics() == before
    device.check_invariants()


def test_threshold_and_max_pages() -> None:
    data = corpus(64)
    device = device_with("zstd", size=len(data))
    device.write(0, data)
    write_attr(device, "recompress", "max_pages=10")
    recompressed = sum(
        line.split()[2][4] == "r" for line in attrs.read_block_state(device, 0, 40 * 64).decode().splitlines()
    )
    assert 0 < recompressed <= 10
    other = device_with("zstd", size=len(data))
    other.write(0, data)
    write_attr(other, "recompress", "threshold=3000")  # only objects of 3000 bytes or more, kept under it
    for line in attrs.read_block_state(other, 0, 40 * 64).decode().splitlines():
        index = int(line.split()[0])
        located = other.stored_object(index)
        if line.split()[2][4] == "r":
            assert located is not None and located[1] < 3000


def test_an_overwrite_forgets_the_priority_and_writeback_takes_incompressible(tmp_path: Path) -> None:
    backing = tmp_path / "back.img"
    backing.write_bytes(bytes(64 * PAGE))
    device = ZramDevice()
    write_attr(device, "recomp_algorithm", "algo=zstd")
    device.set_backing_dev(str(backing))
    device.set_disksize(MiB)
    noise = random.Random(4).randbytes(4 * PAGE)
    device.write(0, noise)
    write_attr(device, "recompress", "type=huge")
    assert write_attr(device, "writeback", "incompressible") == len("incompressible")
    assert device.statistics().bd.bd_count == 4
    assert device.read(0, 4 * PAGE) == noise
    data = corpus(4)
    device.write(8 * PAGE, data)
    write_attr(device, "recompress", "type=idle")  # nothing idle: nothing happens
    device.mark_idle(None)
    write_attr(device, "recompress", "type=idle")
    device.write(8 * PAGE, data[:PAGE])  # rewritten by the primary again
    line = attrs.read_block_state(device, 40 * 4, 40).decode()
    assert line.split()[0] == "8" and line.split()[2][4] == "."
    assert device.read(8 * PAGE, 4 * PAGE) == data
    device.check_invariants()

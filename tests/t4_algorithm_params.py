"""Tier 4: ``algorithm_params`` -- its parsing and errnos, the same table against zramd's
attribute layer, a zramd mount and the kernel's zram0 (6.18 has the file), and its effect: the
parameters apply at the next ``disksize`` write, and ``reset`` clears them.
"""

from __future__ import annotations

import errno
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kernel_zram import kernel_zram_unavailable
from tests.mount_util import zramd_mount
from zramd.core import attrs, compress
from zramd.core.engine import ZramDevice
from zramd.core.errors import ZramError

DICT = Path(__file__).resolve()  # any readable file will do as a dictionary

# (text written, result) on an uninitialised device whose algorithm is the default. The kernel's
# default is lzo-rle and zramd's lzo: "{default}" stands for it. Measured on zram0 (6.18).
ROWS: list[tuple[str, int | str]] = [
    ("", 0),
    ("level=3", 7),
    ("priority=0 level=3", 18),
    ("priority=0", 10),
    ("level=-5", 8),
    ("foo=bar", 7),  # unknown keys are ignored
    ("level=3 whatever=1", 18),
    ("algo={default} level=1", -1),  # length filled in below
    (f"dict={DICT}", -1),
    ("deflate.winbits=12", 18),  # taken on any algorithm; only deflate uses it
    ("level", "EINVAL"),  # every key needs a value
    ("level=", "EINVAL"),
    ("priority", "EINVAL"),
    ("priority=1", "MULTI"),  # zramd has recompression (CONFIG_ZRAM_MULTI_COMP); this kernel not
    ("priority=4", "EINVAL"),
    ("priority=-1", "EINVAL"),
    ("priority=abc", "EINVAL"),
    ("level=abc", "EINVAL"),
    ("level=99999999999", "ERANGE"),
    ("deflate.winbits=abc", "EINVAL"),
    ("algo=lz4", "EINVAL"),  # not the selected algorithm
    ("algo=no-such", "EINVAL"),
    ("dict=/nonexistent/dictionary", "EINVAL"),
]


def _rows(default: str, multi_comp: bool = True) -> list[tuple[str, int | str]]:
    out: list[tuple[str, int | str]] = []
    for text, result in ROWS:
        text = text.replace("{default}", default)
        if result == "MULTI":
            result = len(text) if multi_comp else "EINVAL"
        out.append((text, len(text) if result == -1 else result))
    return out


def _write(path: Path, text: str) -> int | str:
    fd = os.open(path, os.O_WRONLY)
    try:
        return os.write(fd, text.encode())
    except OSError as exc:
        return errno.errorcode[exc.errno or 0]
    finally:
        os.close(fd)


@pytest.mark.parametrize(("text", "result"), _rows("lzo"), ids=[r[0] or "empty" for r in _rows("lzo")])
def test_attribute_layer(text: str, result: int | str) -> None:
    device = ZramDevice()
    try:
        got: int | str = attrs.BY_NAME["algorithm_params"].write(device, text.encode())
    except ZramError as exc:
        got = errno.errorcode[exc.errno]
    assert got == result
    if isinstance(result, str):
        assert device.algorithm_params is None  # a refused write changes nothing


@pytest.fixture(scope="module")
def mounted_sys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with zramd_mount(tmp_path_factory.mktemp("params") / "mnt", "--size", "0") as mount:
        yield mount.sys


def test_table_through_a_mount(mounted_sys: Path) -> None:
    for text, result in _rows("lzo"):
        (mounted_sys / "reset").write_text("1")
        assert _write(mounted_sys / "algorithm_params", text) == result, text
    assert os.stat(mounted_sys / "algorithm_params").st_mode & 0o777 == 0o200
    with pytest.raises(PermissionError):
        (mounted_sys / "algorithm_params").read_bytes()


def test_table_on_the_kernels_zram() -> None:
    reason = kernel_zram_unavailable()
    if reason:
        pytest.skip(reason)
    sysdir = Path("/sys/block/zram0")
    if not (sysdir / "algorithm_params").exists():
        pytest.skip("the kernel's zram has no algorithm_params (before 6.12)")
    try:
        multi_comp = (sysdir / "recomp_algorithm").exists()
        for text, result in _rows("lzo-rle", multi_comp):
            (sysdir / "reset").write_text("1")
            assert _write(sysdir / "algorithm_params", text) == result, text
        # Accepted at any time, also once initialised.
        (sysdir / "disksize").write_text("1M")
        assert _write(sysdir / "algorithm_params", "level=1") == 7
    finally:
        (sysdir / "reset").write_text("1")


def _corpus_pages(count: int) -> bytes:
    text = b"".join(p.read_bytes() for p in sorted(Path(attrs.__file__).parent.glob("*.py")))
    pages = [text[i * 3000 : i * 3000 + 4096] for i in range(count)]
    return b"".join(p.ljust(4096, b"\0") for p in pages)


def _compressed(algorithm: str, params: str | None, data: bytes) -> int:
    device = ZramDevice()
    device.set_comp_algorithm(algorithm)
    if params is not None:
        attrs.BY_NAME["algorithm_params"].write(device, params.encode())
    device.set_disksize(len(data))
    try:
        device.write(0, data)
        assert device.read(0, len(data)) == data
        return device.statistics().mm.compr_data_size
    finally:
        device.reset()


@pytest.mark.parametrize(
    ("algorithm", "weaker", "stronger"),
    [
        ("zstd", "level=1", "level=19"),
        ("deflate", "level=1", "level=9"),
        ("deflate", "deflate.winbits=9", "deflate.winbits=15"),
        ("lz4", "level=64", None),  # acceleration 64 against the default 1
        ("lz4hc", "level=1", "level=12"),
    ],
)
def test_parameters_apply_at_disksize(algorithm: str, weaker: str, stronger: str | None) -> None:
    if algorithm not in compress.algorithm_names():
        pytest.skip(f"{algorithm} is not available here")
    data = _corpus_pages(128)
    assert _compressed(algorithm, weaker, data) > _compressed(algorithm, stronger, data)


@pytest.mark.parametrize("algorithm", ["zstd", "lz4", "lz4hc"])
def test_a_dictionary_helps_pages_like_it(tmp_path: Path, algorithm: str) -> None:
    if algorithm not in compress.algorithm_names():
        pytest.skip(f"{algorithm} is not available here")
    rnd = random.Random(5)
    vocabulary = [rnd.randbytes(16).hex().encode() for _ in range(64)]
    dictionary = tmp_path / "dict"
    dictionary.write_bytes(b" ".join(vocabulary))
    pages = [b" ".join(rnd.choice(vocabulary) for _ in range(124)).ljust(4096, b".") for _ in range(64)]
    data = b"".join(pages)
    assert _compressed(algorithm, f"dict={dictionary}", data) < 0.8 * _compressed(algorithm, None, data)


def test_params_wait_for_disksize_and_reset_clears_them() -> None:
    device = ZramDevice()
    device.set_comp_algorithm("deflate")
    attrs.BY_NAME["algorithm_params"].write(device, b"deflate.winbits=30")
    with pytest.raises(ZramError) as refused:  # the backend refuses them when it is made
        device.set_disksize(1 << 20)
    assert refused.value.errno == errno.EINVAL and not device.initialized
    attrs.BY_NAME["algorithm_params"].write(device, b"level=9")  # a new write replaces them all
    device.set_disksize(1 << 20)
    assert device.algorithm_params == compress.Params(level=9)
    device.reset()
    assert device.algorithm_params is None

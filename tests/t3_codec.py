"""Tier 3: the page codecs and the compression streams.

The native codec (liblzo2 and liblz4 called from the compiled core, zramd/core/_codec_c.pyx) must
give the same bytes as python-lzo and python-lz4 -- the Python codec, `zramd.core.codec` -- page
for page, read what they write, find the same fill words, and refuse bad jobs before it touches
memory. The streams must split a batch so that every job runs exactly once, whatever the count.
"""

from __future__ import annotations

import random
import threading
import zlib
from array import array
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import lz4.block
import lzo
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from zramd.core import codec as python_codec
from zramd.core import compress, engine
from zramd.core.codec import COMPRESS_STRIDE, FAILED, FILLED, fill_word
from zramd.core.streams import MIN_JOBS_PER_STREAM, CompressionStreams
from zramd.core.units import PAGE_SIZE

ALGORITHMS = compress.algorithm_names()
# Each algorithm's bytes straight from its library, with the kernel's defaults.
REFERENCE: dict[str, Callable[[bytes], bytes]] = {
    "lzo": lambda page: lzo.compress(page, 1, False),
    "lz4": lambda page: lz4.block.compress(page, store_size=False),
    "lz4hc": lambda page: lz4.block.compress(page, mode="high_compression", compression=9, store_size=False),
    "zstd": lambda page: zstandard.ZstdCompressor(level=3).compress(page),
    "deflate": lambda page: _deflate(page),
}


def _deflate(page: bytes) -> bytes:
    stream = zlib.compressobj(6, zlib.DEFLATED, -11, 9)
    return stream.compress(page) + stream.flush()


def native() -> ModuleType:
    if not engine.COMPILED_IN_USE:
        pytest.skip(f"the compiled core is not in use: {engine.REASON}")
    return engine.codec_module


def sample_pages() -> list[bytes]:
    """Pages of every kind the write path meets: text and binary from this machine's files, random,
    half random, runs, and same-filled ones (zero, all ones, a word whose last byte differs)."""
    rng = random.Random(12)
    pages = [bytes(PAGE_SIZE), b"\xff" * PAGE_SIZE, (b"\x01" + bytes(7)) * 512, bytes(4095) + b"\x01"]
    pages += [
        rng.randbytes(PAGE_SIZE),
        rng.randbytes(2048) + bytes(2048),
        b"ab" * 2048,
        b"abcdefg" * 585 + b"x",
    ]
    for path in [*sorted(Path("/usr/lib/python3.11").glob("*.py"))[:40], Path("/bin/ls"), Path("/bin/bash")]:
        data = path.read_bytes()
        pages += [data[i : i + PAGE_SIZE] for i in range(0, len(data) - PAGE_SIZE + 1, 3 * PAGE_SIZE)][:8]
    return [page for page in pages if len(page) == PAGE_SIZE]


PAGES = sample_pages()


def jobs(count: int, stride: int) -> tuple[array[int], array[int], array[int], array[int]]:
    offsets = array("q", [k * PAGE_SIZE for k in range(count)])
    return (
        offsets,
        array("q", [k * stride for k in range(count)]),
        array("q", bytes(8 * count)),
        array("Q", bytes(8 * count)),
    )


def compress_all(codec: object, pages: list[bytes]) -> list[bytes | int]:
    """Every page through `codec.compress_jobs`: the compressed bytes, or ("fill", word)."""
    src = b"".join(pages)
    dst = bytearray(len(pages) * COMPRESS_STRIDE)
    src_off, dst_off, result, fills = jobs(len(pages), COMPRESS_STRIDE)
    codec.compress_jobs(0, src, dst, src_off, dst_off, result, fills, 0, len(pages))  # type: ignore[attr-defined]
    out: list[bytes | int] = []
    for k in range(len(pages)):
        assert result[k] != FAILED
        if result[k] == FILLED:
            out.append(fills[k])
        else:
            out.append(bytes(dst[dst_off[k] : dst_off[k] + result[k]]))
    return out


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_python_codec_is_the_packages(algorithm: str) -> None:
    got = compress_all(python_codec.PageCodec(algorithm), PAGES)
    for page, out in zip(PAGES, got, strict=True):
        word = fill_word(page)
        assert out == (word if word >= 0 else REFERENCE[algorithm](page))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_native_codec_gives_the_packages_bytes(algorithm: str) -> None:
    module = native()
    assert module.COMPRESS_STRIDE == COMPRESS_STRIDE and (module.FAILED, module.FILLED) == (FAILED, FILLED)
    expected = compress_all(python_codec.PageCodec(algorithm), PAGES)
    assert compress_all(module.PageCodec(algorithm), PAGES) == expected
    assert sum(isinstance(out, int) for out in expected) == 4  # zeros, ones, a word, "ab" repeated


@settings(max_examples=150, deadline=None)
@given(
    algorithm=st.sampled_from(ALGORITHMS),
    pieces=st.lists(
        st.tuples(st.binary(min_size=1, max_size=64), st.integers(1, 400)), min_size=1, max_size=12
    ),
)
def test_native_codec_matches_on_any_page(algorithm: str, pieces: list[tuple[bytes, int]]) -> None:
    module = native()
    page = b"".join(chunk * times for chunk, times in pieces)
    page = (page * (PAGE_SIZE // len(page) + 1))[:PAGE_SIZE]
    assert compress_all(module.PageCodec(algorithm), [page]) == compress_all(
        python_codec.PageCodec(algorithm), [page]
    )


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("build", ["python", "native"])
def test_decompress_restores_and_fills(algorithm: str, build: str) -> None:
    module = python_codec if build == "python" else native()
    codec = module.PageCodec(algorithm)
    pages = PAGES[:24]
    packed = compress_all(python_codec.PageCodec(algorithm), pages)  # the packages' output
    src = bytearray()
    src_off, dst_off, result, fills = jobs(len(pages), PAGE_SIZE)
    for k, out in enumerate(packed):
        if isinstance(out, int):
            result[k], fills[k], src_off[k] = FILLED, out, -1
        else:
            src_off[k], result[k] = len(src), len(out)
            src += out
    dst = bytearray(len(pages) * PAGE_SIZE)
    codec.decompress_jobs(0, bytes(src), dst, src_off, dst_off, result, fills, 0, len(pages))
    assert list(result) == [0] * len(pages)
    assert bytes(dst) == b"".join(pages)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("build", ["python", "native"])
def test_corrupt_or_truncated_objects_fail_cleanly(algorithm: str, build: str) -> None:
    module = python_codec if build == "python" else native()
    codec = module.PageCodec(algorithm)
    good = REFERENCE[algorithm](PAGES[10])
    rng = random.Random(3)
    cases = [good[: len(good) // 2], good[:-1], rng.randbytes(len(good)), b"\x00", good + b"\x00" * 9]
    for case in cases:
        src_off, dst_off, result, fills = jobs(1, PAGE_SIZE)
        src_off[0], result[0] = 0, len(case)
        codec.decompress_jobs(0, case, bytearray(PAGE_SIZE), src_off, dst_off, result, fills, 0, 1)
        assert result[0] in (0, FAILED)
    # Those that lzo and lz4 themselves reject must be rejected (the first two at least).
    for case in cases[:2]:
        src_off, dst_off, result, fills = jobs(1, PAGE_SIZE)
        result[0] = len(case)
        codec.decompress_jobs(0, case, bytearray(PAGE_SIZE), src_off, dst_off, result, fills, 0, 1)
        assert result[0] == FAILED


def test_native_codec_refuses_bad_jobs_before_running_any() -> None:
    module = native()
    codec = module.PageCodec("lzo", 2)
    src = bytes(3 * PAGE_SIZE)
    dst = bytearray(2 * COMPRESS_STRIDE)
    src_off, dst_off, result, fills = jobs(3, COMPRESS_STRIDE)
    result[0] = 77
    with pytest.raises(ValueError, match="destination"):  # job 2's output would run past dst
        codec.compress_jobs(0, src, dst, src_off, dst_off, result, fills, 0, 3)
    assert result[0] == 77  # nothing ran
    src_off[1] = 2 * PAGE_SIZE + 1
    with pytest.raises(ValueError, match="source"):
        codec.compress_jobs(1, src, dst, src_off, dst_off, result, fills, 0, 2)
    src_off[1] = -PAGE_SIZE
    with pytest.raises(ValueError, match="source"):
        codec.compress_jobs(1, src, dst, src_off, dst_off, result, fills, 0, 2)
    with pytest.raises(ValueError, match="stream"):
        codec.compress_jobs(2, src, dst, src_off, dst_off, result, fills, 0, 1)
    with pytest.raises(ValueError, match="job arrays"):
        codec.compress_jobs(0, src, dst, src_off, dst_off, result, fills, 0, 4)
    src_off[0], result[0] = 0, PAGE_SIZE + 1  # a source length past the buffer
    with pytest.raises(ValueError, match="outside"):
        codec.decompress_jobs(
            0, bytes(PAGE_SIZE), bytearray(PAGE_SIZE), src_off, dst_off, result, fills, 0, 1
        )
    with pytest.raises(KeyError, match="842"):
        module.PageCodec("842")  # no such backend here


@pytest.mark.parametrize("count", [1, 2, 3, 5])
@pytest.mark.parametrize("jobs_total", [0, 1, 7, MIN_JOBS_PER_STREAM * 2, 256, 257])
def test_streams_run_every_job_once(count: int, jobs_total: int) -> None:
    streams = CompressionStreams(count)
    try:
        seen = array("q", bytes(8 * jobs_total))
        threads: set[str] = set()
        lock = threading.Lock()

        def job(stream: int, marks: array[int], first: int, last: int) -> None:
            assert 0 <= stream < count
            with lock:
                threads.add(threading.current_thread().name)
            for k in range(first, last):
                marks[k] += 1

        for _ in range(3):
            streams.run(job, jobs_total, seen)
        assert list(seen) == [3] * jobs_total
        if count > 1 and jobs_total >= count * MIN_JOBS_PER_STREAM:
            assert len(threads) == count  # really spread over the workers
    finally:
        streams.close()


def test_streams_raise_a_parts_error_after_all_parts_finish() -> None:
    streams = CompressionStreams(3)
    done = array("q", bytes(8 * 96))

    def job(stream: int, first: int, last: int) -> None:
        for k in range(first, last):
            done[k] = 1
        if stream == 1:
            raise RuntimeError("part 1 failed")

    try:
        with pytest.raises(RuntimeError, match="part 1"):
            streams.run(job, 96)
        assert list(done) == [1] * 96
        streams.run(lambda stream, first, last: None, 96)  # still usable afterwards
    finally:
        streams.close()
    with pytest.raises(ValueError):
        CompressionStreams(0)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_parallel_codec_gives_the_same_bytes(algorithm: str) -> None:
    """A 256-page batch split over 2 streams (the native codec releases the GIL) equals 1 stream."""
    module = engine.codec_module
    pages = (PAGES * 4)[:256]
    src = b"".join(pages)
    outs = []
    for count in (1, 2):
        streams = CompressionStreams(count)
        codec = module.PageCodec(algorithm, count)
        dst = bytearray(len(pages) * COMPRESS_STRIDE)
        src_off, dst_off, result, fills = jobs(len(pages), COMPRESS_STRIDE)
        try:
            streams.run(codec.compress_jobs, len(pages), src, dst, src_off, dst_off, result, fills)
        finally:
            streams.close()
        outs.append((bytes(dst), list(result), list(fills)))
    assert outs[0] == outs[1]

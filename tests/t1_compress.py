"""Tier 1: compression backends -- round trips, corrupt input, the comp_algorithm rendering."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from zramd.core import compress
from zramd.core.units import PAGE_SIZE

SAMPLE = (Path(compress.__file__).read_bytes() * 4)[:PAGE_SIZE]
PAGES = [
    SAMPLE,
    bytes(PAGE_SIZE),
    os.urandom(PAGE_SIZE),
    b"ABCDEFGH" * 512,
    bytes(PAGE_SIZE - 1) + b"\x01",
]


@pytest.mark.parametrize("name", compress.algorithm_names())
@pytest.mark.parametrize("page", PAGES, ids=["text", "zeros", "random", "word", "one-byte"])
def test_round_trip(name: str, page: bytes) -> None:
    backend = compress.lookup(name)
    data = backend.compress(page)
    assert isinstance(data, bytes)
    assert backend.decompress(data) == page


@pytest.mark.parametrize("name", compress.algorithm_names())
def test_text_compresses(name: str) -> None:
    assert len(compress.lookup(name).compress(SAMPLE)) < PAGE_SIZE * 0.6


@pytest.mark.parametrize("name", compress.algorithm_names())
@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_corrupt_input_raises(name: str, damage: str) -> None:
    backend = compress.lookup(name)
    data = bytearray(backend.compress(SAMPLE))
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        for i in range(0, len(data), 7):
            data[i] ^= 0xA5
    elif damage == "garbage":
        data = bytearray(os.urandom(len(data)))
    else:
        data = bytearray()
    try:
        outcome = backend.decompress(bytes(data))
    except compress.DecompressError as exc:
        outcome = str(exc).encode()
        assert outcome.startswith(name.encode())
    else:
        # Some damage still decodes to a full page; it must then be a page, never short data.
        assert len(outcome) == PAGE_SIZE


@pytest.mark.parametrize("name", compress.algorithm_names())
def test_short_output_is_an_error(name: str) -> None:
    backend = compress.lookup(name)
    half = backend.compress(SAMPLE[: PAGE_SIZE // 2])  # a valid stream of half a page
    with pytest.raises(compress.DecompressError):
        backend.decompress(half)


def test_format_comp_algorithm() -> None:
    assert compress.format_comp_algorithm("lzo") == "[lzo] lz4 \n"
    assert compress.format_comp_algorithm("lz4") == "lzo [lz4] \n"
    assert compress.algorithm_names()[0] == compress.DEFAULT_ALGORITHM == "lzo"


def test_lookup_unknown_names_choices() -> None:
    with pytest.raises(KeyError, match="lzo, lz4"):
        compress.lookup("zstd")


@pytest.mark.parametrize("name", compress.algorithm_names())
def test_threads_do_not_share_state(name: str) -> None:
    backend = compress.lookup(name)
    pages = [os.urandom(64) * 64 for _ in range(32)]
    errors: list[str] = []

    def worker(seed: int) -> None:
        for i in range(200):
            page = pages[(seed + i) % len(pages)]
            if backend.decompress(backend.compress(page)) != page:
                errors.append(f"thread {seed} round {i}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []

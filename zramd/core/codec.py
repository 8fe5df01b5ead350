"""Page codecs for the device's batch path: many pages compressed or decompressed in one call,
between buffers, by one of the compression streams.

Owns: `PageCodec`, the Python implementation over the `zramd.core.compress` backends (python-lzo
and lz4). Its twin `zramd/core/_codec_c.pyx` calls liblzo2 and liblz4 directly with the GIL
released and is what the compiled device imports in its place (setup.py rewrites the import);
both produce the same bytes for the same page, which the tests check page for page.
Must not: know about slots, the pool or the huge rule, keep state between calls other than each
stream's work memory, or import trio or pyfuse3.

A batch is described by jobs k in [first, last) of four arrays: the source offset, the
destination offset, the result and the fill word. For compression the source is one whole page;
a page that is one 8-byte word repeated (zram's ``page_same_filled``) is not compressed: its
result is `FILLED` and its word goes to ``fills[k]``; otherwise the result is the compressed
length written at the destination (at most `COMPRESS_STRIDE` bytes), or `FAILED`. For
decompression a job whose result is `FILLED` on entry becomes the page of ``fills[k]`` repeated;
any other gives the source length, and the destination receives exactly one page. On return the
result is 0, or `FAILED` when the object is not one page's compressed form (corrupt, truncated).
"""

from __future__ import annotations

from typing import Protocol

from zramd.core import compress
from zramd.core.compress import DecompressError
from zramd.core.units import PAGE_SIZE

# Room for one compressed page: at least lzo1x's worst case for 4096 bytes (4096 + 4096/16 + 64 +
# 3 = 4419) and LZ4_compressBound(4096) (4128), rounded up to a cache line.
COMPRESS_STRIDE = 4480
FAILED = -1
FILLED = -2
_WORDS_PER_PAGE = PAGE_SIZE // 8
_ZERO_PAGE = bytes(PAGE_SIZE)


def fill_word(page: bytes) -> int:
    """The 8-byte little-endian word `page` is filled with, or -1 when it is not one word repeated:
    zero pages by one compare, others by the first/last word, then a count of the first word
    (512 non-overlapping matches tile the page exactly)."""
    if page == _ZERO_PAGE:
        return 0
    first = page[:8]
    if first == page[-8:] and page.count(first) == _WORDS_PER_PAGE:
        return int.from_bytes(first, "little")
    return -1


class IntArray(Protocol):
    def __getitem__(self, index: int, /) -> int: ...
    def __setitem__(self, index: int, value: int, /) -> None: ...


class PageCodec:
    """One algorithm's batch compressor and decompressor for `streams` concurrent callers."""

    def __init__(self, name: str, streams: int = 1, params: compress.Params | None = None) -> None:
        backend = compress.lookup(name)
        if streams < 1:
            raise ValueError("a codec needs at least one stream")
        self.name = backend.name
        self.streams = streams
        self._compress, self._decompress = backend.functions(params)  # ValueError: bad params

    def compress_jobs(
        self,
        stream: int,
        src: bytes | bytearray | memoryview,
        dst: bytearray | memoryview,
        src_off: IntArray,
        dst_off: IntArray,
        result: IntArray,
        fills: IntArray,
        first: int,
        last: int,
    ) -> None:
        """Compress the page at ``src[src_off[k]:]`` to ``dst[dst_off[k]:]`` for each job k in
        [first, last); ``result[k]`` = the compressed length, `FILLED` (the word in
        ``fills[k]``) or `FAILED`."""
        self._check_stream(stream)
        compress_page = self._compress
        for k in range(first, last):
            start = src_off[k]
            page = bytes(src[start : start + PAGE_SIZE])
            word = fill_word(page)
            if word >= 0:
                fills[k] = word
                result[k] = FILLED
                continue
            try:
                data = compress_page(page)
            except Exception:
                result[k] = FAILED
                continue
            at = dst_off[k]
            dst[at : at + len(data)] = data
            result[k] = len(data)

    def decompress_jobs(
        self,
        stream: int,
        src: bytes | bytearray | memoryview,
        dst: bytearray | memoryview,
        src_off: IntArray,
        dst_off: IntArray,
        result: IntArray,
        fills: IntArray,
        first: int,
        last: int,
    ) -> None:
        """For each job k in [first, last), fill the page at ``dst[dst_off[k]:]`` with
        ``fills[k]`` when ``result[k]`` is `FILLED`, else decompress ``result[k]`` bytes at
        ``src[src_off[k]:]`` into it; ``result[k]`` becomes 0, or `FAILED` when they are not
        exactly one page's compressed form."""
        self._check_stream(stream)
        decompress_page = self._decompress
        for k in range(first, last):
            at = dst_off[k]
            if result[k] == FILLED:
                dst[at : at + PAGE_SIZE] = (
                    _ZERO_PAGE if fills[k] == 0 else fills[k].to_bytes(8, "little") * _WORDS_PER_PAGE
                )
                result[k] = 0
                continue
            start = src_off[k]
            try:
                page = decompress_page(bytes(src[start : start + result[k]]))
            except DecompressError:
                result[k] = FAILED
                continue
            dst[at : at + PAGE_SIZE] = page
            result[k] = 0

    def _check_stream(self, stream: int) -> None:
        if not 0 <= stream < self.streams:
            raise ValueError(f"stream {stream} out of range (the codec has {self.streams})")

"""Compression backends: one 4 KiB page in, compressed bytes out, and back to exactly 4096 bytes.

Owns: the ordered registry of backends (the kernel's backend-table order: lzo, lz4, lz4hc,
zstd, deflate), name lookup, and the `comp_algorithm` rendering (``[lzo] lz4 lz4hc zstd deflate
\\n``). A backend whose library cannot be imported is simply absent, as in a kernel built
without it. Each backend is a tiny object with two bound functions so the device's per-page path
makes exactly one call per page.

Must not: know about slots, pools or size classes, keep state between calls, or import trio or
pyfuse3. The huge-page rule (store raw when the result is too large) belongs to the device.

Backends, each with the default of the kernel's ``drivers/block/zram/backend_*.c``:
    lzo      python-lzo, ``lzo1x_1_compress`` (level 1), raw stream with no header: the same
             format as the kernel's ``lzo`` backend (byte-identical on about 43% of pages, -0.11%
             in total).
    lz4      lz4.block, default mode (acceleration 1), no stored size: the kernel's ``lz4``.
    lz4hc    lz4.block's high-compression mode at LZ4HC_DEFAULT_CLEVEL (9), no stored size;
             read back like lz4.
    zstd     the `zstandard` binding, level 3 (``zstd_default_clevel``): a frame with the
             content size and no checksum, as ``zstd_compress_cctx`` writes it with parameters
             for a 4096-byte source. `zstandard` rather than the standard library's
             ``compression.zstd`` (3.14+) or its backport: its compressor and decompressor
             contexts are reusable, so a page costs no context allocation (one pair per thread).
    deflate  the standard library's zlib: raw deflate, level 6 (Z_DEFAULT_COMPRESSION), window
             bits 11 and memLevel 9 (MAX_MEM_LEVEL), as the kernel's ``deflate`` backend.
    842      absent: no maintained Python library implements it.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lz4.block
import lzo

from zramd.core.units import PAGE_SIZE

try:
    import zstandard
except ImportError:  # zstd is then absent, like a kernel without CONFIG_ZRAM_BACKEND_ZSTD
    zstandard = None  # type: ignore[assignment]

DEFAULT_ALGORITHM = "lzo"


class DecompressError(Exception):
    """Stored bytes that do not decompress to exactly one page (corrupt or truncated object)."""


@dataclass(frozen=True, slots=True)
class Backend:
    """A compression algorithm for whole pages.

    Attributes:
        name: the name users write to ``comp_algorithm`` and pass as ``--algorithm``.
        compress: page (bytes, 4096 long) -> compressed bytes.
        decompress: compressed bytes -> the page (bytes, 4096 long); raises `DecompressError`.
    """

    name: str
    compress: Callable[[bytes], bytes]
    decompress: Callable[[bytes], bytes]
    configure: Callable[[Params], Functions] | None = None  # None: the algorithm takes no parameters

    def functions(self, params: Params | None) -> Functions:
        """(compress, decompress) with `params` (``algorithm_params``) applied; the defaults
        for None or no parameter set. A parameter the backend cannot use raises ValueError."""
        if params is None or params.is_default() or self.configure is None:
            return self.compress, self.decompress
        return self.configure(params)


Functions = tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]


@dataclass(frozen=True, slots=True)
class Params:
    """An ``algorithm_params`` setting (the kernel's ``zcomp_params``): None = not set, so the
    backend's default applies.

    Attributes:
        level: the level (lz4: the acceleration).  dictionary: a dictionary's bytes (zstd, lz4,
        lz4hc).  winbits: deflate's window bits.
    """

    level: int | None = None
    dictionary: bytes | None = None
    winbits: int | None = None

    def is_default(self) -> bool:
        return self.level is None and self.dictionary is None and self.winbits is None


def _lzo_compress(page: bytes, _compress: Callable[..., bytes] = lzo.compress) -> bytes:
    return _compress(page, 1, False)


def _lzo_decompress(
    data: bytes, _decompress: Callable[..., bytes] = lzo.decompress, _error: type[Exception] = lzo.error
) -> bytes:
    try:
        page = _decompress(data, False, PAGE_SIZE)
    except _error as exc:
        raise DecompressError(f"lzo: {exc}") from None
    if len(page) != PAGE_SIZE:
        raise DecompressError(f"lzo: decompressed to {len(page)} bytes, expected {PAGE_SIZE}")
    return page


def _lz4_compress(page: bytes, _compress: Callable[..., bytes] = lz4.block.compress) -> bytes:
    return _compress(page, store_size=False)


def _lz4_decompress(
    data: bytes,
    _decompress: Callable[..., bytes] = lz4.block.decompress,
    _error: type[Exception] = lz4.block.LZ4BlockError,
    name: str = "lz4",
) -> bytes:
    try:
        page = _decompress(data, uncompressed_size=PAGE_SIZE)
    except _error as exc:
        raise DecompressError(f"{name}: {exc}") from None
    if len(page) != PAGE_SIZE:
        raise DecompressError(f"{name}: decompressed to {len(page)} bytes, expected {PAGE_SIZE}")
    return page


LZ4HC_DEFAULT_CLEVEL = 9


def _lz4hc_compress(page: bytes, _compress: Callable[..., bytes] = lz4.block.compress) -> bytes:
    return _compress(page, mode="high_compression", compression=LZ4HC_DEFAULT_CLEVEL, store_size=False)


def _lz4hc_decompress(data: bytes) -> bytes:
    return _lz4_decompress(data, name="lz4hc")  # the same block format


def _lz4_family(name: str, high: bool) -> Callable[[Params], Functions]:
    """lz4 and lz4hc with a level (lz4: the acceleration, as ``LZ4_compress_fast``'s) and a
    dictionary (``LZ4_loadDict``'s: the 64 KiB before each page)."""

    def configure(params: Params) -> Functions:
        extra: dict[str, Any] = {"store_size": False}
        if high:
            extra |= {"mode": "high_compression", "compression": params.level or LZ4HC_DEFAULT_CLEVEL}
        elif params.level is not None:  # liblz4 takes an acceleration below 1 as 1
            extra |= {"mode": "fast", "acceleration": max(1, params.level)}
        dictionary = params.dictionary
        if dictionary is not None:
            extra["dict"] = dictionary

        def compress_page(page: bytes) -> bytes:
            data: bytes = lz4.block.compress(page, **extra)
            return data

        def decompress_page(data: bytes) -> bytes:
            if dictionary is None:
                return _lz4_decompress(data, name=name)
            try:
                page: bytes = lz4.block.decompress(data, uncompressed_size=PAGE_SIZE, dict=dictionary)
            except lz4.block.LZ4BlockError as exc:
                raise DecompressError(f"{name}: {exc}") from None
            if len(page) != PAGE_SIZE:
                raise DecompressError(f"{name}: decompressed to {len(page)} bytes, expected {PAGE_SIZE}")
            return page

        return compress_page, decompress_page

    return configure


ZSTD_DEFAULT_LEVEL = 3
ZSTD_MIN_LEVEL = -(1 << 17)  # ZSTD_minCLevel(): negative levels are the fast ones


def _zstd_configure(params: Params) -> Functions:
    """zstd with a level and a dictionary (raw content or a trained one, as the kernel's
    ``zstd_create_cdict_byreference`` takes either). Each thread (compression stream) gets its
    own compressor and decompressor, made on first use and reused for every later page."""
    assert zstandard is not None
    level = ZSTD_DEFAULT_LEVEL if params.level is None else params.level
    level = min(max(level, ZSTD_MIN_LEVEL), zstandard.MAX_COMPRESSION_LEVEL)  # libzstd clamps, too
    dictionary = zstandard.ZstdCompressionDict(params.dictionary) if params.dictionary else None
    contexts = threading.local()

    def pair() -> Any:
        found = getattr(contexts, "pair", None)
        if found is None:
            assert zstandard is not None
            found = contexts.pair = (
                zstandard.ZstdCompressor(
                    level=level, dict_data=dictionary, write_checksum=False, write_content_size=True,
                    write_dict_id=False,
                ),
                zstandard.ZstdDecompressor(dict_data=dictionary),
            )  # fmt: skip
        return found

    def compress_page(page: bytes) -> bytes:
        data: bytes = pair()[0].compress(page)
        return data

    def decompress_page(data: bytes) -> bytes:
        assert zstandard is not None
        try:
            page: bytes = pair()[1].decompress(data, max_output_size=PAGE_SIZE, allow_extra_data=False)
        except zstandard.ZstdError as exc:
            raise DecompressError(f"zstd: {exc}") from None
        if len(page) != PAGE_SIZE:
            raise DecompressError(f"zstd: decompressed to {len(page)} bytes, expected {PAGE_SIZE}")
        return page

    return compress_page, decompress_page


if zstandard is not None:  # the defaults: level 3, no dictionary
    _zstd_compress, _zstd_decompress = _zstd_configure(Params())


DEFLATE_DEFAULT_LEVEL = zlib.Z_DEFAULT_COMPRESSION
DEFLATE_DEF_WINBITS = 11
DEFLATE_DEF_MEMLEVEL = 9  # MAX_MEM_LEVEL


def _deflate_configure(params: Params) -> Functions:
    """deflate with a level (-1..9) and window bits (``deflate.winbits``, 9..15 for raw deflate)."""
    level = DEFLATE_DEFAULT_LEVEL if params.level is None else params.level
    bits = DEFLATE_DEF_WINBITS if params.winbits is None else params.winbits
    if not -1 <= level <= 9:
        raise ValueError(f"deflate: level {level} outside -1..9")
    if not 9 <= bits <= 15:
        raise ValueError(f"deflate: window bits {bits} outside 9..15")

    def compress_page(page: bytes) -> bytes:
        stream = zlib.compressobj(level, zlib.DEFLATED, -bits, DEFLATE_DEF_MEMLEVEL)
        return stream.compress(page) + stream.flush()

    def decompress_page(data: bytes) -> bytes:
        return _inflate(data, bits)

    return compress_page, decompress_page


def _inflate(data: bytes, bits: int) -> bytes:
    stream = zlib.decompressobj(-bits)
    try:
        page = stream.decompress(data, PAGE_SIZE)
    except zlib.error as exc:
        raise DecompressError(f"deflate: {exc}") from None
    if len(page) != PAGE_SIZE or not stream.eof or stream.unconsumed_tail or stream.unused_data:
        raise DecompressError(f"deflate: not one page's raw deflate stream ({len(page)} bytes)")
    return page


def _deflate_compress(page: bytes) -> bytes:
    level, bits, mem = DEFLATE_DEFAULT_LEVEL, DEFLATE_DEF_WINBITS, DEFLATE_DEF_MEMLEVEL
    stream = zlib.compressobj(level, zlib.DEFLATED, -bits, mem)
    return stream.compress(page) + stream.flush()


def _deflate_decompress(data: bytes) -> bytes:
    return _inflate(data, DEFLATE_DEF_WINBITS)


BACKENDS: tuple[Backend, ...] = (
    Backend("lzo", _lzo_compress, _lzo_decompress),
    Backend("lz4", _lz4_compress, _lz4_decompress, _lz4_family("lz4", high=False)),
    Backend("lz4hc", _lz4hc_compress, _lz4hc_decompress, _lz4_family("lz4hc", high=True)),
    *((Backend("zstd", _zstd_compress, _zstd_decompress, _zstd_configure),) if zstandard is not None else ()),
    Backend("deflate", _deflate_compress, _deflate_decompress, _deflate_configure),
)
_BY_NAME = {backend.name: backend for backend in BACKENDS}


def algorithm_names() -> list[str]:
    """The available algorithm names, in registry order (the default first)."""
    return [backend.name for backend in BACKENDS]


def lookup(name: str) -> Backend:
    """The backend called `name`, matched as the kernel's ``sysfs_streq`` matches it: one
    trailing newline is ignored, so ``lzo\\n`` finds lzo (and, kept as given, is shown
    unbracketed by `format_comp_algorithm`, as on the kernel). Raises KeyError naming the
    choices when there is none."""
    try:
        return _BY_NAME[name.removesuffix("\n")]
    except KeyError:
        raise KeyError(f"unknown compression algorithm {name!r} (available: {', '.join(_BY_NAME)})") from None


def format_comp_algorithm(selected: str) -> str:
    """Render the ``comp_algorithm`` attribute: every backend followed by a space, the selected
    one in brackets, then a newline -- ``'[lzo] lz4 \\n'``."""
    return "".join(f"[{b.name}] " if b.name == selected else f"{b.name} " for b in BACKENDS) + "\n"

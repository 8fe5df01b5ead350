"""Compression backends: one 4 KiB page in, compressed bytes out, and back to exactly 4096 bytes.

Owns: the ordered registry of backends (the default first, like the kernel's backend table), name
lookup, and the `comp_algorithm` rendering (``[lzo] lz4 \\n``). Each backend is a tiny object with
two bound functions so the device's per-page path makes exactly one call per page.

Must not: know about slots, pools or size classes, keep state between calls, or import trio or
pyfuse3. The huge-page rule (store raw when the result is too large) belongs to the device.

Backends:
    lzo  python-lzo, ``lzo1x_1_compress`` (level 1), raw stream with no header: the same format as
         the kernel's ``lzo`` backend (byte-identical on about 43% of pages, -0.11% in total).
    lz4  lz4.block, default mode, no stored size: the kernel's ``lz4`` backend format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import lz4.block
import lzo

from zramd.core.units import PAGE_SIZE

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
) -> bytes:
    try:
        page = _decompress(data, uncompressed_size=PAGE_SIZE)
    except _error as exc:
        raise DecompressError(f"lz4: {exc}") from None
    if len(page) != PAGE_SIZE:
        raise DecompressError(f"lz4: decompressed to {len(page)} bytes, expected {PAGE_SIZE}")
    return page


BACKENDS: tuple[Backend, ...] = (
    Backend("lzo", _lzo_compress, _lzo_decompress),
    Backend("lz4", _lz4_compress, _lz4_decompress),
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

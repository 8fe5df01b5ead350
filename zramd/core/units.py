"""Page and size units, and the size parsers shared by the CLI and the attribute files.

Owns: the page geometry (4 KiB pages, 512-byte sectors), the user-facing size parser used by the
CLI and the config file (strict: a bad size is an error), and human-readable size formatting in
zramctl's style. The kernel's own lenient parsers (memparse, kstrto*) live in `zramd.core.kparse`,
because attribute files must accept exactly what the kernel accepts.

Must not: import anything outside the standard library.
"""

from __future__ import annotations

import re

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT  # 4096: zram's page and logical block size
SECTOR_SHIFT = 9
SECTOR_SIZE = 1 << SECTOR_SHIFT  # 512: the unit of /sys/block/*/stat

_SUFFIXES = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40, "P": 50, "E": 60}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGTPE]?)(?:i?B)?\s*$", re.IGNORECASE)


class SizeError(ValueError):
    """A size string that is not a whole number with an optional K/M/G/T/P/E suffix."""


def parse_size(text: str) -> int:
    """Parse a user-facing size: a whole number with an optional K, M, G, T, P or E suffix.

    Suffixes are powers of 1024, as in the kernel's memparse (``512M`` = 512 MiB); ``KiB``/``MB``
    style spellings are accepted as the same powers of 1024. Raises `SizeError` with a message
    naming the bad input.
    """
    match = _SIZE_RE.match(text)
    if not match:
        raise SizeError(f"invalid size {text!r}: expected a number and an optional K, M, G, T, P or E")
    number, suffix = match.groups()
    return int(number) << _SUFFIXES[suffix.upper()]


def round_up_to_page(nbytes: int) -> int:
    """Round a byte count up to a whole number of pages (the kernel's PAGE_ALIGN)."""
    return (nbytes + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


def format_size(nbytes: int) -> str:
    """Format a byte count the way zramctl does: ``0B``, ``4K``, ``1.5M``, ``4G``.

    util-linux's size_to_human_string: the largest power of 1024 not above the value, one
    decimal digit when it is not whole (rounded), no space, and the unit letter only.
    """
    if nbytes < 1024:
        return f"{nbytes}B"
    exponent = 0
    value = float(nbytes)
    while value >= 1024 and exponent < 6:
        value /= 1024
        exponent += 1
    unit = "BKMGTPE"[exponent]
    rounded = round(value, 1)
    if rounded >= 1024 and exponent < 6:  # 1023.96K rounds up into the next unit
        return f"1{'BKMGTPE'[exponent + 1]}"
    if rounded == int(rounded):
        return f"{int(rounded)}{unit}"
    return f"{rounded:.1f}{unit}"

"""The kernel's number parsers, reproduced exactly, so attribute files accept what sysfs accepts.

Owns: ``memparse`` (lib/cmdline.c over ``simple_strtoull``) and ``kstrtoull``/``kstrtou16``
(lib/kstrtox.c), with their quirks: base prefixes, wrap-around on overflow in memparse, ERANGE on
overflow in kstrto*, one optional trailing newline, no leading spaces or signs other than ``+``.
Inputs are the bytes a store callback sees: at most one page, cut at the first NUL.
Must not: know about attributes or devices.
"""

from __future__ import annotations

from zramd.core.errors import InvalidArgument, OutOfRange

U64_MASK = (1 << 64) - 1
_SHIFTS = {"K": 10, "M": 20, "G": 30, "T": 40, "P": 50, "E": 60}


def _fixup_radix(text: str, base: int) -> tuple[str, int]:
    """``_parse_integer_fixup_radix``: base 0 picks 16 for ``0x`` + hex digit, 8 for a leading
    ``0``, else 10; base 16 skips an ``0x`` prefix."""
    if base == 0:
        if text.startswith("0"):
            if text[1:2].lower() == "x" and text[2:3] and text[2] in "0123456789abcdefABCDEF":
                return text[2:], 16
            return text, 8
        return text, 10
    if base == 16 and text[:2].lower() == "0x":
        return text[2:], 16
    return text, base


def _parse_integer(text: str, base: int) -> tuple[int, int, bool]:
    """(value mod 2**64, characters used, overflowed) for the longest run of digits."""
    value = 0
    used = 0
    overflow = False
    for ch in text:
        digit = int(ch, 36) if ch.isascii() and ch.isalnum() else 99
        if digit >= base:
            break
        value = value * base + digit
        if value > U64_MASK:
            overflow = True
            value &= U64_MASK
        used += 1
    return value, used, overflow


def memparse(text: str) -> tuple[int, int]:
    """``memparse``: a number (base detected as in C) with an optional K/M/G/T/P/E suffix in
    either case. Returns (value mod 2**64, characters consumed); 0 consumed means no number."""
    body, base = _fixup_radix(text, 0)
    prefix = len(text) - len(body)
    value, used, _ = _parse_integer(body, base)
    if used == 0:
        return 0, 0
    consumed = prefix + used
    suffix = text[consumed : consumed + 1].upper()
    if suffix in _SHIFTS:
        value = (value << _SHIFTS[suffix]) & U64_MASK
        consumed += 1
    return value, consumed


def kstrtoull(text: str, base: int = 10) -> int:
    """``kstrtoull``: an optional ``+``, digits, one optional newline and nothing else.
    Raises OutOfRange (ERANGE) on overflow and InvalidArgument (EINVAL) otherwise."""
    if text.startswith("+"):
        text = text[1:]
    body, base = _fixup_radix(text, base)
    value, used, overflow = _parse_integer(body, base)
    if overflow:
        raise OutOfRange(f"{text!r} does not fit in 64 bits")
    if used == 0:
        raise InvalidArgument(f"{text!r} is not a number")
    rest = body[used:]
    if rest not in ("", "\n"):
        raise InvalidArgument(f"unexpected {rest!r} after the number")
    return value


def kstrtou16(text: str, base: int = 10) -> int:
    """``kstrtou16``: `kstrtoull`, then ERANGE above 65535."""
    value = kstrtoull(text, base)
    if value > 0xFFFF:
        raise OutOfRange(f"{value} does not fit in 16 bits")
    return value


def kstrtouint(text: str, base: int = 10) -> int:
    """``kstrtouint``: `kstrtoull`, then ERANGE above 2**32 - 1."""
    value = kstrtoull(text, base)
    if value > 0xFFFFFFFF:
        raise OutOfRange(f"{value} does not fit in 32 bits")
    return value


def kstrtoint(text: str, base: int = 10) -> int:
    """``kstrtoint``: an optional sign, then `kstrtoull`'s rules; ERANGE outside 32-bit int."""
    if text.startswith("-"):
        value = kstrtoull(text[1:], base)
        if value > 1 << 31:
            raise OutOfRange(f"-{value} does not fit in an int")
        return -value
    value = kstrtoull(text, base)
    if value >= 1 << 31:
        raise OutOfRange(f"{value} does not fit in an int")
    return value


def next_args(text: str) -> list[tuple[str, str | None]]:
    """The ``param[=value]`` words of `text` as the kernel's ``next_arg`` loop splits them
    (lib/cmdline.c): words end at unquoted white space, the first ``=`` after the word's first
    character separates the value (None when there is none), and one pair of double quotes
    around the word or the value is dropped."""
    words: list[tuple[str, str | None]] = []
    rest = text.lstrip(_SPACES)
    while rest:
        quoted = rest.startswith('"')
        if quoted:
            rest = rest[1:]
        in_quote = quoted
        equals = 0
        i = 0
        while i < len(rest):
            ch = rest[i]
            if ch in _SPACES and not in_quote:
                break
            if equals == 0 and ch == "=":
                equals = i
            if ch == '"':
                in_quote = not in_quote
            i += 1
        word = rest[:i]
        closing = i > 0 and rest[i - 1] == '"'
        value: str | None = None
        if equals:
            word, value = word[:equals], word[equals + 1 :]
            opening = value.startswith('"')
            if opening:
                value = value[1:]
            if (opening or quoted) and closing and value:
                value = value[:-1]
        elif quoted and closing:
            word = word[:-1]
        words.append((word, value))
        rest = rest[i + 1 :].lstrip(_SPACES)
    return words


_SPACES = " \t\n\v\f\r"


def store_buffer(data: bytes) -> str:
    """What a sysfs store callback receives for a write of `data`: at most one page (kernfs
    truncates longer writes), as a C string (cut at the first NUL)."""
    return data[:4096].split(b"\0", 1)[0].decode("latin-1")

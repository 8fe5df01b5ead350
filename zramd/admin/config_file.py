"""``/etc/zramd/zramd.conf``, read in zram-generator's syntax (``zram-generator.conf(5)``).

Owns: the file format and its meaning -- one ``[zramN]`` section per device, the keys and their
defaults, the size expression language (``zram-size``/``zram-resident-limit`` over ``ram``, the
MemTotal in MiB, as zram-generator evaluates it with the fasteval crate), ``host-memory-limit``,
the obsolete ``zram-fraction``/``max-zram-size``/``memory-limit`` keys, and `ConfigError`, whose
message names the file, the line and the key. The result is one `DeviceSection` per device that
is to exist on this machine, with every size already in bytes.

Must not: create devices, mount, run swapon or touch sysfs; run programs (zram-generator's
top-level ``set!var = program`` is refused); evaluate expressions with Python's ``eval`` (they go
through the small recursive-descent parser below); read drop-in directories (one file only).

Where zramd differs from zram-generator, on purpose:
    * Unknown keys, keys outside a section, other sections and bad lines are errors (zram-generator
      warns and ignores them): a typo must not silently leave a device at its defaults.
    * ``compression-algorithm``: the first algorithm must be one zramd implements (lzo, lz4,
      lz4hc, zstd, deflate); zram-generator writes whatever is given and only warns when the
      kernel refuses it.
      Recompression algorithms, their parameters and the primary's parameters (``lz4(level=9)``)
      are logged and ignored, as zram-generator does on a kernel without recompression.
    * ``writeback-device`` (absolute, no ``..``) becomes the device's ``backing_dev``, as in
      zram-generator; zramd also takes a regular file there. zramd adds ``writeback-policy``, the
      text of the device's ``writeback_policy`` file (``interval=600 idle_age=3600 ...``), checked
      when the file is read.
    * Division or modulo by zero, and a result that is not a finite number, are errors (fasteval
      yields inf or NaN; zram-generator then makes an inf size the largest u64).
"""

from __future__ import annotations

import difflib
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from zramd.core import compress
from zramd.core.errors import UserError

log = logging.getLogger(__name__)

MIB = 1 << 20
DEFAULT_ZRAM_SIZE = "min(ram / 2, 4096)"  # zram-generator's DEFAULT_ZRAM_SIZE, in MiB
DEFAULT_SWAP_PRIORITY = 100
DEFAULT_OPTIONS = "discard"
MEMINFO = "/proc/meminfo"

KEYS = (
    "host-memory-limit",
    "zram-size",
    "zram-resident-limit",
    "compression-algorithm",
    "writeback-device",
    "writeback-policy",
    "swap-priority",
    "mount-point",
    "fs-type",
    "options",
    # obsolete, still honoured by zram-generator:
    "memory-limit",
    "zram-fraction",
    "max-zram-size",
)

_SECTION_RE = re.compile(r"zram(0|[1-9][0-9]*)")


# ---------------------------------------------------------------------------------- errors


class ConfigError(UserError):
    """A configuration file zramd cannot use, as one line: ``FILE:LINE: key 'K': what is wrong``.

    Attributes:
        path, line, key: where the problem is, when it is on one line / one key (else None).
    """

    def __init__(
        self,
        message: str,
        exit_code: int = 1,
        *,
        path: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message, exit_code)
        self.path = path
        self.line = line
        self.key = key


def _error(path: str, line: int, problem: str, key: str | None = None) -> ConfigError:
    where = f"{path}:{line}: " + (f"key {key!r}: " if key is not None else "")
    return ConfigError(where + problem, path=path, line=line, key=key)


class ExpressionError(ValueError):
    """A size expression that does not parse, or cannot be evaluated to a finite number."""


# ------------------------------------------------------------------------ the expressions
#
# fasteval's language, as zram-generator uses it (fasteval 0.2, parser.rs and evaler.rs):
#   value:    number [suffix] | '-' value | '+' value | '!' value | '(' expr ')' | '[' expr ']'
#             | name | name '(' [expr {(',' | ';') expr}] ')'
#   expr:     value {binary-operator value}
#   number:   digits and dots, then an optional exponent (1.5, .5, 5., 1e3, 2.5E-1); with no
#             exponent, one SI suffix: p n u/µ m (10^-12..10^-3), k/K M G T (10^3..10^12)
# Unary operators bind to the value that follows, so -2^2 is (-2)^2 = 4.  Binary operators are
# applied in fasteval's order: ^ (right to left), then %, /, * , -, +, then < <= > >=, then
# == !=, then &&, then ||.  So 2 * 3 % 2 is 2 * (3 % 2), as in fasteval.  Comparisons give 1 or
# 0; == and != compare within 8 epsilon; && and || return one of their operands.  The only
# variable is ``ram``; functions: int ceil floor abs sign log([base=10,] x) round([modulus=1,] x)
# min(x, ...) max(x, ...) e() pi() sin cos tan asin acos atan sinh cosh tanh asinh acosh atanh.

_Eval = Callable[[float], float]

MAX_EXPRESSION_LENGTH = 4096  # fasteval's limit
_MAX_DEPTH = 32  # fasteval's nesting limit
_DIGITS = "0123456789"
_SUFFIXES = {"p": -12, "n": -9, "u": -6, "µ": -6, "m": -3, "k": 3, "K": 3, "M": 6, "G": 9, "T": 12}
_NUMBER_RE = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EPSILON8 = 8 * 2.220446049250313e-16  # fasteval's f64_eq tolerance
_OPERATORS = ("<=", ">=", "==", "!=", "&&", "||", "+", "-", "*", "/", "%", "^", "<", ">")
# fasteval's evaluation order: (operators, right-to-left?)
_ORDER: tuple[tuple[frozenset[str], bool], ...] = (
    (frozenset("^"), True),
    (frozenset("%"), False),
    (frozenset("/"), False),
    (frozenset("*"), True),
    (frozenset("-"), False),
    (frozenset("+"), True),
    (frozenset(("<", ">", "<=", ">=")), False),
    (frozenset(("==", "!=")), False),
    (frozenset(("&&",)), False),
    (frozenset(("||",)), False),
)


def _is_zero(x: float) -> bool:
    return abs(x) <= _EPSILON8


def _ieee_div(x: float, y: float) -> float:
    if y == 0:
        return math.nan if x == 0 or math.isnan(x) else math.copysign(math.inf, x) * math.copysign(1, y)
    return x / y


def _pow(x: float, y: float) -> float:
    """Rust's powf: overflow gives inf and a domain error NaN instead of an exception."""
    try:
        return math.pow(x, y)
    except OverflowError:
        odd = y.is_integer() and y % 2 == 1
        return -math.inf if x < 0 and odd else math.inf
    except ValueError:
        return math.inf if x == 0 else math.nan


def _ln(x: float) -> float:
    if math.isnan(x) or x < 0:
        return math.nan
    if x == 0:
        return -math.inf
    return math.log(x)


def _log(base: float, x: float) -> float:
    return _ieee_div(_ln(x), _ln(base))


def _round_half_away(x: float) -> float:
    """Rust's f64::round: halves go away from zero (Python's round goes to even)."""
    if not math.isfinite(x):
        return x
    whole = float(math.trunc(x))
    if abs(x - whole) >= 0.5:
        whole += math.copysign(1.0, x)
    return whole


def _nan_ignoring(fn: Callable[[float, float], float]) -> Callable[[float, float], float]:
    """Rust's f64::min/max: a NaN operand is ignored (the other one wins)."""

    def call(x: float, y: float) -> float:
        if math.isnan(x):
            return y
        if math.isnan(y):
            return x
        return fn(x, y)

    return call


def _unary_math(fn: Callable[[float], float]) -> Callable[[list[float]], float]:
    def call(args: list[float]) -> float:
        try:
            return fn(args[0])
        except ValueError:
            return math.nan
        except OverflowError:
            return math.inf

    return call


def _integral(fn: Callable[[float], int]) -> Callable[[list[float]], float]:
    return lambda args: float(fn(args[0])) if math.isfinite(args[0]) else args[0]


def _call_log(args: list[float]) -> float:
    return _log(10.0, args[0]) if len(args) == 1 else _log(args[0], args[1])


def _call_round(args: list[float]) -> float:
    modulus, x = (1.0, args[0]) if len(args) == 1 else (args[0], args[1])
    if modulus == 0:
        raise ExpressionError("round() with a modulus of zero")
    return _round_half_away(x / modulus) * modulus


def _fold(fn: Callable[[float, float], float]) -> Callable[[list[float]], float]:
    def call(args: list[float]) -> float:
        result = args[0]
        for x in args[1:]:
            result = fn(result, x)
        return result

    return call


_ANY = 1 << 30
# name -> (fewest arguments, most arguments, implementation)
_FUNCTIONS: dict[str, tuple[int, int, Callable[[list[float]], float]]] = {
    "int": (1, 1, _integral(math.trunc)),
    "ceil": (1, 1, _integral(math.ceil)),
    "floor": (1, 1, _integral(math.floor)),
    "abs": (1, 1, lambda a: abs(a[0])),
    "sign": (1, 1, lambda a: a[0] if math.isnan(a[0]) else math.copysign(1.0, a[0])),
    "log": (1, 2, _call_log),
    "round": (1, 2, _call_round),
    "min": (1, _ANY, _fold(_nan_ignoring(min))),
    "max": (1, _ANY, _fold(_nan_ignoring(max))),
    "e": (0, 0, lambda a: math.e),
    "pi": (0, 0, lambda a: math.pi),
    "sin": (1, 1, _unary_math(math.sin)),
    "cos": (1, 1, _unary_math(math.cos)),
    "tan": (1, 1, _unary_math(math.tan)),
    "asin": (1, 1, _unary_math(math.asin)),
    "acos": (1, 1, _unary_math(math.acos)),
    "atan": (1, 1, _unary_math(math.atan)),
    "sinh": (1, 1, _unary_math(math.sinh)),
    "cosh": (1, 1, _unary_math(math.cosh)),
    "tanh": (1, 1, _unary_math(math.tanh)),
    "asinh": (1, 1, _unary_math(math.asinh)),
    "acosh": (1, 1, _unary_math(math.acosh)),
    "atanh": (1, 1, _unary_math(math.atanh)),
}


def _binary(op: str, left: _Eval, right: _Eval) -> _Eval:
    """The evaluator of ``left op right``; && and || evaluate `right` only when needed."""
    if op == "&&":
        return lambda ram: x if _is_zero(x := left(ram)) else right(ram)
    if op == "||":
        return lambda ram: right(ram) if _is_zero(x := left(ram)) else x
    fn = _ARITHMETIC[op]
    return lambda ram: fn(left(ram), right(ram))


def _divide(x: float, y: float) -> float:
    if y == 0:
        raise ExpressionError("division by zero")
    return x / y


def _modulo(x: float, y: float) -> float:
    if y == 0:
        raise ExpressionError("modulo by zero")
    try:
        return math.fmod(x, y)  # Rust's %: the sign of the dividend
    except ValueError:
        return math.nan


_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": lambda x, y: x + y,
    "-": lambda x, y: x - y,
    "*": lambda x, y: x * y,
    "/": _divide,
    "%": _modulo,
    "^": _pow,
    "<": lambda x, y: float(x < y),
    "<=": lambda x, y: float(x <= y),
    ">": lambda x, y: float(x > y),
    ">=": lambda x, y: float(x >= y),
    "==": lambda x, y: float(abs(x - y) <= _EPSILON8),
    "!=": lambda x, y: float(not abs(x - y) <= _EPSILON8),
}


def _reduce(values: list[_Eval], ops: list[str]) -> _Eval:
    """Combine ``v0 op0 v1 op1 v2 ...`` in fasteval's order (see `_ORDER`)."""
    for group, right_to_left in _ORDER:
        if right_to_left:
            for i in range(len(ops) - 1, -1, -1):
                if ops[i] in group:
                    values[i : i + 2] = [_binary(ops.pop(i), values[i], values[i + 1])]
        else:
            i = 0
            while i < len(ops):
                if ops[i] in group:
                    values[i : i + 2] = [_binary(ops.pop(i), values[i], values[i + 1])]
                else:
                    i += 1
    assert len(values) == 1 and not ops
    return values[0]


class _Parser:
    """Recursive descent over one expression string; builds a closure of `ram`."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, problem: str, pos: int | None = None) -> ExpressionError:
        column = (self.pos if pos is None else pos) + 1
        if column > len(self.text):
            return ExpressionError(f"at the end: {problem}")
        return ExpressionError(f"at column {column}: {problem}")

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse(self) -> _Eval:
        if len(self.text) > MAX_EXPRESSION_LENGTH:
            raise ExpressionError(f"expression longer than {MAX_EXPRESSION_LENGTH} characters")
        if not self.text.strip(" \t\r\n"):
            raise ExpressionError("empty expression")
        result = self.expression(0)
        self.skip_spaces()
        if self.pos < len(self.text):
            rest = self.text[self.pos :]
            if rest[0] in ")]":
                raise self.fail(f"unbalanced {rest[0]!r}")
            raise self.fail(f"unexpected {rest!r} after the expression")
        return result

    def expression(self, depth: int) -> _Eval:
        values = [self.value(depth)]
        ops: list[str] = []
        while (op := self.binary_operator()) is not None:
            ops.append(op)
            values.append(self.value(depth))
        return _reduce(values, ops)

    def binary_operator(self) -> str | None:
        self.skip_spaces()
        for op in _OPERATORS:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return op
        return None

    def value(self, depth: int) -> _Eval:
        if depth >= _MAX_DEPTH:
            raise self.fail(f"expression nested more than {_MAX_DEPTH} levels deep")
        self.skip_spaces()
        ch = self.peek()
        if not ch:
            raise self.fail("expected a number, 'ram', a function call or '('")
        if ch in _DIGITS or ch == ".":
            return self.number()
        if ch in "-+!":
            self.pos += 1
            inner = self.value(depth + 1)
            if ch == "-":
                return lambda ram: -inner(ram)
            if ch == "!":
                return lambda ram: float(_is_zero(inner(ram)))
            return inner
        if ch in "([":
            opened = self.pos
            self.pos += 1
            inner = self.expression(depth + 1)
            self.close(ch, opened)
            return inner
        match = _NAME_RE.match(self.text, self.pos)
        if match is None:
            raise self.fail(f"expected a number, 'ram', a function call or '(', not {ch!r}")
        name = match.group()
        start = self.pos
        self.pos = match.end()
        self.skip_spaces()
        if self.peek() in ("(", "["):
            return self.call(name, start, depth)
        if name == "ram":
            return lambda ram: ram
        if name in ("e", "pi"):
            raise self.fail(f"unknown variable {name!r} (the constant is written {name}())", start)
        raise self.fail(f"unknown variable {name!r} (the only variable is 'ram')", start)

    def close(self, opener: str, opened: int) -> None:
        closer = ")" if opener == "(" else "]"
        self.skip_spaces()
        if self.peek() != closer:
            if not self.peek():
                raise self.fail(f"missing {closer!r} to close the {opener!r} at column {opened + 1}")
            raise self.fail(f"expected {closer!r} (for the {opener!r} at column {opened + 1})")
        self.pos += 1

    def number(self) -> _Eval:
        start = self.pos
        text = self.text
        while self.pos < len(text) and (text[self.pos] in _DIGITS or text[self.pos] == "."):
            self.pos += 1
        exponent = self.peek() in ("e", "E")
        if exponent:
            self.pos += 1
            if self.peek() in ("+", "-"):
                self.pos += 1
            while self.pos < len(text) and (text[self.pos] in _DIGITS or text[self.pos] == "."):
                self.pos += 1
        token = text[start : self.pos]
        if not _NUMBER_RE.fullmatch(token):
            raise self.fail(f"invalid number {token!r}", start)
        suffix = self.peek()
        if not exponent and suffix and suffix in _SUFFIXES:
            token = f"{token}e{_SUFFIXES[suffix]}"  # as fasteval does: "1.5k" -> "1.5e3"
            self.pos += 1
        value = float(token)
        return lambda ram: value

    def call(self, name: str, start: int, depth: int) -> _Eval:
        opener = self.peek()
        opened = self.pos
        closer = ")" if opener == "(" else "]"
        self.pos += 1
        args: list[_Eval] = []
        while True:
            self.skip_spaces()
            ch = self.peek()
            if not ch:
                raise self.fail(f"missing {closer!r} to close {name}{opener} at column {opened + 1}")
            if ch == closer:
                self.pos += 1
                break
            if args:
                if ch not in ",;":
                    raise self.fail(f"expected ',' or {closer!r} in the arguments of {name}()")
                self.pos += 1
            args.append(self.expression(depth + 1))
        if name not in _FUNCTIONS:
            if name == "print":
                raise self.fail("print() is not supported", start)
            raise self.fail(f"unknown function {name!r}", start)
        fewest, most, fn = _FUNCTIONS[name]
        if not fewest <= len(args) <= most:
            if fewest == most:
                wanted = f"{fewest} argument" + ("" if fewest == 1 else "s")
            elif most == _ANY:
                wanted = f"at least {fewest} argument"
            else:
                wanted = f"{fewest} or {most} arguments"
            raise self.fail(f"{name}() takes {wanted}, got {len(args)}", start)
        return lambda ram: fn([arg(ram) for arg in args])


def compile_expression(expr: str) -> Callable[[float], float]:
    """Parse `expr` once; the result maps ``ram`` (MiB) to the value, raising `ExpressionError`
    for division by zero or a result that is not finite. Raises `ExpressionError` for syntax
    errors, unknown variables or functions and wrong argument counts, naming the column."""
    body = _Parser(expr).parse()

    def evaluate(ram_mib: float) -> float:
        result = body(float(ram_mib))
        if not math.isfinite(result):
            raise ExpressionError(f"the result is {result}, not a finite number")
        return result

    return evaluate


def evaluate_expression(expr: str, ram_mib: float) -> float:
    """Evaluate a ``zram-size``-style expression with ``ram`` = `ram_mib`; see the grammar above.

    No Python ``eval``: a hand-written parser builds closures over a fixed set of operators and
    functions. Raises `ExpressionError` naming what is wrong (and the column, for syntax)."""
    return compile_expression(expr)(ram_mib)


# ------------------------------------------------------------------------- the INI layer


@dataclass(frozen=True, slots=True)
class DeviceSection:
    """One ``[zramN]`` section, resolved for this machine's RAM.

    Attributes:
        name: ``zram0``.  zram_size: bytes (``zram-size`` MiB x 2^20, truncated to an integer as
        zram-generator does; the device rounds up to a page).  resident_limit: bytes, 0 = none
        (``zram-resident-limit``, the device's mem_limit).  compression_algorithm: one of
        comp_algorithm's names.
        swap_priority: -1..32767.  fs_type: ``swap``, or e.g. ``ext4``; ``ext2`` when only a
        mount point is given.  mount_point: normalised absolute path or None.  options: the
        swapon or mount options ("" = none).  line: the line of the section's first header.
        writeback_device: the backing_dev path or None.  writeback_policy: zramd's policy text.
    """

    name: str
    zram_size: int
    resident_limit: int
    compression_algorithm: str
    swap_priority: int
    fs_type: str
    mount_point: str | None
    options: str
    line: int
    writeback_device: str | None = None
    writeback_policy: str = ""


@dataclass
class _Section:
    name: str
    line: int
    values: dict[str, tuple[str, int]]  # key -> (value, line); the last assignment wins


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _read_sections(text: str, path: str) -> dict[str, _Section]:
    """The ``[zramN]`` sections of `text`, merged by name, in the order they first appear."""
    sections: dict[str, _Section] = {}
    current: _Section | None = None
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        if number == 1:
            line = line.removeprefix("\ufeff")
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped[0] == "[":
            if not stripped.endswith("]"):
                raise _error(path, number, f"{stripped!r}: a section header is '[zramN]' alone on its line")
            name = stripped[1:-1].strip()
            if not _SECTION_RE.fullmatch(name):
                raise _error(
                    path, number, f"section [{name}]: not a device section; expected [zramN], e.g. [zram0]"
                )
            current = sections.setdefault(name, _Section(name, number, {}))
            continue
        separators = [i for i in (stripped.find("="), stripped.find(":")) if i >= 0]
        if not separators:
            raise _error(path, number, f"{stripped!r}: expected 'key = value', '[zramN]' or a comment")
        sep = min(separators)
        key = stripped[:sep].strip()
        value = _unquote(stripped[sep + 1 :].strip())
        if not key:
            raise _error(path, number, f"{stripped!r}: no key before {stripped[sep]!r}")
        if current is None:
            if key.startswith("set!"):
                raise _error(
                    path,
                    number,
                    "'set!' directives are not supported (zramd does not run programs from its "
                    "configuration); write the number into the expression instead",
                    key,
                )
            raise _error(path, number, "outside any [zramN] section", key)
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(KEYS)})"
            raise _error(path, number, "unknown key" + hint, key)
        current.values[key] = (value, number)
    return sections


def _memtotal_bytes(meminfo: str = MEMINFO) -> int:
    """MemTotal from /proc/meminfo, in bytes."""
    try:
        with open(meminfo, encoding="ascii") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "MemTotal:" and fields[1].isdigit():
                    return int(fields[1]) * 1024
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{meminfo}: cannot read the total RAM: {exc}") from None
    raise ConfigError(f"{meminfo}: no MemTotal line, so 'ram' has no value")


def _optional_mb(value: str) -> int | None:
    """``none`` or a whole number of MiB (Rust's u64 parse: digits, an optional leading '+')."""
    if value == "none":
        return None
    if not re.fullmatch(r"\+?[0-9]+", value):
        raise ValueError(f"expected a whole number of megabytes or 'none', got {value!r}")
    return int(value)


def _normalised_path(value: str) -> str:
    """An absolute path without ``..``, with ``//``, ``/./`` and a trailing ``/`` removed."""
    if not value.startswith("/"):
        raise ValueError(f"{value!r} is not an absolute path")
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{value!r} contains '..'")
    return "/" + "/".join(parts)


def _algorithms(value: str) -> list[tuple[str, str]]:
    """zram-generator's split: whitespace-separated ``algo(params)``; ``(params)`` with no
    name sets the global recompression parameters (returned with an empty name)."""
    result = []
    for word in value.split():
        algo, paren, params = word.partition("(")
        result.append((algo, params.removesuffix(")").replace(",", " ") if paren else ""))
    return result


class _Resolver:
    """Turns one section's raw values into a `DeviceSection` (or None: no device here)."""

    def __init__(self, section: _Section, path: str) -> None:
        self.section = section
        self.path = path

    def error(self, key: str, problem: str) -> ConfigError:
        return _error(self.path, self.section.values[key][1], problem, key)

    def get(self, key: str) -> str | None:
        entry = self.section.values.get(key)
        return None if entry is None else entry[0]

    def expression(self, key: str) -> Callable[[float], float] | None:
        text = self.get(key)
        if text is None:
            return None
        try:
            return compile_expression(text)
        except ExpressionError as exc:
            raise self.error(key, f"invalid expression {text!r}: {exc}") from None

    def size(self, key: str, fn: Callable[[float], float] | None, default: str, ram_mb: int) -> int:
        text = self.get(key) or default
        try:
            mib = (fn or compile_expression(default))(float(ram_mb))
        except ExpressionError as exc:
            raise self.error(key, f"{text!r} cannot be evaluated with ram = {ram_mb}: {exc}") from None
        if mib < 0:
            raise self.error(key, f"{text!r} is {mib:g} MiB with ram = {ram_mb}; it must not be negative")
        return int(mib * MIB)

    def host_memory_limit(self) -> int | None:
        keys = [k for k in ("memory-limit", "host-memory-limit") if k in self.section.values]
        if not keys:
            return None
        key = max(keys, key=lambda k: self.section.values[k][1])  # the later line wins
        try:
            return _optional_mb(self.section.values[key][0])
        except ValueError as exc:
            raise self.error(key, str(exc)) from None

    def algorithm(self) -> str:
        value = self.get("compression-algorithm")
        algorithms = _algorithms(value or "")
        named = [(algo, params) for algo, params in algorithms if algo]
        if not named:
            return compress.DEFAULT_ALGORITHM
        primary, params = named[0]
        choices = compress.algorithm_names()
        if primary not in choices:
            hint = " (lzo-rle is the kernel's variant of lzo; use 'lzo')" if primary == "lzo-rle" else ""
            raise self.error(
                "compression-algorithm",
                f"unsupported compression algorithm {primary!r}; zramd implements {', '.join(choices)}{hint}",
            )
        ignored = []
        if params:
            ignored.append(f"the parameters of {primary} ({params})")
        if named[1:]:
            ignored.append("recompression with " + ", ".join(algo for algo, _ in named[1:]))
        if any(not algo for algo, _ in algorithms):
            ignored.append("the global recompression parameters")
        if ignored:
            line = self.section.values["compression-algorithm"][1]
            log.warning(
                "%s:%d: key 'compression-algorithm': zramd ignores %s", self.path, line, "; ".join(ignored)
            )
        return primary

    def swap_priority(self) -> int:
        value = self.get("swap-priority")
        if value is None:
            return DEFAULT_SWAP_PRIORITY
        if not re.fullmatch(r"[+-]?[0-9]+", value):
            raise self.error("swap-priority", f"expected a whole number from -1 to 32767, got {value!r}")
        priority = int(value)
        if not -1 <= priority <= 0x7FFF:
            raise self.error("swap-priority", f"{priority} is out of range (-1 to 32767, see swapon(8))")
        return priority

    def path_value(self, key: str) -> str | None:
        value = self.get(key)
        if value is None:
            return None
        try:
            return _normalised_path(value)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None

    def fraction(self) -> float | None:
        value = self.get("zram-fraction")
        if value is None:
            return None
        if not re.fullmatch(r"\+?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", value):
            raise self.error("zram-fraction", f"expected a non-negative number, got {value!r}")
        return float(value)

    def resolve(self, ram_mb: int) -> DeviceSection | None:
        name = self.section.name
        # Check every key before deciding whether the device exists on this machine.
        host_limit = self.host_memory_limit()
        size_fn = self.expression("zram-size")
        resident_fn = self.expression("zram-resident-limit")
        fraction = self.fraction()
        max_mb: int | None = None
        if "max-zram-size" in self.section.values:
            try:
                max_mb = _optional_mb(self.section.values["max-zram-size"][0])
            except ValueError as exc:
                raise self.error("max-zram-size", str(exc)) from None
        algorithm = self.algorithm()
        priority = self.swap_priority()
        mount_point = self.path_value("mount-point")
        writeback_device = self.path_value("writeback-device")
        writeback_policy = self.get("writeback-policy") or ""
        if writeback_policy:
            from zramd.core.attrs import parse_writeback_policy
            from zramd.core.errors import ZramError

            try:
                parse_writeback_policy(writeback_policy)
            except ZramError as exc:
                raise self.error("writeback-policy", str(exc)) from None
        fs_type = self.get("fs-type")
        if fs_type == "":
            raise self.error("fs-type", "empty; give a file system type such as 'swap' or 'ext4'")
        options = self.get("options")

        if host_limit is not None and host_limit < ram_mb:
            log.info(
                "%s: the machine has %d MiB of RAM, more than host-memory-limit %d: skipped",
                name,
                ram_mb,
                host_limit,
            )
            return None
        if fraction is not None or "max-zram-size" in self.section.values:
            # The obsolete pair overrides zram-size, as in zram-generator.
            size_mb = int((0.5 if fraction is None else fraction) * ram_mb)
            if max_mb is not None:
                size_mb = min(size_mb, max_mb)
            zram_size = size_mb * MIB
        else:
            zram_size = self.size("zram-size", size_fn, DEFAULT_ZRAM_SIZE, ram_mb)
        resident_limit = self.size("zram-resident-limit", resident_fn, "0", ram_mb)
        if zram_size == 0:
            log.info("%s: the size is 0: no device", name)
            return None
        return DeviceSection(
            name=name,
            zram_size=zram_size,
            resident_limit=resident_limit,
            compression_algorithm=algorithm,
            swap_priority=priority,
            fs_type=fs_type if fs_type is not None else ("ext2" if mount_point is not None else "swap"),
            mount_point=mount_point,
            options=DEFAULT_OPTIONS if options is None else options,
            line=self.section.line,
            writeback_device=writeback_device,
            writeback_policy=writeback_policy,
        )


def default_zram_size(ram_bytes: int | None = None) -> int:
    """zram-generator's default size, min(RAM / 2, 4 GiB), in bytes: the size of a device whose
    section has no zram-size, and of `zramd start` without --size. RAM defaults to MemTotal."""
    ram_mb = (_memtotal_bytes() if ram_bytes is None else ram_bytes) // MIB
    return int(compile_expression(DEFAULT_ZRAM_SIZE)(float(ram_mb)) * MIB)


def parse_config(text: str, path: str = "<config>", ram_bytes: int | None = None) -> dict[str, DeviceSection]:
    """The devices `text` asks for on a machine with `ram_bytes` of RAM (default: MemTotal).

    ``ram`` in expressions is the RAM in whole MiB (MemTotal kB // 1024, as zram-generator
    computes it). A device is left out of the result -- it is not an error -- when the RAM is
    above its ``host-memory-limit``, or when its size comes to 0 bytes (zram-generator's way of
    switching a device off). The result is ordered by device number. Every value is still
    checked for a left-out device. Syntax: systemd.syntax(5) as zram-generator reads it --
    ``[zramN]`` headers, ``key = value`` (or ``key: value``), whole-line ``#`` and ``;``
    comments, one pair of surrounding quotes stripped from a value, repeated sections merged
    and the last assignment of a key winning; no line continuations, no inline comments.

    Raises `ConfigError` ("FILE:LINE: key 'K': ...") on the first problem.
    """
    sections = _read_sections(text, path)
    if not sections:
        return {}
    ram_mb = (_memtotal_bytes() if ram_bytes is None else ram_bytes) // MIB
    devices: dict[str, DeviceSection] = {}
    for section in sorted(sections.values(), key=lambda s: int(s.name[4:])):
        device = _Resolver(section, path).resolve(ram_mb)
        if device is not None:
            devices[device.name] = device
    return devices


def load_config(path: str, ram_bytes: int | None = None) -> dict[str, DeviceSection]:
    """`parse_config` on the file at `path`; a file that cannot be read or is not UTF-8 is a
    `ConfigError` with one line saying so."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the configuration: {exc.strerror or exc}", path=path
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise _error(path, line, "not valid UTF-8") from None
    return parse_config(text, path, ram_bytes)

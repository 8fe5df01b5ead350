"""Reading an attribute directory from outside: zramd's ``MOUNTPOINT/sys`` or the kernel's
``/sys/block/zramN``, which have the same files and formats.

Owns: the one reader of attribute files by name (text, integers, ``mm_stat``/``io_stat`` columns,
the bracketed algorithm of ``comp_algorithm``) and writing an attribute. Must not: be used by a
daemon on its own mount (that would deadlock it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class SysDir:
    """An attribute directory.

    Attributes:
        path: the directory (``MOUNTPOINT/sys`` or ``/sys/block/zram0``).
    """

    path: Path

    def read(self, name: str) -> str:
        return (self.path / name).read_text()

    def write(self, name: str, value: str) -> None:
        (self.path / name).write_text(value)

    def columns(self, name: str) -> list[int]:
        """The whitespace-separated integers of a statistics file such as ``mm_stat``."""
        return [int(v) for v in self.read(name).split()]

    def mm_stat(self) -> list[int]:
        return self.columns("mm_stat")

    def io_stat(self) -> list[int]:
        return self.columns("io_stat")

    def number(self, name: str) -> int:
        """A file holding one integer, such as ``disksize`` or ``initstate``."""
        return int(self.read(name))

    def algorithm(self) -> str:
        """The selected algorithm: the bracketed word of ``comp_algorithm`` (``-`` if none)."""
        for word in self.read("comp_algorithm").split():
            if word.startswith("["):
                return word.strip("[]")
        return "-"

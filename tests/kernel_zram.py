"""Helpers for tests that compare zramd with the kernel's own zram device.

A test that needs it asks for a `KernelZram` through `kernel_zram()`, which skips (with the reason)
when there is no /sys/block/zram0, when we are not root, or when zram0 is already in use by someone
else (initialised), and always resets the device afterwards.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from benchmarks.runners import kernel_unavailable

SYSFS = Path("/sys/block/zram0")


class KernelZram:
    """The kernel's zram0, configured by the test."""

    def __init__(self, sysfs: Path = SYSFS) -> None:
        self.sysfs = sysfs
        self.dev = Path("/dev") / sysfs.name

    def attr(self, name: str) -> str:
        return (self.sysfs / name).read_text()

    def set(self, name: str, value: str) -> None:
        (self.sysfs / name).write_text(value)

    def mm_stat(self) -> list[int]:
        return [int(v) for v in self.attr("mm_stat").split()]

    def io_stat(self) -> list[int]:
        return [int(v) for v in self.attr("io_stat").split()]

    def write_image(self, image: Path, offset: int = 0) -> None:
        """Write `image` with O_DIRECT, 1 MiB at a time (the reference's dd recipe)."""
        subprocess.run(
            ["dd", f"if={image}", f"of={self.dev}", "bs=1M", "iflag=fullblock",
             f"seek={offset}", "oflag=direct,seek_bytes", "status=none"],
            check=True,
        )  # fmt: skip

    def reset(self) -> None:
        self.set("reset", "1")


# Why the kernel's zram0 cannot be used here, or None when it can (the benchmark's own check).
kernel_zram_unavailable = kernel_unavailable


@contextmanager
def kernel_zram(algorithm: str, disksize: str) -> Iterator[KernelZram]:
    """zram0 set to `algorithm` and `disksize`; reset afterwards even when the test fails."""
    reason = kernel_zram_unavailable()
    if reason:
        pytest.skip(reason)
    zram = KernelZram()
    try:
        zram.set("comp_algorithm", algorithm)
        zram.set("disksize", disksize)
        yield zram
    finally:
        zram.reset()

"""A fragmentation-and-compaction recipe, runnable against any zram-like block device: write
the corpus twice, discard every other page, compact, reset the peak -- recording mm_stat and
notify_free after each step. Used by tests/t6_clients.py and scripts/compact-demo to put
zramd's figures beside the kernel's.
"""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
from pathlib import Path

BLKDISCARD = 0x1277
PAGE = 4096
STEPS = ("written", "freed 1/2", "compact", "used_max=0")


def discard(device: str, offset: int, length: int, fd: int | None = None) -> None:
    own = fd is None
    fd = os.open(device, os.O_WRONLY) if fd is None else fd
    try:
        fcntl.ioctl(fd, BLKDISCARD, struct.pack("QQ", offset, length))
    finally:
        if own:
            os.close(fd)


def run_recipe(device: str, sysfs: Path, corpus: Path) -> dict[str, list[int]]:
    """Run the recipe on block device `device` whose attribute files are in `sysfs`. Returns
    step -> mm_stat columns followed by notify_free."""

    def row() -> list[int]:
        mm = [int(v) for v in (sysfs / "mm_stat").read_text().split()]
        return [*mm, int((sysfs / "io_stat").read_text().split()[3])]

    size = corpus.stat().st_size
    rows = {}
    for copy in range(2):
        subprocess.run(
            ["dd", f"if={corpus}", f"of={device}", "bs=1M", "iflag=fullblock", "oflag=direct,seek_bytes",
             f"seek={copy * size}", "conv=notrunc", "status=none"],
            check=True,
        )  # fmt: skip
    rows["written"] = row()
    fd = os.open(device, os.O_WRONLY)
    try:
        for offset in range(0, 2 * size, 2 * PAGE):  # every other page, from the first
            discard(device, offset, PAGE, fd)
    finally:
        os.close(fd)
    rows["freed 1/2"] = row()
    (sysfs / "compact").write_text("1")
    rows["compact"] = row()
    (sysfs / "mem_used_max").write_text("0")
    rows["used_max=0"] = row()
    return rows


def format_rows(label: str, rows: dict[str, list[int]]) -> str:
    lines = [f"{label}:"]
    for step in STEPS:
        values = rows[step]
        lines.append(
            f"  {step:<11}" + " ".join(f"{v:>10}" for v in values[:9]) + f"   notify_free {values[9]}"
        )
    return "\n".join(lines)

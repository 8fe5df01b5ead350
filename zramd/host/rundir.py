"""Where zramd keeps things: ``/run/zramd`` for pid files and logs, the default mount point of
the configured devices, and ``/dev/zramd`` for the block devices' predictable names.

Owns: every such path, defined once. Must not: create or read the files (the daemon writes its
pid file and links, `zramd start` its log; both only ask here where they live).
"""

from __future__ import annotations

from pathlib import Path

RUN_DIR = Path("/run/zramd")
DEFAULT_ROOT = RUN_DIR / "sys"  # the configured devices: /run/zramd/sys/zram0 <-> /sys/block/zram0
BLOCK_LINK_DIR = Path("/dev/zramd")  # /dev/zramd/zram0 -> /dev/loopN, as /dev/zram0 for the kernel
CONTROL_NAME = "zram-control"  # ROOT/zram-control <-> /sys/class/zram-control
DEVICE_PREFIX = "zram"  # ROOT/zramN <-> /sys/block/zramN


def run_name(mountpoint: str) -> str:
    """The file-name stem for a mount point: ``/mnt/zram`` -> ``mnt-zram``."""
    return mountpoint.strip("/").replace("/", "-") or "-"


def pidfile_for(mountpoint: str) -> Path:
    return RUN_DIR / f"{run_name(mountpoint)}.pid"


def logfile_for(mountpoint: str) -> Path:
    return RUN_DIR / f"{run_name(mountpoint)}.log"


def lockfile_for(mountpoint: str) -> Path:
    """Serialises the `zramd up` runs that add devices to one root."""
    return RUN_DIR / f"{run_name(mountpoint)}.lock"


def block_link_dir(root: str) -> Path:
    """The directory of the block-device links of the daemon mounted on `root`: ``/dev/zramd``
    for the default root, ``/dev/zramd/<run name>`` for any other."""
    if Path(root) == DEFAULT_ROOT:
        return BLOCK_LINK_DIR
    return BLOCK_LINK_DIR / run_name(root)


def block_prefix(root: str) -> str:
    """What replaces ``/dev/zram`` in a kernel script for the daemon on `root`."""
    return f"{block_link_dir(root)}/{DEVICE_PREFIX}"


def device_dir(root: str | Path, device_id: int) -> Path:
    """Device `device_id`'s attribute directory (which also holds its ``disk`` file)."""
    return Path(root) / f"{DEVICE_PREFIX}{device_id}"

"""``/run/zramd``: where daemons keep their pid files and logs, and where configured devices mount.

Owns: every path under ``/run/zramd``, defined once. Must not: create or read the files (the
daemon writes its pid file, `zramd start` its log; both only ask here where they live).
"""

from __future__ import annotations

from pathlib import Path

RUN_DIR = Path("/run/zramd")
CONFIG_MOUNT_ROOT = RUN_DIR  # a device from the config file, [zramN], mounts on /run/zramd/zramN


def run_name(mountpoint: str) -> str:
    """The file-name stem for a mount point: ``/mnt/zram`` -> ``mnt-zram``."""
    return mountpoint.strip("/").replace("/", "-") or "-"


def pidfile_for(mountpoint: str) -> Path:
    return RUN_DIR / f"{run_name(mountpoint)}.pid"


def logfile_for(mountpoint: str) -> Path:
    return RUN_DIR / f"{run_name(mountpoint)}.log"


def config_mountpoint(section: str) -> Path:
    """Where the daemon of config section `section` (``zram0``, ...) mounts by default."""
    return CONFIG_MOUNT_ROOT / section

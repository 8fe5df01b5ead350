"""What a daemon serves: its mount point, how many devices it starts with, and the settings of the
first one, from the command line.

Owns: `ServeConfig`, the one record the CLI hands to `zramd run` (and `zramd start` turns back
into its command line). Must not: import pyfuse3 or trio (the CLI imports this for every command).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """What `zramd run` serves.

    Attributes:
        mountpoint: where to mount (the root of the device directories).  devices: how many
        devices exist at start (zram's num_devices; more come with hot_add).  disksize, algorithm,
        mem_limit: device 0's settings (disksize 0 leaves it uninitialised; mem_limit 0 = none).
        allow_other: let other users through (permissions are still enforced by the kernel).
        streams: compression streams shared by the devices (0: one per online CPU).
        backing_dev: device 0's backing file or block device ("" = none).
        writeback_policy: device 0's writeback policy text (``interval=... idle_age=...``).
        ready_fd: a pipe to report readiness or the start-up error to `zramd start`.
    """

    mountpoint: str
    disksize: int
    algorithm: str
    mem_limit: int = 0
    devices: int = 1
    allow_other: bool = False
    ready_fd: int | None = None
    noop: bool = False  # serve the benchmark's no-op device instead (reads zeros, drops writes)
    streams: int = 0
    backing_dev: str = ""
    writeback_policy: str = ""

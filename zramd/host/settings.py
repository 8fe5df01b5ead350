"""What a daemon serves: the settings of one device, from the command line or a config file.

Owns: `ServeConfig`, the one record the CLI hands to `zramd run` (and `zramd start` turns back
into its command line). Must not: import pyfuse3 or trio (the CLI imports this for every command).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """What `zramd run` serves.

    Attributes:
        mountpoint: where to mount.  disksize: bytes.  algorithm: lzo or lz4.
        mem_limit: bytes (0 = none).  allow_other: let other users through (permissions are
        still enforced by the kernel).  ready_fd: a pipe to report readiness or the start-up
        error to `zramd start`.
    """

    mountpoint: str
    disksize: int
    algorithm: str
    mem_limit: int = 0
    allow_other: bool = False
    ready_fd: int | None = None
    noop: bool = False  # serve the benchmark's no-op device instead (reads zeros, drops writes)

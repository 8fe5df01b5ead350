"""zramd: a userspace clone of Linux's zram, serving one compressed RAM disk file over FUSE.

Packages, lowest first: `zramd.core` (codecs, pool, device, attribute files), `zramd.host`
(paths, mounts, processes shared by both sides), then `zramd.serve` (the daemon) beside
`zramd.admin` (the CLI-process tools), and `zramd.cli` on top. The ranks of every module are in
one table, `tests/t0_layers.py`, which checks them.
"""

__version__ = "0.1.0"

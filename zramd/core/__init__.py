"""The pure synchronous core of zramd: what ``drivers/block/zram`` and ``mm/zsmalloc.c`` own, plus
the attribute files' text. Imports only the standard library, the codecs (python-lzo, lz4,
zstandard) and `zramd.core` itself, so it can be tested, benchmarked and (later) compiled without a mount.
"""

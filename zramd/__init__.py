"""zramd: a userspace clone of Linux's zram, serving one compressed RAM disk file over FUSE.

Layers, each talking only to the ones below it:
    compress      compression backends (lzo, lz4)
    size_classes  zsmalloc's size-class arithmetic
    pool          the zsmalloc-style allocator over one memory arena
    device        slot table, write/read path, counters (zram_drv.c)
    attrs         the sysfs-like attribute files
    fuse_ops      the FUSE front end (the only layer that imports pyfuse3 and trio)
    daemon, cli   process lifecycle and the command line
"""

__version__ = "0.1.0"

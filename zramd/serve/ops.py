"""The FUSE front end: one fixed-size block file and a sysfs-like attribute directory.

Owns: the file tree (``disk``, ``sys/<attribute>``), inode numbers and file handles, translating
FUSE requests into device and attribute calls, and translating every failure into an errno reply.
This module and the daemon are the only ones that import pyfuse3, and this is the only one that
speaks errno to the kernel: a `ZramError` becomes its errno, anything unexpected is logged once
with its traceback and becomes EIO, and nothing else ever escapes a handler (an escaping exception
would end pyfuse3's main loop).
Must not: keep device state of its own, or block on anything but the device lock.

Tree::

    /                 0755 root
    /disk             0600 root, size = disksize: the block file
    /sys/             0755 root
    /sys/<attribute>  the kernel's modes: 0644 disksize, comp_algorithm; 0444 initstate,
                      mm_stat, io_stat, debug_stat, stat; 0200 reset, compact, mem_limit,
                      mem_used_max; plus zramd's own read-only ``classes``, ``consistency``
                      and ``daemon``

Attribute files are opened with ``direct_io``, so every read calls `show` afresh and every write
reaches `store`, exactly like sysfs. The disk file uses the page cache for buffered I/O (without
writeback caching, so every write reaches the device synchronously and errors reach the writer),
and O_DIRECT I/O goes straight to the device.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pyfuse3

from zramd.core import attrs
from zramd.core.device import ZramDevice
from zramd.core.errors import ZramError
from zramd.core.units import PAGE_SIZE

log = logging.getLogger(__name__)

ROOT_INODE = pyfuse3.ROOT_INODE
DISK_NAME = "disk"
SYS_NAME = "sys"
# fallocate modes (linux/falloc.h); pyfuse3 exports them only when built with fallocate support.
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
FALLOCATE_MODES = {
    FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,  # discard
    FALLOC_FL_ZERO_RANGE,  # write zeroes (fallocate -z on the file itself)
    FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,  # write zeroes (what a loop device sends)
}
HAS_FALLOCATE = hasattr(pyfuse3.Operations, "fallocate")  # our patched pyfuse3 build
READ_BUFFER = 1 << 20  # the largest read the kernel sends (FUSE max_pages 256)
ATTR_TIMEOUT = 1.0  # seconds the kernel may cache attributes; size changes are invalidated
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def replies_errno(handler: F) -> F:
    """Turn every exception of a handler into a FUSE error reply (and log the unexpected)."""

    @functools.wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await handler(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except ZramError as exc:
            log.debug("%s: %s (%s)", handler.__name__, exc, errno.errorcode.get(exc.errno, exc.errno))
            raise pyfuse3.FUSEError(exc.errno) from None
        except Exception:
            log.exception("unexpected error in %s; answering EIO", handler.__name__)
            raise pyfuse3.FUSEError(errno.EIO) from None

    return wrapper  # type: ignore[return-value]


@dataclass(slots=True)
class Node:
    """One entry of the tree.

    Attributes:
        inode: its inode number.  name: its name in the parent.  parent: the parent's inode.
        mode: file type and permission bits.  attribute: the attribute a `sys/` file serves.
        show: for extra read-only files, the function that renders them.
        children: for directories, name -> inode.
    """

    inode: int
    name: str
    parent: int
    mode: int
    attribute: attrs.Attribute | None = None
    show: Callable[[], str] | None = None
    children: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class OpenFile:
    """An open file handle: which node, and whether it was opened for the disk."""

    node: Node
    is_disk: bool


class ZramOperations(pyfuse3.Operations):
    """pyfuse3 operations over one `ZramDevice`.

    Attributes:
        device: the device served.
        extra_files: read-only files added to `sys/` beside the attributes, as name -> render
            function (e.g. ``daemon`` for the hardening self-check).
        attributes: the attribute files of `sys/` (the kernel's, plus zramd's own additions).
    """

    supports_dot_lookup = False
    enable_writeback_cache = False

    def __init__(
        self,
        device: ZramDevice,
        extra_files: dict[str, Callable[[], str]] | None = None,
        attributes: tuple[attrs.Attribute, ...] = attrs.ATTRIBUTES,
    ) -> None:
        super().__init__()
        self.device = device
        self.uid = os.getuid()
        self.gid = os.getgid()
        self.started_ns = time.time_ns()
        self.disk_mtime_ns = self.started_ns
        self.nodes: dict[int, Node] = {}
        self.handles: dict[int, OpenFile] = {}
        self._next_fh = 1
        self._read_buffer = bytearray(READ_BUFFER)
        root = self._add(ROOT_INODE, "", ROOT_INODE, stat.S_IFDIR | 0o755)
        self.disk = self._add(2, DISK_NAME, root.inode, stat.S_IFREG | 0o600)
        sysdir = self._add(3, SYS_NAME, root.inode, stat.S_IFDIR | 0o755)
        inode = 10
        for attribute in attributes:
            self._add(inode, attribute.name, sysdir.inode, stat.S_IFREG | attribute.mode, attribute=attribute)
            inode += 1
        for name, show in (extra_files or {}).items():
            self._add(inode, name, sysdir.inode, stat.S_IFREG | 0o444, show=show)
            inode += 1

    def _add(self, inode: int, name: str, parent: int, mode: int, **kwargs: Any) -> Node:
        node = Node(inode, name, parent, mode, **kwargs)
        self.nodes[inode] = node
        if inode != parent:
            self.nodes[parent].children[name] = inode
        return node

    def _node(self, inode: int) -> Node:
        try:
            return self.nodes[inode]
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None

    # ------------------------------------------------------------------ metadata

    def _attributes(self, node: Node) -> pyfuse3.EntryAttributes:
        entry = pyfuse3.EntryAttributes()
        entry.st_ino = node.inode
        entry.st_mode = node.mode
        if stat.S_ISDIR(node.mode):
            subdirectories = [c for c in node.children.values() if stat.S_ISDIR(self.nodes[c].mode)]
            entry.st_nlink = 2 + len(subdirectories)
        else:
            entry.st_nlink = 1
        entry.st_uid = self.uid
        entry.st_gid = self.gid
        entry.st_blksize = PAGE_SIZE
        entry.st_atime_ns = entry.st_ctime_ns = self.started_ns
        entry.st_mtime_ns = self.started_ns
        if node is self.disk:
            entry.st_size = self.device.disksize
            # Blocks actually used: the pool's memory, so `du disk` answers "how much RAM".
            entry.st_blocks = self.device.statistics().pool_pages * (PAGE_SIZE // 512)
            entry.st_mtime_ns = entry.st_ctime_ns = self.disk_mtime_ns
        elif stat.S_ISREG(node.mode):
            entry.st_size = attrs.SYSFS_FILE_SIZE
        else:
            entry.st_size = 0
        entry.entry_timeout = ATTR_TIMEOUT
        entry.attr_timeout = ATTR_TIMEOUT
        return entry

    @replies_errno
    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        parent = self._node(parent_inode)
        text = os.fsdecode(name)
        if text == ".":
            return self._attributes(parent)
        if text == "..":
            return self._attributes(self._node(parent.parent))
        inode = parent.children.get(text)
        if inode is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._attributes(self.nodes[inode])

    @replies_errno
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._attributes(self._node(inode))

    @replies_errno
    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        node = self._node(inode)
        # The disk has the fixed size of the device; "truncating" it to its own size (what an
        # O_TRUNC open of an empty, uninitialised disk does) is the only size change allowed.
        if fields.update_size and (node is not self.disk or attr.st_size != self.device.disksize):
            raise pyfuse3.FUSEError(errno.EPERM)
        if fields.update_mode or fields.update_uid or fields.update_gid:
            raise pyfuse3.FUSEError(errno.EPERM)
        return self._attributes(node)  # time updates are accepted and ignored

    @replies_errno
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        data = pyfuse3.StatvfsData()
        data.f_bsize = data.f_frsize = PAGE_SIZE
        data.f_blocks = self.device.disksize // PAGE_SIZE
        data.f_bfree = data.f_bavail = 0
        data.f_files = len(self.nodes)
        data.f_ffree = data.f_favail = 0
        data.f_namemax = 255
        return data

    # ------------------------------------------------------------------ directories

    @replies_errno
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        node = self._node(inode)
        if not stat.S_ISDIR(node.mode):
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return inode

    @replies_errno
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        node = self._node(fh)
        entries = sorted(node.children.items(), key=lambda item: item[1])
        for name, inode in entries:
            if inode <= start_id:
                continue
            if not pyfuse3.readdir_reply(
                token, os.fsencode(name), self._attributes(self.nodes[inode]), inode
            ):
                break

    @replies_errno
    async def releasedir(self, fh: int) -> None:
        return None

    # ------------------------------------------------------------------ files

    @replies_errno
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        node = self._node(inode)
        if stat.S_ISDIR(node.mode):
            raise pyfuse3.FUSEError(errno.EISDIR)
        info = pyfuse3.FileInfo()
        access = flags & os.O_ACCMODE
        is_disk = node is self.disk
        if not is_disk:
            readable = node.show is not None or (node.attribute is not None and node.attribute.readable)
            writable = node.attribute is not None and node.attribute.writable
            if (access in (os.O_RDONLY, os.O_RDWR) and not readable) or (
                access in (os.O_WRONLY, os.O_RDWR) and not writable
            ):
                raise pyfuse3.FUSEError(errno.EACCES)  # kernfs refuses these even for root
            info.direct_io = True
        else:
            self.device.open_disk()
            info.keep_cache = False
        fh = self._next_fh
        self._next_fh += 1
        self.handles[fh] = OpenFile(node, is_disk)
        info.fh = fh
        return info

    def _handle(self, fh: int) -> OpenFile:
        try:
            return self.handles[fh]
        except KeyError:
            raise pyfuse3.FUSEError(errno.EBADF) from None

    @replies_errno
    async def read(self, fh: int, off: int, size: int) -> bytes | memoryview:  # type: ignore[override]
        # pyfuse3's stub says bytes, but it replies from any contiguous buffer (PyObject_GetBuffer).
        handle = self._handle(fh)
        if handle.is_disk:
            # One request at a time (max_tasks=1), and pyfuse3 copies the reply out before the
            # next handler runs, so one preallocated buffer serves every read.
            return self.device.read_view(off, size, self._read_buffer)
        node = handle.node
        if node.show is not None:
            text = node.show()
        else:
            assert node.attribute is not None and node.attribute.show is not None
            text = node.attribute.show(self.device)
        return text.encode()[off : off + size]

    @replies_errno
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        handle = self._handle(fh)
        if handle.is_disk:
            written = self.device.write(off, buf)
            self.disk_mtime_ns = time.time_ns()
            return written
        assert handle.node.attribute is not None
        size_before = self.device.disksize
        count = handle.node.attribute.write(self.device, buf)
        if self.device.disksize != size_before:
            self._invalidate_disk_size()
        return count

    def _invalidate_disk_size(self) -> None:
        """Tell the kernel the disk's size changed (cached attributes only, no page locks)."""
        try:
            pyfuse3.invalidate_inode(self.disk.inode, attr_only=True)
        except OSError as exc:  # ENOENT: the kernel has not looked the disk up yet
            if exc.errno != errno.ENOENT:
                log.warning("could not invalidate the disk's cached size: %s", exc)

    @replies_errno
    async def fallocate(self, fh: int, mode: int, offset: int, length: int) -> None:
        """Discard (PUNCH_HOLE|KEEP_SIZE) and write-zeroes (ZERO_RANGE, with or without
        KEEP_SIZE) free the pages they cover, as REQ_OP_DISCARD / REQ_OP_WRITE_ZEROES do on zram.
        A loop device sends exactly these two (modes 3 and 17); it must never be refused them, or
        it silently turns discard off. Every other mode is EOPNOTSUPP, like on a block device;
        a range reaching past the end without KEEP_SIZE is EINVAL (the disk cannot grow)."""
        handle = self._handle(fh)
        if not handle.is_disk or mode not in FALLOCATE_MODES:
            raise pyfuse3.FUSEError(errno.EOPNOTSUPP)
        if offset + length > self.device.disksize and not mode & FALLOC_FL_KEEP_SIZE:
            raise pyfuse3.FUSEError(errno.EINVAL)
        self.device.discard(offset, length, write_zeroes=bool(mode & FALLOC_FL_ZERO_RANGE))
        self.disk_mtime_ns = time.time_ns()

    @replies_errno
    async def flush(self, fh: int) -> None:
        self._handle(fh)

    @replies_errno
    async def fsync(self, fh: int, datasync: bool) -> None:
        if self._handle(fh).is_disk:
            self.device.flush()

    @replies_errno
    async def release(self, fh: int) -> None:
        handle = self.handles.pop(fh, None)
        if handle is not None and handle.is_disk:
            self.device.close_disk()

    # ------------------------------------------------------------------ refused namespace changes

    async def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise pyfuse3.FUSEError(errno.EPERM)

    mknod = mkdir = unlink = rmdir = symlink = rename = link = create = _refuse

    # xattr handlers are deliberately absent: pyfuse3 answers ENOSYS once, the kernel then stops
    # asking (no GETXATTR round trip for security.capability before every write), and users get
    # EOPNOTSUPP.

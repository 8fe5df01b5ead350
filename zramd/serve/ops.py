"""The FUSE front end: the control directory and one directory per device, like sysfs's.

Owns: the file tree, inode numbers and file handles; translating FUSE requests into device,
attribute and block-device calls; the lifecycle requests (``hot_add``, ``hot_remove``, a
``disksize`` write, a ``reset``) with the kernel's order of checks; and translating every failure
into an errno reply. This module and the daemon are the only ones that import pyfuse3, and this
is the only one that speaks errno to the kernel: a `ZramError` becomes its errno, anything
unexpected is logged once with its traceback and becomes EIO, and nothing else ever escapes a
handler (an escaping exception would end pyfuse3's main loop).
Must not: keep device state of its own, block the serving task on anything but the device lock,
or count opens: a file handle is derived from its inode (plus, for an attribute, the key of the
text its last read rendered), and whether a device is in use is asked of its block device, so a
successor daemon could serve handles it never opened.

Tree (``ROOT`` is the mount point; the names mirror ``/sys/class/zram-control`` and
``/sys/block/zramN``, so a kernel script needs only its path prefixes changed)::

    ROOT/                          0755
    ROOT/zram-control/hot_add      0444  reading it creates the next device and prints its id
    ROOT/zram-control/hot_remove   0200  writing an id removes that device (EBUSY in use, ENODEV)
    ROOT/zram-control/block_prefix 0444  zramd's: what replaces /dev/zram (``/dev/zramd/zram``)
    ROOT/zram-control/daemon       0444  zramd's: this process and its hardening
    ROOT/zramN/                    0755  device N: the kernel's attributes with their modes, plus
    ROOT/zramN/disk                0600  the device itself, size = disksize (its loop device's
                                         backing file)
    ROOT/zramN/block_device        0444  zramd's: the loop device serving as its block device,
                                         and zramd's ``classes``, ``consistency``

Attribute files are opened with ``direct_io`` and read the way sysfs's seq_file reads them: a
read at offset 0 (or a handle's first read) renders the attribute afresh and keeps that text on
the open handle; reads at later offsets are served from the kept text, so a reader taking small
reads never sees text torn between two renderings, and a poller that re-reads an open fd from
offset 0 always sees fresh values. Every write reaches `store`, exactly like sysfs. The disk file
uses the page cache for buffered I/O (without writeback caching, so every write reaches the
device synchronously and errors reach the writer), and O_DIRECT I/O goes straight to the device.

Lifecycle requests wait for the kernel (attaching a loop device, its new capacity, a claim), and
the kernel sends this daemon requests meanwhile: each one starts a stand-in request loop before
it waits (zramd's pyfuse3 patch; with a stock pyfuse3, several serving tasks, see `MAX_TASKS`).
Every other handler runs to completion without awaiting, one at a time. Lifecycle requests run
one at a time under one lock; beyond `MAX_LIFECYCLE_WAITERS` waiting they are answered EBUSY
rather than risk a hang.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pyfuse3
import trio

from zramd.core import attrs
from zramd.core.backing import BackingStore
from zramd.core.engine import ZramDevice
from zramd.core.errors import DeviceBusy, InvalidArgument, ZramError
from zramd.core.kparse import store_buffer
from zramd.core.units import PAGE_SIZE
from zramd.host.mounts import routes_into
from zramd.host.rundir import CONTROL_NAME, DEVICE_PREFIX
from zramd.serve import policy
from zramd.serve.block import BlockDevices

log = logging.getLogger(__name__)

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


ROOT_INODE = pyfuse3.ROOT_INODE
CONTROL_INODE = 2
CONTROL_FILE_INODE = 3  # the control directory's files take the inodes from here
DEVICE_INODE_BASE = 1000  # device N's directory is inode 1000 + 100 N, its files follow it
DEVICE_INODE_SPAN = 100
INODE_MASK = (1 << 32) - 1  # an attribute handle is its inode plus a render key above bit 32
# Serving tasks (see the module docstring). zramd's pyfuse3 has start_stand_in(): one task
# serves, and a lifecycle request that must wait starts a stand-in that serves meanwhile (more
# tasks would cost every request a hand-over between them: 4 KiB reads ran at 0.65-0.68x). A stock
# pyfuse3 runs several tasks instead, and lifecycle requests that would leave fewer than two of
# them free are answered EBUSY.
HAS_STAND_IN = hasattr(pyfuse3, "start_stand_in")
MAX_TASKS = 1 if HAS_STAND_IN else 8
MAX_LIFECYCLE_WAITERS = 32 if HAS_STAND_IN else MAX_TASKS - 2
DISK_NAME = "disk"
# Stores that do I/O of their own and may take long: they run in a worker thread, one at a time
# with the lifecycle requests (a reset waits for a running writeback, as the kernel's does), while
# the serving task goes on. backing_dev opens a path, which may lie on this very mount.
THREADED_STORES = frozenset(
    {"writeback", "recompress", "backing_dev", "algorithm_params"}
)  # the last reads a dict
BLOCK_DEVICE_NAME = "block_device"

DIR, DISK, ATTRIBUTE, FILE, HOT_ADD, HOT_REMOVE = "dir", "disk", "attribute", "file", "hot_add", "hot_remove"


@dataclass(slots=True)
class Node:
    """One entry of the tree.

    Attributes:
        inode: its inode number.  name: its name in the parent.  parent: the parent's inode.
        mode: file type and permission bits.  kind: what it is (`DIR`, `DISK`, `ATTRIBUTE`,
        `FILE`, `HOT_ADD`, `HOT_REMOVE`).  device_id: the device it belongs to (-1: none).
        attribute: the attribute an `ATTRIBUTE` serves.  show: what a `FILE` renders.
        children: for directories, name -> inode.
    """

    inode: int
    name: str
    parent: int
    mode: int
    kind: str
    device_id: int = -1
    attribute: attrs.Attribute | None = None
    show: Callable[[], str] | None = None
    children: dict[str, int] = field(default_factory=dict)

    @property
    def readable(self) -> bool:
        if self.kind == ATTRIBUTE:
            return self.attribute is not None and self.attribute.readable
        return self.kind in (FILE, HOT_ADD, DISK)

    @property
    def writable(self) -> bool:
        if self.kind == ATTRIBUTE:
            return self.attribute is not None and self.attribute.writable
        return self.kind in (HOT_REMOVE, DISK)


def device_inode(device_id: int) -> int:
    return DEVICE_INODE_BASE + device_id * DEVICE_INODE_SPAN


class ZramOperations(pyfuse3.Operations):
    """pyfuse3 operations over a set of `ZramDevice`s and their block devices.

    Attributes:
        devices: device id -> device.
        new_device: makes the device of a ``hot_add``.
        mountpoint: the real path of the mount (the disk files' paths, as the kernel sees them).
        blocks: the devices' loop devices, or None to serve without block devices (tests).
        attributes: each device's attribute files (the kernel's, plus zramd's own additions).
        control_files: read-only files of the control directory, name -> render function.
    """

    supports_dot_lookup = False
    enable_writeback_cache = False

    def __init__(
        self,
        new_device: Callable[[], ZramDevice] = ZramDevice,
        mountpoint: str = "",
        blocks: BlockDevices | None = None,
        attributes: tuple[attrs.Attribute, ...] = attrs.ATTRIBUTES,
        control_files: dict[str, Callable[[], str]] | None = None,
    ) -> None:
        super().__init__()
        self.new_device = new_device
        self.mountpoint = mountpoint
        self.blocks = blocks
        self.attributes = attributes
        self.devices: dict[int, ZramDevice] = {}
        self.uid = os.getuid()
        self.gid = os.getgid()
        self.started_ns = time.time_ns()
        self.disk_mtime_ns: dict[int, int] = {}
        self.nodes: dict[int, Node] = {}
        self.rendered: dict[int, bytes] = {}  # attribute handle -> the text its last read at 0 rendered
        self._next_render_key = 1
        self._read_buffer = bytearray(READ_BUFFER)
        self._lifecycle_lock = trio.Lock()
        self._lifecycle_waiters = 0
        self.serving = False  # True while pyfuse3.main() runs (the daemon sets it)
        root = self._add(ROOT_INODE, "", ROOT_INODE, stat.S_IFDIR | 0o755, DIR)
        control = self._add(CONTROL_INODE, CONTROL_NAME, root.inode, stat.S_IFDIR | 0o755, DIR)
        self._add(CONTROL_FILE_INODE, "hot_add", control.inode, stat.S_IFREG | 0o444, HOT_ADD)
        self._add(CONTROL_FILE_INODE + 1, "hot_remove", control.inode, stat.S_IFREG | 0o200, HOT_REMOVE)
        for offset, (name, show) in enumerate((control_files or {}).items(), start=2):
            self._add(CONTROL_FILE_INODE + offset, name, control.inode, stat.S_IFREG | 0o444, FILE, show=show)

    # ------------------------------------------------------------------ the tree

    def _add(self, inode: int, name: str, parent: int, mode: int, kind: str, **kwargs: Any) -> Node:
        node = Node(inode, name, parent, mode, kind, **kwargs)
        self.nodes[inode] = node
        if inode != parent:
            self.nodes[parent].children[name] = inode
        return node

    def add_device(self, device: ZramDevice | None = None) -> int:
        """Add a device under the lowest free id (the kernel's idr) and its directory; returns
        the id. Its block device is attached separately (`hot_add` does both)."""
        device_id = 0
        while device_id in self.devices:
            device_id += 1
        device = device if device is not None else self.new_device()
        device.backing_guard = self._refuse_own_storage
        self.devices[device_id] = device
        self.disk_mtime_ns[device_id] = time.time_ns()
        base = device_inode(device_id)
        self._add(base, f"{DEVICE_PREFIX}{device_id}", ROOT_INODE, stat.S_IFDIR | 0o755, DIR)
        self._add(base + 1, DISK_NAME, base, stat.S_IFREG | 0o600, DISK, device_id=device_id)
        inode = base + 2
        for attribute in self.attributes:
            mode = stat.S_IFREG | attribute.mode
            self._add(inode, attribute.name, base, mode, ATTRIBUTE, device_id=device_id, attribute=attribute)
            inode += 1
        self._add(inode, BLOCK_DEVICE_NAME, base, stat.S_IFREG | 0o444, FILE, device_id=device_id,
                  show=functools.partial(self._show_block_device, device_id))  # fmt: skip
        assert inode < base + DEVICE_INODE_SPAN, "too many attributes for a device's inode span"
        return device_id

    def _drop_device(self, device_id: int) -> None:
        base = device_inode(device_id)
        directory = self.nodes.pop(base)
        for inode in directory.children.values():
            del self.nodes[inode]
        del self.nodes[ROOT_INODE].children[directory.name]
        del self.devices[device_id]
        del self.disk_mtime_ns[device_id]

    def _refuse_own_storage(self, backing: BackingStore) -> None:
        """A device's ``backing_guard``: EINVAL for a backing store that routes back into this
        daemon (its disk files, its block devices, filesystems on them), which would deadlock
        the first writeback (the kernel refuses a self-reference with EINVAL too)."""
        block_paths = [self.blocks.path_of(i) for i in self.devices] if self.blocks else []
        reason = routes_into(os.fstat(backing.fd), self.mountpoint, [p for p in block_paths if p])
        if reason is not None:
            log.warning("backing_dev %s refused: %s", backing.path, reason)
            raise InvalidArgument(f"backing_dev {backing.path}: {reason}")

    def _show_block_device(self, device_id: int) -> str:
        return (self.blocks.path_of(device_id) if self.blocks else "") + "\n"

    def disk_path(self, device_id: int) -> str:
        """Device `device_id`'s disk file, as the kernel names it (no lookup: never stat it)."""
        return os.path.join(self.mountpoint, f"{DEVICE_PREFIX}{device_id}", DISK_NAME)

    def _node(self, inode: int) -> Node:
        try:
            return self.nodes[inode]
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None

    def _handle_node(self, fh: int) -> Node:
        """The node of an open handle; ENODEV once its device is removed (as sysfs answers)."""
        node = self.nodes.get(fh & INODE_MASK)
        if node is None:
            raise pyfuse3.FUSEError(errno.ENODEV if fh & INODE_MASK >= DEVICE_INODE_BASE else errno.EBADF)
        return node

    def _device(self, node: Node) -> ZramDevice:
        return self.devices[node.device_id]

    # ------------------------------------------------------------------ metadata

    def _attributes(self, node: Node) -> pyfuse3.EntryAttributes:
        entry = pyfuse3.EntryAttributes()
        entry.st_ino = node.inode
        entry.st_mode = node.mode
        if node.kind == DIR:
            subdirectories = [c for c in node.children.values() if self.nodes[c].kind == DIR]
            entry.st_nlink = 2 + len(subdirectories)
        else:
            entry.st_nlink = 1
        entry.st_uid = self.uid
        entry.st_gid = self.gid
        entry.st_blksize = PAGE_SIZE
        entry.st_atime_ns = entry.st_ctime_ns = self.started_ns
        entry.st_mtime_ns = self.started_ns
        if node.kind == DISK:
            device = self._device(node)
            entry.st_size = device.disksize
            # Blocks actually used: the pool's memory, so `du disk` answers "how much RAM".
            entry.st_blocks = device.statistics().pool_pages * (PAGE_SIZE // 512)
            entry.st_mtime_ns = entry.st_ctime_ns = self.disk_mtime_ns[node.device_id]
        elif node.kind != DIR:
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
        if fields.update_size and (node.kind != DISK or attr.st_size != self._device(node).disksize):
            raise pyfuse3.FUSEError(errno.EPERM)
        if fields.update_mode or fields.update_uid or fields.update_gid:
            raise pyfuse3.FUSEError(errno.EPERM)
        return self._attributes(node)  # time updates are accepted and ignored

    @replies_errno
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        data = pyfuse3.StatvfsData()
        data.f_bsize = data.f_frsize = PAGE_SIZE
        data.f_blocks = sum(device.disksize for device in self.devices.values()) // PAGE_SIZE
        data.f_bfree = data.f_bavail = 0
        data.f_files = len(self.nodes)
        data.f_ffree = data.f_favail = 0
        data.f_namemax = 255
        return data

    # ------------------------------------------------------------------ directories

    @replies_errno
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        node = self._node(inode)
        if node.kind != DIR:
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
        if node.kind == DIR:
            raise pyfuse3.FUSEError(errno.EISDIR)
        access = flags & os.O_ACCMODE
        if (access in (os.O_RDONLY, os.O_RDWR) and not node.readable) or (
            access in (os.O_WRONLY, os.O_RDWR) and not node.writable
        ):
            raise pyfuse3.FUSEError(errno.EACCES)  # kernfs refuses these even for root
        info = pyfuse3.FileInfo()
        if node.kind == DISK:
            info.fh = inode  # stateless: the handle is the inode
            info.keep_cache = False
        else:
            info.fh = (self._next_render_key << 32) | inode
            self._next_render_key += 1
            info.direct_io = True
        return info

    @replies_errno
    async def read(self, fh: int, off: int, size: int) -> bytes | memoryview:  # type: ignore[override]
        # pyfuse3's stub says bytes, but it replies from any contiguous buffer (PyObject_GetBuffer).
        node = self._handle_node(fh)
        if node.kind == DISK:
            # Handlers that do I/O never await, and pyfuse3 copies the reply out before the
            # next handler runs, so one preallocated buffer serves every read.
            return self._device(node).read_view(off, size, self._read_buffer)
        if node.attribute is not None and node.attribute.read_at is not None:
            return node.attribute.read_at(self._device(node), off, size)
        text = self.rendered.get(fh)
        if off == 0 or text is None:  # a first read past 0 renders too, as seq_file does
            text = self.rendered[fh] = (await self._render(node)).encode()
        return text[off : off + size]

    async def _render(self, node: Node) -> str:
        if node.kind == HOT_ADD:
            return f"{await self.hot_add()}\n"
        if node.show is not None:
            return node.show()
        if not node.readable:
            raise pyfuse3.FUSEError(errno.EACCES)
        assert node.attribute is not None and node.attribute.show is not None
        return node.attribute.show(self._device(node))

    @replies_errno
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        node = self._handle_node(fh)
        if node.kind == DISK:
            written = self._device(node).write(off, buf)
            self.disk_mtime_ns[node.device_id] = time.time_ns()
            return written
        if not buf:
            return 0  # sysfs: a zero-length write does nothing
        if node.kind == HOT_REMOVE:
            await self.hot_remove(attrs.parse_hot_remove(store_buffer(buf)))
            return min(len(buf), PAGE_SIZE)
        if not node.writable:
            raise pyfuse3.FUSEError(errno.EACCES)
        assert node.attribute is not None
        if node.attribute.name == "reset":
            attrs.parse_reset(store_buffer(buf))  # EINVAL before EBUSY, as the kernel checks
            await self.reset(node.device_id)
            return min(len(buf), PAGE_SIZE)
        if node.attribute.name == "disksize":
            return await self._write_disksize(node, buf)
        if node.attribute.name in THREADED_STORES:
            async with self._lifecycle():
                return await trio.to_thread.run_sync(node.attribute.write, self._device(node), buf)
        return node.attribute.write(self._device(node), buf)

    async def _write_disksize(self, node: Node, buf: bytes) -> int:
        assert node.attribute is not None
        async with self._lifecycle():
            device = self._device(node)
            count = node.attribute.write(device, buf)
            await self._disksize_changed(node.device_id)
            return count

    async def _disksize_changed(self, device_id: int) -> None:
        """Tell the kernel the disk's size changed, and make the block device follow it before
        the write that changed it returns (scripts run mkswap right after)."""
        self._invalidate_attributes(device_inode(device_id) + 1)
        if self.blocks is not None:
            await self.blocks.follow_disksize(device_id)

    def _invalidate_attributes(self, inode: int) -> None:
        """Drop the kernel's cached attributes of `inode` (no page locks taken)."""
        try:
            pyfuse3.invalidate_inode(inode, attr_only=True)
        except OSError as exc:  # ENOENT: the kernel has not looked it up yet
            if exc.errno != errno.ENOENT:
                log.warning("could not invalidate the cached attributes of inode %d: %s", inode, exc)

    # ------------------------------------------------------------------ lifecycle

    @asynccontextmanager
    async def _lifecycle(self, stand_in: bool = True) -> AsyncIterator[None]:
        """One lifecycle request at a time, each with a stand-in serving the kernel while it
        waits (see `MAX_TASKS`); EBUSY rather than let waiters pile up without bound. A task
        that is not a request handler (the writeback policy) needs no stand-in."""
        if self._lifecycle_waiters >= MAX_LIFECYCLE_WAITERS:
            raise DeviceBusy("too many device changes in flight; try again")
        self._lifecycle_waiters += 1
        try:
            if stand_in and HAS_STAND_IN and self.serving:
                pyfuse3.start_stand_in()
            async with self._lifecycle_lock:
                yield
        finally:
            self._lifecycle_waiters -= 1

    async def run_policy(self, device_id: int) -> policy.CycleReport | None:
        """One cycle of device `device_id`'s writeback policy, in a worker thread, one at a time
        with the lifecycle requests (so a reset waits for it); None if it has nothing to do."""
        async with self._lifecycle(stand_in=False):
            device = self.devices.get(device_id)
            if device is None or not policy.due(device):
                return None
            return await trio.to_thread.run_sync(policy.run_cycle, device)

    async def hot_add(self) -> int:
        """Create the next device with its block device; returns its id."""
        async with self._lifecycle():
            device_id = self.add_device()
            if self.blocks is not None:
                try:
                    await self.blocks.attach(device_id, self.disk_path(device_id))
                except BaseException:
                    self._drop_device(device_id)
                    raise
            return device_id

    async def reset(self, device_id: int) -> None:
        """Reset a device, as ``reset_store`` does: EBUSY while its block device is in use
        (claimed for the duration, so nothing opens it meanwhile); its capacity becomes 0."""
        async with self._lifecycle():
            device = self.devices[device_id]
            if self.blocks is not None:
                async with self.blocks.claim(device_id):
                    device.reset()
                    await self._disksize_changed(device_id)
            else:
                device.reset()
                self._invalidate_attributes(device_inode(device_id) + 1)

    async def hot_remove(self, device_id: int) -> None:
        """Remove an unused device: ENODEV if unknown, EBUSY while in use."""
        async with self._lifecycle():
            device = self.devices.get(device_id)
            if device is None:
                raise pyfuse3.FUSEError(errno.ENODEV)
            if self.blocks is not None:
                async with self.blocks.claim(device_id):
                    await self.blocks.detach(device_id)
            device.reset()
            name = f"{DEVICE_PREFIX}{device_id}"
            self._drop_device(device_id)
            try:
                pyfuse3.invalidate_entry_async(ROOT_INODE, os.fsencode(name), ignore_enoent=True)
            except Exception as exc:  # no session (tests) or a closing one
                log.debug("invalidating %s: %s", name, exc)

    # ------------------------------------------------------------------ the disk

    @replies_errno
    async def fallocate(self, fh: int, mode: int, offset: int, length: int) -> None:
        """Discard (PUNCH_HOLE|KEEP_SIZE) and write-zeroes (ZERO_RANGE, with or without
        KEEP_SIZE) free the pages they cover, as REQ_OP_DISCARD / REQ_OP_WRITE_ZEROES do on zram.
        A loop device sends exactly these two (modes 3 and 17); it must never be refused them, or
        it silently turns discard off. Every other mode is EOPNOTSUPP, like on a block device;
        a range reaching past the end without KEEP_SIZE is EINVAL (the disk cannot grow)."""
        node = self._handle_node(fh)
        if node.kind != DISK or mode not in FALLOCATE_MODES:
            raise pyfuse3.FUSEError(errno.EOPNOTSUPP)
        device = self._device(node)
        if offset + length > device.disksize and not mode & FALLOC_FL_KEEP_SIZE:
            raise pyfuse3.FUSEError(errno.EINVAL)
        device.discard(offset, length, write_zeroes=bool(mode & FALLOC_FL_ZERO_RANGE))
        self.disk_mtime_ns[node.device_id] = time.time_ns()

    @replies_errno
    async def flush(self, fh: int) -> None:
        self._handle_node(fh)

    @replies_errno
    async def fsync(self, fh: int, datasync: bool) -> None:
        node = self._handle_node(fh)
        if node.kind == DISK:
            self._device(node).flush()

    @replies_errno
    async def release(self, fh: int) -> None:
        self.rendered.pop(fh, None)

    # ------------------------------------------------------------------ refused namespace changes

    async def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise pyfuse3.FUSEError(errno.EPERM)

    mknod = mkdir = unlink = rmdir = symlink = rename = link = create = _refuse

    # xattr handlers are deliberately absent: pyfuse3 answers ENOSYS once, the kernel then stops
    # asking (no GETXATTR round trip for security.capability before every write), and users get
    # EOPNOTSUPP.

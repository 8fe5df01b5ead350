"""Each device's block device: one loop device over its ``disk`` file, owned by the daemon.

Owns: attaching the loop device when a device is created (direct I/O, 4 KiB sectors, autoclear,
the daemon holding the last reference, so a dead daemon's loops go away with it unless swap or a
mount still holds them), its predictable link (``/dev/zramd/zramN`` -> ``/dev/loopX``), making its
capacity follow ``disksize`` (``LOOP_SET_CAPACITY``), deciding whether the block device is in
use (the kernel's ``disk_openers || claim`` rule: see `claim`), and detaching it when the device
is removed or the daemon stops.

Every loop ioctl and every open of the disk file runs on a worker thread that the calling handler
awaits: each of them makes the kernel send this daemon FUSE requests (an open, a getattr for the
new size, a release), which the serving task must stay free to answer.
Must not: touch a device's data or counters (the FUSE operations do), or stat anything under
the daemon's own mount from the serving thread.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import trio

from zramd.core.errors import DeviceBusy, ZramError
from zramd.host import loop
from zramd.host.mounts import loop_devices_for
from zramd.host.rundir import BLOCK_LINK_DIR
from zramd.serve import hardening

log = logging.getLogger(__name__)


T = TypeVar("T")


async def in_worker(function: Callable[..., T], *args: Any) -> T:
    """Run `function` on a worker thread (marked an I/O flusher like every serving thread) and
    wait for it while the serving task goes on answering the kernel."""

    def hardened() -> T:
        hardening.harden_thread_once()
        return function(*args)

    return await trio.to_thread.run_sync(hardened)


class BlockDeviceError(ZramError):
    """The loop device could not be attached or resized; carries the ioctl's errno."""

    def __init__(self, message: str, error: int = errno.EIO) -> None:
        super().__init__(message)
        self.errno = error


@dataclass(slots=True)
class BlockDevice:
    """A device's loop device while it is attached.

    Attributes:
        loop: the loop device.  keep_fd: the daemon's fd on it (the last reference, with
        autoclear).  link: the predictable path linking to it.  disk: its backing file's path.
    """

    loop: loop.LoopDevice
    keep_fd: int
    link: Path
    disk: str


class BlockDevices:
    """The loop devices of one daemon's devices, by device id.

    Attributes:
        link_dir: where the predictable links live (``/dev/zramd`` or a per-mount subdirectory).
        attached: device id -> its block device.
    """

    def __init__(self, link_dir: Path) -> None:
        self.link_dir = link_dir
        self.attached: dict[int, BlockDevice] = {}

    def path_of(self, device_id: int) -> str:
        """The loop device's path (``/dev/loop3``), or "" while none is attached."""
        block = self.attached.get(device_id)
        return block.loop.path if block else ""

    def link_of(self, device_id: int) -> Path:
        return self.link_dir / f"zram{device_id}"

    async def attach(self, device_id: int, disk: str) -> str:
        """Attach a loop device over `disk` (a path inside the daemon's own mount) and link it;
        returns the loop device's path."""
        try:
            device, keep_fd = await in_worker(loop.attach, disk)
        except OSError as exc:
            raise BlockDeviceError(
                f"cannot attach a loop device to {disk}: {exc}", exc.errno or errno.EIO
            ) from None
        link = self.link_of(device_id)
        try:
            self.link_dir.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            link.symlink_to(device.path)
        except OSError as exc:
            log.warning("cannot link %s to %s: %s", link, device.path, exc)
        self.attached[device_id] = BlockDevice(device, keep_fd, link, disk)
        log.info("zram%d: block device %s (%s)", device_id, device.path, link)
        return device.path

    async def follow_disksize(self, device_id: int) -> None:
        """Make the loop device's capacity the disk file's current size; returns once the kernel
        has it (the kernel asks this daemon for the size meanwhile)."""
        block = self.attached.get(device_id)
        if block is None:
            return
        try:
            await in_worker(block.loop.set_capacity)
        except OSError as exc:
            raise BlockDeviceError(
                f"cannot resize {block.loop.path}: {exc}", exc.errno or errno.EIO
            ) from None

    @contextlib.asynccontextmanager
    async def claim(self, device_id: int) -> AsyncIterator[None]:
        """Hold the block device exclusively, or raise DeviceBusy if it is in use.

        The kernel's reset and hot_remove refuse while the disk has any opener or a claim, and
        claim it for their duration so nothing can open it meanwhile. zramd does the same with
        an ``O_EXCL`` open of the loop device (refused by the kernel while it is mounted, used
        as swap or claimed by anyone else), then looks for any other process holding the loop
        device or the disk file open (readlink of ``/proc/*/fd``) and for loop devices someone
        else attached to the disk file. The daemon's own reference does not count.
        """
        block = self.attached.get(device_id)
        claim_fd = None
        if block is not None:
            try:
                claim_fd = await in_worker(block.loop.claim)
            except OSError as exc:
                if exc.errno == errno.EBUSY:
                    raise DeviceBusy(f"{block.loop.path} is in use (mounted, swap or claimed)") from None
                raise
        try:
            if block is not None:
                await in_worker(self._check_unused, block)
            yield
        finally:
            if claim_fd is not None:
                os.close(claim_fd)

    def _check_unused(self, block: BlockDevice) -> None:
        holders = [pid for pid in loop.fd_holders({block.loop.path, block.disk}) if pid != os.getpid()]
        if holders:
            raise DeviceBusy(f"{block.loop.path} is open by pid {', '.join(map(str, holders))}")
        foreign = [path for path in loop_devices_for(block.disk, resolve=False) if path != block.loop.path]
        if foreign:
            raise DeviceBusy(f"{block.disk} is also attached to {', '.join(foreign)}")

    def in_use(self, device_id: int) -> str:
        """Why the block device is in use, or "" (a quick check for the stop signal; the serving
        thread may call it: it opens only the loop device, never the disk file)."""
        block = self.attached.get(device_id)
        if block is None:
            return ""
        try:
            fd = block.loop.claim()
        except OSError as exc:
            return f"{block.loop.path}: {os.strerror(exc.errno or 0)} (mounted or swap)"
        os.close(fd)
        return ""

    async def detach(self, device_id: int) -> None:
        """Detach and unlink the loop device of `device_id` (if any)."""
        block = self.attached.pop(device_id, None)
        if block is None:
            return
        with contextlib.suppress(OSError):
            if block.link.is_symlink() and os.readlink(block.link) == block.loop.path:
                block.link.unlink()

        def detach_and_close() -> None:
            try:
                block.loop.detach()
            finally:
                os.close(block.keep_fd)

        try:
            await in_worker(detach_and_close)
        except OSError as exc:
            log.warning("zram%d: detaching %s: %s", device_id, block.loop.path, exc)
        log.info("zram%d: detached %s", device_id, block.loop.path)

    async def detach_all(self) -> None:
        for device_id in sorted(self.attached, reverse=True):
            await self.detach(device_id)
        with contextlib.suppress(OSError):
            if self.link_dir != BLOCK_LINK_DIR:
                self.link_dir.rmdir()

"""Test and benchmark devices, kept out of the driver: the no-op ceiling and fault injection.

Owns: `NoopDevice` (``zramd run --noop``: the benchmark's ceiling, the same FUSE front end over a
device that stores nothing) and `FaultInjector` with its ``zramN/fault_inject`` attribute, which the
daemon adds only when started with ``ZRAMD_FAULT_INJECTION=1``. Fault injection goes through the
device's `fault_hook`, the one hook the driver keeps for it, so it works the same whichever
implementation of the per-page path runs.
Must not: be used by a daemon serving real data unless one of those two was asked for.
"""

from __future__ import annotations

import os
import weakref

from zramd.core.attrs import Attribute
from zramd.core.device import ZramDevice  # the Python build: it stores nothing, and the compiled one is final
from zramd.core.errors import InvalidArgument, NoSpace

FAULT_INJECTION_ENV = "ZRAMD_FAULT_INJECTION"


def fault_injection_enabled() -> bool:
    return os.environ.get(FAULT_INJECTION_ENV) == "1"


class NoopDevice(ZramDevice):
    """The benchmark's ceiling: reads return zeros and writes are dropped, served through the
    same FUSE front end. Setup and the attribute files behave as usual, but I/O is not counted
    (it never reaches the slot table), so ``mm_stat``, ``io_stat`` and ``stat`` stay at 0."""

    def __init__(self) -> None:
        super().__init__()
        self._zeros = bytes(1 << 20)

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> int:
        if offset >= self.disksize:
            raise NoSpace(f"write at {offset} is past the end of the disk ({self.disksize} bytes)")
        return min(len(data), self.disksize - offset)

    def read_view(self, offset: int, size: int, buffer: bytearray | None) -> memoryview:
        size = max(0, min(size, self.disksize - offset))
        return memoryview(self._zeros)[:size] if size <= len(self._zeros) else memoryview(bytes(size))


class FaultInjector:
    """Makes the next N compressions or decompressions of a device fail, as a broken codec
    would, through `ZramDevice.fault_hook`; also garbles stored objects, as a memory error
    would. Installs itself as the hook while armed and removes itself once spent."""

    def __init__(self, device: ZramDevice) -> None:
        self.device = device
        self.remaining = {"compress": 0, "decompress": 0}

    def arm(self, stage: str, count: int) -> None:
        """Fail the next `count` runs of `stage` ("compress" or "decompress")."""
        with self.device.lock:
            self.remaining[stage] += count
            if any(self.remaining.values()):
                self.device.fault_hook = self

    def __call__(self, stage: str, index: int) -> None:
        if self.remaining[stage] <= 0:
            return
        self.remaining[stage] -= 1
        if not any(self.remaining.values()):
            self.device.fault_hook = None
        raise RuntimeError(f"injected {stage} failure at page {index}")

    def corrupt(self, index: int) -> None:
        """Overwrite page `index`'s compressed object with garbage of the same length.
        InvalidArgument unless the page holds a compressed object."""
        with self.device.lock:
            stored = self.device.stored_object(index)
            pool = self.device.pool
            if stored is None or pool is None:
                raise InvalidArgument(f"page {index} holds no compressed object")
            location, size = stored
            pool.write(location, bytes((i * 7 + 1) & 0xFF for i in range(size)))


def fault_inject_attribute() -> Attribute:
    """``zramN/fault_inject`` (write-only): ``compress N`` / ``decompress N`` make the next N
    (de)compressions fail; ``corrupt PAGE`` garbles the stored object of page PAGE. Each device
    gets its own injector on first use."""
    injectors: weakref.WeakKeyDictionary[ZramDevice, FaultInjector] = weakref.WeakKeyDictionary()

    def store(device: ZramDevice, text: str) -> None:
        injector = injectors.get(device)
        if injector is None:
            injector = injectors[device] = FaultInjector(device)
        words = text.split()
        if len(words) != 2 or not words[1].isdigit():
            raise InvalidArgument("expected 'compress N', 'decompress N' or 'corrupt PAGE'")
        what, number = words[0], int(words[1])
        if what in ("compress", "decompress"):
            injector.arm(what, number)
        elif what == "corrupt":
            injector.corrupt(number)
        else:
            raise InvalidArgument(f"unknown fault {what!r}")

    return Attribute("fault_inject", 0o200, None, store)

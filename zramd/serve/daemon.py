"""The daemon: set up one device, mount it, serve until unmounted or signalled, clean up.

Owns: the process lifecycle of `zramd run` -- mount point checks, device setup from the command
line or config, ``pyfuse3.init``/``main``/``close`` in the right order (``close(unmount=False)``
on the error path), SIGTERM/SIGINT/SIGHUP handling, readiness reporting (systemd's READY=1 and the
pipe `zramd start` waits on), the pid file, and the ``sys/daemon`` report.
Must not: access its own mount (a daemon that reads or writes through its own FUSE mount can
deadlock itself); everything it needs is in memory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time

import pyfuse3
import trio

from zramd import __version__
from zramd.core import attrs
from zramd.core.device import ZramDevice
from zramd.core.errors import UserError, ZramError
from zramd.host.mounts import FSNAME, active_swap_on, prepare_mountpoint
from zramd.host.rundir import RUN_DIR, pidfile_for
from zramd.host.settings import ServeConfig
from zramd.serve import hardening, sdnotify, testing
from zramd.serve.ops import HAS_FALLOCATE, ZramOperations

log = logging.getLogger(__name__)

GC_INTERVAL = 5.0  # seconds between idle-time garbage collections


class Daemon:
    """One running zramd: a device, its FUSE operations, and the serve loop."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.device = testing.NoopDevice() if config.noop else ZramDevice()
        self.started = time.time()
        self.mountpoint = ""
        self.stop_reason = ""

    def setup_device(self) -> None:
        config = self.config
        try:
            self.device.set_comp_algorithm(config.algorithm)
            self.device.set_mem_limit(config.mem_limit)
            self.device.set_disksize(config.disksize)
        except ZramError as exc:
            raise UserError(f"cannot set up the device: {exc}") from None

    def report(self) -> str:
        """The ``sys/daemon`` file: key: value lines about this process and its hardening."""
        lines = {
            "pid": str(os.getpid()),
            "version": __version__,
            "mountpoint": self.mountpoint,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
            "uptime_seconds": str(int(time.time() - self.started)),
            "fallocate": "yes" if HAS_FALLOCATE else "no (discard does not free memory)",
            **hardening.self_check(),
        }
        return "".join(f"{key}: {value}\n" for key, value in lines.items())

    def serve(self) -> int:
        """Mount and serve until unmounted or signalled. Returns the exit status (0)."""
        config = self.config
        self.mountpoint = prepare_mountpoint(config.mountpoint)
        self.setup_device()
        if not HAS_FALLOCATE:
            log.warning(
                "this pyfuse3 has no fallocate support: discard/TRIM will not free memory "
                "(install zramd with scripts/bootstrap, which builds the patched pyfuse3)"
            )
        attributes = (*attrs.ATTRIBUTES, attrs.CLASSES, attrs.CONSISTENCY)
        if testing.fault_injection_enabled():
            log.warning(
                "fault injection is enabled (%s=1): sys/fault_inject exists", testing.FAULT_INJECTION_ENV
            )
            attributes += (testing.fault_inject_attribute(testing.FaultInjector(self.device)),)
        ops = ZramOperations(self.device, extra_files={"daemon": self.report}, attributes=attributes)
        options = set(pyfuse3.default_options)
        options |= {f"fsname={FSNAME}", "subtype=zramd"}
        if config.allow_other:
            options.add("allow_other")
        hardening.harden_process()
        for key, value in hardening.self_check().items():
            log.info("self-check: %s: %s", key, value)
        try:
            pyfuse3.init(ops, self.mountpoint, options)
        except RuntimeError as exc:
            raise UserError(f"cannot mount {self.mountpoint}: {exc}") from None
        pidfile = pidfile_for(self.mountpoint)
        unmount = False
        try:
            RUN_DIR.mkdir(parents=True, exist_ok=True)
            pidfile.write_text(f"{os.getpid()}\n")
            trio.run(self._main)
            unmount = True
        finally:
            pyfuse3.close(unmount=unmount)
            pidfile.unlink(missing_ok=True)
            self.device.reset_for_exit()
        log.info("stopped (%s)", self.stop_reason or "unmounted")
        return 0

    async def _main(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_signals)
            nursery.start_soon(self._announce_ready)
            nursery.start_soon(self._collect_garbage)
            # One task: the handlers never await, so more tasks would only add task switches
            # (measured slower); requests are served strictly one at a time, in order.
            await pyfuse3.main(min_tasks=1, max_tasks=1)
            nursery.cancel_scope.cancel()

    async def _collect_garbage(self) -> None:
        """The automatic collector is off (it would run in the middle of requests); collect
        young objects every few seconds instead, between requests."""
        while True:
            await trio.sleep(GC_INTERVAL)
            hardening.collect_garbage()

    async def _watch_signals(self) -> None:
        """SIGTERM, SIGINT and SIGHUP unmount and stop -- except while the disk is active swap:
        pages of running processes live in it, and stopping would hang or kill them. Then the
        signal is refused with a log line (swapoff first; SIGKILL remains the last resort)."""
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                # Never resolve a path inside our own mount: self.mountpoint is already real.
                swaps = active_swap_on(os.path.join(self.mountpoint, "disk"), resolve=False)
                if swaps:
                    log.error(
                        "%s refused: %s/disk is active swap on %s; run 'zramd swapoff %s' first",
                        name, self.mountpoint, ", ".join(swaps), self.mountpoint,
                    )  # fmt: skip
                    continue
                self.stop_reason = f"signal {name}"
                log.info("%s: unmounting %s", self.stop_reason, self.mountpoint)
                pyfuse3.terminate()
                return

    async def _announce_ready(self) -> None:
        device = self.device
        status = f"serving {self.mountpoint}/disk: {device.disksize} bytes, {device.comp_algorithm}"
        log.info("%s", status)
        sdnotify.notify(f"READY=1\nSTATUS={status}\nMAINPID={os.getpid()}")
        if self.config.ready_fd is not None:
            try:
                os.write(self.config.ready_fd, b"READY\n")
                os.close(self.config.ready_fd)
            except OSError:
                pass  # `zramd start` went away; nothing to tell


def run(config: ServeConfig) -> int:
    """Serve `config` in the foreground; start-up errors go to the ready pipe too."""
    try:
        return Daemon(config).serve()
    except UserError as exc:
        if config.ready_fd is not None:
            with contextlib.suppress(OSError):  # `zramd start` went away
                os.write(config.ready_fd, f"ERROR {exc}\n".encode())
        raise

"""The daemon: mount a root, serve its devices until stopped, clean up.

Owns: the process lifecycle of `zramd run` -- mount point checks, the devices it starts with
(configured from the command line or left uninitialised), ``pyfuse3.init``/``main``/``close`` in
the right order (``close(unmount=False)`` on the error path), attaching the starting devices'
block devices once it serves, SIGTERM/SIGINT/SIGHUP handling (refused while a block device is in
use; otherwise the block devices are detached, then the root unmounted), readiness reporting
(systemd's READY=1 and the pipe `zramd start` waits on), the pid file, and the ``daemon`` report.
Must not: access its own mount from the serving thread (a daemon that reads or writes through
its own FUSE mount from there deadlocks itself); the block devices' ioctls, which make the kernel
call back into the mount, run on worker threads while the daemon serves.
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
from zramd.core import attrs, engine
from zramd.core.engine import ZramDevice
from zramd.core.errors import UserError, ZramError
from zramd.core.streams import CompressionStreams, online_cpus
from zramd.core.units import PAGE_SHIFT
from zramd.host.mounts import FSNAME, prepare_mountpoint
from zramd.host.rundir import RUN_DIR, block_link_dir, block_prefix, lockfile_for, pidfile_for
from zramd.host.settings import ServeConfig
from zramd.serve import hardening, policy, sdnotify, testing
from zramd.serve.block import BlockDevices, in_worker
from zramd.serve.ops import HAS_FALLOCATE, MAX_TASKS, ZramOperations

log = logging.getLogger(__name__)

POLICY_TICK = 1.0  # seconds between checks for a due writeback policy cycle
GC_INTERVAL = 5.0  # seconds between idle-time garbage collections of the young generations
GC_FULL_EVERY = 12  # every 12th of them (once a minute) collects every generation


class Daemon:
    """One running zramd: its devices, their FUSE operations and block devices, the serve loop."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.started = time.time()
        self.mountpoint = ""
        self.stop_reason = ""
        self.ops: ZramOperations | None = None
        self.start_error = ""
        self.policy_reports: dict[int, policy.CycleReport] = {}
        # Shared by every device: one request is served at a time (see ops.MAX_TASKS).
        self.streams = CompressionStreams(config.streams or online_cpus())

    def new_device(self) -> ZramDevice:
        return testing.NoopDevice() if self.config.noop else ZramDevice(streams=self.streams)

    def setup_first_device(self, device: ZramDevice) -> None:
        """Configure device 0 from the command line, in the kernel's order; a size of 0 leaves
        it uninitialised (to be set up through its files)."""
        config = self.config
        try:
            device.set_comp_algorithm(config.algorithm)
            device.set_mem_limit(config.mem_limit)
            if config.backing_dev:
                device.set_backing_dev(config.backing_dev)
            if config.writeback_policy:
                attrs.WRITEBACK_POLICY.write(device, config.writeback_policy.encode())
            if config.disksize:
                device.set_disksize(config.disksize)
        except ZramError as exc:
            raise UserError(f"cannot set up the device: {exc}") from None

    def report(self) -> str:
        """The ``zram-control/daemon`` file: key: value lines about this process."""
        devices = self.ops.devices if self.ops else {}
        stats = [device.statistics() for device in devices.values()]
        lines = {
            "pid": str(os.getpid()),
            "version": __version__,
            "mountpoint": self.mountpoint,
            "devices": " ".join(f"zram{i}" for i in sorted(devices)) or "none",
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
            "uptime_seconds": str(int(time.time() - self.started)),
            "fallocate": "yes" if HAS_FALLOCATE else "no (discard does not free memory)",
            "core": engine.describe(),
            "streams": str(self.streams.count),
            "rss_bytes": str(resident_bytes()),
            "pool_resident_bytes": str(sum(s.frames_resident for s in stats) << PAGE_SHIFT),
            "mem_used_total_bytes": str(sum(s.mm.mem_used_total for s in stats)),
            "release_frames": " ".join(
                f"zram{i}" for i, d in sorted(devices.items()) if d.writeback_policy.release
            )
            or "none",
            "writeback_policy": self._policy_summary(),
            **hardening.self_check(),
        }
        return "".join(f"{key}: {value}\n" for key, value in lines.items())

    def _policy_summary(self) -> str:
        reports = self.policy_reports
        if not reports:
            return "no cycle yet"
        return "; ".join(
            f"zram{i}: last cycle {time.strftime('%H:%M:%S', time.localtime(r.at))} wrote {r.written} "
            f"pages in {r.seconds:.3f} s" + (f" ({r.error})" if r.error else "")
            for i, r in sorted(reports.items())
        )

    def serve(self) -> int:
        """Mount and serve until stopped. Returns the exit status (0)."""
        config = self.config
        self.mountpoint = prepare_mountpoint(
            config.mountpoint, block_link_dir(os.path.realpath(os.path.abspath(config.mountpoint)))
        )
        if not HAS_FALLOCATE:
            log.warning(
                "this pyfuse3 has no fallocate support: discard/TRIM will not free memory "
                "(install zramd with scripts/bootstrap, which builds the patched pyfuse3)"
            )
        attributes = (*attrs.ATTRIBUTES, *attrs.ZRAMD_ATTRIBUTES)
        if testing.fault_injection_enabled():
            log.warning(
                "fault injection is enabled (%s=1): zramN/fault_inject exists", testing.FAULT_INJECTION_ENV
            )
            attributes += (testing.fault_inject_attribute(),)
        prefix = block_prefix(self.mountpoint)
        ops = self.ops = ZramOperations(
            new_device=self.new_device,
            mountpoint=self.mountpoint,
            blocks=BlockDevices(block_link_dir(self.mountpoint)),
            attributes=attributes,
            control_files={"block_prefix": lambda: prefix + "\n", "daemon": self.report},
        )
        for number in range(config.devices):
            device = self.new_device()
            if number == 0:
                self.setup_first_device(device)
            ops.add_device(device)
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
            lockfile_for(self.mountpoint).unlink(missing_ok=True)
            assert ops.blocks is not None
            for block in ops.blocks.attached.values():  # only after a crash of the serve loop
                with contextlib.suppress(OSError):
                    os.close(block.keep_fd)  # autoclear detaches it, unless swap or a mount holds it
            for device in ops.devices.values():
                device.reset()
        if self.start_error:
            raise UserError(self.start_error)
        log.info("stopped (%s)", self.stop_reason or "unmounted")
        return 0

    async def _main(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_signals)
            nursery.start_soon(self._collect_garbage)
            nursery.start_soon(self._run_policies)
            nursery.start_soon(self._attach_and_announce)
            # Handlers that do I/O never await, so they run one at a time, in order; a lifecycle
            # request that waits for the kernel has a stand-in serve meanwhile (ops.MAX_TASKS).
            assert self.ops is not None
            self.ops.serving = True
            try:
                await pyfuse3.main(min_tasks=1, max_tasks=MAX_TASKS)
            finally:
                self.ops.serving = False
            nursery.cancel_scope.cancel()

    async def _attach_and_announce(self) -> None:
        """Attach the starting devices' block devices (the kernel opens their disk files through
        the mount, so the serve loop must already run), then report readiness."""
        ops = self.ops
        assert ops is not None and ops.blocks is not None
        try:
            for device_id in sorted(ops.devices):
                await ops.blocks.attach(device_id, ops.disk_path(device_id))
        except ZramError as exc:
            self.start_error = str(exc)
            self.stop_reason = "start-up failed"
            await ops.blocks.detach_all()
            pyfuse3.terminate()
            return
        self._announce_ready()

    async def _run_policies(self) -> None:
        """Run each device's writeback policy every `interval` seconds (checked every
        POLICY_TICK), one cycle at a time; a cycle's errors are in its report and the log."""
        ops = self.ops
        assert ops is not None
        last: dict[int, float] = {}
        while True:
            await trio.sleep(POLICY_TICK)
            for device_id, device in sorted(ops.devices.items()):
                interval = device.writeback_policy.interval
                if not interval or time.monotonic() - last.get(device_id, 0.0) < interval:
                    continue
                last[device_id] = time.monotonic()
                try:
                    report = await ops.run_policy(device_id)
                except ZramError as exc:  # EBUSY: lifecycle requests are piling up
                    log.warning("writeback policy of zram%d skipped: %s", device_id, exc)
                    continue
                if report is not None:
                    self.policy_reports[device_id] = report

    async def _collect_garbage(self) -> None:
        """The automatic collector is off (it would run in the middle of requests); collect
        young objects every few seconds instead, between requests, and everything now and then
        (cycles that survived into the oldest generation)."""
        rounds = 0
        while True:
            await trio.sleep(GC_INTERVAL)
            rounds += 1
            hardening.collect_garbage(full=rounds % GC_FULL_EVERY == 0)

    async def _watch_signals(self) -> None:
        """SIGTERM, SIGINT and SIGHUP detach the block devices, unmount and stop -- except while
        a block device is in use (swap, a mounted filesystem, a claim): pages of running
        processes may live in it, and stopping would hang or kill them. Then the signal is
        refused with a log line (`zramd stop` releases them first; SIGKILL remains the last
        resort)."""
        ops = self.ops
        assert ops is not None and ops.blocks is not None
        blocks = ops.blocks
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                busy = [
                    f"zram{i}: {why}"
                    for i in sorted(ops.devices)
                    if (why := await in_worker(blocks.in_use, i))
                ]
                if busy:
                    log.warning("%s refused: %s; run 'zramd stop %s' (or swapoff/umount) first",
                                name, "; ".join(busy), self.mountpoint)  # fmt: skip
                    continue
                self.stop_reason = f"signal {name}"
                log.info(
                    "%s: detaching the block devices and unmounting %s", self.stop_reason, self.mountpoint
                )
                await blocks.detach_all()
                pyfuse3.terminate()
                return

    def _announce_ready(self) -> None:
        ops = self.ops
        assert ops is not None and ops.blocks is not None
        devices = ", ".join(
            f"zram{i} ({device.disksize} bytes, {device.comp_algorithm}) on {ops.blocks.path_of(i)}"
            for i, device in sorted(ops.devices.items())
        )
        status = (
            f"serving {self.mountpoint}: {devices or 'no devices'}; {engine.describe()} core, "
            f"{self.streams.count} compression streams"
        )
        log.info("%s", status)
        sdnotify.notify(f"READY=1\nSTATUS={status}\nMAINPID={os.getpid()}")
        if self.config.ready_fd is not None:
            try:
                os.write(self.config.ready_fd, b"READY\n")
                os.close(self.config.ready_fd)
            except OSError:
                pass  # `zramd start` went away; nothing to tell


def resident_bytes() -> int:
    """This process's resident memory (/proc/self/statm)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def run(config: ServeConfig) -> int:
    """Serve `config` in the foreground; start-up errors go to the ready pipe too."""
    try:
        return Daemon(config).serve()
    except UserError as exc:
        if config.ready_fd is not None:
            with contextlib.suppress(OSError):  # `zramd start` went away
                os.write(config.ready_fd, f"ERROR {exc}\n".encode())
        raise

"""Compression streams: the threads that compress and decompress a large request's pages in
parallel, like the kernel's per-CPU compression streams.

Owns: `CompressionStreams`, a fixed set of worker threads started once (so nothing is created on
the swap path) and `run`, which splits a batch of jobs into contiguous parts, one per stream,
runs part 0 on the calling thread and the others on the workers, and returns when every part is
done. The work itself must release the GIL to run in parallel (the native codecs do for a whole
part; python-lzo and lz4 for each page).
Must not: know about pages, slots or codecs (a job is any callable), or import trio or pyfuse3.
The device calls `run` under its lock, so the workers never run two batches at once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

# Fewer jobs than this per stream are not worth a wake-up of another CPU (about 10-30 us here).
MIN_JOBS_PER_STREAM = 8


def online_cpus() -> int:
    """The CPUs this process may run on: the default number of streams."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


Job = Callable[..., None]


class _Worker:
    """One stream's thread: waits for a part, runs it, says it is done."""

    def __init__(self, stream: int) -> None:
        self.stream = stream
        self.start_part = threading.Lock()
        self.start_part.acquire()
        self.part_done = threading.Lock()
        self.part_done.acquire()
        self.job: Job | None = None
        self.args: tuple[Any, ...] = ()
        self.first = self.last = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name=f"zramd-stream-{stream}", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            self.start_part.acquire()
            job = self.job
            if job is None:  # close()
                self.part_done.release()
                return
            try:
                job(self.stream, *self.args, self.first, self.last)
            except BaseException as exc:  # handed to the caller of run()
                self.error = exc
            self.part_done.release()


class CompressionStreams:
    """`count` streams: the calling thread and ``count - 1`` workers.

    Attributes:
        count: the number of streams (a codec made for these streams needs as many work areas).
    """

    def __init__(self, count: int = 1) -> None:
        if count < 1:
            raise ValueError("at least one compression stream is needed")
        self.count = count
        self._workers = [_Worker(stream) for stream in range(1, count)]
        self._lock = threading.Lock()

    def run(self, job: Job, jobs: int, *args: Any) -> int:
        """Call ``job(stream, *args, first, last)`` over [0, jobs) split into contiguous parts
        (at most one per stream, at least MIN_JOBS_PER_STREAM jobs each), in parallel; return
        the number of parts when all are done. The first part's exception (in part order) is
        raised after every part has finished."""
        parts = max(1, min(self.count, jobs // MIN_JOBS_PER_STREAM))
        if parts == 1:
            job(0, *args, 0, jobs)
            return 1
        with self._lock:
            workers = self._workers[: parts - 1]
            bounds = [jobs * part // parts for part in range(parts + 1)]
            for part, worker in enumerate(workers, start=1):
                worker.job, worker.args = job, args
                worker.first, worker.last = bounds[part], bounds[part + 1]
                worker.error = None
                worker.start_part.release()
            error: BaseException | None = None
            try:
                job(0, *args, bounds[0], bounds[1])
            except BaseException as exc:
                error = exc
            for worker in workers:
                worker.part_done.acquire()
                worker.job, worker.args = None, ()
                if error is None and worker.error is not None:
                    error = worker.error
            if error is not None:
                raise error
        return parts

    def close(self) -> None:
        """Stop the workers (for tests; the daemon's streams live as long as it does)."""
        with self._lock:
            for worker in self._workers:
                worker.job = None
                worker.start_part.release()
            for worker in self._workers:
                worker.part_done.acquire()
                worker.thread.join()
            self._workers = []
            self.count = 1

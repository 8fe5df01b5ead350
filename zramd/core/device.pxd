# Cython declarations that augment device.py when it is compiled (see zramd/core/engine.py and
# setup.py): the slot table and batch buffers as typed memory, the counters as C integers, and
# C-level calls into the compiled pool and the native codec. device.py stays the source and runs
# unchanged without them. Bounds checking and wraparound checks stay on.
cimport cython

from zramd.core.codec cimport PageCodec
from zramd.core.pool cimport ZsPool

cdef Py_ssize_t SIZE_BITS, SIZE_MASK, SAME, HUGE, WB, IDLE, INCOMPRESSIBLE, PP_SLOT, ACCESS_CLEARS
cdef Py_ssize_t PRIO_SHIFT, PRIO_MASK, MAX_COMPS, RECOMPRESS_IDLE, RECOMPRESS_HUGE
cdef Py_ssize_t HUGE_WRITEBACK, IDLE_WRITEBACK, INCOMPRESSIBLE_WRITEBACK, PP_BUCKET_SIZE, WRITEBACK_BATCH_SIZE, NO_BLOCK
cdef long long CLOCK_REUSE_NS
cdef Py_ssize_t BATCH_PAGES, SPLIT_MIN_NS, COMPRESSING, DECOMPRESSING, READS, WRITES, DISCARDS, FLUSHES
cdef Py_ssize_t PAGE_SIZE, PAGE_SHIFT, SECTOR_SHIFT, COMPRESS_STRIDE, FAILED, FILLED, MIN_JOBS_PER_STREAM


cpdef bint is_huge(Py_ssize_t compressed_size, Py_ssize_t huge_class_size)


@cython.final
cdef class ZramDevice:
    cdef object __weakref__
    cdef public object lock
    cdef public Py_ssize_t chain_size
    cdef object _pool_pages
    cdef object _streams
    cdef public str comp_algorithm
    cdef public Py_ssize_t disksize
    cdef public Py_ssize_t mem_limit_pages
    cdef public object fault_hook
    cdef object _clock
    cdef unsigned int _now
    cdef bint _fast_clock
    cdef long long _clock_until
    cdef public object backing_guard
    cdef object _backing
    cdef bint _writeback_active
    cdef public unsigned long long writeback_limit
    cdef public bint writeback_limit_enable
    cdef public Py_ssize_t writeback_batch_size
    cdef public bint release_frames
    cdef public object writeback_policy
    cdef public object algorithm_params
    cdef public object recomp_algorithms
    cdef public object recomp_params
    cdef object _codecs
    cdef Py_ssize_t _num_active_comps
    cdef bint _recompress_active
    cdef unsigned char[::1] _single
    cdef long long[::1] _one_src
    cdef long long[::1] _one_dst
    cdef long long[::1] _one_res
    cdef unsigned long long[::1] _one_fill
    cdef unsigned int[::1] _actime
    cdef unsigned char[::1] _bounce
    cdef object _bounce_view
    cdef object _wb_buffer
    cdef long long[::1] _wb_slots
    cdef long long[::1] _wb_blocks
    cdef object _state_cursor
    cdef Py_ssize_t _bd_reads
    cdef Py_ssize_t _bd_writes
    cdef ZsPool _pool
    cdef PageCodec _codec
    cdef object _table
    cdef Py_ssize_t _nr_pages
    cdef Py_ssize_t _huge_class_size
    cdef Py_ssize_t _batch_done
    cdef Py_ssize_t _progress
    cdef object _reply_owner
    cdef unsigned char[::1] _reply
    cdef object _reply_view
    cdef unsigned long long[::1] _handle
    cdef unsigned int[::1] _flags
    cdef unsigned char[::1] _out
    cdef unsigned char[::1] _staging
    cdef unsigned char[::1] _page
    cdef long long[::1] _job_src
    cdef long long[::1] _job_dst
    cdef long long[::1] _job_res
    cdef unsigned long long[::1] _fills
    cdef Py_ssize_t _pages_stored
    cdef Py_ssize_t _compr_data_size
    cdef Py_ssize_t _same_pages
    cdef Py_ssize_t _huge_pages
    cdef Py_ssize_t _huge_pages_since
    cdef Py_ssize_t _max_used_pages
    cdef Py_ssize_t _failed_reads
    cdef Py_ssize_t _failed_writes
    cdef Py_ssize_t _notify_free
    cdef long long[::1] _requests
    cdef long long[::1] _codec_ns

    @cython.locals(flags=Py_ssize_t)
    cpdef _free_slot(self, Py_ssize_t index)

    @cython.locals(codec=PageCodec, timed=bint, started=cython.longlong, parts=Py_ssize_t)
    cpdef _run_jobs(self, Py_ssize_t direction, Py_ssize_t jobs, const unsigned char[::1] src,
                    unsigned char[::1] dst)

    @cython.locals(k=Py_ssize_t)
    cpdef _store_pages(self, Py_ssize_t index, const unsigned char[::1] src, Py_ssize_t base, Py_ssize_t count)

    @cython.locals(result=cython.longlong, huge=bint, size=Py_ssize_t, pool=ZsPool, location=Py_ssize_t,
                   pages=Py_ssize_t, old=Py_ssize_t)
    cpdef _install(self, Py_ssize_t index, Py_ssize_t job, const unsigned char[::1] src, Py_ssize_t start)

    cpdef Py_ssize_t _allocate(self, Py_ssize_t index, Py_ssize_t job, const unsigned char[::1] src,
                               Py_ssize_t start, bint huge, Py_ssize_t size) except? -1

    @cython.locals(jobs=Py_ssize_t, staged=Py_ssize_t, k=Py_ssize_t, j=Py_ssize_t, slot=Py_ssize_t,
                   f=Py_ssize_t, at=Py_ssize_t, size=Py_ssize_t, pool=ZsPool,
                   codec=PageCodec, now=Py_ssize_t, failed_at=Py_ssize_t)
    cpdef _load_pages(self, Py_ssize_t index, Py_ssize_t count, unsigned char[::1] dst, Py_ssize_t base)

    cpdef _account(self, Py_ssize_t stat, Py_ssize_t nbytes, long long started)

    cpdef _tick(self, long long started)

    @cython.locals(pos=Py_ssize_t, index=Py_ssize_t, in_page=Py_ssize_t, count=Py_ssize_t, chunk=Py_ssize_t)
    cpdef _write_range(self, Py_ssize_t offset, const unsigned char[::1] data, Py_ssize_t length)

    @cython.locals(done=Py_ssize_t, n=Py_ssize_t)
    cpdef _read_pages(self, Py_ssize_t first, Py_ssize_t count, unsigned char[::1] buffer)

    @cython.locals(everything=bint, limit=cython.longlong, index=Py_ssize_t, f=Py_ssize_t)
    cpdef mark_idle(self, cutoff)

    @cython.locals(mode=Py_ssize_t, first=Py_ssize_t, end=Py_ssize_t, index=Py_ssize_t, f=Py_ssize_t,
                   b=Py_ssize_t, k=Py_ssize_t, total=Py_ssize_t, count=Py_ssize_t, buckets=Py_ssize_t)
    cpdef _select_for_writeback(self, scans)

# cython: language_level=3, boundscheck=True, wraparound=False
"""The native page codecs: liblzo2's lzo1x-1, liblz4's default mode and liblz4hc called directly,
with the GIL released over a whole batch of pages (the compiled device's compression streams);
any other algorithm through its Python backend, page by page with the GIL held.

Owns: the same batch interface and results as `zramd.core.codec.PageCodec` (its Python twin and
spec; read its docstring for the job arrays), and one work memory per stream, allocated once
when the codec is made, so nothing is allocated on the swap path. Every offset is checked
against its buffer before the GIL is released: a bad job raises ValueError and runs nothing.
Must not: differ by one byte from python-lzo (``lzo.compress(page, 1, False)``) and python-lz4
(``lz4.block.compress(page, store_size=False)``: a reset stream and
``LZ4_compress_fast_continue``) on the same page -- tests/t3_codec.py checks it
-- or be used by the Python source, which keeps using those packages.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset

from zramd.core.compress import LZ4HC_DEFAULT_CLEVEL, DecompressError, lookup

cdef extern from "lzo/lzo1x.h" nogil:
    ctypedef unsigned long lzo_uint
    int LZO_E_OK
    int LZO1X_1_MEM_COMPRESS
    int lzo_init()
    int lzo1x_1_compress(const unsigned char* src, lzo_uint src_len, unsigned char* dst,
                         lzo_uint* dst_len, void* wrkmem)
    int lzo1x_decompress_safe(const unsigned char* src, lzo_uint src_len, unsigned char* dst,
                              lzo_uint* dst_len, void* wrkmem)

cdef extern from "lz4.h" nogil:
    ctypedef struct LZ4_stream_t:
        pass
    LZ4_stream_t* LZ4_initStream(void* buffer, size_t size)
    int LZ4_compress_fast_continue(LZ4_stream_t* stream, const char* src, char* dst, int src_size,
                                   int dst_capacity, int acceleration)
    int LZ4_decompress_safe(const char* src, char* dst, int compressed_size, int dst_capacity)

cdef extern from "lz4hc.h" nogil:
    int LZ4_sizeofStateHC()
    int LZ4_compress_HC_extStateHC(void* state, const char* src, char* dst, int src_size,
                                   int dst_capacity, int level)

cdef enum:
    PAGE = 4096
# Must equal zramd.core.codec.COMPRESS_STRIDE (tests/t3_codec.py checks it).
COMPRESS_STRIDE = 4480
cdef Py_ssize_t STRIDE = 4480
cdef int KIND_LZO = 1
cdef int KIND_LZ4 = 2
cdef int KIND_LZ4HC = 3
cdef int KIND_PYTHON = 4  # through the Python backend, with the GIL
cdef int LZ4HC_LEVEL = LZ4HC_DEFAULT_CLEVEL
# Must equal zramd.core.codec's.
FAILED = -1
FILLED = -2
# A single page keeps the GIL: releasing and taking it back costs more than the wait it saves
# (no other thread needs it then; the streams run only batches of many pages).
cdef Py_ssize_t NOGIL_MIN_JOBS = 2
cdef long long C_FAILED = -1
cdef long long C_FILLED = -2

if lzo_init() != LZO_E_OK:
    raise ImportError("liblzo2's lzo_init() failed: the library and its header disagree")


cdef int _check(const long long[::1] offsets, Py_ssize_t first, Py_ssize_t last, Py_ssize_t span,
                Py_ssize_t size, str what) except -1:
    cdef Py_ssize_t k
    for k in range(first, last):
        if offsets[k] < 0 or offsets[k] + span > size:
            raise ValueError(f"job {k}: {what} offset {offsets[k]} + {span} outside a {size}-byte buffer")
    return 0


cdef inline bint _filled(const unsigned char* page, unsigned long long* word) noexcept nogil:
    """zram's page_same_filled: the page is one 8-byte word repeated (read little-endian)."""
    cdef unsigned long long first, other
    cdef Py_ssize_t i
    memcpy(&first, page, 8)
    memcpy(&other, page + PAGE - 8, 8)
    if other != first:
        return False
    for i in range(8, PAGE - 8, 8):
        memcpy(&other, page + i, 8)
        if other != first:
            return False
    word[0] = first
    return True


cdef inline void _fill(unsigned char* page, unsigned long long word) noexcept nogil:
    cdef Py_ssize_t i
    if word == 0:
        memset(page, 0, PAGE)
        return
    for i in range(0, PAGE, 8):
        memcpy(page + i, &word, 8)


cdef struct _Jobs:
    int kind
    const unsigned char* src
    unsigned char* dst
    const long long* src_off
    const long long* dst_off
    long long* result
    unsigned long long* fills
    void* work
    Py_ssize_t work_size


cdef void _compress_range(_Jobs* j, Py_ssize_t first, Py_ssize_t last) noexcept nogil:
    cdef Py_ssize_t k
    cdef lzo_uint out_len
    cdef int n
    for k in range(first, last):
        if _filled(j.src + j.src_off[k], &j.fills[k]):
            j.result[k] = C_FILLED
        elif j.kind == KIND_LZO:
            out_len = STRIDE
            if lzo1x_1_compress(j.src + j.src_off[k], PAGE, j.dst + j.dst_off[k], &out_len, j.work) == LZO_E_OK:
                j.result[k] = out_len
            else:
                j.result[k] = C_FAILED
        elif j.kind == KIND_LZ4HC:
            n = LZ4_compress_HC_extStateHC(j.work, <const char*>(j.src + j.src_off[k]),
                                           <char*>(j.dst + j.dst_off[k]), PAGE, STRIDE, LZ4HC_LEVEL)
            j.result[k] = n if n > 0 else C_FAILED
        else:
            n = LZ4_compress_fast_continue(LZ4_initStream(j.work, j.work_size),
                                           <const char*>(j.src + j.src_off[k]),
                                           <char*>(j.dst + j.dst_off[k]), PAGE, STRIDE, 1)
            j.result[k] = n if n > 0 else C_FAILED


cdef void _decompress_range(_Jobs* j, Py_ssize_t first, Py_ssize_t last) noexcept nogil:
    cdef Py_ssize_t k
    cdef lzo_uint out_len
    cdef int n
    for k in range(first, last):
        if j.result[k] == C_FILLED:
            _fill(j.dst + j.dst_off[k], j.fills[k])
            j.result[k] = 0
        elif j.kind == KIND_LZO:
            out_len = PAGE
            if lzo1x_decompress_safe(j.src + j.src_off[k], <lzo_uint>j.result[k], j.dst + j.dst_off[k],
                                     &out_len, NULL) == LZO_E_OK and out_len == PAGE:
                j.result[k] = 0
            else:
                j.result[k] = C_FAILED
        else:
            n = LZ4_decompress_safe(<const char*>(j.src + j.src_off[k]), <char*>(j.dst + j.dst_off[k]),
                                    <int>j.result[k], PAGE)
            j.result[k] = 0 if n == PAGE else C_FAILED


cdef class PageCodec:
    """One algorithm's batch compressor and decompressor for `streams` concurrent callers."""

    def __cinit__(self, str name, Py_ssize_t streams=1, params=None):
        self._work = NULL

    def __init__(self, str name, Py_ssize_t streams=1, params=None):
        backend = lookup(name)
        if streams < 1:
            raise ValueError("a codec needs at least one stream")
        self.name = backend.name
        self.streams = streams
        compress_page, decompress_page = backend.functions(params)  # ValueError: bad params
        tuned = compress_page is not backend.compress  # algorithm_params in effect
        if tuned:
            # The native codecs have the defaults only; a level or a dictionary goes through the
            # backend.
            self._kind = KIND_PYTHON
            self._work_size = 0
            self._py_compress = compress_page
            self._py_decompress = decompress_page
        elif self.name == "lzo":
            self._kind = KIND_LZO
            self._work_size = LZO1X_1_MEM_COMPRESS
        elif self.name == "lz4":
            # python-lz4 compresses a block with a freshly reset stream and
            # LZ4_compress_fast_continue, whose output differs from LZ4_compress_fast's on some
            # pages; do exactly that, so the bytes are the same.
            self._kind = KIND_LZ4
            self._work_size = (sizeof(LZ4_stream_t) + 63) // 64 * 64
        elif self.name == "lz4hc":
            self._kind = KIND_LZ4HC  # python-lz4's LZ4_compress_HC is this on a state of its own
            self._work_size = (LZ4_sizeofStateHC() + 63) // 64 * 64
        else:
            self._kind = KIND_PYTHON
            self._work_size = 0
            self._py_compress = backend.compress
            self._py_decompress = backend.decompress
        if self._work_size:
            self._work = <unsigned char*>calloc(streams, self._work_size)
            if self._work == NULL:
                raise MemoryError("no memory for the codec's work memory")

    def __dealloc__(self):
        free(self._work)

    cpdef compress_jobs(self, Py_ssize_t stream, const unsigned char[::1] src, unsigned char[::1] dst,
                        const long long[::1] src_off, const long long[::1] dst_off,
                        long long[::1] result, unsigned long long[::1] fills, Py_ssize_t first,
                        Py_ssize_t last):
        """See zramd.core.codec.PageCodec.compress_jobs."""
        self._bounds(stream, src_off, dst_off, result, fills, first, last)
        _check(src_off, first, last, PAGE, src.shape[0], "source")
        _check(dst_off, first, last, STRIDE, dst.shape[0], "destination")
        if last == first:
            return
        if self._kind == KIND_PYTHON:
            self._python_compress(src, dst, src_off, dst_off, result, fills, first, last)
            return
        # Every offset is inside its buffer (checked above): from here on, plain pointers.
        cdef _Jobs jobs = _Jobs(self._kind, &src[0], &dst[0], &src_off[0], &dst_off[0], &result[0],
                                &fills[0], self._work + stream * self._work_size, self._work_size)
        if last - first >= NOGIL_MIN_JOBS:
            with nogil:
                _compress_range(&jobs, first, last)
        else:
            _compress_range(&jobs, first, last)

    cpdef decompress_jobs(self, Py_ssize_t stream, const unsigned char[::1] src, unsigned char[::1] dst,
                          const long long[::1] src_off, const long long[::1] dst_off,
                          long long[::1] result, const unsigned long long[::1] fills, Py_ssize_t first,
                          Py_ssize_t last):
        """See zramd.core.codec.PageCodec.decompress_jobs."""
        cdef Py_ssize_t k
        self._bounds(stream, src_off, dst_off, result, fills, first, last)
        for k in range(first, last):
            if result[k] == C_FILLED:
                continue
            if result[k] <= 0 or src_off[k] < 0 or src_off[k] + result[k] > src.shape[0]:
                raise ValueError(f"job {k}: source {src_off[k]} + {result[k]} outside a {src.shape[0]}-byte buffer")
        _check(dst_off, first, last, PAGE, dst.shape[0], "destination")
        if last == first:
            return
        if self._kind == KIND_PYTHON:
            self._python_decompress(src, dst, src_off, dst_off, result, fills, first, last)
            return
        cdef const unsigned char* source = NULL  # no source at all when every job is a fill
        if src.shape[0]:
            source = &src[0]
        cdef _Jobs jobs = _Jobs(self._kind, source, &dst[0], &src_off[0], &dst_off[0], &result[0],
                                <unsigned long long*>&fills[0], NULL, 0)
        if last - first >= NOGIL_MIN_JOBS:
            with nogil:
                _decompress_range(&jobs, first, last)
        else:
            _decompress_range(&jobs, first, last)

    cdef int _python_compress(self, const unsigned char[::1] src, unsigned char[::1] dst,
                              const long long[::1] src_off, const long long[::1] dst_off,
                              long long[::1] result, unsigned long long[::1] fills, Py_ssize_t first,
                              Py_ssize_t last) except -1:
        """The jobs of an algorithm with no native codec: the fill test here, the rest by the
        Python backend (offsets already checked)."""
        cdef Py_ssize_t k, n
        cdef bytes data
        for k in range(first, last):
            if _filled(&src[src_off[k]], &fills[k]):
                result[k] = C_FILLED
                continue
            try:
                data = self._py_compress(PyBytes_FromStringAndSize(<const char*>&src[src_off[k]], PAGE))
            except Exception:
                result[k] = C_FAILED
                continue
            n = PyBytes_GET_SIZE(data)
            if n > STRIDE:
                result[k] = C_FAILED
                continue
            memcpy(&dst[dst_off[k]], PyBytes_AS_STRING(data), n)
            result[k] = n
        return 0

    cdef int _python_decompress(self, const unsigned char[::1] src, unsigned char[::1] dst,
                                const long long[::1] src_off, const long long[::1] dst_off,
                                long long[::1] result, const unsigned long long[::1] fills,
                                Py_ssize_t first, Py_ssize_t last) except -1:
        cdef Py_ssize_t k
        cdef bytes page
        for k in range(first, last):
            if result[k] == C_FILLED:
                _fill(&dst[dst_off[k]], fills[k])
                result[k] = 0
                continue
            try:
                page = self._py_decompress(
                    PyBytes_FromStringAndSize(<const char*>&src[src_off[k]], result[k]))
            except DecompressError:
                result[k] = C_FAILED
                continue
            memcpy(&dst[dst_off[k]], PyBytes_AS_STRING(page), PAGE)
            result[k] = 0
        return 0

    cdef int _bounds(self, Py_ssize_t stream, const long long[::1] src_off, const long long[::1] dst_off,
                     long long[::1] result, const unsigned long long[::1] fills, Py_ssize_t first,
                     Py_ssize_t last) except -1:
        if not 0 <= stream < self.streams:
            raise ValueError(f"stream {stream} out of range (the codec has {self.streams})")
        if first < 0 or last < first or last > src_off.shape[0] or last > dst_off.shape[0] \
                or last > result.shape[0] or last > fills.shape[0]:
            raise ValueError(f"jobs [{first}, {last}) outside the job arrays")
        return 0


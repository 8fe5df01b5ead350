# Declarations of the native page codec (zramd/core/_codec_c.pyx), so that the compiled device
# calls it at C level. The Python twin is zramd/core/codec.py.

cdef class PageCodec:
    cdef readonly str name
    cdef readonly Py_ssize_t streams
    cdef int _kind
    cdef unsigned char* _work
    cdef Py_ssize_t _work_size
    cdef object _py_compress
    cdef object _py_decompress

    cpdef compress_jobs(self, Py_ssize_t stream, const unsigned char[::1] src, unsigned char[::1] dst,
                        const long long[::1] src_off, const long long[::1] dst_off,
                        long long[::1] result, unsigned long long[::1] fills, Py_ssize_t first,
                        Py_ssize_t last)
    cpdef decompress_jobs(self, Py_ssize_t stream, const unsigned char[::1] src, unsigned char[::1] dst,
                          const long long[::1] src_off, const long long[::1] dst_off,
                          long long[::1] result, const unsigned long long[::1] fills, Py_ssize_t first,
                          Py_ssize_t last)
    cdef int _python_compress(self, const unsigned char[::1] src, unsigned char[::1] dst,
                              const long long[::1] src_off, const long long[::1] dst_off,
                              long long[::1] result, unsigned long long[::1] fills, Py_ssize_t first,
                              Py_ssize_t last) except -1
    cdef int _python_decompress(self, const unsigned char[::1] src, unsigned char[::1] dst,
                                const long long[::1] src_off, const long long[::1] dst_off,
                                long long[::1] result, const unsigned long long[::1] fills,
                                Py_ssize_t first, Py_ssize_t last) except -1
    cdef int _bounds(self, Py_ssize_t stream, const long long[::1] src_off, const long long[::1] dst_off,
                     long long[::1] result, const unsigned long long[::1] fills, Py_ssize_t first,
                     Py_ssize_t last) except -1

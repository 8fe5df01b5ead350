# Cython declarations that augment pool.py when it is compiled (see zramd/core/engine.py and
# setup.py): typed attributes and locals for the per-page path. pool.py stays the source and
# runs unchanged without them. Bounds checking and wraparound checks stay on.
cimport cython

cdef Py_ssize_t OBJ_INDEX_BITS, OBJ_INDEX_MASK, FREE_END, RATIO_0, RATIO_99, RATIO_100, NR_GROUPS
cdef Py_ssize_t HANDLE_SIZE, PAGE_SHIFT, PAGE_SIZE


@cython.final
cdef class ZsPool:
    cdef public object table
    cdef public Py_ssize_t max_pages
    cdef public object relocate
    cdef public Py_ssize_t chain
    cdef public Py_ssize_t pages_allocated
    cdef public Py_ssize_t pages_compacted
    cdef public Py_ssize_t frames_touched
    cdef public Py_ssize_t zspage_ids_touched
    cdef public object _arena
    cdef object _mem
    cdef unsigned char[::1] _bytes
    cdef long long[::1] _words
    cdef unsigned short[::1] _class_for_size
    cdef unsigned short[::1] _size
    cdef unsigned char[::1] _pages
    cdef unsigned short[::1] _objs
    cdef Py_ssize_t _huge_cid
    cdef unsigned int[::1] _group_base
    cdef const unsigned char[::1] _group_of
    cdef long long[::1] _objs_allocated
    cdef long long[::1] _objs_used
    cdef int[::1] _group_heads
    cdef int[::1] _group_count
    cdef unsigned int[::1] _nonfull_mask
    cdef object _meta
    cdef unsigned short[::1] _zs_class
    cdef unsigned short[::1] _zs_inuse
    cdef unsigned char[::1] _zs_group
    cdef short[::1] _zs_free
    cdef unsigned short[::1] _zs_bump
    cdef int[::1] _zs_prev
    cdef int[::1] _zs_next
    cdef public int[::1] _zs_frames
    cdef long long[::1] _zs_huge_owner
    cdef int[::1] _free_ids
    cdef Py_ssize_t _nfree_ids
    cdef int[::1] _free_frames
    cdef Py_ssize_t _nfree_frames
    cdef Py_ssize_t _nreleased
    cdef Py_ssize_t _arena_address

    @cython.locals(cid=Py_ssize_t, group=Py_ssize_t, zspage=Py_ssize_t, mask=cython.uint,
                   index=Py_ssize_t, offset=Py_ssize_t, inuse=Py_ssize_t, new_group=Py_ssize_t)
    cpdef Py_ssize_t malloc(self, Py_ssize_t size, Py_ssize_t owner) except? -1

    cpdef Py_ssize_t store(self, data, Py_ssize_t owner) except? -1

    @cython.locals(zspage=Py_ssize_t, cid=Py_ssize_t, index=Py_ssize_t, offset=Py_ssize_t,
                   inuse=Py_ssize_t, new_group=Py_ssize_t)
    cpdef free(self, Py_ssize_t location)

    @cython.locals(index=Py_ssize_t, offset=Py_ssize_t)
    cpdef Py_ssize_t _obj_malloc(self, Py_ssize_t zspage, Py_ssize_t cid, Py_ssize_t owner) except? -1

    @cython.locals(offset=Py_ssize_t)
    cpdef _obj_free(self, Py_ssize_t zspage, Py_ssize_t cid, Py_ssize_t index)

    cpdef Py_ssize_t _byte_offset(self, Py_ssize_t zspage, Py_ssize_t start) except? -1

    cpdef Py_ssize_t _object_offset(self, Py_ssize_t zspage, Py_ssize_t cid, Py_ssize_t index) except? -1

    @cython.locals(start=Py_ssize_t, room=Py_ssize_t, first=Py_ssize_t)
    cpdef tuple _span(self, Py_ssize_t zspage, Py_ssize_t cid, Py_ssize_t index, Py_ssize_t skip,
                      Py_ssize_t n)

    @cython.locals(pages=Py_ssize_t, zspage=Py_ssize_t, base=Py_ssize_t, i=Py_ssize_t)
    cpdef Py_ssize_t _alloc_zspage(self, Py_ssize_t cid) except? -1

    @cython.locals(pages=Py_ssize_t, base=Py_ssize_t, i=Py_ssize_t)
    cpdef _free_zspage(self, Py_ssize_t zspage, Py_ssize_t cid)

    cpdef Py_ssize_t _fullness(self, Py_ssize_t zspage, Py_ssize_t cid) except? -1

    @cython.locals(old=Py_ssize_t, base=Py_ssize_t, prev=Py_ssize_t, nxt=Py_ssize_t, head=Py_ssize_t)
    cpdef _move(self, Py_ssize_t zspage, Py_ssize_t cid, Py_ssize_t group)

    @cython.locals(slot=Py_ssize_t, head=Py_ssize_t)
    cpdef _insert(self, Py_ssize_t zspage, Py_ssize_t cid, Py_ssize_t group)

    @cython.locals(group=Py_ssize_t, slot=Py_ssize_t, prev=Py_ssize_t, nxt=Py_ssize_t)
    cpdef _remove(self, Py_ssize_t zspage, Py_ssize_t cid)

    @cython.locals(zspage=Py_ssize_t, cid=Py_ssize_t, skip=Py_ssize_t)
    cpdef write(self, Py_ssize_t location, data)

    @cython.locals(zspage=Py_ssize_t, cid=Py_ssize_t, skip=Py_ssize_t)
    cpdef bytes read(self, Py_ssize_t location, Py_ssize_t size)

    @cython.locals(location=Py_ssize_t, zspage=Py_ssize_t, cid=Py_ssize_t, skip=Py_ssize_t, at=Py_ssize_t,
                   head=Py_ssize_t, first=Py_ssize_t, second=Py_ssize_t)
    cpdef Py_ssize_t store_from(self, const unsigned char[::1] src, Py_ssize_t start, Py_ssize_t size,
                                Py_ssize_t owner) except? -1

    @cython.locals(zspage=Py_ssize_t, cid=Py_ssize_t, skip=Py_ssize_t, at=Py_ssize_t, head=Py_ssize_t,
                   first=Py_ssize_t, second=Py_ssize_t)
    cpdef read_into(self, Py_ssize_t location, Py_ssize_t size, unsigned char[::1] dst, Py_ssize_t start)

    @cython.locals(first=Py_ssize_t, head=Py_ssize_t, second=Py_ssize_t)
    cpdef bytes _load(self, Py_ssize_t zspage, Py_ssize_t cid, Py_ssize_t index, Py_ssize_t skip,
                      Py_ssize_t n)

    @cython.locals(n=Py_ssize_t, first=Py_ssize_t, head=Py_ssize_t, second=Py_ssize_t)
    cpdef _save(self, Py_ssize_t zspage, Py_ssize_t cid, Py_ssize_t index, Py_ssize_t skip, data)

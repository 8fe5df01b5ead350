"""Tier 3: the compiled per-page path against its Python source, operation for operation.

The same random sequences of writes (zero, same-filled, text, random and partial pages),
discards, compactions, mem_limit changes and resets run on a device of each build; after every
step both must have given the same answer (the same bytes, or the same error) and have the same
counters, and at the end the same contents, pool layout and consistency. The compiled build is
the one the daemon runs; the source is the readable spec it must match.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zramd.core import device as python_device
from zramd.core import engine
from zramd.core import pool as python_pool
from zramd.core.errors import ZramError
from zramd.core.units import PAGE_SIZE

PAGES = 48


def compiled_modules() -> tuple[type[python_device.ZramDevice], type[python_pool.ZsPool]]:
    if not engine.COMPILED_IN_USE:
        pytest.skip(f"the compiled core is not in use: {engine.REASON}")
    return engine.ZramDevice, engine.ZsPool


def page_of(kind: str, seed: int) -> bytes:
    rng = random.Random(seed)
    if kind == "zero":
        return bytes(PAGE_SIZE)
    if kind == "same":
        return rng.randbytes(8) * (PAGE_SIZE // 8)
    if kind == "text":
        words = [rng.choice(["zram", "page", "swap", "pool", "class", "zspage"]) for _ in range(900)]
        return " ".join(words).encode()[:PAGE_SIZE].ljust(PAGE_SIZE, b".")
    if kind == "half":
        return rng.randbytes(PAGE_SIZE // 2) + bytes(PAGE_SIZE // 2)
    return rng.randbytes(PAGE_SIZE)


operation = st.one_of(
    st.tuples(
        st.just("write"),
        st.integers(0, PAGES - 1),
        st.sampled_from(["zero", "same", "text", "half", "random"]),
        st.integers(0, 2**16),
        st.integers(1, 3),
    ),
    st.tuples(
        st.just("partial"), st.integers(0, PAGES * PAGE_SIZE - 1), st.integers(1, 9000), st.integers(0, 99)
    ),
    st.tuples(st.just("discard"), st.integers(0, PAGES - 1), st.integers(1, 6)),
    st.tuples(st.just("compact")),
    st.tuples(st.just("mem_limit"), st.sampled_from([0, 8, 16, 40])),
    st.tuples(st.just("reset"), st.sampled_from(["lzo", "lz4"])),
)


def apply(device: python_device.ZramDevice, op: tuple[Any, ...]) -> object:
    """Run one operation; return what it gave (a value, or the error's class and errno)."""
    kind = op[0]
    try:
        if kind == "write":
            _, index, page_kind, seed, count = op
            data = b"".join(page_of(page_kind, seed + n) for n in range(count))
            return device.write(index * PAGE_SIZE, data)
        if kind == "partial":
            _, offset, length, seed = op
            return device.write(offset, random.Random(seed).randbytes(length))
        if kind == "discard":
            _, index, count = op
            device.discard(index * PAGE_SIZE, count * PAGE_SIZE)
            return None
        if kind == "compact":
            return device.compact()
        if kind == "mem_limit":
            device.set_mem_limit(op[1] * PAGE_SIZE)
            return None
        device.reset()
        device.set_comp_algorithm(op[1])
        device.set_disksize(PAGES * PAGE_SIZE)
        return None
    except ZramError as exc:
        return (type(exc).__name__, exc.errno)


def counters(device: python_device.ZramDevice) -> tuple[object, ...]:
    """Every counter of `device` but the service times (which are the builds' own)."""
    stats = device.statistics()
    block = stats.block
    requests = [(r.ios, r.sectors) for r in (block.read, block.write, block.discard, block.flush)]
    return stats.mm, stats.io, stats.pages_stored, stats.pool_pages, requests


@settings(max_examples=60, deadline=None)
@given(st.lists(operation, min_size=1, max_size=40))
def test_compiled_and_python_builds_agree(ops: list[tuple[Any, ...]]) -> None:
    compiled_device, _ = compiled_modules()
    devices = [python_device.ZramDevice(), compiled_device()]
    for device in devices:
        device.set_disksize(PAGES * PAGE_SIZE)
    for op in ops:
        python_result, compiled_result = (apply(device, op) for device in devices)
        assert python_result == compiled_result, op
        assert counters(devices[0]) == counters(devices[1]), op
    contents = [device.read(0, PAGES * PAGE_SIZE) for device in devices]
    assert contents[0] == contents[1]
    assert devices[0].class_stats() == devices[1].class_stats()
    for device in devices:
        device.check_invariants()
        device.reset()


def recorder(log: list[tuple[int, int]]) -> Callable[[int, int], None]:
    return lambda owner, location: log.append((owner, location))


def test_compiled_pool_lays_objects_out_like_the_source() -> None:
    """The same allocations and frees put every object at the same location with the same
    bytes, and compaction moves the same objects to the same places."""
    _, compiled_pool = compiled_modules()
    pools = [python_pool.ZsPool(4000), compiled_pool(4000)]
    moves: list[list[tuple[int, int]]] = [[], []]
    for pool, log in zip(pools, moves, strict=True):
        pool.relocate = recorder(log)
    rng = random.Random(5)
    live: list[list[int]] = [[], []]
    for step in range(3000):
        if live[0] and rng.random() < 0.45:
            victim = rng.randrange(len(live[0]))
            for pool, locations in zip(pools, live, strict=True):
                pool.free(locations.pop(victim))
        else:
            size = rng.choice([rng.randint(20, 400), rng.randint(400, 3600), PAGE_SIZE])
            data = random.Random(step).randbytes(size)
            for pool, locations in zip(pools, live, strict=True):
                locations.append(pool.store(data, step))
    assert live[0] == live[1]
    assert [pool.read(loc, 16) for loc in live[0] for pool in pools[:1]] == [
        pools[1].read(loc, 16) for loc in live[1]
    ]
    assert pools[0].compact() == pools[1].compact()
    assert moves[0] == moves[1] and moves[0]
    assert pools[0].check_consistency() == pools[1].check_consistency()
    assert pools[0].class_stats() == pools[1].class_stats()
    for pool in pools:
        pool.close()


def test_the_compiled_core_is_in_use_where_it_can_be_built() -> None:
    """CI must exercise the build the daemon runs: where a C compiler exists and the pure
    source was not asked for, the compiled core is the one in use (else say why)."""
    if os.environ.get(engine.PURE_PYTHON_ENV) == "1":
        assert engine.IMPLEMENTATION == "python"
        return
    if shutil.which("cc") is None:
        pytest.skip("no C compiler here: the compiled core cannot be built")
    assert engine.COMPILED_IN_USE, engine.REASON
    assert engine.describe().startswith("compiled")

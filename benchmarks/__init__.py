"""zramd's benchmarks: developer tools that need root, fio and the kernel's zram, kept out of the
product package (nothing in zramd imports them). Run them through scripts/bench,
scripts/bench-pool, scripts/bench-swap and scripts/bench-writeback.

Must not: import anything itself; `python -m benchmarks.fio_matrix`, `python -m benchmarks.pool`,
`python -m benchmarks.swap` and `python -m benchmarks.writeback` are the entry points."""

"""zramd's benchmarks: developer tools that need root, fio and the kernel's zram, kept out of the
product package (nothing in zramd imports them). Run them through scripts/bench and
scripts/bench-pool.

Must not: import anything itself; `python -m benchmarks.fio_matrix` and `python -m benchmarks.pool`
are the entry points."""

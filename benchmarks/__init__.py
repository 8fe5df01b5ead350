"""zramd's benchmarks: developer tools that need root, fio and the kernel's zram, kept out of the
product package (nothing in zramd imports them). Run them through scripts/bench,
scripts/bench-pool and scripts/bench-swap.

Must not: import anything itself; `python -m benchmarks.fio_matrix`, `python -m benchmarks.pool`
and `python -m benchmarks.swap` are the entry points."""

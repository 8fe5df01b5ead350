"""A memory hog for the swap storm: fill N MiB with a checksummed pattern, read it all back.

Run inside a memory cgroup smaller than N, so most of what it writes is swapped out (through
zramd) and swapped back in when it verifies. Each page holds its own index and a pseudo-random,
half-compressible body derived from the index and the seed; verification regenerates it.
Prints one JSON line of figures; exits 1 on the first corrupt page.
"""

from __future__ import annotations

import json
import mmap
import random
import struct
import sys
import time

PAGE = 4096


def page_content(index: int, seed: int) -> bytes:
    body = random.Random(index * 1_000_003 + seed).randbytes(PAGE // 2 - 16)
    return struct.pack("<QQ", index, seed) + body + bytes(PAGE // 2)


def main() -> int:
    mib, seed = int(sys.argv[1]), int(sys.argv[2])
    pages = mib * 256
    area = mmap.mmap(-1, pages * PAGE)
    started = time.monotonic()
    for index in range(pages):
        area[index * PAGE : (index + 1) * PAGE] = page_content(index, seed)
    written = time.monotonic()
    for index in range(pages):
        if area[index * PAGE : (index + 1) * PAGE] != page_content(index, seed):
            print(json.dumps({"error": f"page {index} corrupt"}), flush=True)
            return 1
    verified = time.monotonic()
    print(
        json.dumps({"pages": pages, "write_s": written - started, "verify_s": verified - written}), flush=True
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

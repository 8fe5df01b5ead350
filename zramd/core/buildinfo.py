"""What the compiled core is built from: the one rule shared by setup.py (which builds it) and
`zramd.core.engine` (which refuses a build that no longer matches its source).

Owns: `COMPILED`, the source modules and the names of their compiled builds, and `source_digest`,
the SHA-256 a build records of its inputs. Must not: import anything but the standard library
(setup.py imports this before anything is installed).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# source module -> its compiled build, both in zramd.core; in import order.
COMPILED = {"pool": "_pool_c", "device": "_device_c"}
# Python module -> its native twin, written in Cython (``.pyx`` + ``.pxd``) because it calls C
# libraries the Python module reaches through packages; the compiled builds import the twin in
# the module's place. Each entry: (twin, C libraries it links). Built before `COMPILED`.
NATIVE = {"codec": ("_codec_c", ("lzo2", "lz4"))}


def module_names() -> dict[str, str]:
    """Every source module's name in the compiled builds: what their imports are rewritten to."""
    return {**{name: twin for name, (twin, _libs) in NATIVE.items()}, **COMPILED}


def built_modules() -> dict[str, str]:
    """Every compiled module -> the file name (in zramd/core, without suffix) it is built from."""
    return {**{twin: twin for twin, _libs in NATIVE.values()}, **{c: name for name, c in COMPILED.items()}}


CORE_DIR = Path(__file__).resolve().parent


def source_digest(name: str, directory: Path = CORE_DIR) -> str:
    """SHA-256 of a compiled module's inputs: its ``.py``, ``.pyx`` and ``.pxd`` in `directory`."""
    digest = hashlib.sha256()
    for suffix in (".py", ".pyx", ".pxd"):
        path = directory / f"{name}{suffix}"
        digest.update(path.read_bytes() if path.exists() else b"")
    return digest.hexdigest()

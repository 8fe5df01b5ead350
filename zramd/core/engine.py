"""Which build of the per-page path runs: the compiled one or the Python source itself.

Owns: the choice, made once at import, and saying which was made and why. `zramd.core.pool` and
`zramd.core.device` are the source and always importable; setup.py compiles copies of them with
Cython into `zramd.core._pool_c` and `zramd.core._device_c`, each recording the SHA-256 of the
source it was built from. The compiled build is used when both are importable and were built
from the source as it is now (an editable install keeps an old ``.so`` beside edited source:
that one is refused, not run); ``ZRAMD_PURE_PYTHON=1`` selects the source. Both builds return
the same record types (`zramd.core.records`), so callers cannot tell them apart but by speed.
Must not: import trio or pyfuse3, or fail: without a usable compiled build it logs one line and
uses the source.
"""

from __future__ import annotations

import importlib
import logging
import os
from types import ModuleType
from typing import TYPE_CHECKING

from zramd.core import codec as python_codec
from zramd.core import device as python_device
from zramd.core import pool as python_pool
from zramd.core.buildinfo import built_modules, source_digest

log = logging.getLogger(__name__)

PURE_PYTHON_ENV = "ZRAMD_PURE_PYTHON"


def _compiled() -> tuple[dict[str, ModuleType] | None, str]:
    """The compiled modules by source name, or None and why not."""
    if os.environ.get(PURE_PYTHON_ENV) == "1":
        return None, f"{PURE_PYTHON_ENV}=1"
    modules = {}
    for compiled, name in built_modules().items():
        try:
            module = importlib.import_module(f"zramd.core.{compiled}")
        except ImportError as exc:
            return None, f"the compiled core is not built ({exc})"
        if getattr(module, "SOURCE_SHA256", None) != source_digest(name):
            return (
                None,
                f"zramd.core.{compiled} was built from an older {name} source (rebuild: scripts/bootstrap)",
            )
        modules[name] = module
    return modules, "built from the current source"


_modules, REASON = _compiled()
COMPILED_IN_USE = _modules is not None
IMPLEMENTATION = "compiled" if COMPILED_IN_USE else "python"
if _modules is None:
    pool_module: ModuleType = python_pool
    device_module: ModuleType = python_device
    if os.environ.get(PURE_PYTHON_ENV) != "1":
        log.warning("running the pure-Python core: %s", REASON)
else:
    pool_module, device_module = _modules["pool"], _modules["device"]
codec_module: ModuleType = python_codec if _modules is None else _modules["_codec_c"]

if TYPE_CHECKING:  # both builds have the source's interface
    from zramd.core.codec import PageCodec as PageCodec
    from zramd.core.device import ZramDevice as ZramDevice
    from zramd.core.pool import ZsPool as ZsPool
else:
    ZsPool = pool_module.ZsPool
    ZramDevice = device_module.ZramDevice
    PageCodec = codec_module.PageCodec


def describe() -> str:
    """One line for ``zram-control/daemon``, ``zramd status --json`` and the benchmark."""
    return f"{IMPLEMENTATION} ({REASON})"

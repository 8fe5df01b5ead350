"""Tier 0: the layering rules, checked on the source.

Layers talk downward only: compression backends, size classes and the pool, the device, the
attribute tree, then the FUSE front end, the daemon and the CLI. The pool and the device are plain
synchronous code that never imports trio or pyfuse3, and only the FUSE front end (with the daemon
that runs it) speaks to pyfuse3.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "zramd"
# Each module, and the zramd modules it may import.
ALLOWED: dict[str, set[str]] = {
    "units": set(),
    "errors": set(),
    "kparse": {"errors"},
    "compress": {"units"},
    "size_classes": {"units"},
    "pool": {"size_classes", "units"},
    "device": {"compress", "errors", "pool", "size_classes", "units"},
    "attrs": {"compress", "device", "errors", "kparse", "units"},
    "estimate": {"device", "errors", "pool", "units"},
    "generator_config": {"compress", "errors"},
    "config": set(),
    "systemd": set(),
    "hardening": set(),
    "mounts": {"errors"},
    "control": {"config", "errors", "mounts", "units", "helpers"},
    "helpers": {"control", "errors", "mounts"},
    "fuse_ops": {"attrs", "device", "errors", "units"},
    "daemon": {
        "attrs",
        "config",
        "control",
        "device",
        "errors",
        "fuse_ops",
        "hardening",
        "mounts",
        "systemd",
    },
    "cli": {
        "bench",
        "compress",
        "config",
        "control",
        "daemon",
        "errors",
        "estimate",
        "generator_config",
        "helpers",
        "units",
    },
    "bench": {"compress", "config", "control", "errors", "mounts", "units"},
    "__main__": {"cli"},
    "__init__": set(),
}
ASYNC_MODULES = {"fuse_ops", "daemon"}  # the only ones that may import trio or pyfuse3


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module == "zramd":  # `from zramd import x`: x may be a module or a name
                found.update(f"zramd.{a.name}" for a in node.names if (PACKAGE / f"{a.name}.py").exists())
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.stem)
def test_module_imports_follow_the_layers(path: Path) -> None:
    module = path.stem
    assert module in ALLOWED, f"new module {module}: add it to the layer table"
    imported = imports_of(path)
    internal = {name.split(".")[1] for name in imported if name.startswith("zramd.")}
    assert internal <= ALLOWED[module], f"{module} imports {internal - ALLOWED[module]}"
    if module not in ASYNC_MODULES:
        assert not {"trio", "pyfuse3"} & {name.split(".")[0] for name in imported}, module
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc and len(doc) > 40, f"{module} needs a docstring saying what it owns"


def test_pool_and_device_load_without_trio_or_pyfuse3() -> None:
    code = (
        "import sys, zramd.device, zramd.pool, zramd.attrs, zramd.estimate; "
        "print(sorted(m for m in ('trio', 'pyfuse3') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"

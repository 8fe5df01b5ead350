"""Tier 0: the layering rules, checked on the source.

This file holds the one layer table of the project (docs/design.md and zramd/__init__.py point
here). Every module has a rank; a module may import only modules of a strictly lower rank, so
"talk downward only" and "no import cycle" are the same check. On top of the ranks, by package:

* `zramd.core` (the pure synchronous core: units, errors, parsers, codecs, size classes, pool,
  device, attribute files) imports only the standard library, the codecs and `zramd.core`;
* `zramd.host` (what both sides need about the host) imports only `zramd.core` besides that;
* `zramd.serve` (the FUSE front end and the daemon) and `zramd.admin` (the CLI-process tools)
  never import each other;
* only `zramd.serve` imports trio or pyfuse3;
* nothing in `zramd` imports `benchmarks` (a developer tool, not shipped).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# module -> rank; lower ranks are lower layers.
LAYERS: dict[str, int] = {
    "zramd": 0,  # the package itself holds only __version__ and imports nothing
    # the core: stdlib and codecs only
    "zramd.core.units": 0,
    "zramd.core.errors": 0,
    "zramd.core.records": 0,
    "zramd.core.buildinfo": 0,
    "zramd.core.memory": 0,
    "zramd.core.backing": 1,
    "zramd.core.kparse": 1,
    "zramd.core.compress": 1,
    "zramd.core.size_classes": 1,
    "zramd.core.streams": 1,
    "zramd.core.codec": 2,
    "zramd.core.pool": 2,
    "zramd.core.device": 3,
    "zramd.core.attrs": 4,
    "zramd.core.engine": 4,
    "zramd.core": 5,
    # the host: paths, mounts, processes, attribute directories read from outside
    "zramd.host.rundir": 10,
    "zramd.host.settings": 10,
    "zramd.host.loop": 10,
    "zramd.host.mounts": 11,
    "zramd.host.processes": 11,
    "zramd.host.sysdir": 11,
    "zramd.host": 12,
    # the daemon side
    "zramd.serve.hardening": 20,
    "zramd.serve.sdnotify": 20,
    "zramd.serve.testing": 20,
    "zramd.serve.block": 21,
    "zramd.serve.policy": 21,
    "zramd.serve.ops": 22,
    "zramd.serve.daemon": 23,
    "zramd.serve": 24,
    # the command-line side
    "zramd.admin.config_file": 20,
    "zramd.admin.estimate": 20,
    "zramd.admin.devices": 20,
    "zramd.admin.blockdev": 21,
    "zramd.admin.control": 22,
    "zramd.admin.configured": 23,
    "zramd.admin": 24,
    # the top
    "zramd.cli": 31,
    "zramd.__main__": 32,
    # developer tools outside the product
    "benchmarks.runners": 40,
    "benchmarks.pool": 41,
    "benchmarks.report": 41,
    "benchmarks.swap": 41,
    "benchmarks.stages": 41,
    "benchmarks.writeback": 41,
    "benchmarks.chart": 42,
    "benchmarks.fio_matrix": 43,
    "benchmarks": 41,
}
THIRD_PARTY_CORE = {"lzo", "lz4", "zstandard"}
ASYNC = {"trio", "pyfuse3"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


SOURCES = sorted([*(ROOT / "zramd").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")])
MODULES = {module_name(p): p for p in SOURCES}


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, lazily or not; ``from zramd.core import pool`` counts as
    zramd.core.pool, not as the package."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in MODULES else node.module)
    return found


def internal(names: set[str]) -> set[str]:
    return {n for n in names if n.split(".")[0] in ("zramd", "benchmarks")}


def test_every_module_has_a_rank() -> None:
    assert set(MODULES) == set(LAYERS), "add new modules to LAYERS (and remove gone ones)"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_go_strictly_downward(name: str) -> None:
    for imported in internal(imports_of(MODULES[name])):
        assert imported in LAYERS, f"{name} imports {imported}, which is not a module"
        assert LAYERS[imported] < LAYERS[name], (
            f"{name} (rank {LAYERS[name]}) imports {imported} (rank {LAYERS[imported]})"
        )


@pytest.mark.parametrize("name", sorted(MODULES))
def test_package_rules(name: str) -> None:
    imported = imports_of(MODULES[name])
    tops = {n.split(".")[0] for n in imported}
    ours = internal(imported)
    if name.startswith("zramd.core"):
        outside = {n for n in tops - THIRD_PARTY_CORE if n not in sys.stdlib_module_names and n != "zramd"}
        assert not outside, f"{name} imports {outside}: the core takes only the stdlib and the codecs"
        assert all(n.startswith("zramd.core") for n in ours), f"{name} reaches outside the core"
    if name.startswith("zramd.host"):
        assert all(n.startswith(("zramd.core", "zramd.host")) for n in ours), name
    if name.startswith("zramd.serve"):
        assert not any(n.startswith("zramd.admin") for n in ours), f"{name} imports the CLI side"
    if name.startswith("zramd.admin"):
        assert not any(n.startswith("zramd.serve") for n in ours), f"{name} imports the daemon side"
    if not name.startswith("zramd.serve"):
        assert not ASYNC & tops, f"{name} imports {ASYNC & tops}; only zramd.serve may"
    if name.startswith("zramd"):
        assert "benchmarks" not in tops, f"{name} imports the benchmarks"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_says_what_it_owns(name: str) -> None:
    doc = ast.get_docstring(ast.parse(MODULES[name].read_text()))
    assert doc and len(doc) > 40, f"{name} needs a docstring saying what it owns"


def test_the_check_sees_a_planted_upward_import(tmp_path: Path) -> None:
    """The walker finds lazy imports inside functions and resolves ``from pkg import module``."""
    planted = tmp_path / "planted.py"
    planted.write_text("def f():\n    from zramd.serve import daemon\n    import zramd.cli\n")
    assert imports_of(planted) >= {"zramd.serve.daemon", "zramd.cli"}


def test_the_core_loads_without_trio_or_pyfuse3() -> None:
    code = (
        "import sys, zramd.core.device, zramd.core.pool, zramd.core.attrs, zramd.admin.estimate, "
        "zramd.admin.control, zramd.host.sysdir; "
        "print(sorted(m for m in ('trio', 'pyfuse3') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"

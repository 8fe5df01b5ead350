"""Build zramd's compiled per-page path, where a C compiler and Cython are at hand.

pyproject.toml holds the project's metadata; this file only adds the optional extension modules.
Each module of `COMPILED` (zramd/core/pool.py, ...) is copied, with its augmenting ``.pxd``, to
``build/cython/zramd/core/<compiled name>.py`` -- imports of its compiled siblings rewritten to
their compiled names, and the SHA-256 of the source and ``.pxd`` recorded in it -- and Cython
compiles the copy into an extension module of that name. The Python source keeps its own name and
stays importable, so `zramd.core.engine` can choose between the two at import, and can tell a
compiled module built from an older source (an editable install's stale ``.so``) by the hash.
A failed or impossible build is not an error: zramd then runs the Python source, and this says
so in one line.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from zramd.core.buildinfo import CORE_DIR, NATIVE, built_modules, module_names, source_digest  # noqa: E402

GENERATED = HERE / "build" / "cython"
DIRECTIVES = {
    "language_level": 3,
    "annotation_typing": False,
    "boundscheck": True,
    "wraparound": True,
    "nonecheck": True,
}


def generate() -> list[Extension]:
    package = GENERATED / "zramd" / "core"
    package.mkdir(parents=True, exist_ok=True)
    for init in (GENERATED / "zramd" / "__init__.py", package / "__init__.py"):
        init.write_text("")
    renames = module_names()
    libraries = {twin: list(libs) for twin, libs in NATIVE.values()}
    extensions = []
    for compiled, source_name in built_modules().items():
        main = ".pyx" if (CORE_DIR / f"{source_name}.pyx").exists() else ".py"
        for suffix in (main, ".pxd"):
            source = CORE_DIR / f"{source_name}{suffix}"
            if not source.exists():
                continue
            text = source.read_text()
            for sibling, sibling_compiled in renames.items():
                text = re.sub(rf"\bzramd\.core\.{sibling}\b", f"zramd.core.{sibling_compiled}", text)
            if suffix == main:
                text += f'\n\nSOURCE_SHA256 = "{source_digest(source_name)}"\n'
            target = package / f"{compiled}{suffix}"
            if not target.exists() or target.read_text() != text:
                target.write_text(text)
        extensions.append(
            Extension(
                f"zramd.core.{compiled}",
                [str(package / f"{compiled}{main}")],
                libraries=libraries.get(compiled, []),
            )
        )
    return extensions


class OptionalBuildExt(build_ext):
    """build_ext that turns a failure into one line: zramd runs its Python source instead."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            _say(f"building the compiled core failed ({exc}); zramd will run its Python source")

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            _say(f"compiling {ext.name} failed ({exc}); zramd will run its Python source")


def _say(message: str) -> None:
    print(f"zramd setup: {message}", file=sys.stderr)


def extensions() -> list[Extension]:
    if os.environ.get("ZRAMD_PURE_PYTHON") == "1":
        _say("ZRAMD_PURE_PYTHON=1: not building the compiled core")
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        _say("Cython is not installed: not building the compiled core; zramd will run its Python source")
        return []
    try:
        return cythonize(
            generate(),
            include_path=[str(GENERATED)],
            compiler_directives=DIRECTIVES,
            quiet=True,
        )
    except Exception as exc:
        _say(f"cythonize failed ({exc}); zramd will run its Python source")
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})

"""Tier 9: zramd as a user installs it -- a wheel built from this tree, installed into a fresh
virtualenv (not editable), run from outside the source tree.

The editable install of scripts/bootstrap and CI would hide a package the wheel leaves out; this
test would not: it imports every module of the source tree from the installed wheel, checks the
wheel ships nothing else (no tests, no benchmarks), and starts and stops a real device with the
installed `zramd` command.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.mount_util import check_daemon_log, fuse_unavailable

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ROOT / "build" / "wheels"  # where scripts/bootstrap puts the patched pyfuse3

pytestmark = pytest.mark.slow


def _run(*args: str | Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False
    )
    command = " ".join(map(str, args))
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
    return result


def zramd_status_json(zramd: Path, cwd: Path) -> str:
    return _run(zramd, "status", "--json", cwd=cwd).stdout


def source_modules() -> set[str]:
    names = set()
    for path in (ROOT / "zramd").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.add(".".join(parts))
    return names


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the wheel, the fresh virtualenv's bin directory)."""
    pyfuse3_wheels = sorted(WHEELS.glob("pyfuse3-*.whl"))
    if not pyfuse3_wheels:
        pytest.skip(f"no pyfuse3 wheel in {WHEELS} (scripts/bootstrap builds it)")
    work = tmp_path_factory.mktemp("wheel")
    dist = work / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, ROOT, cwd=work)
    (wheel,) = dist.glob("zramd-*.whl")
    env = work / "venv"
    venv.create(env, with_pip=True)
    _run(env / "bin" / "pip", "install", "-q", "--find-links", WHEELS, wheel, cwd=work)
    return wheel, env / "bin"


def test_the_wheel_ships_every_package_and_nothing_else(installed: tuple[Path, Path]) -> None:
    wheel, _ = installed
    with zipfile.ZipFile(wheel) as archive:
        shipped = {
            name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            for name in archive.namelist()
            if name.endswith(".py")
        }
    assert shipped == source_modules()


def test_every_module_imports_from_the_installed_wheel(installed: tuple[Path, Path], tmp_path: Path) -> None:
    _, bin_dir = installed
    modules = sorted(source_modules() - {"zramd.__main__"})
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    module = importlib.import_module(name)\n"
        "    assert '/site-packages/' in module.__file__, module.__file__\n"
        "print('ok')\n"
    )
    assert _run(bin_dir / "python", "-c", code, cwd=tmp_path).stdout.strip() == "ok"


def test_the_installed_command_starts_and_stops_a_device(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    reason = fuse_unavailable()
    if reason:
        pytest.skip(reason)
    _, bin_dir = installed
    zramd = bin_dir / "zramd"
    assert "start" in _run(zramd, "--help", cwd=tmp_path).stdout
    mountpoint = tmp_path / "m"
    mountpoint.mkdir()
    _run(zramd, "start", mountpoint, "--size", "16M", "--algorithm", "lz4", cwd=tmp_path)
    try:
        device = mountpoint / "zram0"
        assert (device / "disksize").read_text() == f"{16 << 20}\n"
        assert "[lz4]" in (device / "comp_algorithm").read_text()
        daemon = (mountpoint / "zram-control" / "daemon").read_text()
        assert "fallocate: yes" in daemon, daemon
        if shutil.which("cc") is not None:  # pip built the compiled core into the wheel
            assert "core: compiled (built from the current source)" in daemon, daemon
        with open(device / "disk", "r+b") as disk:
            disk.write(b"zramd from a wheel\n" * 200)
            disk.flush()
            disk.seek(0)
            assert disk.read(19) == b"zramd from a wheel\n"
        assert "/zram0 " in _run(zramd, "status", "--bytes", cwd=tmp_path).stdout
        assert str(device) in zramd_status_json(zramd, tmp_path)
    finally:
        stopped = subprocess.run([zramd, "stop", mountpoint], capture_output=True, text=True, check=False)
        if stopped.returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, check=False)
    assert stopped.returncode == 0, stopped.stderr
    check_daemon_log(mountpoint)
